//! kiln-cli over a Unix socket (`-s`) and over TLS (`--tls`, `--cacert`, `--cert`, `--key`,
//! `--insecure`, `--sni`, `rediss://`), against kiln-server; where redis-cli is installed it
//! runs with the same arguments and must print the same.

mod support;

use kiln_testkit::certs::Certs;
use support::{kiln, Server};

fn same_if_possible(args: &[&str]) -> support::Run {
    support::same_if_possible(args, None)
}

#[test]
fn a_unix_socket_is_reached_with_dash_s() {
    let dir = support::scratch("unix");
    let sock = dir.join("kiln.sock");
    let sock = sock.to_str().unwrap();
    let _k = Server::kiln(&["--unixsocket", sock]);
    assert_eq!(
        same_if_possible(&["-s", sock, "set", "k", "v"]).out(),
        "OK\n"
    );
    assert_eq!(same_if_possible(&["-s", sock, "get", "k"]).out(), "v\n");
    let info = kiln(&["-s", sock, "client", "info"], None).out();
    assert!(info.contains(&format!("addr={sock}:0")), "{info}");
}

#[test]
fn tls_options_and_rediss_urls_connect_like_redis_cli() {
    let dir = support::scratch("tls");
    let c = Certs::new(&dir);
    let tls_port = support::free_port();
    let args = c.server_args(tls_port);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let _k = Server::kiln(&args);
    let p = tls_port.to_string();
    let cert = ["--cert", c.client_cert.as_str(), "--key", &c.client_key];
    let auth: Vec<&str> = ["--tls", "--cacert", &c.ca, "-p", &p]
        .into_iter()
        .chain(cert)
        .collect();
    let with =
        |more: &[&str]| -> Vec<String> { auth.iter().chain(more).map(|s| s.to_string()).collect() };
    let run = |args: Vec<String>| {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        same_if_possible(&args)
    };
    assert_eq!(run(with(&["set", "k", "v"])).out(), "OK\n");
    assert_eq!(run(with(&["get", "k"])).out(), "v\n");
    assert_eq!(run(with(&["--sni", "localhost", "ping"])).out(), "PONG\n");
    // --insecure: no CA needed.
    let insecure: Vec<&str> = ["--tls", "--insecure", "-p", &p]
        .into_iter()
        .chain(cert)
        .chain(["ping"])
        .collect();
    assert_eq!(kiln(&insecure, None).out(), "PONG\n");
    let url = format!("rediss://127.0.0.1:{tls_port}/2");
    let args: Vec<&str> = ["-u", &url, "--cacert", &c.ca]
        .into_iter()
        .chain(cert)
        .chain(["client", "info"])
        .collect();
    let r = kiln(&args, None);
    assert!(r.out().contains(" db=2 "), "{}{}", r.out(), r.err());
    // Without a client certificate the server (tls-auth-clients yes) turns it away.
    let bare = kiln(&["--tls", "--cacert", &c.ca, "-p", &p, "ping"], None);
    assert_ne!(bare.out(), "PONG\n");
}
