//! The CLI's side of git: the app of the working directory from its `flynn` remote, adding
//! that remote, the credential helper git calls for a cluster's git URL, and the global git
//! configuration that makes a plain `git push flynn main` use it.

use std::io::BufRead;
use std::path::Path;
use std::process::Command;

use crate::config::{Cluster, Config};
use crate::error::CliError;

/// The remote name `flynn create` adds and app lookups read.
pub const REMOTE: &str = "flynn";

fn git(dir: &Path, args: &[&str]) -> Result<String, CliError> {
    let out = Command::new("git")
        .current_dir(dir)
        .args(args)
        .output()
        .map_err(|e| CliError::Git {
            args: args.join(" "),
            message: format!("cannot run git ({e}): install git"),
        })?;
    if !out.status.success() {
        return Err(CliError::Git {
            args: args.join(" "),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// True when `dir` is inside a git working tree.
pub fn in_repo(dir: &Path) -> bool {
    git(dir, &["rev-parse", "--is-inside-work-tree"]).is_ok_and(|o| o.trim() == "true")
}

/// The URL `git push` of app `app` goes to on cluster `c`.
pub fn app_url(c: &Cluster, app: &str) -> String {
    format!("{}/{app}.git", c.git_url.trim_end_matches('/'))
}

/// The app a remote URL of cluster `c` names (`GitURL/APP.git`).
pub fn app_of_url(c: &Cluster, url: &str) -> Option<String> {
    let base = c.git_url.trim_end_matches('/');
    let rest = url.strip_prefix(base)?.strip_prefix('/')?;
    let app = rest.strip_suffix(".git").unwrap_or(rest);
    (!app.is_empty() && !app.contains('/')).then(|| app.to_string())
}

/// The app of the repository at `dir`: its remote `remote`'s URL on cluster `c`.
pub fn app_of_repo(dir: &Path, c: &Cluster, remote: &str) -> Option<String> {
    let url = git(dir, &["remote", "get-url", remote]).ok()?;
    app_of_url(c, url.trim())
}

/// Adds (or points) the remote `remote` of the repository at `dir` to `url`.
pub fn set_remote(dir: &Path, remote: &str, url: &str) -> Result<(), CliError> {
    if git(dir, &["remote", "get-url", remote]).is_ok() {
        git(dir, &["remote", "set-url", remote, url])?;
    } else {
        git(dir, &["remote", "add", remote, url])?;
    }
    Ok(())
}

/// Removes the remote `remote` when it points at `url`.
pub fn remove_remote(dir: &Path, remote: &str, url: &str) -> Result<bool, CliError> {
    match git(dir, &["remote", "get-url", remote]) {
        Ok(u) if u.trim() == url => {
            git(dir, &["remote", "remove", remote])?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

/// Makes git ask `flynn git-credentials` for the credentials of `c`'s git URL, and trust the
/// cluster CA in file `ca` for it (in the user's global git configuration).
pub fn configure(c: &Cluster, ca: Option<&Path>) -> Result<(), CliError> {
    if c.git_url.is_empty() {
        return Ok(());
    }
    let exe = std::env::current_exe()?;
    let key = format!("credential.{}.helper", c.git_url.trim_end_matches('/'));
    let helper = format!("{} git-credentials", exe.display());
    git(
        Path::new("/"),
        &["config", "--global", "--replace-all", &key, &helper],
    )?;
    if let Some(ca) = ca {
        let key = format!("http.{}/.sslCAInfo", c.git_url.trim_end_matches('/'));
        let ca = ca.display().to_string();
        git(
            Path::new("/"),
            &["config", "--global", "--replace-all", &key, &ca],
        )?;
    }
    Ok(())
}

/// Takes `c`'s credential helper out of the global git configuration.
pub fn unconfigure(c: &Cluster) {
    if c.git_url.is_empty() {
        return;
    }
    let url = c.git_url.trim_end_matches('/');
    for key in [
        format!("credential.{url}.helper"),
        format!("http.{url}/.sslCAInfo"),
    ] {
        let _ = git(Path::new("/"), &["config", "--global", "--unset-all", &key]);
    }
}

/// The git credential helper protocol: for `get`, reads `key=value` lines and answers with
/// username `flynn` and the key of the cluster whose git URL has that protocol and host;
/// `store` and `erase` have nothing to do. Returns what to print.
pub fn credentials(op: &str, input: impl BufRead, config: &Config) -> Result<String, CliError> {
    if op != "get" {
        return Ok(String::new());
    }
    let mut protocol = String::new();
    let mut host = String::new();
    for line in input.lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        match line.split_once('=') {
            Some(("protocol", v)) => protocol = v.to_string(),
            Some(("host", v)) => host = v.to_string(),
            _ => {}
        }
    }
    let want = format!("{protocol}://{host}");
    let found = config.clusters.iter().find(|c| {
        let url = c.git_url.trim_end_matches('/');
        url == want
            || url.split_once("://").is_some_and(|(p, rest)| {
                p == protocol && rest.split('/').next() == Some(host.as_str())
            })
    });
    Ok(match found {
        Some(c) => format!(
            "protocol={protocol}\nhost={host}\nusername=flynn\npassword={}\n",
            c.key
        ),
        None => String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster() -> Cluster {
        Cluster {
            name: "t".into(),
            key: "secret".into(),
            tls_pin: String::new(),
            controller_url: "http://10.0.0.1:8081".into(),
            git_url: "http://git.example.test/".into(),
            image_url: String::new(),
        }
    }

    #[test]
    fn apps_from_remote_urls() {
        let c = cluster();
        assert_eq!(app_url(&c, "web"), "http://git.example.test/web.git");
        assert_eq!(
            app_of_url(&c, "http://git.example.test/web.git").as_deref(),
            Some("web")
        );
        assert_eq!(
            app_of_url(&c, "http://git.example.test/web").as_deref(),
            Some("web")
        );
        assert_eq!(app_of_url(&c, "http://git.other.test/web.git"), None);
        assert_eq!(app_of_url(&c, "http://git.example.test/a/b.git"), None);
    }

    #[test]
    fn the_credential_helper_answers_for_its_clusters_only() {
        let config = Config {
            default: "t".into(),
            clusters: vec![cluster()],
        };
        let ask = |input: &str| credentials("get", input.as_bytes(), &config).unwrap();
        let out = ask("protocol=http\nhost=git.example.test\n\n");
        assert_eq!(
            out,
            "protocol=http\nhost=git.example.test\nusername=flynn\npassword=secret\n"
        );
        assert_eq!(ask("protocol=https\nhost=git.example.test\n"), "");
        assert_eq!(ask("protocol=http\nhost=github.com\n"), "");
        assert_eq!(credentials("store", "".as_bytes(), &config).unwrap(), "");
    }
}
