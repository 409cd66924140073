//! The `pre-receive` hook: git runs it in the repository with one `OLD NEW REF` line per
//! updated ref on stdin, before any ref moves. It refuses updates of anything but the app's
//! deploy branch, builds the pushed commit, creates its release and deploys it; its output
//! is the user's (git relays it as `remote:` lines), and failing rejects the push.

use std::io::Write;
use std::path::Path;
use std::process::Stdio;

use flynn_http::service::Shutdown;

use crate::build::{self, Build};
use crate::error::GitReceiveError;
use crate::release;
use crate::settings::Settings;

/// The app meta key that names an app's deploy branch (default: `main` or `master`).
pub const DEPLOY_BRANCH_META: &str = "deploy_branch";

const ZERO: &str = "0000000000000000000000000000000000000000";

/// One ref a push updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefUpdate {
    /// The old commit (zeros for a new ref).
    pub old: String,
    /// The new commit (zeros for a deletion).
    pub new: String,
    /// The ref (`refs/heads/main`).
    pub name: String,
}

/// Parses the hook's stdin.
pub fn parse_updates(input: &str) -> Vec<RefUpdate> {
    input
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            Some(RefUpdate {
                old: f.next()?.to_string(),
                new: f.next()?.to_string(),
                name: f.next()?.to_string(),
            })
        })
        .collect()
}

/// The branches that deploy: the app's `deploy_branch` meta, else `main` and `master`.
pub fn deploy_branches(app: &controller_api::App) -> Vec<String> {
    match app.meta.get(DEPLOY_BRANCH_META) {
        Some(b) if !b.trim().is_empty() => vec![b.trim().to_string()],
        _ => vec!["main".into(), "master".into()],
    }
}

/// The one update to deploy, or why the push is refused.
pub fn deploy_update<'a>(
    updates: &'a [RefUpdate],
    branches: &[String],
) -> Result<&'a RefUpdate, GitReceiveError> {
    let names = branches.join(" or ");
    let deploys = |u: &RefUpdate| {
        u.name
            .strip_prefix("refs/heads/")
            .is_some_and(|b| branches.iter().any(|d| d == b))
    };
    if let Some(other) = updates.iter().find(|u| !deploys(u)) {
        return Err(GitReceiveError::Refused(format!(
            "{} is not deployed: push to {names} to deploy (e.g. git push flynn HEAD:{})",
            other.name, branches[0]
        )));
    }
    if updates.len() > 1 {
        return Err(GitReceiveError::Refused(format!(
            "push one branch at a time ({names})"
        )));
    }
    match updates.first() {
        None => Err(GitReceiveError::Refused(format!(
            "the push must include a change to {names} to be deployed"
        ))),
        Some(u) if u.new == ZERO => Err(GitReceiveError::Refused(format!(
            "{} is the deploy branch and cannot be deleted",
            u.name
        ))),
        Some(u) => Ok(u),
    }
}

/// Prints a line to the user (flushed: git relays it at once).
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Runs the hook for app `app_name` in repository `repo` with `input` (the hook's stdin).
/// `cancel` fires when the push is cancelled: a running build is stopped.
pub async fn run(
    s: &Settings,
    app_name: &str,
    repo: &Path,
    input: &str,
    cancel: Shutdown,
) -> Result<(), GitReceiveError> {
    let api = s.controller();
    let app = api
        .app(app_name)
        .await
        .map_err(GitReceiveError::Controller)?;
    let updates = parse_updates(input);
    let update = deploy_update(&updates, &deploy_branches(&app))?;
    let rev = update.new.clone();
    let current = match &app.release {
        Some(r) => Some(api.release(r).await.map_err(GitReceiveError::Controller)?),
        None => None,
    };
    let env = current.as_ref().map(|r| r.env.clone()).unwrap_or_default();
    let memory = current
        .as_ref()
        .and_then(|r| r.processes.get(release::BUILD_PROCESS))
        .and_then(|p| p.resources.memory)
        .and_then(|m| m.limit);
    say(&format!("-----> Building {}...", app.name));
    // The commit's tree, as a tar: the objects are in the repository (quarantined until the
    // hook passes, which git's environment lets this process read).
    let mut archive = tokio::process::Command::new("git")
        .args(["archive", "--format=tar", &rev])
        .current_dir(repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| GitReceiveError::Git {
            what: "archive".into(),
            source,
        })?;
    let tree = archive.stdout.take().expect("piped stdout");
    let b = Build {
        app_id: &app.id,
        app_name: app.name.as_str(),
        rev: &rev,
        env,
        memory,
    };
    let built = build::run(s, &b, tree, say, cancel).await;
    let archived = archive.wait_with_output().await;
    let built = built?;
    match archived {
        Ok(o) if o.status.success() => {}
        Ok(o) => {
            return Err(GitReceiveError::GitFailed {
                what: "archive".into(),
                stderr: String::from_utf8_lossy(&o.stderr).trim().to_string(),
            })
        }
        Err(source) => {
            return Err(GitReceiveError::Git {
                what: "archive".into(),
                source,
            })
        }
    }
    say("-----> Creating release...");
    let release = release::create(&api, &app, &built, &rev).await?;
    release::deploy(&api, &app, &release, say).await?;
    say("=====> Application deployed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn updates(lines: &[&str]) -> Vec<RefUpdate> {
        parse_updates(&lines.join("\n"))
    }

    #[test]
    fn only_the_deploy_branch_deploys() {
        let main = vec!["main".to_string(), "master".to_string()];
        let a = "1".repeat(40);
        let ok = updates(&[&format!("{ZERO} {a} refs/heads/main")]);
        assert_eq!(deploy_update(&ok, &main).unwrap().new, a);
        let ok = updates(&[&format!("{ZERO} {a} refs/heads/master")]);
        assert!(deploy_update(&ok, &main).is_ok());
        let feature = updates(&[&format!("{ZERO} {a} refs/heads/feature")]);
        let e = deploy_update(&feature, &main).unwrap_err().to_string();
        assert!(e.contains("refs/heads/feature is not deployed"), "{e}");
        let tag = updates(&[
            &format!("{ZERO} {a} refs/heads/main"),
            &format!("{ZERO} {a} refs/tags/v1"),
        ]);
        assert!(deploy_update(&tag, &main).is_err());
        let delete = updates(&[&format!("{a} {ZERO} refs/heads/main")]);
        assert!(deploy_update(&delete, &main)
            .unwrap_err()
            .to_string()
            .contains("cannot be deleted"));
        assert!(deploy_update(&[], &main).is_err());
        let prod = vec!["production".to_string()];
        assert!(deploy_update(&ok, &prod).is_err());
    }
}
