//! Finding the job's program in its root filesystem before the job starts, as a shell would
//! (`PATH` search for bare names), so that a missing program is a clear error of the request
//! rather than a failed start. Paths resolve with `RESOLVE_IN_ROOT`: symlinks in the image
//! cannot lead outside it.

use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use crate::oci::SpecError;

/// `struct open_how` of openat2(2).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_IN_ROOT: u64 = 0x10;

/// True when `path` names an executable regular file inside `root`.
fn executable_in(root: &OwnedFd, path: &str) -> bool {
    let Ok(fd) = open_in(root, path, libc::O_PATH) else {
        return false;
    };
    match nix::sys::stat::fstat(&fd) {
        Ok(st) => st.st_mode & libc::S_IFMT == libc::S_IFREG && st.st_mode & 0o111 != 0,
        Err(_) => false,
    }
}

/// Opens `path` inside `root` (resolved with `RESOLVE_IN_ROOT`) with `flags`.
fn open_in(root: &OwnedFd, path: &str, flags: i32) -> Result<OwnedFd, nix::Error> {
    let c = CString::new(path.trim_start_matches('/')).map_err(|_| nix::Error::EINVAL)?;
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_IN_ROOT,
    };
    // SAFETY: openat2 reads a NUL-terminated path and an open_how of the given size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(nix::Error::last());
    }
    // SAFETY: the kernel returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Makes sure the working directory `cwd` exists in the root filesystem at `rootfs`, creating
/// missing directories (mode 0755, owned by root) as Docker does. Every step resolves inside
/// the root, so `..` and symlinks in the image cannot lead out of it. A part that exists but
/// is not a directory is an error naming the path.
pub fn ensure_working_dir(rootfs: &Path, cwd: &str) -> Result<(), SpecError> {
    let not_dir = || SpecError::WorkingDir {
        path: cwd.into(),
        reason: "it exists in the image but is not a directory".into(),
    };
    let root = std::fs::File::open(rootfs).map_err(|e| SpecError::WorkingDir {
        path: cwd.into(),
        reason: format!("opening the root filesystem: {e}"),
    })?;
    let root = OwnedFd::from(root);
    let mut sofar = String::new();
    for part in cwd.split('/').filter(|p| !p.is_empty() && *p != ".") {
        let parent = if sofar.is_empty() { "." } else { &sofar };
        let next = format!("{sofar}/{part}");
        match open_in(&root, &next, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(_) => {}
            Err(nix::Error::ENOTDIR) => return Err(not_dir()),
            Err(nix::Error::ENOENT) if part != ".." => {
                let dir = open_in(&root, parent, libc::O_PATH | libc::O_DIRECTORY)
                    .map_err(|_| not_dir())?;
                match nix::sys::stat::mkdirat(
                    &dir,
                    part,
                    nix::sys::stat::Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(nix::Error::EEXIST) => {}
                    Err(e) => {
                        return Err(SpecError::WorkingDir {
                            path: cwd.into(),
                            reason: format!("creating it: {e}"),
                        })
                    }
                }
            }
            Err(e) => {
                return Err(SpecError::WorkingDir {
                    path: cwd.into(),
                    reason: e.to_string(),
                })
            }
        }
        sofar = next;
    }
    Ok(())
}

/// Checks that `argv0` can be executed in the root filesystem at `rootfs`: a path as given
/// (relative ones from `cwd`), a bare name through `path_var`. Programs under one of `mounts`
/// (mount targets) are not checked: they come from outside the image.
pub fn check(
    rootfs: &Path,
    argv0: &str,
    path_var: &str,
    cwd: &str,
    mounts: &[&str],
) -> Result<(), SpecError> {
    let candidates: Vec<String> = if argv0.contains('/') {
        let p = if argv0.starts_with('/') {
            argv0.to_string()
        } else {
            format!("{}/{argv0}", cwd.trim_end_matches('/'))
        };
        vec![p]
    } else {
        path_var
            .split(':')
            .filter(|d| d.starts_with('/'))
            .map(|d| format!("{}/{argv0}", d.trim_end_matches('/')))
            .collect()
    };
    let mounted = |p: &str| {
        mounts
            .iter()
            .any(|m| p == *m || p.starts_with(&format!("{}/", m.trim_end_matches('/'))))
    };
    if candidates.iter().any(|c| mounted(c)) {
        return Ok(());
    }
    let root = std::fs::File::open(rootfs).map_err(|_| SpecError::NotExecutable {
        program: argv0.into(),
    })?;
    // SAFETY: into_raw_fd hands over sole ownership of the open descriptor.
    let root = unsafe { OwnedFd::from_raw_fd(std::os::fd::IntoRawFd::into_raw_fd(root)) };
    if candidates.iter().any(|c| executable_in(&root, c)) {
        return Ok(());
    }
    Err(SpecError::NotExecutable {
        program: argv0.into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn working_dirs_are_created_inside_the_root_only() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path().join("root");
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(r.join("bin/file"), "").unwrap();
        std::os::unix::fs::symlink("/../../bin", r.join("escape")).unwrap();
        std::os::unix::fs::symlink("/../../nowhere", r.join("dangling")).unwrap();
        ensure_working_dir(&r, "/srv/app/data").unwrap();
        assert!(r.join("srv/app/data").is_dir());
        ensure_working_dir(&r, "/../../../made").unwrap();
        assert!(r.join("made").is_dir() && !t.path().join("made").exists());
        // An absolute link resolves inside the root, not on the host.
        ensure_working_dir(&r, "/escape/x").unwrap();
        assert!(r.join("bin/x").is_dir() && !t.path().join("bin").exists());
        assert!(ensure_working_dir(&r, "/dangling/x").is_err());
        assert!(!t.path().join("nowhere").exists());
        assert!(matches!(
            ensure_working_dir(&r, "/bin/file/sub"),
            Err(SpecError::WorkingDir { .. })
        ));
        assert!(ensure_working_dir(&r, "/bin/file").is_err());
    }

    #[test]
    fn finds_programs_by_path_and_by_name_without_leaving_the_root() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("bin")).unwrap();
        std::fs::write(r.join("bin/prog"), "").unwrap();
        std::fs::set_permissions(r.join("bin/prog"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        std::fs::write(r.join("bin/data"), "").unwrap();
        std::os::unix::fs::symlink("/bin/prog", r.join("bin/link")).unwrap();
        // An absolute link resolves inside the root, not on the host.
        std::os::unix::fs::symlink("/usr/bin/env", r.join("bin/escape")).unwrap();
        let ok = |a: &str| check(r, a, "/usr/bin:/bin", "/", &[]).is_ok();
        assert!(ok("prog") && ok("/bin/prog") && ok("link") && ok("bin/prog"));
        assert!(!ok("data") && !ok("missing") && !ok("escape") && !ok("/bin"));
        assert!(check(r, "/opt/tool", "", "/", &["/opt"]).is_ok());
    }
}
