//! All of layer 1 on one host, after discoverd: the cluster registry, the router, the
//! controller, the scheduler and gitreceive, each an ordinary job started in that order once
//! the one before answers, and each recorded as a system app in the controller. Every step
//! first looks at what runs: a second run starts nothing and says so, and a run cut short
//! (a `kill -9` half way) is completed by the next.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use controller_api::{NewApp, SYSTEM_APP};
use host_api::client::Client;
use host_api::{NetworkMode, PortMap};
use router_api::{HttpRoute, Route};

use super::boot::{http_status, image_tag, job, read_only, scheduled, volume, Boot};
use super::handover::{
    controller_env, controller_service, hand_over, scheduler_env, scheduler_service,
    CONTROLLER_PROCESS, SCHEDULER_PROCESS,
};
use super::router::BOOTSTRAP_JOB;
use super::BootstrapError;
use crate::host::{CLUSTER_KEY_FILE, DISCOVERD_KEY_FILE, REGISTRY_AUTH_FILE};

/// The cluster registry's port on the host (published from its job, reached on the job
/// gateway by hosts and build jobs alike).
pub const REGISTRY_PORT: u16 = 5001;
/// The router's HTTP port (host network).
pub const ROUTER_HTTP_PORT: u16 = 80;
/// The router's HTTPS port (host network).
pub const ROUTER_HTTPS_PORT: u16 = 443;
/// The API port of the router bootstrap starts before the scheduler runs (host network;
/// the scheduler's routers take a free port and register it in discoverd as `router-api`).
pub const ROUTER_API_PORT: u16 = 5000;
/// The controller's port (host network; users reach it as `controller.DOMAIN`).
pub const CONTROLLER_PORT: u16 = 8081;
/// The scheduler's status port (host network, loopback).
pub const SCHEDULER_PORT: u16 = 8082;
/// gitreceive's port (host network; users reach it as `git.DOMAIN`).
pub const GITRECEIVE_PORT: u16 = 8083;
/// The system apps bootstrap records, in start order.
pub const SYSTEM_APPS: [&str; 6] = [
    "discoverd",
    "registry",
    "router",
    "controller",
    "scheduler",
    "gitreceive",
];

/// How to bring up layer 1.
#[derive(Debug, Clone)]
pub struct Layer1Options {
    /// The daemon's state directory.
    pub state: PathBuf,
    /// Where the workspace binaries are.
    pub bin_dir: PathBuf,
    /// Where Debian bases of the stack images are cached.
    pub image_cache: PathBuf,
    /// The cluster's domain: apps are `APP.DOMAIN`, the controller `controller.DOMAIN` and
    /// git `git.DOMAIN`.
    pub domain: String,
    /// discoverd's HTTP port on the host.
    pub discoverd_port: u16,
    /// How long each service may take to answer once started.
    pub wait: Duration,
    /// The operator's certificate for `DOMAIN` and `*.DOMAIN`, instead of a cluster CA.
    pub tls: super::OwnCert,
    /// etcd endpoints the controller keeps its state in (as discoverd does), so that other
    /// hosts can join; empty: on a volume of this host.
    pub etcd: Vec<String>,
    /// Whether that etcd runs as jobs of the platform ([`super::cluster_store`]).
    pub etcd_jobs: bool,
}

/// What a user needs to reach the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer1 {
    /// The cluster's domain.
    pub domain: String,
    /// The cluster key.
    pub key: String,
    /// The cluster registry (`HOST:PORT`).
    pub registry: String,
    /// The pin of the cluster CA (none: the operator's certificate, from a public CA).
    pub pin: Option<String>,
    /// The line that joins another host to this cluster (none: the cluster's state is on
    /// this host, or the host has no API address other hosts reach).
    pub join: Option<String>,
    /// False when everything ran already and nothing was started or created.
    pub changed: bool,
}

impl Layer1 {
    /// The line that adds this cluster to a user's `flynn` configuration.
    pub fn cluster_add(&self) -> String {
        let pin = match &self.pin {
            Some(p) => format!("-p {p} "),
            None => String::new(),
        };
        format!(
            "flynn cluster add {pin}--image-url http://{} default {} {}",
            self.registry, self.domain, self.key
        )
    }
}

/// Brings up layer 1 after discoverd; `progress` hears one line per step.
pub async fn layer1(
    c: &Client,
    opts: &Layer1Options,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<Layer1, BootstrapError> {
    let secret = |file: &str| {
        let path = opts.state.join(file);
        crate::secret::load_or_create(&path).map_err(|e| BootstrapError::Key(path, e))
    };
    let key = secret(CLUSTER_KEY_FILE)?;
    let host_token = secret("token")?;
    let discoverd_key = secret(DISCOVERD_KEY_FILE)?;
    let status = c.status().await?;
    let gateway = status.gateway;
    let mut changed = false;
    let b = Boot {
        c,
        opts,
        progress,
        key: &key,
    };
    // Other hosts reach this one's registry and controller at its API's address; a host
    // whose API is on loopback only keeps them on the job gateway.
    let discoverd = b.discoverd();
    let api = b.registered(&discoverd, &status.id).await?;
    let lan = super::lan_ip(api.ip(), gateway);
    let here = lan.unwrap_or(std::net::IpAddr::V4(gateway));
    let registry = SocketAddr::new(here, REGISTRY_PORT).to_string();
    let controller_url = format!(
        "http://{}",
        SocketAddr::new(lan.unwrap_or(Ipv4Addr::LOCALHOST.into()), CONTROLLER_PORT)
    );
    let cluster = host_api::ClusterInfo {
        domain: opts.domain.clone(),
        registry: registry.clone(),
        controller: controller_url.clone(),
        etcd: opts.etcd.clone(),
        etcd_jobs: opts.etcd_jobs,
    };
    let path = opts.state.join(crate::cluster::CLUSTER_FILE);
    crate::cluster::write(&opts.state, &cluster).map_err(|e| BootstrapError::Key(path, e))?;

    // Pulls of the cluster registry's images authenticate with the cluster key.
    write_registry_auth(&opts.state, &registry, &key)?;
    let tls = super::tls::ensure(&opts.state, &opts.domain, &opts.tls)?;

    // The registry.
    if !b.runs("registry").await? {
        b.image("registry").await?;
        b.volume("registry-data").await?;
        let mut req = job("registry", &[("AUTH_KEY", &key), ("DATA_DIR", "/data")]);
        req.config.network = NetworkMode::Bridge;
        req.config.ports = vec![PortMap {
            host: REGISTRY_PORT,
            job: 5000,
            proto: Default::default(),
        }];
        req.config.volumes = vec![volume("registry-data")];
        b.start(req).await?;
        changed = true;
    }
    let addr = SocketAddr::new(here, REGISTRY_PORT);
    b.until(
        &format!("the registry answers on {registry}"),
        "registry",
        || async { http_status(addr, &registry, "/v2/").await == Some(401) },
    )
    .await?;

    // The router: routes from the controller (which comes next), backends from discoverd.
    // Once the scheduler runs it (see `router.rs`), bootstrap's own is gone.
    let router_job = match super::router::scheduled(c).await? {
        Some(id) => {
            progress(&format!("router: runs under the scheduler (job {id})"));
            id.to_string()
        }
        None => {
            if !b.runs(BOOTSTRAP_JOB).await? {
                b.image("router").await?;
                let controller = format!("http://127.0.0.1:{CONTROLLER_PORT}");
                let mut req = job(
                    BOOTSTRAP_JOB,
                    &[
                        ("ROUTER_HTTP", &format!("0.0.0.0:{ROUTER_HTTP_PORT}")),
                        ("ROUTER_HTTPS", &format!("0.0.0.0:{ROUTER_HTTPS_PORT}")),
                        ("TLS_CERT_FILE", "/etc/flynn/tls/cert.pem"),
                        ("TLS_KEY_FILE", "/etc/flynn/tls/cert.key"),
                        ("ROUTER_API", &format!("0.0.0.0:{ROUTER_API_PORT}")),
                        ("CONTROLLER_KEY", &key),
                        ("DISCOVERD_KEY", &discoverd_key),
                        ("FLYNN_JOB_ID", &format!("router-{}", status.id)),
                    ],
                );
                // Arguments, not the image's (a routes file).
                req.config.args = vec!["--controller".into(), controller];
                req.config.mounts = vec![
                    read_only(&tls.cert, "/etc/flynn/tls/cert.pem"),
                    read_only(&tls.key, "/etc/flynn/tls/cert.key"),
                ];
                b.start(req).await?;
                changed = true;
            }
            BOOTSTRAP_JOB.to_string()
        }
    };
    let http = SocketAddr::from((Ipv4Addr::LOCALHOST, ROUTER_HTTP_PORT));
    b.until("the router answers", &router_job, || async {
        tokio::net::TcpStream::connect(http).await.is_ok()
    })
    .await?;

    // The controller, its state on a volume or in etcd; on etcd the scheduler runs it once
    // it leads (see `handover.rs`), and bootstrap's is gone.
    let controller_env = controller_env(opts, &key, &host_token, &b.discoverd_url());
    let controller_job = match scheduled(c, "controller", CONTROLLER_PROCESS).await? {
        Some(id) => {
            progress(&format!("controller: runs under the scheduler (job {id})"));
            id.to_string()
        }
        None => {
            if !b.runs("controller").await? {
                b.image("controller").await?;
                let mut req = job("controller", &[]);
                req.config.env = controller_env.clone();
                if opts.etcd.is_empty() {
                    b.volume("controller-data").await?;
                    req.config.args = vec!["--data".into(), "/data".into()];
                    req.config.volumes = vec![volume("controller-data")];
                }
                if let Some(ca) = &tls.ca {
                    req.config.mounts = vec![read_only(ca, "/etc/flynn/ca.pem")];
                    req.config
                        .env
                        .insert("CA_CERT_FILE".into(), "/etc/flynn/ca.pem".into());
                }
                req.service = Some("controller".parse().expect("a service name"));
                req.service_port = Some(CONTROLLER_PORT);
                b.start(req).await?;
                changed = true;
            }
            "controller".to_string()
        }
    };
    let controller = controller_api::client::Client::new(
        flynn_http::Endpoint::Tcp(SocketAddr::from((Ipv4Addr::LOCALHOST, CONTROLLER_PORT))),
        &key,
    );
    b.until("the controller answers", &controller_job, || async {
        controller.apps().await.is_ok()
    })
    .await?;
    changed |= system_apps(&controller, &opts.domain, progress).await?;

    // The scheduler: one per cluster leads; on etcd the scheduler runs one on every host
    // once it leads, and bootstrap's is gone.
    let scheduler_env = scheduler_env(opts, &key, &discoverd_key, &host_token);
    let scheduler_job = match scheduled(c, "scheduler", SCHEDULER_PROCESS).await? {
        Some(id) => {
            progress(&format!("scheduler: runs under the scheduler (job {id})"));
            id.to_string()
        }
        None => {
            if !b.runs("scheduler").await? {
                b.image("scheduler").await?;
                let mut req = job("scheduler", &[]);
                req.config.env = scheduler_env.clone();
                req.config
                    .env
                    .insert("SCHEDULER_ID".into(), format!("scheduler-{}", status.id));
                b.start(req).await?;
                changed = true;
            }
            "scheduler".to_string()
        }
    };
    b.until("a scheduler leads", &scheduler_job, || async {
        matches!(discoverd.leader("flynn-scheduler").await, Ok(Some(_)))
    })
    .await?;

    // gitreceive: builds on this host with the build stack, on the run stack in the registry.
    if !b.runs("gitreceive").await? {
        b.image("stack-build").await?;
        b.push("stack-run", &registry).await?;
        b.image("gitreceive").await?;
        b.volume("gitreceive-data").await?;
        let host_url = format!("http://{api}");
        let mut req = job(
            "gitreceive",
            &[
                (
                    "CONTROLLER_URL",
                    &format!("http://127.0.0.1:{CONTROLLER_PORT}"),
                ),
                ("CONTROLLER_KEY", &key),
                ("HOST_URL", &host_url),
                ("HOST_TOKEN", &host_token),
                ("REGISTRY", &registry),
                ("REGISTRY_CREDS", &format!("flynn:{key}")),
                ("REGISTRY_INSECURE", "true"),
                ("BUILD_IMAGE", &image_tag("stack-build")),
                ("STACK_IMAGE", "flynn/stack-run:latest"),
                ("LISTEN", &format!("0.0.0.0:{GITRECEIVE_PORT}")),
                ("DATA_DIR", "/data"),
            ],
        );
        req.config.volumes = vec![volume("gitreceive-data")];
        req.service = Some("gitreceive".parse().expect("a service name"));
        req.service_port = Some(GITRECEIVE_PORT);
        b.start(req).await?;
        changed = true;
    }
    let router = SocketAddr::from((Ipv4Addr::LOCALHOST, ROUTER_HTTP_PORT));
    for (name, path, want) in [
        ("controller", "/apps", 401),
        ("git", "/none.git/info/refs", 401),
    ] {
        let host = format!("{name}.{}", opts.domain);
        b.until(
            &format!("the router serves {host}"),
            "gitreceive",
            || async { http_status(router, &host, path).await == Some(want) },
        )
        .await?;
    }
    let https = SocketAddr::from((Ipv4Addr::LOCALHOST, ROUTER_HTTPS_PORT));
    b.until("the router serves HTTPS", &router_job, || async {
        tokio::net::TcpStream::connect(https).await.is_ok()
    })
    .await?;

    // The scheduler takes the router over.
    let release = super::router::RouterRelease {
        registry: &registry,
        key: &key,
        discoverd_key: &discoverd_key,
        tls: (&tls.cert, &tls.key),
        controller: &controller_url,
    };
    changed |= super::router::hand_over(&b, &controller, &release).await?;
    if !opts.etcd.is_empty() {
        let mut env = controller_env;
        if let Some(ca) = &tls.ca {
            let pem =
                std::fs::read_to_string(ca).map_err(|e| BootstrapError::Key(ca.clone(), e))?;
            env.insert("CA_CERT".into(), pem);
        }
        changed |= hand_over(&b, &controller, &registry, controller_service(env)).await?;
        b.until("the controller answers", "gitreceive", || async {
            controller.apps().await.is_ok()
        })
        .await?;
        changed |= hand_over(&b, &controller, &registry, scheduler_service(scheduler_env)).await?;
        b.until("a scheduler leads", "gitreceive", || async {
            matches!(discoverd.leader("flynn-scheduler").await, Ok(Some(_)))
        })
        .await?;
    }
    for (name, path, want) in [("controller", "/apps", 401)] {
        let host = format!("{name}.{}", opts.domain);
        b.until(
            &format!("the router serves {host}"),
            "gitreceive",
            || async { http_status(router, &host, path).await == Some(want) },
        )
        .await?;
    }
    let join = match lan {
        Some(_) if !opts.etcd.is_empty() => {
            Some(format!("flynn-host join http://{api} {host_token}"))
        }
        _ => None,
    };
    Ok(Layer1 {
        domain: opts.domain.clone(),
        key,
        registry,
        pin: tls.pin,
        join,
        changed,
    })
}

/// Records each layer-1 service as a system app, and the routes of the controller and git;
/// returns whether anything was created.
async fn system_apps(
    api: &controller_api::client::Client,
    domain: &str,
    progress: &(dyn Fn(&str) + Sync),
) -> Result<bool, BootstrapError> {
    let mut changed = false;
    let have: Vec<String> = api
        .apps()
        .await?
        .into_iter()
        .map(|a| a.name.to_string())
        .collect();
    for name in SYSTEM_APPS {
        if have.iter().any(|h| h == name) {
            continue;
        }
        api.create_app(&NewApp {
            name: Some(name.parse().expect("a valid app name")),
            meta: Some([(SYSTEM_APP.to_string(), "true".to_string())].into()),
            ..Default::default()
        })
        .await?;
        progress(&format!("app {name}: created (system app)"));
        changed = true;
    }
    let routes = api.routes().await?;
    for (app, host, service) in [
        ("controller", format!("controller.{domain}"), "controller"),
        ("gitreceive", format!("git.{domain}"), "gitreceive"),
    ] {
        let exists = routes
            .iter()
            .any(|r| matches!(r, Route::Http(h) if h.domain == host));
        if exists {
            continue;
        }
        let route = Route::Http(HttpRoute::new("", host.clone(), service));
        api.create_route(app, &route).await?;
        progress(&format!("route {host}: created ({service})"));
        changed = true;
    }
    Ok(changed)
}

/// Writes the cluster registry's credentials where the daemon's pulls read them (mode 0600,
/// replaced whole).
pub(super) fn write_registry_auth(
    state: &Path,
    registry: &str,
    key: &str,
) -> Result<(), BootstrapError> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("flynn:{key}"));
    let doc = serde_json::json!({"auths": {registry: {"auth": auth}}});
    let path = state.join(REGISTRY_AUTH_FILE);
    let text = serde_json::to_string_pretty(&doc).expect("JSON");
    if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    crate::secret::write_file(&path, &text, 0o600).map_err(|e| BootstrapError::Key(path.clone(), e))
}
