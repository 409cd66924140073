//! `flynn cluster`: the clusters in `~/.flynnrc`.

use crate::cli::ClusterCommand;
use crate::config::Cluster;
use crate::error::CliError;
use crate::Ctx;
use flynn_http::client::ClientError;

/// Runs `flynn cluster [COMMAND]`.
pub async fn run(
    ctx: &mut Ctx,
    command: Option<ClusterCommand>,
    json: bool,
) -> Result<(), CliError> {
    match command {
        None => {
            if json {
                let list: Vec<serde_json::Value> = ctx
                    .config
                    .clusters
                    .iter()
                    .map(|c| {
                        serde_json::json!({
                            "name": c.name,
                            "controller_url": c.controller_url,
                            "git_url": c.git_url,
                            "default": c.name == ctx.config.default,
                        })
                    })
                    .collect();
                super::print_json(&list);
                return Ok(());
            }
            let rows: Vec<Vec<String>> = ctx
                .config
                .clusters
                .iter()
                .map(|c| {
                    let mark = if c.name == ctx.config.default {
                        " (default)"
                    } else {
                        ""
                    };
                    vec![format!("{}{mark}", c.name), c.controller_url.clone()]
                })
                .collect();
            flynn_term::table::print(&["NAME", "URL"], &rows);
        }
        Some(ClusterCommand::Add {
            force,
            default,
            controller_url,
            git_url,
            image_url,
            no_git,
            tls_pin,
            name,
            domain,
            key,
        }) => {
            let c = Cluster {
                name: name.clone(),
                key,
                tls_pin: tls_pin.unwrap_or_default(),
                controller_url: controller_url
                    .unwrap_or_else(|| format!("https://controller.{domain}")),
                git_url: git_url.unwrap_or_else(|| format!("https://git.{domain}")),
                image_url: image_url.unwrap_or_default(),
            };
            ctx.config.add(c.clone(), force, default)?;
            crate::controller(&c)?;
            // With a pin: the cluster CA, checked against it, for git.
            let ca = match c.tls_pin.is_empty() {
                true => None,
                false => Some(fetch_ca(&c).await?),
            };
            if !no_git {
                crate::git::configure(&c, ca.as_deref())?;
            }
            ctx.config.save(&ctx.config_path)?;
            println!("Cluster {name:?} added.");
        }
        Some(ClusterCommand::Remove { name }) => {
            let c = ctx.config.remove(&name)?;
            crate::git::unconfigure(&c);
            let _ = std::fs::remove_file(ca_path(&c.name));
            ctx.config.save(&ctx.config_path)?;
            println!("Cluster {name:?} removed.");
        }
        Some(ClusterCommand::Default { name: None }) => {
            let c = ctx.config.select(None)?;
            println!("{}", c.name);
        }
        Some(ClusterCommand::Default { name: Some(name) }) => {
            ctx.config.select(Some(&name))?;
            ctx.config.default = name.clone();
            ctx.config.save(&ctx.config_path)?;
            println!("{name:?} is now the default cluster.");
        }
    }
    Ok(())
}

/// Where the CA of cluster `name` is kept (for git): `~/.flynn/ca-certs/NAME.pem`.
pub fn ca_path(name: &str) -> std::path::PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    std::path::PathBuf::from(home)
        .join(".flynn/ca-certs")
        .join(format!("{name}.pem"))
}

/// Fetches the cluster CA from the controller over TLS pinned to it, checks that it is the
/// pinned certificate and keeps it; returns where.
async fn fetch_ca(c: &Cluster) -> Result<std::path::PathBuf, CliError> {
    use rustls_pki_types::pem::PemObject;
    let http = crate::http(c, "controller", &c.controller_url)?;
    let pem = http
        .get_text("/ca-cert")
        .await
        .map_err(|e| tls_error(c, e))?;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem.as_bytes()).map_err(|e| {
        CliError::usage(format!(
            "the controller's /ca-cert is not a PEM certificate: {e}"
        ))
    })?;
    if flynn_http::tls::pin_of(&der) != c.tls_pin.trim() {
        return Err(CliError::usage(format!(
            "the CA certificate cluster {:?} serves does not match the pin {}: check the pin bootstrap printed",
            c.name, c.tls_pin
        )));
    }
    let path = ca_path(&c.name);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&path, pem)?;
    Ok(path)
}

/// A failed TLS handshake as a message that says what to check.
pub fn tls_error(c: &Cluster, e: ClientError) -> CliError {
    match e {
        ClientError::Tls { source, .. } => CliError::usage(format!(
            "TLS with the controller of cluster {:?} failed ({source}): check the pin (-p) bootstrap printed, and run flynn cluster add -f with it",
            c.name
        )),
        e => e.into(),
    }
}
