//! `flynn env` (the release's environment: a change is a new release, deployed) and
//! `flynn meta` (the app's metadata: no deploy).

use std::collections::BTreeMap;

use controller_api::AppUpdate;

use crate::cli::{EnvCommand, MetaCommand};
use crate::error::CliError;
use crate::Ctx;

fn print_map(m: &BTreeMap<String, String>) {
    for (k, v) in m {
        println!("{k}={v}");
    }
}

/// Sets `K=V` pairs and removes keys; a key to remove that is missing is an error that
/// starts with `missing` ("APP has no variable").
fn edit(
    m: &mut BTreeMap<String, String>,
    set: &[String],
    unset: &[String],
    missing: &str,
) -> Result<(), CliError> {
    for (k, v) in super::pairs(set)? {
        m.insert(k, v);
    }
    for n in unset {
        if m.remove(n).is_none() {
            return Err(CliError::usage(format!("{missing} {n}")));
        }
    }
    Ok(())
}

/// Runs `flynn env [COMMAND]`.
pub async fn env(ctx: &Ctx, command: Option<EnvCommand>) -> Result<(), CliError> {
    let app_name = ctx.app()?;
    let api = ctx.api()?;
    let app = api.app(&app_name).await?;
    let current = super::release::current(&api, &app).await?;
    let mut env: BTreeMap<String, String> =
        current.as_ref().map(|r| r.env.clone()).unwrap_or_default();
    match command {
        None => {
            print_map(&env);
            return Ok(());
        }
        Some(EnvCommand::Get { name }) => {
            let v = env
                .get(&name)
                .ok_or_else(|| CliError::usage(format!("{app_name} has no variable {name}")))?;
            println!("{v}");
            return Ok(());
        }
        Some(EnvCommand::Set { pairs }) => edit(&mut env, &pairs, &[], "")?,
        Some(EnvCommand::Unset { names }) => edit(
            &mut env,
            &[],
            &names,
            &format!("{app_name} has no variable"),
        )?,
    }
    super::release::refuse_bootstrap_run(&app, current.as_ref())?;
    let r = super::release::create_like(&api, &app.id, current.as_ref(), env).await?;
    super::release::deploy(&api, &app.id, current.as_ref(), &r).await
}

/// Runs `flynn meta [COMMAND]`.
pub async fn meta(ctx: &Ctx, command: Option<MetaCommand>) -> Result<(), CliError> {
    let app_name = ctx.app()?;
    let api = ctx.api()?;
    let app = api.app(&app_name).await?;
    let mut meta = app.meta.clone();
    match command {
        None => {
            print_map(&meta);
            return Ok(());
        }
        Some(MetaCommand::Set { pairs }) => edit(&mut meta, &pairs, &[], "")?,
        Some(MetaCommand::Unset { names }) => edit(
            &mut meta,
            &[],
            &names,
            &format!("{app_name} has no meta key"),
        )?,
    }
    api.update_app(
        &app.id,
        &AppUpdate {
            meta: Some(meta),
            ..Default::default()
        },
    )
    .await?;
    println!("Updated the metadata of {app_name}.");
    Ok(())
}
