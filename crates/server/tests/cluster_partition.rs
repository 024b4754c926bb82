//! A network partition in a real cluster: six nodes, each in its own network namespace on
//! a bridge this test creates, three primaries with a replica each, Kiln and Redis nodes
//! alternating. Cutting one primary's link isolates it: after the node timeout it stops
//! accepting writes (`-CLUSTERDOWN`), the majority side promotes its replica, and once the
//! link is back the old primary rejoins as a replica of the new one, with every write
//! acknowledged before the cut still there.
//!
//! Needs root and `ip` (network namespaces, veth, bridge); skipped (with a note) where they
//! are missing, unless `KILN_REQUIRE_NETNS` is set.

mod support;

use std::process::{Command, Stdio};

use support::redis_tools;

/// This run's names: interface names are at most 15 bytes, so they are short.
struct Net {
    tag: String,
    subnet: u8,
    nodes: Vec<std::process::Child>,
    dirs: Vec<std::path::PathBuf>,
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn ip_ok(args: &[&str]) {
    assert!(ip(args), "ip {}", args.join(" "));
}

impl Net {
    fn new() -> Option<Net> {
        let pid = std::process::id();
        let net = Net {
            tag: format!("k{}", pid % 100_000),
            subnet: (pid % 200) as u8 + 20,
            nodes: Vec::new(),
            dirs: Vec::new(),
        };
        // Probe: can this process make namespaces?
        let probe = format!("{}p", net.tag);
        if !ip(&["netns", "add", &probe]) {
            return None;
        }
        ip(&["netns", "del", &probe]);
        let br = net.bridge();
        ip_ok(&["link", "add", &br, "type", "bridge"]);
        ip_ok(&[
            "addr",
            "add",
            &format!("10.{}.0.254/24", net.subnet),
            "dev",
            &br,
        ]);
        ip_ok(&["link", "set", &br, "up"]);
        Some(net)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }
    fn ns(&self, i: usize) -> String {
        format!("{}n{i}", self.tag)
    }
    fn veth(&self, i: usize) -> String {
        format!("{}v{i}", self.tag)
    }
    fn addr(&self, i: usize) -> String {
        format!("10.{}.0.{}", self.subnet, i + 1)
    }

    /// Starts node `i` of `bin` in its own namespace, at its own address, port 7000.
    fn start(&mut self, i: usize, bin: &str) {
        let (ns, veth) = (self.ns(i), self.veth(i));
        ip_ok(&["netns", "add", &ns]);
        ip_ok(&[
            "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
        ]);
        ip_ok(&["link", "set", &veth, "master", &self.bridge(), "up"]);
        ip_ok(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{}/24", self.addr(i)),
            "dev",
            "eth0",
        ]);
        ip_ok(&["-n", &ns, "link", "set", "eth0", "up"]);
        ip_ok(&["-n", &ns, "link", "set", "lo", "up"]);
        let dir = std::env::temp_dir().join(format!("kiln-part-{}-{i}", self.tag));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("server.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, bin])
            .args(["--port", "7000", "--bind", &self.addr(i)])
            .args([
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
            ])
            .args([
                "--cluster-node-timeout",
                "2000",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .args(["--protected-mode", "no", "--dir", dir.to_str().unwrap()])
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.nodes.push(child);
        self.dirs.push(dir);
    }

    /// A connection to node `i` from this (the root) namespace, through the bridge.
    fn raw(&self, i: usize) -> support::Raw {
        support::Raw::connect_to(&self.addr(i), 7000)
    }

    /// A reply of node `i` asked from inside its own namespace (reachable when cut off).
    fn inside(&self, i: usize, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns(i),
                "redis-cli",
                "-h",
                &self.addr(i),
                "-p",
                "7000",
            ])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.nodes {
            let _ = c.kill();
            let _ = c.wait();
        }
        for i in 0..self.nodes.len() {
            // The namespace's processes are gone; its veth goes with it.
            ip(&["netns", "del", &self.ns(i)]);
        }
        ip(&["link", "del", &self.bridge()]);
        if std::thread::panicking() {
            for d in &self.dirs {
                eprintln!("node log kept: {}", d.join("server.log").display());
            }
        } else {
            for d in &self.dirs {
                let _ = std::fs::remove_dir_all(d);
            }
        }
    }
}

fn state(c: &mut support::Raw) -> String {
    c.cmd(&["CLUSTER", "INFO"])
        .lines()
        .find_map(|l| l.strip_prefix("cluster_state:").map(str::to_string))
        .unwrap_or_default()
}

#[test]
fn a_cut_off_primary_stops_writes_and_rejoins_as_a_replica() {
    if !redis_tools(&["redis-server", "redis-cli"]) {
        return;
    }
    let Some(mut net) = Net::new() else {
        assert!(
            std::env::var_os("KILN_REQUIRE_NETNS").is_none(),
            "network namespaces are not available"
        );
        eprintln!("skipped: this process cannot create network namespaces");
        return;
    };
    let bins = [support::kiln_bin(), "redis-server"];
    for i in 0..6 {
        net.start(i, bins[i % 2]);
    }
    for i in 0..6 {
        let addr = net.addr(i);
        support::poll("the node to serve", || {
            std::net::TcpStream::connect((addr.as_str(), 7000)).ok()
        });
    }
    let addrs: Vec<String> = (0..6).map(|i| format!("{}:7000", net.addr(i))).collect();
    let out = Command::new("timeout")
        .args(["120", "redis-cli", "--cluster", "create"])
        .args(&addrs)
        .args(["--cluster-replicas", "1", "--cluster-yes"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && !text.contains("[ERR]"), "{text}");
    for i in 0..6 {
        let mut c = net.raw(i);
        support::poll("cluster_state:ok", || (state(&mut c) == "ok").then_some(()));
    }
    // Node 0 is a primary (Kiln); find its replica.
    let mut c0 = net.raw(0);
    let id0 = c0
        .cmd(&["CLUSTER", "MYID"])
        .lines()
        .nth(1)
        .unwrap()
        .to_string();
    let replica = (1..6)
        .find(|&i| {
            net.raw(i)
                .cmd(&["CLUSTER", "NODES"])
                .lines()
                .any(|l| l.contains("myself,slave") && l.contains(&id0))
        })
        .expect("node 0 has a replica");
    // A key node 0 serves, acknowledged by its replica before the cut.
    let key = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| c0.cmd(&["SET", k, "before"]) == "+OK\r\n")
        .unwrap();
    assert_eq!(c0.cmd(&["WAIT", "1", "5000"]), ":1\r\n");

    ip_ok(&["link", "set", &net.veth(0), "down"]);
    // The minority side: writes stop once it has been cut off for the node timeout.
    support::poll("the cut-off primary to refuse writes", || {
        net.inside(0, &["SET", &key, "during"])
            .starts_with("CLUSTERDOWN")
            .then_some(())
    });
    // The majority side promotes the replica.
    let mut cr = net.raw(replica);
    support::poll("the replica to be promoted", || {
        cr.cmd(&["ROLE"]).contains("master").then_some(())
    });
    assert_eq!(cr.cmd(&["GET", &key]), "$6\r\nbefore\r\n");
    assert_eq!(cr.cmd(&["SET", &key, "after"]), "+OK\r\n");

    // Healed: the old primary follows the new one, and everyone agrees.
    ip_ok(&["link", "set", &net.veth(0), "up"]);
    let mut c0 = net.raw(0);
    support::poll("the old primary to rejoin as a replica", || {
        let me = c0.cmd(&["CLUSTER", "NODES"]);
        me.lines().any(|l| l.contains("myself,slave")).then_some(())
    });
    support::poll("the old primary to have the new value", || {
        let _ = c0.cmd(&["READONLY"]);
        (c0.cmd(&["GET", &key]) == "$5\r\nafter\r\n").then_some(())
    });
    for i in 0..6 {
        let mut c = net.raw(i);
        support::poll("cluster_state:ok everywhere", || {
            (state(&mut c) == "ok").then_some(())
        });
    }
    let check = Command::new("redis-cli")
        .args(["--cluster", "check", &addrs[1]])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&check.stdout);
    assert!(
        !text.contains("[ERR]") && !text.contains("[WARNING]"),
        "{text}"
    );
}
