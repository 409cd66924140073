//! Who may write what: every registration, heartbeat, deregistration and metadata change needs
//! a bearer key; reads (lists, watches, DNS) stay open.
//!
//! The platform holds one secret key, which may write any service. A service's own key is
//! derived from it (`HMAC-SHA256(platform key, "service:" + name)`, hex), so the platform can
//! grant a job the key of its own service without discoverd storing anything, and a job that
//! holds it can write that service only.

use ring::hmac;

/// The keys a discoverd accepts.
#[derive(Clone)]
pub struct Keys {
    platform: hmac::Key,
    /// SHA-256 of the platform key: comparing digests reveals nothing about the key.
    platform_digest: Vec<u8>,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys { .. }")
    }
}

/// A platform key that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("the discoverd platform key must be at least 32 characters (it is {0}); generate one with `head -c 32 /dev/urandom | xxd -p -c 64`")]
pub struct WeakKey(usize);

/// The key of `service` derived from the platform key: what a job of that service may hold.
pub fn service_key(platform_key: &str, service: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, platform_key.trim().as_bytes());
    hex(hmac::sign(&key, format!("service:{service}").as_bytes()).as_ref())
}

fn digest(s: &str) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, s.as_bytes())
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Keys {
    /// The keys derived from `platform_key` (at least 32 characters).
    pub fn new(platform_key: &str) -> Result<Self, WeakKey> {
        let k = platform_key.trim();
        if k.len() < 32 {
            return Err(WeakKey(k.len()));
        }
        Ok(Self {
            platform: hmac::Key::new(hmac::HMAC_SHA256, k.as_bytes()),
            platform_digest: digest(k),
        })
    }

    /// True when `given` (a bearer key) may write `service`: the platform key (compared by
    /// digest) or the service's own key (an HMAC verified in constant time).
    pub fn may_write(&self, given: &str, service: &str) -> bool {
        let given = given.trim();
        let platform = digest(given) == self.platform_digest;
        let own = unhex(given).is_some_and(|tag| {
            hmac::verify(
                &self.platform,
                format!("service:{service}").as_bytes(),
                &tag,
            )
            .is_ok()
        });
        platform || own
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_key_writes_anything_a_service_key_only_its_service() {
        let platform = "p".repeat(40);
        let keys = Keys::new(&platform).unwrap();
        assert!(keys.may_write(&platform, "web") && keys.may_write(&platform, "db"));
        let web = service_key(&platform, "web");
        assert!(keys.may_write(&web, "web"));
        assert!(
            !keys.may_write(&web, "db"),
            "a service key writes only its service"
        );
        assert!(!keys.may_write("", "web") && !keys.may_write("zz", "web"));
        assert!(!keys.may_write(&service_key(&"q".repeat(40), "web"), "web"));
        assert!(Keys::new("short").is_err());
    }
}
