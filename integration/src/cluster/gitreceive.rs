//! gitreceive on the test cluster: the stacks and its image built with `images/`, the run
//! stack pushed to the test registry, gitreceive as a host-network job behind `git.DOMAIN`.

use std::path::Path;
use std::time::Duration;

use host_api::{CreateJob, NetworkMode};

use super::{Cluster, DOMAIN, GITRECEIVE_PORT, HOST_PORT};
use crate::image::build_recipe;

impl Cluster {
    /// Builds the stacks and gitreceive (`images/` recipes, in `scratch`), then starts
    /// gitreceive as a job on the first host (its repositories on a volume, its builds on that
    /// host with the build stack from the host's store and the run stack from the registry),
    /// registered as `gitreceive`, and routes `git.DOMAIN` to it.
    pub fn start_gitreceive(&self, scratch: &Path) {
        let h = &self.hosts[0];
        let store = h.state().join("pinkerton");
        build_recipe("stack-build", &scratch.join("build"), Some(&store));
        build_recipe("stack-run", &scratch.join("run"), None);
        build_recipe("gitreceive", &scratch.join("gitreceive"), Some(&store));
        let stack_image = "flynn/stack-run:test";
        crate::pinkerton::Pinkerton::new().ok(&[
            "push",
            "--insecure-registry",
            &self.registry.addr,
            scratch.join("run").to_str().unwrap(),
            &format!("{}/{stack_image}", self.registry.addr),
        ]);
        let _ = self.block_on(h.client().create_volume("gitreceive-data"));
        let env = vec![
            ("CONTROLLER_URL", self.controller_url()),
            ("CONTROLLER_KEY", self.key.clone()),
            ("HOST_URL", format!("http://{}:{HOST_PORT}", h.ip)),
            ("HOST_TOKEN", self.host_token.clone()),
            ("REGISTRY", self.registry.addr.clone()),
            ("REGISTRY_INSECURE", "true".into()),
            ("BUILD_IMAGE", "flynn/stack-build:test".into()),
            ("STACK_IMAGE", stack_image.into()),
            ("LISTEN", format!("0.0.0.0:{GITRECEIVE_PORT}")),
            ("DATA_DIR", "/data".into()),
        ];
        let mut req = CreateJob::new("flynn/gitreceive:test", Vec::new());
        req.id = Some(crate::jid("gitreceive"));
        req.config.network = NetworkMode::Host;
        req.config.env = env.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        req.config.volumes.push(host_api::VolumeMount {
            name: "gitreceive-data".into(),
            target: "/data".into(),
            readonly: false,
        });
        req.service = Some("gitreceive".parse().unwrap());
        req.service_port = Some(GITRECEIVE_PORT);
        self.block_on(h.client().create_job(&req))
            .unwrap_or_else(|e| panic!("starting gitreceive: {e}"));
        let api = self.controller();
        let app = self
            .block_on(api.create_app(&controller_api::NewApp {
                name: Some("gitreceive".parse().unwrap()),
                meta: Some([("flynn-system-app".to_string(), "true".to_string())].into()),
                ..Default::default()
            }))
            .expect("the gitreceive app");
        let route = router_api::HttpRoute::new("", format!("git.{DOMAIN}"), "gitreceive");
        self.block_on(api.create_route(&app.id, &router_api::Route::Http(route)))
            .expect("the git route");
        self.wait(
            "gitreceive answers through the router",
            Duration::from_secs(60),
            |c| c.get(0, &format!("git.{DOMAIN}"), "/none.git/info/refs").0 == 401,
        );
    }
}
