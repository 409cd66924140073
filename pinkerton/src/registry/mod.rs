//! A Docker Registry HTTP API v2 / OCI distribution client for one repository.

pub mod auth;
mod upload;

pub use upload::UploadStart;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::header::{HeaderMap, ACCEPT, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use tokio::sync::Mutex;

use crate::digest::Digest;
use crate::reference::Reference;
pub use auth::Credentials;

/// Largest manifest or config document accepted.
pub const MAX_DOCUMENT: u64 = 8 << 20;

/// A registry request that failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or the connection broke.
    #[error("cannot reach registry at {url}")]
    Connect {
        /// The URL requested.
        url: String,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry wants credentials, or refused the ones given.
    #[error("registry {registry} denied access to {repository}: {detail}")]
    Unauthorized {
        /// The registry host.
        registry: String,
        /// The repository.
        repository: String,
        /// What happened, and what to do about it.
        detail: String,
    },
    /// The manifest or blob does not exist.
    #[error("{what} not found in {registry}: {message}")]
    NotFound {
        /// What was requested.
        what: String,
        /// The registry host.
        registry: String,
        /// The registry's own message.
        message: String,
    },
    /// Any other non-success status.
    #[error("registry returned {status} for {url}: {message}")]
    Status {
        /// The HTTP status.
        status: StatusCode,
        /// The URL requested.
        url: String,
        /// The registry's own message.
        message: String,
    },
    /// The token server did not hand out a token.
    #[error("token server {realm} failed: {reason}")]
    Token {
        /// The token endpoint.
        realm: String,
        /// What went wrong.
        reason: String,
    },
    /// A document is larger than [`MAX_DOCUMENT`] or its descriptor says.
    #[error("{what} is larger than {limit} bytes; refusing it")]
    TooLarge {
        /// What was fetched.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
}

/// How to talk to registries.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Registries (`host` or `host:port`) to reach over plain HTTP.
    pub insecure: Vec<String>,
    /// Credentials to use instead of the Docker config file's.
    pub credentials: Option<Credentials>,
    /// The Docker config file to read `auths` from (default: [`auth::docker_config_path`]).
    pub docker_config: Option<PathBuf>,
}

/// True for registries reached over plain HTTP: loopback hosts and those named insecure.
pub fn is_insecure(registry: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|i| i == registry) {
        return true;
    }
    let host = if let Some(rest) = registry.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        registry.rsplit_once(':').map_or(registry, |(h, _)| h)
    };
    insecure.iter().any(|i| i == host)
        || host == "localhost"
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Makes a request anew (it is sent again after authenticating).
type Build<'a> = &'a (dyn Fn() -> reqwest::RequestBuilder + Send + Sync);

#[derive(Debug, Default)]
enum AuthState {
    #[default]
    None,
    Basic(String),
    Bearer(String),
}

/// A client for one repository of one registry.
#[derive(Debug)]
pub struct Registry {
    http: reqwest::Client,
    base: String,
    registry: String,
    repository: String,
    credentials: Option<Credentials>,
    auth: Mutex<AuthState>,
    /// The actions asked of a token server without a challenge scope: `pull` or `pull,push`.
    actions: &'static str,
}

/// A fetched manifest document.
#[derive(Debug)]
pub struct ManifestResponse {
    /// The raw bytes (digests are computed over these).
    pub bytes: Vec<u8>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The `Docker-Content-Digest` header, if it parses.
    pub digest_header: Option<Digest>,
}

#[derive(Deserialize)]
struct ErrorBody {
    errors: Vec<ErrorItem>,
}

#[derive(Deserialize)]
struct ErrorItem {
    code: Option<String>,
    message: Option<String>,
}

fn error_message(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) if !b.errors.is_empty() => b
            .errors
            .iter()
            .map(|e| {
                format!(
                    "{}: {}",
                    e.code.as_deref().unwrap_or("ERROR"),
                    e.message.as_deref().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => {
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if text.is_empty() {
                "no details given".into()
            } else {
                text.chars().take(200).collect()
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    token: Option<String>,
    access_token: Option<String>,
}

impl Registry {
    /// A client for `reference`'s repository.
    pub fn new(reference: &Reference, opts: &RegistryOptions) -> Result<Self, RegistryError> {
        let scheme = if is_insecure(reference.registry(), &opts.insecure) {
            "http"
        } else {
            "https"
        };
        let base = format!("{scheme}://{}", reference.api_host());
        let http = reqwest::Client::builder()
            .user_agent(concat!("pinkerton/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(120))
            .no_proxy()
            .build()
            .map_err(|source| RegistryError::Connect {
                url: base.clone(),
                source,
            })?;
        let credentials = opts.credentials.clone().or_else(|| {
            let path = opts
                .docker_config
                .clone()
                .or_else(auth::docker_config_path)?;
            auth::from_docker_config(&path, reference.registry())
        });
        Ok(Self {
            http,
            base,
            registry: reference.registry().to_string(),
            repository: reference.repository().to_string(),
            credentials,
            auth: Mutex::new(AuthState::None),
            actions: "pull",
        })
    }

    /// A client for pushing to `reference`'s repository.
    pub fn for_push(reference: &Reference, opts: &RegistryOptions) -> Result<Self, RegistryError> {
        Ok(Self {
            actions: "pull,push",
            ..Self::new(reference, opts)?
        })
    }

    fn unauthorized(&self, detail: impl Into<String>) -> RegistryError {
        RegistryError::Unauthorized {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            detail: detail.into(),
        }
    }

    async fn send_once(&self, build: Build<'_>, url: &str) -> Result<Response, RegistryError> {
        let mut req = build();
        match &*self.auth.lock().await {
            AuthState::None => {}
            AuthState::Basic(h) => req = req.header(AUTHORIZATION, h),
            AuthState::Bearer(t) => req = req.bearer_auth(t),
        }
        req.send().await.map_err(|source| RegistryError::Connect {
            url: url.to_string(),
            source,
        })
    }

    /// Sends a request with the challenge flow: on 401, authenticates as the registry asks
    /// and sends it again (`build` makes it anew). Any other status is the caller's.
    async fn send(&self, build: Build<'_>, url: &str) -> Result<Response, RegistryError> {
        let mut resp = self.send_once(build, url).await?;
        if resp.status() == StatusCode::UNAUTHORIZED {
            self.authenticate(resp.headers()).await?;
            resp = self.send_once(build, url).await?;
            if resp.status() == StatusCode::UNAUTHORIZED {
                let msg = error_message(&resp.bytes().await.unwrap_or_default());
                return Err(self.unauthorized(if self.credentials.is_some() {
                    format!("the credentials were refused ({msg})")
                } else {
                    format!("authentication required ({msg}); give --creds USER:PASS or add an auths entry to ~/.docker/config.json")
                }));
            }
        }
        Ok(resp)
    }

    /// The error for a response whose status is not what was expected.
    async fn status_error(&self, resp: Response, url: &str, what: &str) -> RegistryError {
        let status = resp.status();
        let message = error_message(&resp.bytes().await.unwrap_or_default());
        match status {
            StatusCode::NOT_FOUND => RegistryError::NotFound {
                what: what.to_string(),
                registry: self.registry.clone(),
                message,
            },
            StatusCode::FORBIDDEN => self.unauthorized(format!("forbidden ({message})")),
            _ => RegistryError::Status {
                status,
                url: url.to_string(),
                message,
            },
        }
    }

    /// GET with the challenge flow; a status other than 2xx is an error.
    async fn get(
        &self,
        url: &str,
        accept: Option<&str>,
        what: &str,
    ) -> Result<Response, RegistryError> {
        let build = || {
            let req = self.http.get(url);
            match accept {
                Some(a) => req.header(ACCEPT, a),
                None => req,
            }
        };
        let resp = self.send(&build, url).await?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        Err(self.status_error(resp, url, what).await)
    }

    async fn authenticate(&self, headers: &HeaderMap) -> Result<(), RegistryError> {
        let challenges: Vec<auth::Challenge> = headers
            .get_all(WWW_AUTHENTICATE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(auth::parse_challenge)
            .collect();
        if let Some(c) = challenges.iter().find(|c| c.scheme == "bearer") {
            let token = self.fetch_token(c).await?;
            *self.auth.lock().await = AuthState::Bearer(token);
            return Ok(());
        }
        if challenges.iter().any(|c| c.scheme == "basic") {
            let Some(creds) = &self.credentials else {
                return Err(self.unauthorized(
                    "the registry requires a user name and password; give --creds USER:PASS or add an auths entry to ~/.docker/config.json",
                ));
            };
            *self.auth.lock().await = AuthState::Basic(creds.basic_header());
            return Ok(());
        }
        Err(self
            .unauthorized("the registry answered 401 without a usable WWW-Authenticate challenge"))
    }

    async fn fetch_token(&self, c: &auth::Challenge) -> Result<String, RegistryError> {
        let realm = c.params.get("realm").cloned().unwrap_or_default();
        let fail = |reason: String| RegistryError::Token {
            realm: realm.clone(),
            reason,
        };
        if !(realm.starts_with("https://") || realm.starts_with("http://")) {
            return Err(fail("the challenge has no http(s) realm".into()));
        }
        let own_scope = format!("repository:{}:{}", self.repository, self.actions);
        let mut query: Vec<(&str, String)> = Vec::new();
        if let Some(s) = c.params.get("service") {
            query.push(("service", s.clone()));
        }
        // A challenge may name several scopes, space-separated (a mount reads a second
        // repository); the token endpoint takes each as its own parameter.
        let scopes = c.params.get("scope").cloned().unwrap_or(own_scope);
        query.extend(
            scopes
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| ("scope", s.to_string())),
        );
        let mut req = self.http.get(&realm).query(&query);
        if let Some(creds) = &self.credentials {
            req = req.basic_auth(&creds.username, Some(&creds.password));
        }
        let resp = req.send().await.map_err(|e| fail(e.to_string()))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| fail(e.to_string()))?;
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(
                self.unauthorized(format!("the token server refused the request ({status})"))
            );
        }
        if !status.is_success() {
            return Err(fail(format!("{status}: {}", error_message(&body))));
        }
        let t: TokenResponse = serde_json::from_slice(&body)
            .map_err(|e| fail(format!("malformed token response: {e}")))?;
        t.token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| fail("the response has no token".into()))
    }

    /// Fetches the manifest for a tag or digest.
    pub async fn manifest(&self, selector: &str) -> Result<ManifestResponse, RegistryError> {
        let url = format!("{}/v2/{}/manifests/{selector}", self.base, self.repository);
        let what = format!("manifest {}:{selector}", self.repository);
        let resp = self.get(&url, Some(crate::manifest::ACCEPT), &what).await?;
        let header = |n| {
            resp.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let content_type = header(CONTENT_TYPE.as_str());
        let digest_header = header("docker-content-digest").and_then(|d| d.parse().ok());
        let bytes = read_limited(resp, MAX_DOCUMENT, &what, &url).await?;
        Ok(ManifestResponse {
            bytes,
            content_type,
            digest_header,
        })
    }

    /// Starts downloading a blob; the caller streams the body.
    pub async fn blob(&self, digest: &Digest) -> Result<Response, RegistryError> {
        let url = format!("{}/v2/{}/blobs/{digest}", self.base, self.repository);
        self.get(&url, None, &format!("blob {digest}")).await
    }

    /// Downloads a small blob (a config) whole, refusing more than `limit` bytes.
    pub async fn blob_bytes(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>, RegistryError> {
        let resp = self.blob(digest).await?;
        let url = resp.url().to_string();
        read_limited(resp, limit, &format!("blob {digest}"), &url).await
    }
}

async fn read_limited(
    mut resp: Response,
    limit: u64,
    what: &str,
    url: &str,
) -> Result<Vec<u8>, RegistryError> {
    let too_large = || RegistryError::TooLarge {
        what: what.to_string(),
        limit,
    };
    if resp.content_length().is_some_and(|l| l > limit) {
        return Err(too_large());
    }
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|source| RegistryError::Connect {
            url: url.to_string(),
            source,
        })?
    {
        if out.len() as u64 + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_and_named_registries_are_plain_http() {
        let none: Vec<String> = vec![];
        assert!(is_insecure("localhost:5000", &none));
        assert!(is_insecure("127.0.0.1:5000", &none));
        assert!(is_insecure("127.3.4.5", &none));
        assert!(is_insecure("[::1]:5000", &none));
        assert!(!is_insecure("registry.example:5000", &none));
        assert!(!is_insecure("docker.io", &none));
        let named = vec!["registry.lan".to_string()];
        assert!(is_insecure("registry.lan:5000", &named));
        assert!(is_insecure("registry.lan", &named));
    }

    #[test]
    fn registry_error_bodies_are_summarised() {
        let body =
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#;
        assert_eq!(error_message(body), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(error_message(b""), "no details given");
    }
}
