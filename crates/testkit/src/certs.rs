//! Test certificates, made at run time (never checked in): a CA, a server certificate
//! for `localhost` and `127.0.0.1`, and a client certificate, all signed by the CA, plus a
//! second CA's client certificate that the first CA does not vouch for. PEM files in a
//! directory, for `--tls-*` options, redis-cli, redis-py and kiln-cli alike.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The PEM files of one set of test certificates.
pub struct Certs {
    pub dir: PathBuf,
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
    /// A client certificate signed by another CA.
    pub stranger_cert: String,
    pub stranger_key: String,
}

fn ca(name: &str) -> (CertificateParams, KeyPair, String) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::CrlSign,
    ];
    let pem = p.self_signed(&key).unwrap().pem();
    (p, key, pem)
}

fn leaf(
    issuer: &Issuer<'_, &KeyPair>,
    names: &[&str],
    usage: &[ExtendedKeyUsagePurpose],
) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut p = CertificateParams::new(names).unwrap();
    p.distinguished_name.push(DnType::CommonName, "kiln test");
    p.extended_key_usages = usage.to_vec();
    let cert = p.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Certs {
    /// Writes a fresh set into `dir` (created if needed).
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        let (ca_params, ca_key, ca_pem) = ca("Kiln test CA");
        let issuer = Issuer::from_params(&ca_params, &ca_key);
        // Redis uses one certificate both ways (a replica presents its tls-cert-file to its
        // primary): the server's allows both.
        let (server_cert, server_key) = leaf(
            &issuer,
            &["localhost", "127.0.0.1"],
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let (client_cert, client_key) =
            leaf(&issuer, &["client"], &[ExtendedKeyUsagePurpose::ClientAuth]);
        let (other_params, other_key, _) = ca("Another CA");
        let other = Issuer::from_params(&other_params, &other_key);
        let (stranger_cert, stranger_key) = leaf(
            &other,
            &["stranger"],
            &[ExtendedKeyUsagePurpose::ClientAuth],
        );
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).unwrap();
            p.to_string_lossy().into_owned()
        };
        Certs {
            dir: dir.to_path_buf(),
            ca: write("ca.crt", &ca_pem),
            server_cert: write("server.crt", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.crt", &client_cert),
            client_key: write("client.key", &client_key),
            stranger_cert: write("stranger.crt", &stranger_cert),
            stranger_key: write("stranger.key", &stranger_key),
        }
    }

    /// kiln-server / redis-server options serving TLS on `tls_port` with these files.
    pub fn server_args(&self, tls_port: u16) -> Vec<String> {
        [
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &self.server_cert,
            "--tls-key-file",
            &self.server_key,
            "--tls-ca-cert-file",
            &self.ca,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}
