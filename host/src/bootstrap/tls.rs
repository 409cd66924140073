//! The cluster's TLS: a CA made at the first bootstrap and a certificate it signs for
//! `DOMAIN` and `*.DOMAIN` (the router's default certificate, so the controller, git and
//! every app's default route speak HTTPS), or the operator's own certificate instead. Files
//! live in `STATE/tls` (keys mode 0600); a later run reuses them.

use std::path::{Path, PathBuf};

use super::BootstrapError;

/// The directory under the state directory.
pub const TLS_DIR: &str = "tls";

/// The cluster's certificate files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterTls {
    /// The router's certificate chain (PEM: the certificate, then its CA when it is the
    /// cluster's).
    pub cert: PathBuf,
    /// Its key (PEM).
    pub key: PathBuf,
    /// The cluster CA (PEM), unless the operator's certificate is used.
    pub ca: Option<PathBuf>,
    /// The CA's pin (base64 of the SHA-256 of its DER form), with the CA.
    pub pin: Option<String>,
}

/// Where the operator's certificate comes from, if not from a cluster CA.
#[derive(Debug, Clone, Default)]
pub struct OwnCert {
    /// Certificate chain (PEM file).
    pub cert: Option<PathBuf>,
    /// Its key (PEM file).
    pub key: Option<PathBuf>,
}

fn err(path: &Path, e: impl std::fmt::Display) -> BootstrapError {
    BootstrapError::Tls(format!("{}: {e}", path.display()))
}

fn write(path: &Path, text: &str, mode: u32) -> Result<(), BootstrapError> {
    crate::secret::write_file(path, text, mode).map_err(|e| err(path, e))
}

/// The cluster's certificate for `domain`: the operator's (copied in, checked to parse),
/// the one made before, or a new CA and certificate.
pub fn ensure(state: &Path, domain: &str, own: &OwnCert) -> Result<ClusterTls, BootstrapError> {
    let dir = state.join(TLS_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| err(&dir, e))?;
    let (cert, key, ca) = (
        dir.join("cert.pem"),
        dir.join("cert.key"),
        dir.join("ca.pem"),
    );
    match (&own.cert, &own.key) {
        (Some(c), Some(k)) => {
            let chain = std::fs::read_to_string(c).map_err(|e| err(c, e))?;
            let secret = std::fs::read_to_string(k).map_err(|e| err(k, e))?;
            check_pair(&chain, &secret).map_err(|e| err(c, e))?;
            write(&cert, &chain, 0o644)?;
            write(&key, &secret, 0o600)?;
            let _ = std::fs::remove_file(&ca);
            return Ok(ClusterTls {
                cert,
                key,
                ca: None,
                pin: None,
            });
        }
        (None, None) => {}
        _ => {
            return Err(BootstrapError::Tls(
                "give both --tls-cert and --tls-key, or neither".into(),
            ))
        }
    }
    if !(ca.exists() && cert.exists() && key.exists()) {
        make(&dir, domain)?;
    }
    let pem = std::fs::read(&ca).map_err(|e| err(&ca, e))?;
    let der = {
        use rustls_pki_types::pem::PemObject;
        rustls_pki_types::CertificateDer::from_pem_slice(&pem).map_err(|e| err(&ca, e))?
    };
    Ok(ClusterTls {
        cert,
        key,
        ca: Some(ca),
        pin: Some(flynn_http::tls::pin_of(&der)),
    })
}

/// A new CA, and a certificate it signs for `domain` and `*.domain`.
fn make(dir: &Path, domain: &str) -> Result<(), BootstrapError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let bad = |e: rcgen::Error| BootstrapError::Tls(format!("making the cluster CA: {e}"));
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(bad)?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca.distinguished_name
        .push(DnType::CommonName, format!("Flynn cluster CA {domain}"));
    ca.not_after = rcgen::date_time_ymd(2046, 1, 1);
    let ca_key = KeyPair::generate().map_err(bad)?;
    let ca_cert = ca.self_signed(&ca_key).map_err(bad)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let mut leaf =
        CertificateParams::new(vec![domain.to_string(), format!("*.{domain}")]).map_err(bad)?;
    leaf.distinguished_name
        .push(DnType::CommonName, format!("*.{domain}"));
    leaf.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let leaf_key = KeyPair::generate().map_err(bad)?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(bad)?;
    write(&dir.join("ca.key"), &ca_key_pem, 0o600)?;
    write(&dir.join("cert.key"), &leaf_key.serialize_pem(), 0o600)?;
    write(
        &dir.join("cert.pem"),
        &format!("{}{}", leaf_cert.pem(), ca_cert.pem()),
        0o644,
    )?;
    // Last: its presence marks the set complete.
    write(&dir.join("ca.pem"), &ca_cert.pem(), 0o644)
}

/// Checks that `chain` holds a certificate and `key` a private key.
fn check_pair(chain: &str, key: &str) -> Result<(), String> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not a PEM certificate chain: {e}"))?;
    if certs.is_empty() {
        return Err("no certificate in it".into());
    }
    rustls_pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes())
        .map_err(|e| format!("the key is not a PEM private key: {e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_is_made_once_and_pinned() {
        let d = tempfile::tempdir().unwrap();
        let t = ensure(d.path(), "c.test", &OwnCert::default()).unwrap();
        let pin = t.pin.clone().unwrap();
        assert_eq!(pin.len(), 44);
        let again = ensure(d.path(), "c.test", &OwnCert::default()).unwrap();
        assert_eq!(again, t, "the same files and pin the second time");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&t.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let chain = std::fs::read_to_string(&t.cert).unwrap();
        assert_eq!(chain.matches("BEGIN CERTIFICATE").count(), 2);

        // The operator's own certificate replaces it; no CA, no pin.
        let own = OwnCert {
            cert: Some(d.path().join("tls/cert.pem")),
            key: Some(d.path().join("tls/cert.key")),
        };
        let copy = d.path().join("own");
        std::fs::create_dir(&copy).unwrap();
        std::fs::copy(own.cert.as_ref().unwrap(), copy.join("c.pem")).unwrap();
        std::fs::copy(own.key.as_ref().unwrap(), copy.join("c.key")).unwrap();
        let own = OwnCert {
            cert: Some(copy.join("c.pem")),
            key: Some(copy.join("c.key")),
        };
        let t = ensure(d.path(), "c.test", &own).unwrap();
        assert_eq!((t.ca, t.pin), (None, None));
        std::fs::write(copy.join("c.key"), "junk").unwrap();
        let e = ensure(d.path(), "c.test", &own).unwrap_err().to_string();
        assert!(e.contains("not a PEM private key"), "{e}");
    }
}
