//! `flynn cluster`: the clusters in `~/.flynnrc`.

use crate::cli::ClusterCommand;
use crate::config::Cluster;
use crate::error::CliError;
use crate::Ctx;

/// Runs `flynn cluster [COMMAND]`.
pub fn run(ctx: &mut Ctx, command: Option<ClusterCommand>, json: bool) -> Result<(), CliError> {
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
                    .unwrap_or_else(|| format!("http://controller.{domain}")),
                git_url: git_url.unwrap_or_else(|| format!("http://git.{domain}")),
                image_url: image_url.unwrap_or_default(),
            };
            ctx.config.add(c.clone(), force, default)?;
            crate::controller(&c)?;
            if !no_git {
                crate::git::configure(&c)?;
            }
            ctx.config.save(&ctx.config_path)?;
            println!("Cluster {name:?} added.");
        }
        Some(ClusterCommand::Remove { name }) => {
            let c = ctx.config.remove(&name)?;
            crate::git::unconfigure(&c);
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
