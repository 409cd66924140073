//! `flynn docker push`: an image a user has without Docker (a `docker save` archive, an OCI
//! layout or OCI archive) pushed to the cluster registry with pinkerton, then an artifact and
//! a release of it, deployed.

use std::path::Path;

use controller_api::{NewArtifact, NewRelease, ProcessType, ProcessTypeName};
use pinkerton::push::{BlobAction, BlobPushed, PushOptions};
use pinkerton::reference::Reference;
use pinkerton::registry::{Credentials, RegistryOptions};

use crate::error::CliError;
use crate::Ctx;

/// The registry (`HOST:PORT`) of an image URL, and whether it speaks plain HTTP.
pub fn registry_of(image_url: &str) -> Result<(String, bool), CliError> {
    let url = image_url.trim_end_matches('/');
    let (rest, insecure) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
        (Some(r), _) => (r, true),
        (_, Some(r)) => (r, false),
        _ if url.is_empty() => {
            return Err(CliError::usage(
                "this cluster has no image registry configured: run flynn cluster add -f with --image-url URL",
            ))
        }
        _ => (url, false),
    };
    if rest.is_empty() || rest.contains('/') {
        return Err(CliError::usage(format!(
            "image URL {image_url:?}: use http://HOST:PORT or https://HOST[:PORT]"
        )));
    }
    Ok((rest.to_string(), insecure))
}

fn blob_line(b: &BlobPushed) -> String {
    let what = match &b.action {
        BlobAction::Exists => "already in the registry".to_string(),
        BlobAction::Mounted(from) => format!("mounted from {from}"),
        BlobAction::Uploaded(1) => "uploaded".to_string(),
        BlobAction::Uploaded(n) => format!("uploaded in {n} chunks"),
    };
    format!(
        "{}: {what} ({})",
        b.digest.short(),
        pinkerton::progress::human_size(b.size)
    )
}

/// The process types of an app's first image release: `web`, the image's own command, on
/// port 8080 as the service `APP-web` (which the app's default route serves).
fn first_processes(
    app: &str,
) -> Result<std::collections::BTreeMap<ProcessTypeName, ProcessType>, CliError> {
    let web = serde_json::json!({
        "web": {
            "ports": [{"port": 8080, "proto": "tcp", "service": {"name": format!("{app}-web"), "create": true}}]
        }
    });
    serde_json::from_value(web).map_err(|e| CliError::usage(format!("app {app}: {e}")))
}

/// Pushes `image` and deploys it as the app's new release.
pub async fn push(ctx: &Ctx, image: &Path, name: Option<String>) -> Result<(), CliError> {
    let app_name = ctx.app()?;
    let cluster = ctx.cluster()?;
    let (registry, insecure) = registry_of(&cluster.image_url)?;
    let api = ctx.api()?;
    let app = api.app(&app_name).await?;
    let current = super::release::current(&api, &app).await?;
    super::release::refuse_bootstrap_run(&app, current.as_ref())?;
    let target: Reference = format!("{registry}/{}:latest", app.name)
        .parse()
        .map_err(|e| CliError::usage(format!("the image name: {e}")))?;
    let opts = PushOptions {
        registry: RegistryOptions {
            insecure: if insecure {
                vec![registry.clone()]
            } else {
                Vec::new()
            },
            credentials: Some(Credentials {
                username: "flynn".into(),
                password: cluster.key.clone(),
            }),
            docker_config: None,
        },
        reference: name,
        ..Default::default()
    };
    println!("Pushing {} to {target}", image.display());
    let report = pinkerton::push::push(image, &target, &opts, &|b| println!("{}", blob_line(b)))
        .await
        .map_err(|e| CliError::Image(Box::new(e)))?;
    println!("Pushed {}", report.pinned);
    let artifact = api
        .create_artifact(&NewArtifact {
            kind: Default::default(),
            uri: report.pinned.to_string(),
            meta: Default::default(),
        })
        .await?;
    let (env, meta, processes) = match &current {
        Some(r) => (r.env.clone(), r.meta.clone(), r.processes.clone()),
        None => (
            Default::default(),
            Default::default(),
            first_processes(app.name.as_str())?,
        ),
    };
    let new = NewRelease {
        app_id: app.id.clone(),
        artifacts: vec![artifact.id],
        env,
        meta,
        processes,
    };
    let r = super::release::create(&api, &new).await?;
    super::release::deploy(&api, &app.id, current.as_ref(), &r).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_urls() {
        assert_eq!(
            registry_of("http://10.0.0.1:5000/").unwrap(),
            ("10.0.0.1:5000".into(), true)
        );
        assert_eq!(
            registry_of("https://images.example.com").unwrap(),
            ("images.example.com".into(), false)
        );
        assert!(registry_of("")
            .unwrap_err()
            .to_string()
            .contains("--image-url"));
        assert!(registry_of("http://h/x").is_err());
        assert!(first_processes("web-app").unwrap().contains_key("web"));
    }
}
