//! `~/.flynnrc`: the clusters the CLI knows (name, key, controller and git URLs, TLS pin)
//! and the default one, in Flynn's TOML layout. Written whole to a temporary file, readable by
//! its owner only (it holds keys), then renamed over the old one.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::CliError;

/// One cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// Its name here.
    #[serde(rename = "Name")]
    pub name: String,
    /// The controller key.
    #[serde(rename = "Key")]
    pub key: String,
    /// The base64 SHA-256 of the controller's TLS certificate, when pinned.
    #[serde(rename = "TLSPin", default, skip_serializing_if = "String::is_empty")]
    pub tls_pin: String,
    /// The controller, `http://HOST:PORT` or `http://NAME` (through a router).
    #[serde(rename = "ControllerURL")]
    pub controller_url: String,
    /// Where `git push` goes: `GitURL/APP.git`.
    #[serde(rename = "GitURL", default, skip_serializing_if = "String::is_empty")]
    pub git_url: String,
    /// The cluster registry `flynn docker push` pushes to: `http://HOST:PORT` (plain HTTP)
    /// or `https://HOST[:PORT]`.
    #[serde(rename = "ImageURL", default, skip_serializing_if = "String::is_empty")]
    pub image_url: String,
}

/// The whole file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The default cluster's name.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub default: String,
    /// Every cluster.
    #[serde(rename = "cluster", default)]
    pub clusters: Vec<Cluster>,
}

/// Where the file is: `$FLYNNRC`, else `$HOME/.flynnrc`.
pub fn path() -> PathBuf {
    if let Some(p) = std::env::var_os("FLYNNRC") {
        return PathBuf::from(p);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".flynnrc")
}

impl Config {
    /// Reads `path`; a missing file is an empty configuration.
    pub fn load(path: &Path) -> Result<Self, CliError> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(source) => {
                return Err(CliError::ConfigIo {
                    path: path.into(),
                    source,
                })
            }
        };
        toml::from_str(&text).map_err(|e| CliError::ConfigSyntax {
            path: path.into(),
            message: e.message().to_string(),
        })
    }

    /// Writes it to `path` (mode 0600), replacing the old file at once.
    pub fn save(&self, path: &Path) -> Result<(), CliError> {
        let io = |source| CliError::ConfigIo {
            path: path.into(),
            source,
        };
        let text = toml::to_string(self).expect("the configuration serializes");
        let tmp = path.with_extension("tmp");
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io)?;
        f.write_all(text.as_bytes()).map_err(io)?;
        f.sync_all().map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    /// Adds `c` (replacing one of its name only with `force`); the first cluster, or one
    /// added with `default`, becomes the default.
    pub fn add(&mut self, c: Cluster, force: bool, default: bool) -> Result<(), CliError> {
        if let Some(i) = self.clusters.iter().position(|x| x.name == c.name) {
            if !force {
                return Err(CliError::ClusterExists(c.name));
            }
            self.clusters.remove(i);
        }
        if default || self.clusters.is_empty() {
            self.default = c.name.clone();
        }
        self.clusters.push(c);
        Ok(())
    }

    /// Removes the cluster `name`; when it was the default, the first one left is.
    pub fn remove(&mut self, name: &str) -> Result<Cluster, CliError> {
        let i = self
            .clusters
            .iter()
            .position(|c| c.name == name)
            .ok_or_else(|| CliError::NoCluster(format!("no cluster named {name:?}")))?;
        let c = self.clusters.remove(i);
        if self.default == name {
            self.default = self
                .clusters
                .first()
                .map(|c| c.name.clone())
                .unwrap_or_default();
        }
        Ok(c)
    }

    /// The cluster `name`, else the default one.
    pub fn select(&self, name: Option<&str>) -> Result<&Cluster, CliError> {
        let want = name.unwrap_or(&self.default);
        if self.clusters.is_empty() {
            return Err(CliError::NoCluster(
                "no cluster configured: add one with flynn cluster add NAME DOMAIN KEY".into(),
            ));
        }
        self.clusters
            .iter()
            .find(|c| c.name == want)
            .ok_or_else(|| {
                let names: Vec<&str> = self.clusters.iter().map(|c| c.name.as_str()).collect();
                CliError::NoCluster(format!(
                    "no cluster named {want:?} (configured: {}): pass -c NAME or set one with flynn cluster default NAME",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(name: &str) -> Cluster {
        Cluster {
            name: name.into(),
            key: "k".into(),
            tls_pin: String::new(),
            controller_url: "http://10.0.0.1:8081".into(),
            git_url: "http://git.example.test".into(),
            image_url: String::new(),
        }
    }

    #[test]
    fn flynns_layout_round_trips_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flynnrc");
        let mut c = Config::default();
        c.add(cluster("a"), false, false).unwrap();
        c.add(cluster("b"), false, false).unwrap();
        c.save(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("default = \"a\""), "{text}");
        assert!(text.contains("[[cluster]]"), "{text}");
        assert!(
            text.contains("ControllerURL = \"http://10.0.0.1:8081\""),
            "{text}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&p).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(Config::load(&p).unwrap(), c);
    }

    #[test]
    fn defaults_duplicates_and_removal() {
        let mut c = Config::default();
        c.add(cluster("a"), false, false).unwrap();
        c.add(cluster("b"), false, true).unwrap();
        assert_eq!(c.select(None).unwrap().name, "b");
        assert!(matches!(
            c.add(cluster("a"), false, false),
            Err(CliError::ClusterExists(_))
        ));
        c.add(cluster("a"), true, false).unwrap();
        assert_eq!(c.clusters.len(), 2);
        c.remove("b").unwrap();
        assert_eq!(c.default, "a");
        let e = c.select(Some("zz")).unwrap_err().to_string();
        assert!(e.contains("configured: a"), "{e}");
        c.remove("a").unwrap();
        assert!(c
            .select(None)
            .unwrap_err()
            .to_string()
            .contains("flynn cluster add"));
    }

    #[test]
    fn a_broken_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("flynnrc");
        std::fs::write(&p, "[[cluster]]\nName = 3\n").unwrap();
        let e = Config::load(&p).unwrap_err().to_string();
        assert!(e.contains("is not a valid flynnrc"), "{e}");
        assert!(Config::load(&dir.path().join("none"))
            .unwrap()
            .clusters
            .is_empty());
    }
}
