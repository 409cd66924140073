//! TLS for clients of a cluster whose certificates come from its own CA: the CA is known by
//! its pin (base64 of the SHA-256 of its DER form, what `flynn cluster add -p` takes), and a
//! server is trusted when it presents that CA in its chain and a certificate the CA signed
//! for the name asked for. Certificates from a public CA are checked against the system's
//! roots when no pin is set.

use std::sync::Arc;

use base64::Engine;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use sha2::{Digest, Sha256};

/// A pin that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("TLS pin {0:?}: expected base64 of a SHA-256 digest (44 characters)")]
pub struct PinError(String);

/// A server name that is neither a DNS name nor an IP address.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a server name TLS can check")]
pub struct NameError(pub String);

/// The pin of a certificate: base64 (standard, padded) of the SHA-256 of its DER form.
pub fn pin_of(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(Sha256::digest(der))
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A client config that trusts the CA pinned by `pin` (and nothing else).
pub fn pinned(pin: &str) -> Result<rustls::ClientConfig, PinError> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(pin.trim())
        .map_err(|_| PinError(pin.to_string()))?;
    let pin: [u8; 32] = bytes.try_into().map_err(|_| PinError(pin.to_string()))?;
    let provider = provider();
    let verifier = Pinned {
        pin,
        provider: provider.clone(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// A client config that trusts the CAs of the system's bundle
/// (`/etc/ssl/certs/ca-certificates.crt`, Debian's `ca-certificates`).
pub fn system() -> rustls::ClientConfig {
    let mut roots = RootCertStore::empty();
    if let Ok(pem) = std::fs::read("/etc/ssl/certs/ca-certificates.crt") {
        for cert in CertificateDer::pem_slice_iter(&pem).flatten() {
            let _ = roots.add(cert);
        }
    }
    rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default versions")
        .with_root_certificates(roots)
        .with_no_client_auth()
}

#[derive(Debug)]
struct Pinned {
    pin: [u8; 32],
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let matches = |c: &CertificateDer<'_>| Sha256::digest(c.as_ref()).as_slice() == self.pin;
        if matches(end_entity) {
            // The pinned certificate is the server's own.
            return Ok(ServerCertVerified::assertion());
        }
        let ca = intermediates.iter().find(|c| matches(c)).ok_or_else(|| {
            rustls::Error::General(
                "the server's certificate chain does not hold the cluster CA of this pin".into(),
            )
        })?;
        let mut roots = RootCertStore::empty();
        roots
            .add(ca.clone().into_owned())
            .map_err(|e| rustls::Error::General(format!("the pinned CA: {e}")))?;
        let webpki =
            WebPkiServerVerifier::builder_with_provider(Arc::new(roots), self.provider.clone())
                .build()
                .map_err(|e| rustls::Error::General(format!("the pinned CA: {e}")))?;
        webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_parse_or_say_why() {
        let pin = pin_of(b"a certificate");
        assert_eq!(pin.len(), 44);
        assert!(pinned(&pin).is_ok());
        for bad in ["", "not base64!", "YWJj"] {
            let e = pinned(bad).unwrap_err().to_string();
            assert!(e.contains("expected base64 of a SHA-256 digest"), "{e}");
        }
    }
}
