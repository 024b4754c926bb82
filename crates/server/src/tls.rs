//! TLS settings: the `tls-*` parameters turned into rustls configurations (the server's,
//! for clients on `tls-port`, and the client's, for a replica's link to its primary), and
//! the server configuration in force, which CONFIG SET replaces for new connections.
//!
//! rustls with the `ring` provider (`kiln_tls`, shared with kiln-cli), no OpenSSL. What that cannot do as Redis does is in
//! docs/COMPATIBILITY.md: TLS 1.0/1.1, encrypted private keys (`tls-key-file-pass`),
//! OpenSSL cipher-string keywords, `tls-dh-params-file` (no finite-field DH in rustls).
//!
//! Knows the config, nothing of the server.

use std::sync::Arc;

use kiln_tls::ChainVerifier;
use parking_lot::RwLock;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, SupportedProtocolVersion};

use crate::config::Config;

/// The server configuration new TLS connections get (None while TLS is off).
#[derive(Default)]
pub struct Tls {
    server: RwLock<Option<Arc<rustls::ServerConfig>>>,
}

impl Tls {
    /// The configuration for a connection accepted now.
    pub fn acceptor(&self) -> Option<Arc<rustls::ServerConfig>> {
        self.server.read().clone()
    }

    /// Replaces the configuration for connections accepted from now on.
    pub fn install(&self, config: Option<Arc<rustls::ServerConfig>>) {
        *self.server.write() = config;
    }
}

/// Whether the configuration asks for TLS at all (Redis configures it only then).
pub fn wanted(c: &Config) -> bool {
    c.get_u64("tls-port") != 0 || c.get_bool("tls-replication") || c.get_bool("tls-cluster")
}

/// The provider: ring's, with the cipher suites `tls-ciphers` (TLS 1.2, OpenSSL names)
/// and `tls-ciphersuites` (TLS 1.3) allow.
fn provider(c: &Config) -> Result<Arc<CryptoProvider>, String> {
    // Deprecated only for lacking post-quantum key exchange, which ring does not offer;
    // the alternative provider, aws-lc-rs, needs cmake and clang to build.
    let mut p = kiln_tls::ring_provider();
    let (v12, v13): (Vec<_>, Vec<_>) = p
        .cipher_suites
        .iter()
        .copied()
        .partition(|s| s.version() == &rustls::version::TLS12);
    let v12 = pick_suites(v12, c.get("tls-ciphers"))
        .ok_or_else(|| format!("Failed to configure ciphers: {}", c.get("tls-ciphers")))?;
    let v13 = pick_suites(v13, c.get("tls-ciphersuites")).ok_or_else(|| {
        format!(
            "Failed to configure ciphersuites: {}",
            c.get("tls-ciphersuites")
        )
    })?;
    p.cipher_suites = v13.into_iter().chain(v12).collect();
    Ok(Arc::new(p))
}

/// The suites a colon-separated OpenSSL cipher list names, in its order; all of them for
/// an empty list or one of OpenSSL's catch-all keywords. None if it names none rustls has
/// (OpenSSL's rule: unknown names are skipped, a list that matches nothing fails).
fn pick_suites(
    all: Vec<rustls::SupportedCipherSuite>,
    list: &str,
) -> Option<Vec<rustls::SupportedCipherSuite>> {
    let words: Vec<&str> = list
        .split([':', ',', ' '])
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return Some(all);
    }
    let mut out = Vec::new();
    for w in words {
        if ["DEFAULT", "ALL", "HIGH"].contains(&w) {
            for s in &all {
                if !out.contains(s) {
                    out.push(*s);
                }
            }
            continue;
        }
        let want = suite_name(w);
        if let Some(s) = all
            .iter()
            .find(|s| format!("{:?}", s.suite()) == want && !out.contains(*s))
        {
            out.push(*s);
        }
    }
    (!out.is_empty()).then_some(out)
}

/// rustls's name for a suite named the OpenSSL way (`ECDHE-RSA-AES128-GCM-SHA256`,
/// `TLS_AES_128_GCM_SHA256`) or the IANA way.
fn suite_name(openssl: &str) -> String {
    let w = openssl.to_ascii_uppercase();
    if let Some(rest) = w.strip_prefix("TLS_") {
        if !rest.contains("_WITH_") {
            // TLS 1.3 suites: TLS_AES_128_GCM_SHA256 is rustls's TLS13_AES_128_GCM_SHA256.
            return format!("TLS13_{rest}");
        }
        return w;
    }
    // OpenSSL's TLS 1.2 names: KX-AUTH-CIPHER[-MAC].
    let (kx, rest) = match w.split_once('-') {
        Some(x) => x,
        None => return w,
    };
    let (auth, cipher) = match rest.split_once('-') {
        Some(("RSA", c)) => ("RSA", c),
        Some(("ECDSA", c)) => ("ECDSA", c),
        _ => return w,
    };
    let cipher = match cipher {
        "AES128-GCM-SHA256" => "AES_128_GCM_SHA256",
        "AES256-GCM-SHA384" => "AES_256_GCM_SHA384",
        "CHACHA20-POLY1305" => "CHACHA20_POLY1305_SHA256",
        other => other,
    };
    format!("TLS_{kx}_{auth}_WITH_{cipher}")
}

/// `tls-protocols`: rustls has TLS 1.2 and 1.3; an empty value is both.
fn versions(c: &Config) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let v = c.get("tls-protocols");
    if v.trim().is_empty() {
        return Ok(rustls::ALL_VERSIONS.to_vec());
    }
    let mut out = Vec::new();
    for w in v.split_whitespace() {
        match w.to_ascii_lowercase().as_str() {
            "tlsv1.2" => out.push(&rustls::version::TLS12),
            "tlsv1.3" => out.push(&rustls::version::TLS13),
            "tlsv1" | "tlsv1.1" => {}
            _ => return Err("Invalid tls-protocols specified. Use a combination of 'TLSv1', 'TLSv1.1', 'TLSv1.2' and 'TLSv1.3'.".to_string()),
        }
    }
    if out.is_empty() {
        return Err(format!(
            "Unsupported tls-protocols '{v}': Kiln (rustls) supports only TLSv1.2 and TLSv1.3"
        ));
    }
    Ok(out)
}

fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    kiln_tls::load_certs(path).map_err(|e| format!("Failed to load certificate: {e}"))
}

fn load_key(path: &str, pass: &str) -> Result<PrivateKeyDer<'static>, String> {
    if !pass.is_empty() {
        return Err(format!(
            "Failed to load private key: {path}: encrypted private keys (a key file password) are not supported by Kiln; decrypt the key file (openssl pkey -in KEY -out PLAIN)"
        ));
    }
    kiln_tls::load_key(path).map_err(|e| format!("Failed to load private key: {e}"))
}

/// The CA certificates of `tls-ca-cert-file` and every certificate file in
/// `tls-ca-cert-dir`. One of them is required, as in Redis.
fn roots(c: &Config) -> Result<RootCertStore, String> {
    let (file, dir) = (c.get("tls-ca-cert-file"), c.get("tls-ca-cert-dir"));
    if file.is_empty() && dir.is_empty() {
        return Err("Either tls-ca-cert-file or tls-ca-cert-dir must be specified".into());
    }
    let mut store = RootCertStore::empty();
    if !file.is_empty() {
        for cert in load_certs(file).map_err(|e| {
            e.replace(
                "Failed to load certificate",
                "Failed to configure CA certificate(s) file/directory",
            )
        })? {
            store.add(cert).map_err(|e| {
                format!("Failed to configure CA certificate(s) file/directory: {e}")
            })?;
        }
    }
    if !dir.is_empty() {
        let entries = std::fs::read_dir(dir).map_err(|e| {
            format!("Failed to configure CA certificate(s) file/directory: {dir}: {e}")
        })?;
        for e in entries.flatten() {
            // OpenSSL's directories hold hash-named links and other files: take what parses.
            if let Ok(certs) = load_certs(&e.path().to_string_lossy()) {
                let _ = store.add_parsable_certificates(certs);
            }
        }
    }
    Ok(store)
}

/// The server's configuration from the `tls-*` parameters: what a connection on
/// `tls-port` is accepted with. The error is the log line that says what failed.
pub fn server_config(c: &Config) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = provider(c)?;
    let versions = versions(c)?;
    let roots = Arc::new(roots(c)?);
    let verifier = match c.get("tls-auth-clients") {
        "no" => WebPkiClientVerifier::no_client_auth(),
        mode => {
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if mode == "optional" {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build()
                .map_err(|e| format!("Failed to configure TLS: {e}"))?
        }
    };
    let certs = load_certs(c.get("tls-cert-file"))?;
    let key = load_key(c.get("tls-key-file"), c.get("tls-key-file-pass"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("Failed to configure TLS: {e}"))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(|e| format!("Failed to load private key: {}: {e}", c.get("tls-key-file")))?;
    config.ignore_client_order = c.get_bool("tls-prefer-server-ciphers");
    if c.get_bool("tls-session-caching") {
        // OpenSSL's 0 is "no limit".
        let size = match c.get_u64("tls-session-cache-size") {
            0 => 1 << 20,
            n => n as usize,
        };
        config.session_storage = rustls::server::ServerSessionMemoryCache::new(size);
    } else {
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(Arc::new(config))
}

/// The client configuration a replica connects to its primary with (`tls-replication`):
/// `tls-client-cert-file`/`tls-client-key-file` (else `tls-cert-file`/`tls-key-file`) as
/// its certificate, the CA settings to verify the primary's chain. Like Redis, the
/// primary's certificate is not checked against the host name.
pub fn client_config(c: &Config) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = provider(c)?;
    let versions = versions(c)?;
    let verifier = ChainVerifier::new(Some(roots(c)?), provider.clone())
        .map_err(|e| format!("Failed to configure TLS: {e}"))?;
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| format!("Failed to configure TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let (cert, key, pass) = if c.get("tls-client-cert-file").is_empty() {
        ("tls-cert-file", "tls-key-file", "tls-key-file-pass")
    } else {
        (
            "tls-client-cert-file",
            "tls-client-key-file",
            "tls-client-key-file-pass",
        )
    };
    let config = if c.get(cert).is_empty() {
        builder.with_no_client_auth()
    } else {
        let certs = load_certs(c.get(cert))?;
        let pkey = load_key(c.get(key), c.get(pass))?;
        builder
            .with_client_auth_cert(certs, pkey)
            .map_err(|e| format!("Failed to load private key: {}: {e}", c.get(key)))?
    };
    Ok(Arc::new(config))
}

/// The name a replica presents (SNI) to its primary `host`.
pub fn server_name(host: &str) -> ServerName<'static> {
    ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| ServerName::try_from("localhost").expect("a valid name"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openssl_cipher_names_map_to_rustls_suites() {
        assert_eq!(
            suite_name("ECDHE-RSA-AES128-GCM-SHA256"),
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        );
        assert_eq!(
            suite_name("ECDHE-ECDSA-CHACHA20-POLY1305"),
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256"
        );
        assert_eq!(
            suite_name("TLS_AES_256_GCM_SHA384"),
            "TLS13_AES_256_GCM_SHA384"
        );
        let all = kiln_tls::ring_provider().cipher_suites;
        let v13: Vec<_> = all
            .iter()
            .copied()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .collect();
        let picked = pick_suites(v13.clone(), "TLS_CHACHA20_POLY1305_SHA256").unwrap();
        assert_eq!(picked.len(), 1);
        assert!(pick_suites(v13.clone(), "BOGUS").is_none());
        assert_eq!(pick_suites(v13.clone(), "").unwrap().len(), v13.len());
    }

    #[test]
    fn protocols_are_checked() {
        let mut c = Config::default();
        assert_eq!(versions(&c).unwrap().len(), 2);
        c.set("tls-protocols", &["TLSv1.3".into()]).unwrap();
        assert_eq!(versions(&c).unwrap().len(), 1);
        c.set("tls-protocols", &["TLSv1.1".into()]).unwrap();
        assert!(versions(&c).is_err());
        c.set("tls-protocols", &["SSLv3".into()]).unwrap();
        assert!(versions(&c).is_err());
    }
}
