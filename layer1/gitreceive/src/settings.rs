//! What gitreceive needs to know, read from flags or the environment. The server hands the
//! same settings to every hook it runs through the environment of `git receive-pack`.

use flynn_http::Endpoint;

/// gitreceive's settings (each flag also reads the environment variable named).
#[derive(Debug, Clone, clap::Args)]
pub struct Settings {
    /// The controller's URL.
    #[arg(long, env = "CONTROLLER_URL")]
    pub controller: Endpoint,
    /// Controller keys, comma-separated: pushes authenticate with one as the Basic password,
    /// and the first is used to create releases.
    #[arg(long, env = "CONTROLLER_KEY", hide_env_values = true)]
    pub controller_key: String,
    /// The API of the host builds run on (builds run next to their per-app cache volume).
    #[arg(long, env = "HOST_URL", default_value = "http://127.0.0.1:1113")]
    pub host: Endpoint,
    /// The hosts' API token.
    #[arg(long, env = "HOST_TOKEN", hide_env_values = true)]
    pub host_token: Option<String>,
    /// The cluster registry (`host[:port]`) builds push app images to.
    #[arg(long, env = "REGISTRY")]
    pub registry: String,
    /// `USER:PASSWORD` for pushes to the registry.
    #[arg(long, env = "REGISTRY_CREDS", hide_env_values = true)]
    pub registry_creds: Option<String>,
    /// The registry is reached over plain HTTP.
    #[arg(long, env = "REGISTRY_INSECURE")]
    pub registry_insecure: bool,
    /// The build stack image the build job runs.
    #[arg(long, env = "BUILD_IMAGE", default_value = "flynn/stack-build:latest")]
    pub build_image: String,
    /// The run stack image (in the cluster registry, as `REPOSITORY:TAG`) apps are built on.
    #[arg(long, env = "STACK_IMAGE", default_value = "flynn/stack-run:latest")]
    pub stack_image: String,
    /// Memory limit of a build job, in bytes.
    #[arg(long, env = "BUILD_MEMORY", default_value_t = 1 << 30)]
    pub build_memory: u64,
}

impl Settings {
    /// The settings as the environment variables the flags read, for the hooks the server
    /// runs.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("CONTROLLER_URL", self.controller.to_string()),
            ("CONTROLLER_KEY", self.controller_key.clone()),
            ("HOST_URL", self.host.to_string()),
            ("REGISTRY", self.registry.clone()),
            ("BUILD_IMAGE", self.build_image.clone()),
            ("STACK_IMAGE", self.stack_image.clone()),
            ("BUILD_MEMORY", self.build_memory.to_string()),
        ];
        if let Some(t) = &self.host_token {
            env.push(("HOST_TOKEN", t.clone()));
        }
        if let Some(c) = &self.registry_creds {
            env.push(("REGISTRY_CREDS", c.clone()));
        }
        if self.registry_insecure {
            env.push(("REGISTRY_INSECURE", "true".into()));
        }
        env
    }

    /// The key the hook uses with the controller (the first configured).
    pub fn key(&self) -> &str {
        self.controller_key.split(',').next().unwrap_or("").trim()
    }

    /// A controller client.
    pub fn controller(&self) -> controller_api::client::Client {
        controller_api::client::Client::new(self.controller.clone(), self.key())
    }

    /// A client of the build host.
    pub fn host(&self) -> host_api::client::Client {
        host_api::client::Client::new(self.host.clone(), self.host_token.clone())
    }
}
