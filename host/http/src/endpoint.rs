//! Where a service listens and where its clients find it: `unix:///path/to.sock` or
//! `http://HOST:PORT` (also `tcp://HOST:PORT`); servers and clients take the same forms.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A service's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// A unix socket; the socket's permissions guard it, so servers ask no token there.
    Unix(PathBuf),
    /// A TCP address; servers with a token ask for it here.
    Tcp(SocketAddr),
}

/// An address that does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid address {0:?}: use unix:///path/to.sock or http://HOST:PORT")]
pub struct EndpointError(String);

impl std::str::FromStr for Endpoint {
    type Err = EndpointError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || EndpointError(s.to_string());
        if let Some(path) = s.strip_prefix("unix://") {
            if !path.starts_with('/') {
                return Err(bad());
            }
            return Ok(Endpoint::Unix(path.into()));
        }
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("tcp://"))
            .ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let rest = rest.replacen("localhost:", "127.0.0.1:", 1);
        rest.parse().map(Endpoint::Tcp).map_err(|_| bad())
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Endpoint::Unix(p) => write!(f, "unix://{}", p.display()),
            Endpoint::Tcp(a) => write!(f, "http://{a}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(
            "unix:///run/x.sock".parse::<Endpoint>().unwrap(),
            Endpoint::Unix("/run/x.sock".into())
        );
        let tcp = Endpoint::Tcp("127.0.0.1:1113".parse().unwrap());
        assert_eq!("http://127.0.0.1:1113".parse::<Endpoint>().unwrap(), tcp);
        assert_eq!("tcp://localhost:1113/".parse::<Endpoint>().unwrap(), tcp);
        assert_eq!(tcp.to_string(), "http://127.0.0.1:1113");
        for bad in ["", "unix://rel.sock", "http://nohost", "ftp://1.2.3.4:5"] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad}");
        }
    }
}
