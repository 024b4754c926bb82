//! What kiln-server (its `tls-*` settings, a replica's link to its primary) and kiln-cli
//! (`--tls`) share of TLS: rustls's `ring` provider, loading PEM files, and verifying a
//! server the way Redis and hiredis do with OpenSSL (`SSL_VERIFY_PEER`: the chain up to a
//! trusted CA, not the host name).
//!
//! rustls and ring only: no OpenSSL, no cmake or clang (aws-lc-rs would need them).
//! Knows nothing of Kiln's other crates.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

pub use rustls;

/// ring's provider with every cipher suite it has.
pub fn ring_provider() -> CryptoProvider {
    // Deprecated only for lacking post-quantum key exchange, which ring does not offer;
    // the provider that has it, aws-lc-rs, needs cmake and clang to build.
    #[allow(deprecated)]
    rustls::crypto::ring::default_provider()
}

/// Every certificate of a PEM file; the error says which file and why.
pub fn load_certs(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{path}: {e}"))?;
    if certs.is_empty() {
        return Err(format!("{path}: no certificate found"));
    }
    Ok(certs)
}

/// The private key of a PEM file (PKCS#8, PKCS#1 or SEC1; not encrypted).
pub fn load_key(path: &str) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("{path}: {e}"))
}

/// Verifies a server's certificate chain against trusted CAs but not its name, as Redis's
/// replicas and redis-cli do; without CAs (`--insecure`), nothing but the handshake's
/// signatures.
#[derive(Debug)]
pub struct ChainVerifier {
    roots: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ChainVerifier {
    /// Trusts `roots`; `None` trusts any certificate.
    pub fn new(
        roots: Option<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Self, String> {
        let roots = match roots {
            Some(r) => Some(
                rustls::client::WebPkiServerVerifier::builder_with_provider(
                    Arc::new(r),
                    provider.clone(),
                )
                .build()
                .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        Ok(Self { roots, provider })
    }

    fn algorithms(&self) -> &rustls::crypto::WebPkiSupportedAlgorithms {
        &self.provider.signature_verification_algorithms
    }
}

type Dss = DigitallySignedStruct;
type Verified = Result<HandshakeSignatureValid, rustls::Error>;

impl ServerCertVerifier for ChainVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        use rustls::{CertificateError, Error};
        let Some(v) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        match v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            r => r,
        }
    }

    fn verify_tls12_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Dss) -> Verified {
        rustls::crypto::verify_tls12_signature(m, c, d, self.algorithms())
    }

    fn verify_tls13_signature(&self, m: &[u8], c: &CertificateDer<'_>, d: &Dss) -> Verified {
        rustls::crypto::verify_tls13_signature(m, c, d, self.algorithms())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms().supported_schemes()
    }
}
