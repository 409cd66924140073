//! API keys (the controller's, which gitreceive accepts too): one of the configured keys,
//! sent as a bearer token (`Authorization: Bearer KEY`) or as the password of HTTP Basic auth
//! (any user name, as git sends it). Several keys may be valid at once, so a key can be
//! rotated without downtime.

use base64::Engine;
use sha2::{Digest, Sha256};

/// Shortest key accepted.
pub const MIN_KEY_LEN: usize = 32;

/// The keys a service accepts.
#[derive(Clone)]
pub struct Keys(Vec<String>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({} keys)", self.0.len())
    }
}

/// Keys that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// No key at all.
    #[error("no controller key: set --key or AUTH_KEY (comma-separated for several)")]
    None,
    /// A key is too short.
    #[error("controller key {0} is {1} characters; use at least {MIN_KEY_LEN} (`head -c 32 /dev/urandom | xxd -p -c 64`)")]
    Weak(usize, usize),
}

/// The SHA-256 of `s` in hex: every digest has the same length, so comparing digests takes
/// the same time whatever key was sent.
fn hash(s: &str) -> String {
    Sha256::digest(s.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Keys {
    /// The keys of a comma-separated list.
    pub fn parse(csv: &str) -> Result<Self, KeyError> {
        let keys: Vec<&str> = csv
            .split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .collect();
        if keys.is_empty() {
            return Err(KeyError::None);
        }
        if let Some((i, k)) = keys.iter().enumerate().find(|(_, k)| k.len() < MIN_KEY_LEN) {
            return Err(KeyError::Weak(i + 1, k.len()));
        }
        Ok(Self(keys.into_iter().map(hash).collect()))
    }

    /// True when `given` is one of the keys. Digests are compared, every one of them, in
    /// constant time, so neither the time nor the key's length tells anything.
    pub fn accepts(&self, given: &str) -> bool {
        let h = hash(given.trim());
        self.0
            .iter()
            .fold(false, |ok, k| super::secret_eq(&h, k) | ok)
    }

    /// Passes a request that carries one of the keys; otherwise the 401 to answer, with
    /// `WWW-Authenticate: Basic` so git and curl ask for a password.
    pub fn check<B>(&self, req: &hyper::Request<B>) -> Result<(), super::ApiError> {
        let key = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(Self::from_header);
        if key.is_some_and(|k| self.accepts(&k)) {
            return Ok(());
        }
        Err(super::ApiError::new(
            crate::ErrorCode::Unauthorized,
            "this needs a controller key: Authorization: Bearer KEY, or KEY as the Basic password",
        )
        .with_header("www-authenticate", "Basic realm=\"flynn\""))
    }

    /// The key an `Authorization` header value carries (Bearer, or Basic's password).
    pub fn from_header(value: &str) -> Option<String> {
        if let Some(token) = value.strip_prefix("Bearer ") {
            return Some(token.trim().to_string());
        }
        let b64 = value.strip_prefix("Basic ")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()?;
        let pair = String::from_utf8(raw).ok()?;
        Some(pair.split_once(':')?.1.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_passes_as_bearer_or_basic_password() {
        let (a, b) = ("a".repeat(32), "b".repeat(40));
        let keys = Keys::parse(&format!("{a}, {b}")).unwrap();
        assert!(keys.accepts(&a) && keys.accepts(&b));
        assert!(!keys.accepts("") && !keys.accepts(&"c".repeat(32)));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("git:{b}"));
        assert_eq!(
            Keys::from_header(&format!("Basic {basic}")),
            Some(b.clone())
        );
        assert_eq!(Keys::from_header(&format!("Bearer {a}")), Some(a));
        assert_eq!(Keys::from_header("Basic !!"), None);
        assert!(matches!(Keys::parse("short"), Err(KeyError::Weak(1, 5))));
        assert!(matches!(Keys::parse(" , "), Err(KeyError::None)));
    }
}
