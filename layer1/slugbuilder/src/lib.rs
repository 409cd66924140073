//! The build job of git push deploys (the platform's slugbuilder). It receives the pushed
//! tree as a tar, builds it in `/app` with a buildpack (`BUILDPACK_URL`, `.buildpacks`, or
//! the first built-in whose `bin/detect` accepts it) run as an unprivileged user, reads the
//! process types (Procfile over the buildpack's defaults), and makes `/app` one layer on top
//! of the run stack, pushed to the cluster registry with the stack's layers mounted.
//!
//! Output is for the person pushing, in Heroku's style (`-----> ` steps, the buildpack's own
//! output as it comes); the result is the last stdout line, `SLUG_RESULT {json}`.

pub mod buildpack;
pub mod error;
pub mod procfile;
pub mod source;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::Serialize;

use buildpack::{Buildpack, Runner};
use error::io;
pub use error::BuildError;
use procfile::ProcessTypes;

/// Where in the app directory the process types are written, Procfile format.
pub const PROCESS_TYPES_FILE: &str = ".flynn/Procfile";

/// The prefix of the result line.
pub const RESULT_PREFIX: &str = "SLUG_RESULT ";

/// How to build.
#[derive(Debug, Clone)]
pub struct BuildOptions {
    /// The app directory (the build happens in place: `/app`, as the app will run).
    pub app_dir: PathBuf,
    /// The app's build cache (a volume kept per app).
    pub cache_dir: PathBuf,
    /// Scratch space (ENV_DIR, fetched buildpacks).
    pub work_dir: PathBuf,
    /// Where the built-in buildpacks are.
    pub buildpacks_dir: PathBuf,
    /// The app's environment, given to compile as files.
    pub env: BTreeMap<String, String>,
    /// The build user.
    pub uid: u32,
    /// Its group.
    pub gid: u32,
    /// `STACK`.
    pub stack: String,
    /// `SOURCE_VERSION` (the commit pushed).
    pub source_version: Option<String>,
}

/// What a build made.
#[derive(Debug, Clone, Serialize)]
pub struct Built {
    /// The buildpacks that ran, in order.
    pub buildpacks: Vec<String>,
    /// Process types to commands.
    pub process_types: ProcessTypes,
}

fn step(out: &mut dyn Write, text: &str) {
    let _ = writeln!(out, "-----> {text}");
    let _ = out.flush();
}

fn detail(out: &mut dyn Write, text: &str) {
    let _ = writeln!(out, "       {text}");
    let _ = out.flush();
}

/// Builds the tree read from `source` into `opts.app_dir`.
pub fn build(
    opts: &BuildOptions,
    source: impl Read,
    out: &mut dyn Write,
) -> Result<Built, BuildError> {
    let app = &opts.app_dir;
    std::fs::create_dir_all(app).map_err(io(app))?;
    source::unpack(source, app)?;
    let ignored = source::apply_slugignore(app)?;
    if ignored > 0 {
        detail(
            out,
            &format!("Removed {ignored} paths named in .slugignore"),
        );
    }
    for d in [&opts.cache_dir, &opts.work_dir] {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    // The build user owns what it builds and its cache.
    for d in [app, &opts.cache_dir] {
        chown_tree(d, opts.uid, opts.gid)?;
    }
    let env_dir = opts.work_dir.join("env");
    write_env_dir(&env_dir, &opts.env)?;

    let mut env = vec![
        ("HOME".to_string(), app.display().to_string()),
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin".to_string(),
        ),
        ("STACK".to_string(), opts.stack.clone()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    if let Some(v) = &opts.source_version {
        env.push(("SOURCE_VERSION".into(), v.clone()));
    }
    let runner = Runner {
        uid: opts.uid,
        gid: opts.gid,
        env,
    };

    let chosen = choose(opts, &runner, out)?;
    let mut defaults = ProcessTypes::new();
    for bp in &chosen {
        bp.compile(&runner, app, &opts.cache_dir, &env_dir)?;
        defaults.extend(bp.release(&runner, app)?);
    }
    step(out, "Discovering process types");
    let procfile = match std::fs::read_to_string(app.join("Procfile")) {
        Ok(text) => procfile::parse_procfile(&text)?,
        Err(_) => ProcessTypes::new(),
    };
    if !procfile.is_empty() {
        detail(
            out,
            &format!("Procfile declares types -> {}", names(&procfile)),
        );
    }
    let from_defaults: ProcessTypes = defaults
        .into_iter()
        .filter(|(k, _)| !procfile.contains_key(k))
        .collect();
    if !from_defaults.is_empty() {
        detail(
            out,
            &format!("Default types for buildpack -> {}", names(&from_defaults)),
        );
    }
    let mut process_types = from_defaults;
    process_types.extend(procfile);
    // The runner reads every process type from here: the Procfile's and the buildpack's
    // defaults, which the image would otherwise not hold.
    let merged = app.join(PROCESS_TYPES_FILE);
    if let Some(dir) = merged.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let text: String = process_types
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    std::fs::write(&merged, text).map_err(io(&merged))?;
    Ok(Built {
        buildpacks: chosen.into_iter().map(|b| b.name).collect(),
        process_types,
    })
}

fn names(p: &ProcessTypes) -> String {
    p.keys().cloned().collect::<Vec<_>>().join(", ")
}

/// The buildpacks to run: `BUILDPACK_URL`, else `.buildpacks`, else the first built-in
/// that detects the app.
fn choose(
    opts: &BuildOptions,
    runner: &Runner,
    out: &mut dyn Write,
) -> Result<Vec<Buildpack>, BuildError> {
    let app = &opts.app_dir;
    let mut urls: Vec<String> = Vec::new();
    if let Some(url) = opts.env.get("BUILDPACK_URL").filter(|u| !u.is_empty()) {
        urls.push(url.clone());
    } else if let Ok(text) = std::fs::read_to_string(app.join(".buildpacks")) {
        urls.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
    }
    if !urls.is_empty() {
        let mut chosen = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            step(out, &format!("Fetching buildpack {url}"));
            let dir = opts.work_dir.join(format!("buildpack-{i}"));
            let bp = buildpack::fetch(url, &dir)?;
            let name = bp.detect(runner, app)?.unwrap_or_else(|| bp.name.clone());
            step(out, &format!("{name} app detected"));
            chosen.push(bp);
        }
        return Ok(chosen);
    }
    let builtins = buildpack::builtins(&opts.buildpacks_dir)?;
    for bp in &builtins {
        if let Some(name) = bp.detect(runner, app)? {
            step(out, &format!("{name} app detected"));
            // Named as it names itself from here on (messages, the result).
            return Ok(vec![Buildpack {
                name,
                dir: bp.dir.clone(),
            }]);
        }
    }
    Err(BuildError::NoBuildpack {
        tried: builtins
            .iter()
            .map(|b| b.name.clone())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// ENV_DIR: one file per variable, named by it, holding its value.
fn write_env_dir(dir: &Path, env: &BTreeMap<String, String>) -> Result<(), BuildError> {
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    for (k, v) in env {
        if k.is_empty() || k.contains('/') || k.starts_with('.') {
            continue;
        }
        let path = dir.join(k);
        std::fs::write(&path, v).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644))
            .map_err(io(&path))?;
    }
    Ok(())
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> Result<(), BuildError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let (u, g) = (
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    );
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        nix::unistd::fchownat(
            nix::fcntl::AT_FDCWD,
            &p,
            u,
            g,
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| BuildError::Io {
            path: p.clone(),
            source: e.into(),
        })?;
        let meta = std::fs::symlink_metadata(&p).map_err(io(&p))?;
        if meta.is_dir() {
            for e in std::fs::read_dir(&p).map_err(io(&p))? {
                stack.push(e.map_err(io(&p))?.path());
            }
        }
    }
    Ok(())
}

/// Writes `app_dir` as the slug layer: a tar of `app/...` with owner root, times zero and
/// `.git` left out, symlinks kept as links.
pub fn write_layer(app_dir: &Path, out: &Path) -> Result<(), BuildError> {
    let file = std::fs::File::create(out).map_err(io(out))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    b.mode(tar::HeaderMode::Deterministic);
    b.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let path = app_dir.join(&rel);
        let name = Path::new("app").join(&rel);
        let meta = std::fs::symlink_metadata(&path).map_err(io(&path))?;
        if meta.is_dir() {
            b.append_dir(&name, &path).map_err(io(&path))?;
            let mut children: Vec<PathBuf> = std::fs::read_dir(&path)
                .map_err(io(&path))?
                .filter_map(|e| e.ok())
                .filter(|e| !(rel.as_os_str().is_empty() && e.file_name() == ".git"))
                .map(|e| rel.join(e.file_name()))
                .collect();
            children.sort();
            children.reverse();
            stack.extend(children);
        } else {
            b.append_path_with_name(&path, &name).map_err(io(&path))?;
        }
    }
    b.into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io(out))?;
    Ok(())
}

/// Adds the build user (`slug`, home `/app`) to `/etc/passwd` and `/etc/group` when the
/// image has no entry for its ids: tools look their user up (pip, npm, git).
pub fn ensure_user(uid: u32, gid: u32) -> Result<(), BuildError> {
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let add = |path: &str, id: u32, line: String| -> Result<(), BuildError> {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let has = text
            .lines()
            .any(|l| l.split(':').nth(2) == Some(id.to_string().as_str()));
        if has {
            return Ok(());
        }
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(path)
            .map_err(io(path))?;
        f.write_all(line.as_bytes()).map_err(io(path))
    };
    add("/etc/group", gid, format!("slug:x:{gid}:\n"))?;
    add(
        "/etc/passwd",
        uid,
        format!("slug:x:{uid}:{gid}:slug:/app:/bin/bash\n"),
    )
}
