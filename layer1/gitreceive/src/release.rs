//! From a built image to a deployed release: an artifact of the image, a release with the
//! build's process types (env and meta carried over from the app's current release, meta
//! `git.commit`), then a deployment. An app's first release with a `web` type is scaled to
//! `web=1` and the push waits for that job to come up.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use controller_api::client::Client;
use controller_api::{
    App, DeploymentStatus, JobState, NewArtifact, NewRelease, Port, PortService, ProcessType,
    ProcessTypeName, PutFormation, Release,
};

use crate::build::BuildResult;
use crate::error::GitReceiveError;

/// The port web processes listen on (`$PORT`).
pub const WEB_PORT: u16 = 8080;

/// The process type whose resources set the app's build limits; kept from release to
/// release, never scaled.
pub const BUILD_PROCESS: &str = "slugbuilder";

/// How often deploy progress is polled.
const POLL: Duration = Duration::from_millis(250);

fn ctl(e: controller_api::client::ClientError) -> GitReceiveError {
    GitReceiveError::Controller(e)
}

/// Whether a process type serves HTTP (`web`, or a name ending in `-web`).
fn is_web(name: &str) -> bool {
    name == "web" || name.ends_with("-web")
}

/// The processes of a release of `built`: each runs `flynn-runner start TYPE` (the run
/// stack's entry point); web types get a port, the service `APP-TYPE` and a TCP check. What
/// the previous release had for a type (env, resources, a port changed by the user) is kept,
/// and so is its [`BUILD_PROCESS`] type.
pub fn processes(
    app: &str,
    built: &BuildResult,
    previous: Option<&Release>,
) -> Result<BTreeMap<ProcessTypeName, ProcessType>, GitReceiveError> {
    let mut out = BTreeMap::new();
    for kind in built.process_types.keys() {
        let name: ProcessTypeName = kind.parse().map_err(|e| {
            GitReceiveError::BuildFailed(format!("process type {kind:?} in the Procfile: {e}"))
        })?;
        let mut p = previous
            .and_then(|r| r.processes.get(&name))
            .cloned()
            .unwrap_or_default();
        p.args = vec!["start".into(), kind.clone()];
        if is_web(kind) && p.ports.is_empty() {
            let service = format!("{app}-{kind}");
            p.ports = vec![Port {
                port: WEB_PORT,
                proto: Default::default(),
                service: Some(PortService {
                    name: service.parse().map_err(|e| {
                        GitReceiveError::BuildFailed(format!("service name {service:?}: {e}"))
                    })?,
                    create: true,
                    check: None,
                }),
            }];
        }
        out.insert(name, p);
    }
    if let Some((name, p)) = previous.and_then(|r| r.processes.get_key_value(BUILD_PROCESS)) {
        out.entry(name.clone()).or_insert_with(|| p.clone());
    }
    Ok(out)
}

/// Creates the release of `built` for `app` (built from commit `rev`).
pub async fn create(
    api: &Client,
    app: &App,
    built: &BuildResult,
    rev: &str,
) -> Result<Release, GitReceiveError> {
    let previous = match &app.release {
        Some(id) => Some(api.release(id).await.map_err(ctl)?),
        None => None,
    };
    let artifact = api
        .create_artifact(&NewArtifact {
            kind: Default::default(),
            uri: built.image.clone(),
            meta: BTreeMap::from([("git.commit".to_string(), rev.to_string())]),
        })
        .await
        .map_err(ctl)?;
    let mut meta = previous
        .as_ref()
        .map(|r| r.meta.clone())
        .unwrap_or_default();
    meta.insert("git".into(), "true".into());
    meta.insert("git.commit".into(), rev.into());
    api.create_release(&NewRelease {
        app_id: app.id.clone(),
        artifacts: vec![artifact.id],
        env: previous.as_ref().map(|r| r.env.clone()).unwrap_or_default(),
        meta,
        processes: processes(app.name.as_str(), built, previous.as_ref())?,
    })
    .await
    .map_err(ctl)
}

/// Deploys `release`: through a deployment when the app runs a formation (its strategy,
/// rolled back on failure), otherwise by making it current and, when the app never had a
/// formation and the release has a `web` type, scaling `web=1` and waiting for that job.
/// `say` prints progress lines.
pub async fn deploy(
    api: &Client,
    app: &App,
    release: &Release,
    mut say: impl FnMut(&str),
) -> Result<(), GitReceiveError> {
    let old_formation = match &app.release {
        Some(old) => api.formation(app.id.as_str(), old).await.ok(),
        None => None,
    };
    let running = old_formation
        .as_ref()
        .is_some_and(|f| f.processes.values().any(|n| *n > 0));
    let d = api
        .deploy(app.id.as_str(), &release.id)
        .await
        .map_err(ctl)?;
    if running {
        say(&format!(
            "-----> Deploying release {} ({})...",
            release.id, d.strategy
        ));
        let limit = Duration::from_secs(u64::from(d.deploy_timeout) * 3 + 30);
        let deadline = Instant::now() + limit;
        loop {
            let now = api.deployment(app.id.as_str(), &d.id).await.map_err(ctl)?;
            match now.status {
                DeploymentStatus::Complete => return Ok(()),
                DeploymentStatus::Failed => {
                    return Err(GitReceiveError::DeployFailed(format!(
                        "deployment failed, the previous release keeps serving: {}",
                        now.error.unwrap_or_default()
                    )))
                }
                _ if Instant::now() > deadline => {
                    return Err(GitReceiveError::DeployFailed(format!(
                        "deployment {} did not finish within {} s",
                        d.id,
                        limit.as_secs()
                    )))
                }
                _ => tokio::time::sleep(POLL).await,
            }
        }
    }
    // An app scaled down on purpose stays so; only a first formation is made here.
    if old_formation.is_some() || !release.processes.keys().any(|k| k.as_str() == "web") {
        return Ok(());
    }
    say("=====> Scaling initial release to web=1");
    let web: ProcessTypeName = "web".parse().expect("a valid process type");
    api.put_formation(
        app.id.as_str(),
        &release.id,
        &PutFormation {
            processes: BTreeMap::from([(web, 1)]),
            tags: BTreeMap::new(),
        },
    )
    .await
    .map_err(ctl)?;
    say("-----> Waiting for initial web job to start...");
    match wait_for_web(api, app, release).await {
        Ok(()) => {
            say("=====> Initial web job started");
            Ok(())
        }
        Err(e) => {
            say("=====> Initial web job failed to start");
            let _ = api.delete_formation(app.id.as_str(), &release.id).await;
            Err(e)
        }
    }
}

/// Waits for a web job of `release` to be up; a web job that went down first fails it.
async fn wait_for_web(api: &Client, app: &App, release: &Release) -> Result<(), GitReceiveError> {
    let deadline = Instant::now() + Duration::from_secs(u64::from(app.deploy_timeout));
    loop {
        let jobs = api.jobs(app.id.as_str(), false).await.map_err(ctl)?;
        let web = jobs
            .iter()
            .filter(|j| j.release == release.id && j.kind == "web");
        let mut down = None;
        for j in web {
            match j.state {
                JobState::Up => return Ok(()),
                JobState::Down => down = Some(j),
                _ => {}
            }
        }
        if let Some(j) = down {
            let why = match (&j.exit_status, &j.host_error) {
                (_, Some(e)) => e.clone(),
                (Some(c), None) => format!("exited with status {c}"),
                (None, None) => "it stopped".into(),
            };
            return Err(GitReceiveError::DeployFailed(format!(
                "web job failed to start: {why}"
            )));
        }
        if Instant::now() > deadline {
            return Err(GitReceiveError::DeployFailed(format!(
                "web job did not start within {} s",
                app.deploy_timeout
            )));
        }
        tokio::time::sleep(POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(types: &[(&str, &str)]) -> BuildResult {
        BuildResult {
            image: "reg/apps/x@sha256:00".into(),
            buildpacks: vec![],
            process_types: types
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn web_types_get_a_port_and_a_service_and_every_type_runs_the_runner() {
        let p = processes(
            "shop",
            &built(&[("web", "python3 app.py"), ("worker", "python3 w.py")]),
            None,
        )
        .unwrap();
        let web = &p[&"web".parse::<ProcessTypeName>().unwrap()];
        assert_eq!(web.args, ["start", "web"]);
        assert_eq!(web.ports[0].port, WEB_PORT);
        assert_eq!(
            web.ports[0].service.as_ref().unwrap().name.to_string(),
            "shop-web"
        );
        let worker = &p[&"worker".parse::<ProcessTypeName>().unwrap()];
        assert_eq!(worker.args, ["start", "worker"]);
        assert!(worker.ports.is_empty());
        assert!(processes("shop", &built(&[("Bad Type", "x")]), None).is_err());
    }
}
