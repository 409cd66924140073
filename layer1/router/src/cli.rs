//! `flynn-router`'s settings: every one a flag and an environment variable (for running as a
//! job, where the environment is the configuration).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use router_api::Certificate;

use crate::proxy::ProxyConfig;
use crate::router::Settings;
use crate::server::ServerConfig;

/// Why the settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The cookie key is not 32 bytes of base64.
    #[error("COOKIE_KEY / --cookie-key must be 32 bytes in base64 (e.g. `head -c32 /dev/urandom | base64`)")]
    CookieKey,
    /// A file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// Only one of the certificate and key was given.
    #[error("--tls-cert and --tls-key go together: give both or neither")]
    HalfCertificate,
    /// A listener address is not IP:PORT.
    #[error("listener address {0:?} is not IP:PORT (e.g. 0.0.0.0:80)")]
    Listener(String),
    /// The TCP range is not `START-END`.
    #[error("--tcp-range {0:?}: expected START-END with START <= END (e.g. 3000-3500)")]
    TcpRange(String),
    /// Two listeners take the same port on overlapping addresses.
    #[error("{0} and {1} take the same port: the router binds its ports shared (SO_REUSEPORT, so that a new release can start beside the old one), and the kernel would split connections between the two; give each its own port")]
    SharedPort(String, String),
}

/// The platform's HTTP and TCP router.
#[derive(Debug, clap::Parser)]
#[command(name = "flynn-router", version, args_override_self = true)]
pub struct Args {
    /// HTTP listeners, IP:PORT (comma-separated; empty for none).
    #[arg(
        long,
        env = "ROUTER_HTTP",
        value_delimiter = ',',
        default_value = "0.0.0.0:80"
    )]
    pub http: Vec<String>,
    /// HTTPS listeners, IP:PORT (comma-separated; empty for none).
    #[arg(
        long,
        env = "ROUTER_HTTPS",
        value_delimiter = ',',
        default_value = "0.0.0.0:443"
    )]
    pub https: Vec<String>,
    /// The router API (routes, backends, events, metrics).
    #[arg(long, env = "ROUTER_API", default_value = "0.0.0.0:5000")]
    pub api: SocketAddr,
    /// The address TCP routes listen on.
    #[arg(long, env = "ROUTER_TCP_IP", default_value = "0.0.0.0")]
    pub tcp_ip: IpAddr,
    /// The ports TCP routes may take.
    #[arg(long, env = "ROUTER_TCP_RANGE", default_value = "3000-3500")]
    pub tcp_range: String,
    /// A routes file (JSON `{"routes": [...]}`), read again when it changes.
    #[arg(
        long,
        env = "ROUTER_ROUTES_FILE",
        required_unless_present = "controller",
        conflicts_with = "controller"
    )]
    pub routes_file: Option<PathBuf>,
    /// The controller to follow for routes (`http://HOST:PORT`), instead of a routes file.
    #[arg(long, env = "CONTROLLER_URL")]
    pub controller: Option<flynn_http::Endpoint>,
    /// The controller's key (with --controller).
    #[arg(
        long,
        env = "CONTROLLER_KEY",
        hide_env_values = true,
        requires = "controller"
    )]
    pub controller_key: Option<String>,
    /// How often the routes file is checked for changes.
    #[arg(long, env = "ROUTER_ROUTES_POLL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub routes_poll: Duration,
    /// discoverd's HTTP API.
    #[arg(long, env = "DISCOVERD", default_value = "http://127.0.0.1:1111")]
    pub discoverd: flynn_http::Endpoint,
    /// The key for registering in discoverd.
    #[arg(long, env = "DISCOVERD_KEY", hide_env_values = true)]
    pub discoverd_key: Option<String>,
    /// Registers the router in discoverd (`router-http`, `router-api`) at this address
    /// (default: `EXTERNAL_IP`, which flynn-host gives its jobs).
    #[arg(long, env = "ROUTER_ADVERTISE_IP")]
    pub advertise_ip: Option<IpAddr>,
    /// The address flynn-host says the job is reached at.
    #[arg(long, env = "EXTERNAL_IP")]
    pub external_ip: Option<IpAddr>,
    /// The instance id registered in discoverd.
    #[arg(long, env = "FLYNN_JOB_ID", default_value = "router")]
    pub id: String,
    /// The sticky-session cookie key, 32 bytes base64, the same on every router of a
    /// cluster (random per process when unset: stickiness then holds per router only).
    #[arg(long, env = "COOKIE_KEY", hide_env_values = true)]
    pub cookie_key: Option<String>,
    /// The default certificate chain (PEM file), served when no route's matches.
    #[arg(long, env = "TLS_CERT_FILE")]
    pub tls_cert: Option<PathBuf>,
    /// The default certificate's key (PEM file).
    #[arg(long, env = "TLS_KEY_FILE")]
    pub tls_key: Option<PathBuf>,
    /// The default certificate chain as PEM text, instead of a file (a release's env, the
    /// same on every host).
    #[arg(
        long,
        env = "TLS_CERT",
        conflicts_with = "tls_cert",
        hide_env_values = true
    )]
    pub tls_cert_pem: Option<String>,
    /// The default certificate's key as PEM text, instead of a file.
    #[arg(
        long,
        env = "TLS_KEY",
        conflicts_with = "tls_key",
        hide_env_values = true
    )]
    pub tls_key_pem: Option<String>,
    /// Read a PROXY protocol v1/v2 header on every connection (behind a load balancer).
    #[arg(long, env = "PROXY_PROTOCOL")]
    pub proxy_protocol: bool,
    /// Time a client gets for a request's headers (and between kept-alive requests).
    #[arg(long, env = "ROUTER_HEADER_READ_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub header_read_timeout: Duration,
    /// A connection with nothing moving for this long is closed.
    #[arg(long, env = "ROUTER_IDLE_TIMEOUT", default_value = "5m", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
    /// TCP connect timeout to backends (a failure tries another backend).
    #[arg(long, env = "ROUTER_CONNECT_TIMEOUT", default_value = "1s", value_parser = humantime::parse_duration)]
    pub connect_timeout: Duration,
    /// How long a backend may take to start its response.
    #[arg(long, env = "ROUTER_RESPONSE_HEADER_TIMEOUT", default_value = "10m", value_parser = humantime::parse_duration)]
    pub response_header_timeout: Duration,
    /// The largest request head; larger gets 431.
    #[arg(long, env = "ROUTER_MAX_HEADER_BYTES", default_value_t = 64 * 1024)]
    pub max_header_bytes: usize,
    /// An HTML page sent with 503 answers (no backend).
    #[arg(long, env = "ERROR_503_PAGE")]
    pub error_page_503: Option<PathBuf>,
    /// One JSON line per request on standard output.
    #[arg(long, env = "ROUTER_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub access_log: bool,
    /// Worker threads: 0 for one per CPU, 1 for a single-threaded runtime.
    #[arg(long, env = "ROUTER_THREADS", default_value_t = 0)]
    pub threads: usize,
    /// How long the public listeners wait, before accepting, for the first route table and
    /// discoverd's state (connections meanwhile wait in the accept queue).
    #[arg(long, env = "ROUTER_READY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub ready_timeout: Duration,
    /// Time open connections get to finish at shutdown.
    #[arg(long, env = "ROUTER_SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

/// The addresses of a listener list; empty entries (an empty setting) stand for none.
fn listeners(list: &[String]) -> Result<Vec<SocketAddr>, SettingsError> {
    list.iter()
        .map(|a| a.trim())
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse()
                .map_err(|_| SettingsError::Listener(a.to_string()))
        })
        .collect()
}

fn read(path: &PathBuf) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|source| SettingsError::Read {
        path: path.clone(),
        source,
    })
}

impl Args {
    /// The router settings these arguments describe.
    pub fn settings(&self) -> Result<Settings, SettingsError> {
        let cookie_key = match &self.cookie_key {
            Some(k) => STANDARD
                .decode(k.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or(SettingsError::CookieKey)?,
            None => {
                tracing::warn!("COOKIE_KEY is not set: sticky sessions hold per router only");
                let mut k = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut k)
                    .expect("the system's random source");
                k
            }
        };
        let text = |file: &Option<PathBuf>, pem: &Option<String>| -> Result<_, SettingsError> {
            Ok(match (file, pem) {
                (Some(f), _) => Some(String::from_utf8_lossy(&read(f)?).into_owned()),
                (None, Some(p)) if !p.trim().is_empty() => Some(p.clone()),
                (None, _) => None,
            })
        };
        let default_cert = match (
            text(&self.tls_cert, &self.tls_cert_pem)?,
            text(&self.tls_key, &self.tls_key_pem)?,
        ) {
            (Some(cert), Some(key)) => Some(Certificate { cert, key }),
            (None, None) => None,
            _ => return Err(SettingsError::HalfCertificate),
        };
        let range = || {
            let (a, b) = self.tcp_range.split_once('-')?;
            let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
            (a <= b).then_some(a..=b)
        };
        let tcp_range = range().ok_or_else(|| SettingsError::TcpRange(self.tcp_range.clone()))?;
        let error_page_503 = match &self.error_page_503 {
            Some(p) => Some(read(p)?.into()),
            None => None,
        };
        let (http, https) = (listeners(&self.http)?, listeners(&self.https)?);
        let named: Vec<(String, SocketAddr)> = http
            .iter()
            .map(|a| (format!("--http {a}"), *a))
            .chain(https.iter().map(|a| (format!("--https {a}"), *a)))
            .chain([(format!("--api {}", self.api), self.api)])
            .collect();
        distinct(&named)?;
        Ok(Settings {
            http,
            https,
            api: self.api,
            tcp_ip: self.tcp_ip,
            tcp_range,
            server: ServerConfig {
                header_read_timeout: self.header_read_timeout,
                idle_timeout: self.idle_timeout,
                max_header_bytes: self.max_header_bytes,
                proxy_protocol: self.proxy_protocol,
                shutdown_grace: self.shutdown_grace,
            },
            proxy: ProxyConfig {
                connect_timeout: self.connect_timeout,
                response_header_timeout: self.response_header_timeout,
                error_page_503,
            },
            cookie_key,
            default_cert,
            access_log: self.access_log,
            ready_timeout: self.ready_timeout,
        })
    }
}

/// Refuses two listeners on one port whose addresses overlap (equal, or either unspecified).
/// Port 0 (any free port) takes a port of its own.
fn distinct(listeners: &[(String, SocketAddr)]) -> Result<(), SettingsError> {
    let fixed: Vec<&(String, SocketAddr)> =
        listeners.iter().filter(|(_, a)| a.port() != 0).collect();
    for (i, (a_name, a)) in fixed.iter().enumerate() {
        for (b_name, b) in &fixed[i + 1..] {
            let overlap = a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
            if a.port() == b.port() && overlap {
                return Err(SettingsError::SharedPort(a_name.clone(), b_name.clone()));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn settings(args: &[&str]) -> Result<Settings, SettingsError> {
        let mut argv = vec![
            "flynn-router",
            "--routes-file",
            "/dev/null",
            "--cookie-key",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ];
        argv.extend_from_slice(args);
        Args::parse_from(argv).settings()
    }

    #[test]
    fn listeners_on_one_port_are_refused_unless_their_addresses_differ() {
        let e = settings(&[
            "--http",
            "127.0.0.1:8080",
            "--https",
            "127.0.0.1:8080",
            "--api",
            "127.0.0.1:9",
        ])
        .unwrap_err();
        assert!(
            matches!(&e, SettingsError::SharedPort(a, b)
            if a == "--http 127.0.0.1:8080" && b == "--https 127.0.0.1:8080"),
            "{e}"
        );
        assert!(e.to_string().contains("give each its own port"), "{e}");
        let e = settings(&[
            "--http",
            "0.0.0.0:8080",
            "--https",
            "127.0.0.1:8443",
            "--api",
            "127.0.0.2:8080",
        ])
        .unwrap_err();
        assert!(
            matches!(&e, SettingsError::SharedPort(a, b)
            if a == "--http 0.0.0.0:8080" && b == "--api 127.0.0.2:8080"),
            "{e}"
        );
        settings(&["--http", "0.0.0.0:0", "--https", "", "--api", "0.0.0.0:0"]).unwrap();
        settings(&[
            "--http",
            "127.0.0.1:8080,127.0.0.2:8080",
            "--https",
            "127.0.0.1:8443",
            "--api",
            "127.0.0.1:9",
        ])
        .unwrap();
    }
}
