//! `flynn limit`: the resource limits of the current release's process types; a change is
//! a new release, deployed.

use controller_api::{Limit, ProcessTypeName, Resources};

use crate::error::CliError;
use crate::Ctx;

/// `512MB`, `1GiB`, `64K` or plain bytes, as bytes (powers of 1024, as Flynn's were).
pub fn parse_size(s: &str) -> Result<u64, CliError> {
    pinkerton::progress::parse_size(s).ok_or_else(|| {
        CliError::usage(format!(
            "{s:?} is not a size like 512MB (units: K, M, G, T)"
        ))
    })
}

/// A count like `12k` or `300`.
fn parse_count(s: &str) -> Result<u64, CliError> {
    match s.strip_suffix(['k', 'K']) {
        Some(n) => n.parse::<u64>().map(|n| n * 1000),
        None => s.parse(),
    }
    .map_err(|_| CliError::usage(format!("{s:?} is not a count like 300 or 12k")))
}

/// Applies `KEY=VALUE` limits (`memory`, `cpu` in milli-CPUs, `max_fd`, `max_procs`).
pub fn apply(r: &mut Resources, pairs: &[(String, String)]) -> Result<(), CliError> {
    let limit = |v: u64| {
        Some(Limit {
            request: Some(v),
            limit: Some(v),
        })
    };
    for (k, v) in pairs {
        match k.as_str() {
            "memory" => r.memory = limit(parse_size(v)?),
            "cpu" => r.cpu = limit(parse_count(v)?),
            "max_fd" => r.max_fd = limit(parse_count(v)?),
            "max_procs" => r.max_procs = limit(parse_count(v)?),
            _ => {
                return Err(CliError::usage(format!(
                    "unknown limit {k:?}: use memory, cpu, max_fd or max_procs"
                )))
            }
        }
    }
    Ok(())
}

fn show(r: &Resources) -> String {
    let mut parts = Vec::new();
    let mib = |b: u64| format!("{}MB", b >> 20);
    if let Some(v) = r.memory.and_then(|l| l.limit) {
        parts.push(format!("memory={}", mib(v)));
    }
    for (k, l) in [
        ("cpu", r.cpu),
        ("max_fd", r.max_fd),
        ("max_procs", r.max_procs),
    ] {
        if let Some(v) = l.and_then(|l| l.limit) {
            parts.push(format!("{k}={v}"));
        }
    }
    parts.join(" ")
}

/// Shows the limits (of `kind` only, if given), or sets those of `set`'s type.
pub async fn run(
    ctx: &Ctx,
    kind: Option<String>,
    set: Option<(String, Vec<String>)>,
) -> Result<(), CliError> {
    let app_name = ctx.app()?;
    let api = ctx.api()?;
    let app = api.app(&app_name).await?;
    let Some(id) = &app.release else {
        return Err(CliError::usage(format!(
            "{app_name} has no release yet: deploy it first (git push flynn main)"
        )));
    };
    let current = api.release(id).await?;
    let Some((t, args)) = set else {
        for (k, p) in &current.processes {
            if kind.as_deref().is_none_or(|want| want == k.as_str()) {
                println!("{k}: {}", show(&p.resources));
            }
        }
        return Ok(());
    };
    let t: ProcessTypeName = t
        .parse()
        .map_err(|e| CliError::usage(format!("{t:?}: {e}")))?;
    let mut next = current.clone();
    let p = next.processes.get_mut(&t).ok_or_else(|| {
        CliError::usage(format!("release {} has no process type {t}", current.id))
    })?;
    apply(&mut p.resources, &super::pairs(&args)?)?;
    let new = controller_api::NewRelease {
        app_id: app.id.clone(),
        artifacts: next.artifacts,
        env: next.env,
        meta: next.meta,
        processes: next.processes,
    };
    let r = super::release::create(&api, &new).await?;
    super::release::deploy(&api, &app.id, Some(&current), &r).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_counts() {
        assert_eq!(parse_size("512MB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12XB")
            .unwrap_err()
            .to_string()
            .contains("is not a size like 512MB"));
        assert!(parse_size("lots").is_err());
        let mut r = Resources::default();
        let pairs = [
            ("memory".to_string(), "256M".to_string()),
            ("max_fd".into(), "12k".into()),
        ];
        apply(&mut r, &pairs).unwrap();
        assert_eq!(r.memory.unwrap().limit, Some(256 << 20));
        assert_eq!(r.max_fd.unwrap().limit, Some(12000));
        assert_eq!(show(&r), "memory=256MB max_fd=12000");
        assert!(apply(&mut r, &[("disk".into(), "1".into())]).is_err());
    }
}
