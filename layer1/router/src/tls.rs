//! TLS: certificates chosen per connection by SNI from the live route table (a route's
//! certificate for its domain or a wildcard), else the router's default; TLS 1.2 and 1.3 only;
//! ALPN offers h2 and http/1.1.

use std::sync::Arc;

use arc_swap::ArcSwap;
use router_api::Certificate;
use rustls::crypto::ring::default_provider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::table::RouteTable;

/// A certificate that cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    /// No certificate in the PEM.
    #[error("the certificate PEM holds no CERTIFICATE block")]
    NoCertificate,
    /// The PEM does not parse.
    #[error("the certificate PEM does not parse: {0}")]
    BadCertificate(String),
    /// The key does not parse.
    #[error("the private key does not parse (PEM PKCS#8, PKCS#1 or SEC1 expected): {0}")]
    BadKey(String),
    /// The key is not one TLS can sign with, or does not belong to the certificate.
    #[error("the private key cannot be used with this certificate: {0}")]
    Mismatch(String),
}

/// Parses a PEM chain and key into what rustls serves, checking the key matches the leaf.
pub fn certified_key(cert: &Certificate) -> Result<CertifiedKey, CertError> {
    let chain = CertificateDer::pem_slice_iter(cert.cert.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CertError::BadCertificate(e.to_string()))?;
    if chain.is_empty() {
        return Err(CertError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(cert.key.as_bytes())
        .map_err(|e| CertError::BadKey(e.to_string()))?;
    CertifiedKey::from_der(chain, key, &default_provider())
        .map_err(|e| CertError::Mismatch(e.to_string()))
}

/// Picks a certificate for each TLS handshake from the table current at that moment.
#[derive(Debug)]
pub struct Resolver {
    table: Arc<ArcSwap<RouteTable>>,
    default: Option<Arc<CertifiedKey>>,
}

impl Resolver {
    /// A resolver over the live `table`, with a fallback certificate.
    pub fn new(table: Arc<ArcSwap<RouteTable>>, default: Option<Arc<CertifiedKey>>) -> Self {
        Self { table, default }
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        hello
            .server_name()
            .and_then(|name| self.table.load().certificate(name))
            .or_else(|| self.default.clone())
    }
}

/// The server configuration of the HTTPS listeners.
pub fn server_config(resolver: Resolver) -> Arc<ServerConfig> {
    let mut config = ServerConfig::builder_with_provider(Arc::new(default_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("ring supports TLS 1.2 and 1.3")
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn self_signed(name: &str) -> Certificate {
        let c = rcgen::generate_simple_self_signed(vec![name.to_string()]).unwrap();
        Certificate {
            cert: c.cert.pem(),
            key: c.signing_key.serialize_pem(),
        }
    }

    #[test]
    fn good_pairs_load_and_bad_ones_say_why() {
        let a = self_signed("a.test");
        certified_key(&a).unwrap();
        let b = self_signed("b.test");
        let crossed = Certificate {
            cert: a.cert.clone(),
            key: b.key.clone(),
        };
        assert!(matches!(
            certified_key(&crossed),
            Err(CertError::Mismatch(_))
        ));
        let empty = Certificate {
            cert: "nothing".into(),
            key: a.key.clone(),
        };
        assert!(matches!(
            certified_key(&empty),
            Err(CertError::NoCertificate)
        ));
        let nokey = Certificate {
            cert: a.cert.clone(),
            key: "x".into(),
        };
        assert!(matches!(certified_key(&nokey), Err(CertError::BadKey(_))));
    }
}
