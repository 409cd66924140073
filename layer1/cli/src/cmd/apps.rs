//! `flynn create`, `apps`, `info` and `delete`.

use controller_api::NewApp;

use crate::error::CliError;
use crate::Ctx;

/// Creates an app and, in a git repository, points its `flynn` remote at it.
pub async fn create(ctx: &Ctx, name: Option<String>, no_remote: bool) -> Result<(), CliError> {
    let api = ctx.api()?;
    let name = match name {
        Some(n) => Some(
            n.parse()
                .map_err(|e| CliError::usage(format!("app name {n:?}: {e}")))?,
        ),
        None => None,
    };
    let app = api
        .create_app(&NewApp {
            name,
            ..Default::default()
        })
        .await?;
    println!("Created {}", app.name);
    let dir = std::env::current_dir()?;
    if !no_remote && crate::git::in_repo(&dir) {
        let url = crate::git::app_url(ctx.cluster()?, app.name.as_str());
        crate::git::set_remote(&dir, &ctx.remote, &url)?;
    }
    Ok(())
}

/// Lists the apps.
pub async fn list(ctx: &Ctx, json: bool) -> Result<(), CliError> {
    let mut apps = ctx.api()?.apps().await?;
    apps.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    if json {
        super::print_json(&apps);
        return Ok(());
    }
    let rows: Vec<Vec<String>> = apps
        .iter()
        .map(|a| {
            vec![
                a.id.clone(),
                a.name.to_string(),
                a.release.clone().unwrap_or_default(),
                flynn_term::table::ago(a.created_at.as_datetime()),
            ]
        })
        .collect();
    flynn_term::table::print(&["ID", "NAME", "RELEASE", "CREATED"], &rows);
    Ok(())
}

/// The app's URLs and current release.
pub async fn info(ctx: &Ctx, json: bool) -> Result<(), CliError> {
    let name = ctx.app()?;
    let app = ctx.api()?.app(&name).await?;
    let git_url = crate::git::app_url(ctx.cluster()?, app.name.as_str());
    let web_url = format!("http://{}.{}", app.name, ctx.domain()?);
    if json {
        super::print_json(&serde_json::json!({
            "app": app, "git_url": git_url, "web_url": web_url,
        }));
        return Ok(());
    }
    println!("=== {}", app.name);
    println!("Git URL:  {git_url}");
    println!("Web URL:  {web_url}");
    println!("Release:  {}", app.release.as_deref().unwrap_or("(none)"));
    let strategy = super::wire_name(app.strategy);
    println!("Strategy: {strategy}");
    Ok(())
}

/// Deletes the app (after asking, unless `yes`) and the remote that named it.
pub async fn delete(ctx: &Ctx, yes: bool) -> Result<(), CliError> {
    let name = ctx.app()?;
    if !yes
        && !super::confirm(&format!(
            "Are you sure you want to delete the app {name:?}?"
        ))?
    {
        return Ok(());
    }
    let d = ctx.api()?.delete_app(&name).await?;
    println!(
        "Deleted {} (removed {} routes, deleted {} releases, scaled down {} formations)",
        d.app.name, d.removed_routes, d.deleted_releases, d.removed_formations
    );
    let dir = std::env::current_dir()?;
    if crate::git::in_repo(&dir) {
        let url = crate::git::app_url(ctx.cluster()?, d.app.name.as_str());
        if crate::git::remove_remote(&dir, &ctx.remote, &url)? {
            println!("Removed git remote {}", ctx.remote);
        }
    }
    Ok(())
}
