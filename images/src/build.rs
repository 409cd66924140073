//! From a recipe to an image: the base, the workspace binaries with exactly the shared
//! libraries they load, the extra files, minimal `/etc` files; written as an OCI layout and,
//! when asked, imported into pinkerton's store.

use std::path::{Path, PathBuf};

use crate::elf::{self, ElfError};
use crate::layout::{self, Content, Entry, ImageSettings, Layer, LayoutError, Tree, Written};
use crate::recipe::{Base, Recipe};

/// A build that failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// An input file cannot be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file it concerns.
        path: PathBuf,
        /// Why it failed (the underlying error).
        source: std::io::Error,
    },
    /// A binary's libraries cannot be found.
    #[error(transparent)]
    Elf(#[from] ElfError),
    /// Writing the layout failed.
    #[error(transparent)]
    Layout(#[from] LayoutError),
    /// `strip` failed on a binary.
    #[error("strip --strip-debug failed on {0}")]
    Strip(PathBuf),
    /// The Debian base could not be made.
    #[error(transparent)]
    Debian(#[from] crate::debian::DebianError),
    /// The busybox base needs busybox-static.
    #[error("the busybox base needs {0} (Debian package busybox-static)")]
    NoBusybox(PathBuf),
}

/// Where Debian bases are cached by default.
pub const DEFAULT_CACHE: &str = "/var/cache/flynn/images";

/// Where a build takes its inputs from.
#[derive(Debug, Clone)]
pub struct Inputs {
    /// The directory of the workspace's built binaries (e.g. `target/release`).
    pub bin_dir: PathBuf,
    /// The static busybox for the busybox base.
    pub busybox: PathBuf,
    /// Where Debian bases are cached.
    pub cache: PathBuf,
    /// The Debian mirror Debian bases come from.
    pub debian_mirror: String,
}

impl Default for Inputs {
    fn default() -> Self {
        Self {
            bin_dir: "target/release".into(),
            busybox: "/bin/busybox".into(),
            cache: DEFAULT_CACHE.into(),
            debian_mirror: crate::debian::DEFAULT_MIRROR.into(),
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, BuildError> {
    std::fs::read(path).map_err(|source| BuildError::Read {
        path: path.into(),
        source,
    })
}

fn file(data: Vec<u8>, mode: u32) -> Entry {
    Entry {
        content: Content::File(data),
        mode,
    }
}

/// The program at `path` without debug information (binutils' `strip --strip-debug`).
fn stripped(path: &Path) -> Result<Vec<u8>, BuildError> {
    let dir = tempfile::tempdir().map_err(|source| BuildError::Read {
        path: path.into(),
        source,
    })?;
    let out = dir.path().join("stripped");
    let status = std::process::Command::new("strip")
        .arg("--strip-debug")
        .arg("-o")
        .arg(&out)
        .arg(path)
        .status()
        .map_err(|source| BuildError::Read {
            path: "strip (install binutils)".into(),
            source,
        })?;
    if !status.success() {
        return Err(BuildError::Strip(path.into()));
    }
    read(&out)
}

/// The regular files under `dir`, by path relative to it, sorted.
fn files_under(dir: &Path) -> Result<Vec<(String, PathBuf)>, BuildError> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|source| BuildError::Read {
            path: d.clone(),
            source,
        })?;
        for e in entries {
            let path = e
                .map_err(|source| BuildError::Read {
                    path: d.clone(),
                    source,
                })?
                .path();
            if path.is_dir() {
                stack.push(path);
            } else if path.is_file() {
                let rel = path
                    .strip_prefix(dir)
                    .unwrap_or(&path)
                    .display()
                    .to_string();
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// `/etc/passwd`, `/etc/group`, `/tmp` and `/root` for bases that have none.
fn minimal_etc(t: &mut Tree) {
    t.insert(
        "/etc/passwd".into(),
        file(
            b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
                .to_vec(),
            0o644,
        ),
    );
    t.insert(
        "/etc/group".into(),
        file(b"root:x:0:\nnogroup:x:65534:\n".to_vec(), 0o644),
    );
    t.insert(
        "/tmp".into(),
        Entry {
            content: Content::Dir,
            mode: 0o1777,
        },
    );
    t.insert(
        "/root".into(),
        Entry {
            content: Content::Dir,
            mode: 0o700,
        },
    );
}

/// The image's file tree.
pub fn tree(recipe: &Recipe, inputs: &Inputs) -> Result<Tree, BuildError> {
    let mut t = Tree::new();
    if recipe.base != Base::Debian {
        minimal_etc(&mut t);
    }
    if recipe.base == Base::Busybox {
        if !inputs.busybox.is_file() {
            return Err(BuildError::NoBusybox(inputs.busybox.clone()));
        }
        t.insert("/bin/busybox".into(), file(read(&inputs.busybox)?, 0o755));
        let list = std::process::Command::new(&inputs.busybox)
            .arg("--list")
            .output()
            .map_err(|source| BuildError::Read {
                path: inputs.busybox.clone(),
                source,
            })?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            if !applet.is_empty() && applet != "busybox" && !applet.contains('/') {
                let link = Entry {
                    content: Content::Symlink("busybox".into()),
                    mode: 0o777,
                };
                t.insert(format!("/bin/{applet}"), link);
            }
        }
    }
    let workspace = recipe
        .binaries
        .iter()
        .map(|b| (inputs.bin_dir.join(b), recipe.strip));
    let host = recipe.host_binaries.iter().map(|p| (p.clone(), false));
    for (path, strip) in workspace.chain(host) {
        let data = if strip {
            stripped(&path)?
        } else {
            read(&path)?
        };
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        if recipe.base == Base::Debian {
            // Debian's /bin and /lib are symlinks into /usr (merged /usr): a layer holding
            // them as directories would hide the base's. The base has the libraries.
            t.insert(format!("/usr/local/bin/{name}"), file(data, 0o755));
            continue;
        }
        t.insert(format!("/bin/{name}"), file(data, 0o755));
        for lib in elf::shared_libraries(&path)? {
            // Libraries go where the loader found them, as regular files.
            t.insert(lib.display().to_string(), file(read(&lib)?, 0o755));
        }
    }
    for f in &recipe.files {
        let source = recipe.dir.join(&f.source);
        if source.is_dir() {
            // A directory: its files, with their own permission bits unless `mode` is given.
            for (rel, path) in files_under(&source)? {
                let mode = match f.mode {
                    Some(m) => m,
                    None => std::fs::metadata(&path)
                        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o7777)
                        .map_err(|source| BuildError::Read {
                            path: path.clone(),
                            source,
                        })?,
                };
                let target = format!("{}/{rel}", f.target.trim_end_matches('/'));
                t.insert(target, file(read(&path)?, mode));
            }
            continue;
        }
        t.insert(
            f.target.clone(),
            file(read(&source)?, f.mode.unwrap_or(0o644)),
        );
    }
    Ok(t)
}

/// The diff_id of the top layer [`build`] would make of the recipe's own files (binaries,
/// busybox, extra files), computed without writing anything; `None` when it adds no files.
/// An image built from the recipe whose top layer has this diff_id holds the same files.
pub fn files_diff_id(recipe: &Recipe, inputs: &Inputs) -> Result<Option<String>, BuildError> {
    let t = tree(recipe, inputs)?;
    if t.is_empty() {
        return Ok(None);
    }
    let id = layout::tree_diff_id(&t).map_err(|source| BuildError::Read {
        path: PathBuf::from(format!("the files of recipe {}", recipe.name)),
        source,
    })?;
    Ok(Some(id))
}

/// The diff_id of the base layer [`build`] would take from the cache (a Debian base, as
/// `flynn-images fetch` last made it), computed without writing an image; `None` when the
/// recipe has no Debian base or none is cached. An image built from the recipe whose first
/// layer has this diff_id is on the same base.
pub fn base_diff_id(recipe: &Recipe, inputs: &Inputs) -> Result<Option<String>, BuildError> {
    match &recipe.debian {
        Some(d) => Ok(d.diff_id(&inputs.debian_mirror, &inputs.cache)?),
        None => Ok(None),
    }
}

/// Builds `recipe` into the OCI layout at `out`, tagged `tag`.
pub fn build(
    recipe: &Recipe,
    inputs: &Inputs,
    out: &Path,
    tag: &str,
) -> Result<Written, BuildError> {
    let t = tree(recipe, inputs)?;
    let base = match &recipe.debian {
        Some(d) => Some(d.tar(&inputs.debian_mirror, &inputs.cache)?),
        None => None,
    };
    let mut layers = Vec::new();
    if let Some(b) = &base {
        layers.push(Layer::TarFile(b));
    }
    if !t.is_empty() {
        layers.push(Layer::Tree(&t));
    }
    let mut env: Vec<String> = Vec::new();
    if !recipe.env.contains_key("PATH") {
        env.push(match recipe.base {
            Base::Debian => "PATH=/usr/local/bin:/usr/bin:/bin".into(),
            _ => "PATH=/bin".into(),
        });
    }
    env.extend(recipe.env.iter().map(|(k, v)| format!("{k}={v}")));
    let settings = ImageSettings {
        entrypoint: recipe.entrypoint.clone(),
        cmd: recipe.cmd.clone(),
        env,
        ports: recipe.ports.clone(),
        created_by: format!("flynn-images build {}", recipe.name),
    };
    Ok(layout::write(out, &layers, &settings, tag)?)
}
