//! A local git repository of an app that pushes to the test cluster's gitreceive over smart
//! HTTP, through a host's router at `git.DOMAIN`, with the real git client and no user or
//! system configuration.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cluster::DOMAIN;
use crate::run_ok;

/// An app's working repository.
#[derive(Debug)]
pub struct AppRepo {
    /// The working tree.
    pub dir: PathBuf,
    /// HOME for git: no user configuration (credential helpers) applies.
    home: PathBuf,
    /// The remote, with the key as the Basic password.
    pub remote: String,
    /// The router `git.DOMAIN` resolves to.
    router: Ipv4Addr,
}

/// git in `dir` for a user whose HOME is `home` (only their global configuration applies): a
/// fixed identity, no prompts, `git.DOMAIN` resolved to `router`.
pub fn git_command(dir: &Path, home: &Path, router: Ipv4Addr) -> Command {
    let mut c = Command::new("git");
    c.current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        // A CA bundle named in the environment would override the cluster CA that
        // `flynn cluster add` configures for the git URL.
        .env_remove("GIT_SSL_CAINFO")
        .env_remove("GIT_SSL_CAPATH")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.test")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.test")
        .args([
            "-c",
            &format!("http.curloptResolve=git.{DOMAIN}:80:{router}"),
        ]);
    c
}

impl AppRepo {
    /// A new repository `root/name` (branch `main`) for app `name`, pushing with `key`
    /// through the router on `router`.
    pub fn new(root: &Path, name: &str, key: &str, router: Ipv4Addr) -> Self {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let repo = Self {
            dir,
            home: root.to_path_buf(),
            remote: format!("http://flynn:{key}@git.{DOMAIN}/{name}.git"),
            router,
        };
        repo.git(&["init", "-q", "-b", "main"]);
        repo
    }

    /// Runs git with `args`; panics with its output when it fails.
    pub fn git(&self, args: &[&str]) -> String {
        run_ok(self.cmd().args(args))
    }

    /// A git command in the repository: a fixed identity, no prompts, `git.DOMAIN` at the
    /// router.
    pub fn cmd(&self) -> Command {
        git_command(&self.dir, &self.home, self.router)
    }

    /// Writes files and commits them.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) {
        for (path, body) in files {
            let p = self.dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        }
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "-m", message]);
    }

    /// `git push REMOTE REFSPEC`: whether it succeeded, and everything it printed.
    pub fn push_to(&self, remote: &str, refspec: &str) -> (bool, String) {
        let out = self
            .cmd()
            .args(["push", "--progress", remote, refspec])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        eprintln!("--- git push {refspec}\n{text}");
        (out.status.success(), text)
    }

    /// `git push` to the app's remote.
    pub fn push(&self, refspec: &str) -> (bool, String) {
        self.push_to(&self.remote.clone(), refspec)
    }
}
