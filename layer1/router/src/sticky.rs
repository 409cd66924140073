//! Sticky sessions: the `_backend` cookie names the backend a client was sent to, sealed
//! with ChaCha20-Poly1305 under the router's cookie key so a client can neither read nor
//! forge it. A cookie that does not open is ignored.

use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

/// The cookie's name.
pub const COOKIE: &str = "_backend";

/// Seals and opens `_backend` cookies.
pub struct Sticky {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sticky {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sticky(<key>)")
    }
}

impl Sticky {
    /// A sealer under a 32-byte key.
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: LessSafeKey::new(UnboundKey::new(&CHACHA20_POLY1305, key).expect("32-byte key")),
            rng: SystemRandom::new(),
        }
    }

    /// The cookie value for `addr`: base64url(nonce ‖ ciphertext ‖ tag).
    pub fn seal(&self, addr: SocketAddr) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .expect("the system's random source");
        let mut data = addr.to_string().into_bytes();
        self.key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::empty(), &mut data)
            .expect("sealing a short value");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The address in a cookie value, if it opens (a tampered or foreign one does not).
    pub fn open(&self, value: &str) -> Option<SocketAddr> {
        let raw = URL_SAFE_NO_PAD.decode(value.trim()).ok()?;
        if raw.len() <= NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let mut sealed = sealed.to_vec();
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let plain = self
            .key
            .open_in_place(nonce, Aad::empty(), &mut sealed)
            .ok()?;
        std::str::from_utf8(plain).ok()?.parse().ok()
    }

    /// The `_backend` value among a request's `Cookie` headers, if any opens.
    pub fn from_headers(&self, headers: &hyper::HeaderMap) -> Option<SocketAddr> {
        headers
            .get_all(hyper::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .find_map(|v| self.open(v))
    }

    /// The `Set-Cookie` value sending a client to `addr` (session lifetime, every path).
    pub fn set_cookie(&self, addr: SocketAddr) -> String {
        format!("{COOKIE}={}; Path=/; HttpOnly", self.seal(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_open_and_tampering_is_ignored() {
        let s = Sticky::new(&[7; 32]);
        let addr: SocketAddr = "100.100.0.1:31000".parse().unwrap();
        let v = s.seal(addr);
        assert_eq!(s.open(&v), Some(addr));
        assert_ne!(s.seal(addr), v, "a fresh nonce each time");
        assert!(!v.contains("31000"), "the address is not readable");
        let mut raw = URL_SAFE_NO_PAD.decode(&v).unwrap();
        for i in 0..raw.len() {
            raw[i] ^= 1;
            assert_eq!(
                s.open(&URL_SAFE_NO_PAD.encode(&raw)),
                None,
                "byte {i} flipped"
            );
            raw[i] ^= 1;
        }
        assert_eq!(Sticky::new(&[8; 32]).open(&v), None, "another router's key");
        assert_eq!(s.open("garbage"), None);
        assert_eq!(s.open(""), None);
    }

    #[test]
    fn found_among_other_cookies() {
        let s = Sticky::new(&[1; 32]);
        let addr: SocketAddr = "127.0.0.1:80".parse().unwrap();
        let mut h = hyper::HeaderMap::new();
        h.append("cookie", "a=b; _backendx=1".parse().unwrap());
        h.append(
            "cookie",
            format!("c=d; _backend={}", s.seal(addr)).parse().unwrap(),
        );
        assert_eq!(s.from_headers(&h), Some(addr));
    }
}
