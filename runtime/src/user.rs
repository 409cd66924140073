//! Resolving a job's user (`name`, `uid`, `name:group`, `uid:gid`) in the image's
//! `/etc/passwd` and `/etc/group`, without following links out of the root filesystem.

use std::fs;
use std::path::Path;

/// A user that cannot be resolved.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// The name is not in the image's passwd file.
    #[error("user {0:?} not found in the image's /etc/passwd")]
    NoSuchUser(String),
    /// The group is not in the image's group file.
    #[error("group {0:?} not found in the image's /etc/group")]
    NoSuchGroup(String),
}

/// The ids a job runs with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups from /etc/group.
    pub additional_gids: Vec<u32>,
    /// Home directory (for `HOME`), `/` when unknown.
    pub home: String,
}

/// Reads `rel` (e.g. `etc/passwd`) under `root` if it and its parents are not symlinks.
fn read_in_root(root: &Path, rel: &str) -> String {
    let mut cur = root.to_path_buf();
    for part in rel.split('/') {
        cur.push(part);
        match fs::symlink_metadata(&cur) {
            Ok(m) if !m.file_type().is_symlink() => {}
            _ => return String::new(),
        }
    }
    fs::read_to_string(cur).unwrap_or_default()
}

/// Resolves `spec` (`None` = root) against the files under `rootfs`.
pub fn resolve(rootfs: &Path, spec: Option<&str>) -> Result<ResolvedUser, UserError> {
    let passwd = read_in_root(rootfs, "etc/passwd");
    let group = read_in_root(rootfs, "etc/group");
    let users: Vec<Vec<&str>> = passwd
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 7)
        .collect();
    let groups: Vec<Vec<&str>> = group
        .lines()
        .map(|l| l.split(':').collect())
        .filter(|f: &Vec<&str>| f.len() >= 4)
        .collect();
    let spec = spec.unwrap_or("0");
    let (user_part, group_part) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let entry = users
        .iter()
        .find(|f| f[0] == user_part || f[2] == user_part);
    let (uid, mut gid, name, home) = match (user_part.parse::<u32>(), entry) {
        (_, Some(f)) => (
            f[2].parse().unwrap_or(0),
            f[3].parse().unwrap_or(0),
            f[0].to_string(),
            f[5].to_string(),
        ),
        (Ok(uid), None) => (uid, uid, String::new(), "/".to_string()),
        (Err(_), None) => return Err(UserError::NoSuchUser(user_part.to_string())),
    };
    if let Some(g) = group_part {
        gid = match (
            groups.iter().find(|f| f[0] == g || f[2] == g),
            g.parse::<u32>(),
        ) {
            (Some(f), _) => f[2].parse().unwrap_or(0),
            (None, Ok(n)) => n,
            (None, Err(_)) => return Err(UserError::NoSuchGroup(g.to_string())),
        };
    }
    let additional_gids = if name.is_empty() {
        Vec::new()
    } else {
        groups
            .iter()
            .filter(|f| f[3].split(',').any(|m| m == name))
            .filter_map(|f| f[2].parse().ok())
            .filter(|g| *g != gid)
            .collect()
    };
    let home = if home.is_empty() {
        "/".to_string()
    } else {
        home
    };
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ids_and_groups() {
        let t = tempfile::tempdir().unwrap();
        fs::create_dir(t.path().join("etc")).unwrap();
        fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            t.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nstaff:x:50:app\n",
        )
        .unwrap();
        let r = |s| resolve(t.path(), s);
        assert_eq!(r(None).unwrap().uid, 0);
        let app = r(Some("app")).unwrap();
        assert_eq!(
            (
                app.uid,
                app.gid,
                app.additional_gids.clone(),
                app.home.as_str()
            ),
            (1000, 1000, vec![50], "/home/app")
        );
        assert_eq!(r(Some("1000:staff")).unwrap().gid, 50);
        assert_eq!(r(Some("4242:4243")).unwrap().gid, 4243);
        assert!(matches!(r(Some("nobody")), Err(UserError::NoSuchUser(_))));
        assert!(matches!(
            r(Some("app:wheel")),
            Err(UserError::NoSuchGroup(_))
        ));
        fs::remove_file(t.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", t.path().join("etc/passwd")).unwrap();
        assert!(
            matches!(r(Some("app")), Err(UserError::NoSuchUser(_))),
            "links out of the root are not read"
        );
    }
}
