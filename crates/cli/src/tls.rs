//! TLS for kiln-cli (`--tls`, `rediss://`): redis-cli's options on rustls (ring).
//!
//! As hiredis does, the server's certificate chain is verified against the CA
//! (`--cacert`, `--cacertdir`, else the system's bundle) but not its host name;
//! `--insecure` verifies nothing but the handshake's signatures. `--sni` names the server
//! in the handshake.

use std::io;
use std::net::TcpStream;
use std::sync::Arc;

use kiln_tls::ChainVerifier;
use rustls::pki_types::ServerName;

/// The TLS options of the command line.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    pub cacert: Option<String>,
    pub cacertdir: Option<String>,
    pub cert: Option<String>,
    pub key: Option<String>,
    pub sni: Option<String>,
    pub insecure: bool,
}

/// Where Debian, Alpine and Red Hat keep the system's CA bundle (OpenSSL's default paths,
/// which redis-cli falls back on).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// The client configuration the options describe.
fn config(o: &Options) -> io::Result<Arc<rustls::ClientConfig>> {
    let provider = Arc::new(kiln_tls::ring_provider());
    let roots = if o.insecure {
        None
    } else {
        let mut roots = rustls::RootCertStore::empty();
        let mut files: Vec<String> = o.cacert.iter().cloned().collect();
        if let Some(dir) = &o.cacertdir {
            for e in std::fs::read_dir(dir).map_err(other)?.flatten() {
                files.push(e.path().to_string_lossy().into_owned());
            }
        }
        if o.cacert.is_none() && o.cacertdir.is_none() {
            files.extend(SYSTEM_BUNDLES.iter().map(|s| s.to_string()));
        }
        for f in &files {
            match kiln_tls::load_certs(f) {
                Ok(c) => {
                    roots.add_parsable_certificates(c);
                }
                // The one file named must load.
                Err(e) if Some(f) == o.cacert.as_ref() => {
                    return Err(other(format!("Invalid CA Certificate File/Directory: {e}")))
                }
                Err(_) => {}
            }
        }
        Some(roots)
    };
    let verifier = ChainVerifier::new(roots, provider.clone())
        .map_err(|e| other(format!("Invalid CA Certificate File/Directory: {e}")))?;
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(other)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match (&o.cert, &o.key) {
        (Some(cert), Some(key)) => {
            let key =
                kiln_tls::load_key(key).map_err(|e| other(format!("Invalid private key: {e}")))?;
            let certs = kiln_tls::load_certs(cert)
                .map_err(|e| other(format!("Invalid client certificate: {e}")))?;
            b.with_client_auth_cert(certs, key).map_err(other)?
        }
        _ => b.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Wraps a connected socket in TLS and completes the handshake.
pub fn connect(
    sock: TcpStream,
    host: &str,
    o: &Options,
) -> io::Result<rustls::StreamOwned<rustls::ClientConnection, TcpStream>> {
    let name = o.sni.as_deref().unwrap_or(host).to_string();
    let name = ServerName::try_from(name)
        .or_else(|_| ServerName::try_from("localhost".to_string()))
        .map_err(other)?;
    let session = rustls::ClientConnection::new(config(o)?, name).map_err(other)?;
    let mut s = rustls::StreamOwned::new(session, sock);
    while s.conn.is_handshaking() {
        s.conn
            .complete_io(&mut s.sock)
            .map_err(|e| other(format!("SSL_connect failed: {e}")))?;
    }
    Ok(s)
}
