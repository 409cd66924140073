//! Turning a [`JobSpec`] and the image's defaults into an OCI runtime spec (`config.json`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::{
    Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder, LinuxDeviceCgroupBuilder,
    LinuxMemoryBuilder, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder,
    LinuxResourcesBuilder, MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder,
    RootBuilder, Spec, UserBuilder,
};
use pinkerton::config::ImageDefaults;

use crate::spec::{JobSpec, NetworkMode};
use crate::user::{self, UserError};

/// The `PATH` a job gets when neither the image nor the job sets one.
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The capabilities a job holds: runc's default set without `CAP_NET_RAW`, which lets a job
/// forge packets on the bridge (raw frames to 127.0.0.1 of the host, spoofed sources); a job
/// gets it only when its spec asks ([`JobSpec::net_raw`]).
pub const DEFAULT_CAPS: &[Capability] = &[
    Capability::AuditWrite,
    Capability::Chown,
    Capability::DacOverride,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Mknod,
    Capability::NetBindService,
    Capability::Setfcap,
    Capability::Setgid,
    Capability::Setpcap,
    Capability::Setuid,
    Capability::SysChroot,
];

/// Where a job that asks for an init sees it (a read-only bind mount of the host's binary).
pub const INIT_TARGET: &str = "/dev/init";

/// A job spec that cannot become a runtime spec.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The job's network mode is one this build does not know (recorded by a newer host).
    #[error("network mode unknown to this host (a newer host's?): use bridge, none or host")]
    UnknownNetwork,
    /// Neither the job nor the image names a command.
    #[error("no command: the image has no Entrypoint or Cmd, so give one")]
    NoCommand,
    /// A path that must be absolute is not.
    #[error("{what} {path:?} must be an absolute path")]
    NotAbsolute {
        /// Which setting.
        what: &'static str,
        /// The value.
        path: String,
    },
    /// A bind mount's source does not exist.
    #[error("mount source {0:?} does not exist on the host")]
    MissingSource(String),
    /// The user cannot be resolved.
    #[error(transparent)]
    User(#[from] UserError),
    /// The program to run is not in the image.
    #[error("executable {program:?} not found in the image (or not executable); check the command and PATH")]
    NotExecutable {
        /// The program as given.
        program: String,
    },
    /// The working directory cannot be made in the image.
    #[error("working directory {path:?}: {reason}")]
    WorkingDir {
        /// The directory as given.
        path: String,
        /// Why it cannot be used.
        reason: String,
    },
    /// The job asks for an init and the host has none.
    #[error("the job asks for an init, but {0} is not on this host: install Debian's tini package (it provides /usr/bin/tini-static) or start the daemon with --init-binary")]
    NoInit(String),
    /// Ports are published only in bridge mode.
    #[error("ports can only be published in bridge network mode")]
    PortsNeedBridge,
    /// The spec builder refused a value.
    #[error("invalid runtime spec: {0}")]
    Invalid(#[from] libcontainer::oci_spec::OciSpecError),
}

/// The command line: Entrypoint + Cmd with the job's overrides, as Docker combines them.
pub fn argv(job: &JobSpec, image: &ImageDefaults) -> Result<Vec<String>, SpecError> {
    let entrypoint = job
        .config
        .entrypoint
        .clone()
        .unwrap_or_else(|| image.entrypoint.clone());
    let cmd = if !job.config.args.is_empty() {
        job.config.args.clone()
    } else if job.config.entrypoint.is_some() {
        Vec::new()
    } else {
        image.cmd.clone()
    };
    let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
    if argv.is_empty() {
        return Err(SpecError::NoCommand);
    }
    Ok(argv)
}

/// The environment: the image's, then the job's on top, plus `PATH`, `HOME` and `HOSTNAME`.
pub fn environment(
    job: &JobSpec,
    image: &ImageDefaults,
    home: &str,
    hostname: &str,
) -> Vec<String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("PATH".into(), DEFAULT_PATH.into());
    env.insert("HOME".into(), home.into());
    for kv in &image.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        env.insert(k.into(), v.into());
    }
    env.insert("HOSTNAME".into(), hostname.into());
    if job.config.tty {
        env.insert("TERM".into(), "xterm".into());
    }
    env.extend(job.config.env.clone());
    env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

fn absolute(what: &'static str, path: &str) -> Result<(), SpecError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(SpecError::NotAbsolute {
            what,
            path: path.into(),
        })
    }
}

/// The job's host name: the spec's, or the first 12 characters of its id.
pub fn hostname(job: &JobSpec) -> String {
    job.config
        .hostname
        .clone()
        .unwrap_or_else(|| job.id.as_str().chars().take(12).collect())
}

/// The mounts at and under `/sys/fs/cgroup` in a `mountinfo`: the cgroup hierarchies
/// (`/sys/fs/cgroup` itself for the unified one, `/sys/fs/cgroup/memory` and so on for v1) and
/// the tmpfs holding the v1 ones.
pub fn cgroup_mount_points(mountinfo: &str) -> Vec<String> {
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| {
            let (fields, tail) = l.split_once(" - ")?;
            let fstype = tail.split_whitespace().next()?;
            let point = fields.split_whitespace().nth(4)?;
            let inside = point == "/sys/fs/cgroup" || point.starts_with("/sys/fs/cgroup/");
            let cgroup_fs = matches!(fstype, "cgroup" | "cgroup2");
            let holder = fstype == "tmpfs" && point == "/sys/fs/cgroup";
            (inside && (cgroup_fs || holder)).then(|| point.to_string())
        })
        .collect();
    points.sort();
    points.dedup();
    points
}

/// Builds the runtime spec for `job`, whose merged root filesystem is mounted at `rootfs`;
/// `netns` is the pinned network namespace to join (bridge mode); `init` is the host's static
/// init binary, mounted and run as PID 1 when the job asks for one.
pub fn build(
    job: &JobSpec,
    image: &ImageDefaults,
    rootfs: &Path,
    cgroups_path: &str,
    netns: Option<&Path>,
    init: &Path,
) -> Result<Spec, SpecError> {
    if job.config.network == NetworkMode::Unknown {
        return Err(SpecError::UnknownNetwork);
    }
    if !job.config.ports.is_empty() && job.config.network != NetworkMode::Bridge {
        return Err(SpecError::PortsNeedBridge);
    }
    let hostname = hostname(job);
    let user = user::resolve(rootfs, job.config.user.as_deref().or(image.user.as_deref()))?;
    let cwd = job
        .config
        .working_dir
        .clone()
        .or_else(|| image.working_dir.clone())
        .unwrap_or_else(|| "/".into());
    absolute("working directory", &cwd)?;
    let mut caps: std::collections::HashSet<Capability> = DEFAULT_CAPS.iter().copied().collect();
    if job.config.net_raw {
        caps.insert(Capability::NetRaw);
    }
    let capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(caps.clone())
        .effective(caps.clone())
        .permitted(caps)
        .inheritable(std::collections::HashSet::<Capability>::new())
        .ambient(std::collections::HashSet::<Capability>::new())
        .build()?;
    let mut rlimits = Vec::new();
    if let Some(n) = job.config.resources.nofile {
        rlimits.push(
            PosixRlimitBuilder::default()
                .typ(PosixRlimitType::RlimitNofile)
                .soft(n)
                .hard(n)
                .build()?,
        );
    }
    let mut args = argv(job, image)?;
    if job.config.init {
        if !init.is_file() {
            return Err(SpecError::NoInit(init.display().to_string()));
        }
        args.splice(0..0, [INIT_TARGET.to_string(), "--".to_string()]);
    }
    let process = ProcessBuilder::default()
        .terminal(job.config.tty)
        .args(args)
        .env(environment(job, image, &user.home, &hostname))
        .cwd(PathBuf::from(cwd))
        .user(
            UserBuilder::default()
                .uid(user.uid)
                .gid(user.gid)
                .additional_gids(user.additional_gids)
                .build()?,
        )
        .capabilities(capabilities)
        .rlimits(rlimits)
        .no_new_privileges(true)
        .build()?;

    // The default mounts include /sys/fs/cgroup once; it is made read-only below.
    let defaults = Spec::default();
    let mut mounts = defaults.mounts().clone().unwrap_or_default();
    for m in &job.config.mounts {
        absolute("mount source", &m.source)?;
        absolute("mount target", &m.target)?;
        if !Path::new(&m.source).exists() {
            return Err(SpecError::MissingSource(m.source.clone()));
        }
        let mut options = vec!["rbind".to_string(), "rprivate".to_string()];
        options.push(if m.readonly { "ro" } else { "rw" }.to_string());
        mounts.push(
            MountBuilder::default()
                .destination(&m.target)
                .typ("bind")
                .source(&m.source)
                .options(options)
                .build()?,
        );
    }

    if job.config.init {
        mounts.push(
            MountBuilder::default()
                .destination(INIT_TARGET)
                .typ("bind")
                .source(init)
                .options(["bind", "ro", "nosuid", "nodev"].map(String::from).to_vec())
                .build()?,
        );
    }

    let namespaces = [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ];
    let mut namespaces = namespaces
        .into_iter()
        .map(|t| LinuxNamespaceBuilder::default().typ(t).build())
        .collect::<Result<Vec<_>, _>>()?;
    match (job.config.network, netns) {
        (NetworkMode::Host, _) => {}
        (_, Some(path)) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path)
                .build()?,
        ),
        (_, None) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .build()?,
        ),
    }

    let r = &job.config.resources;
    let mut resources =
        LinuxResourcesBuilder::default().devices(vec![LinuxDeviceCgroupBuilder::default()
            .allow(false)
            .access("rwm")
            .build()?]);
    if let Some(limit) = r.memory {
        let limit = limit as i64;
        resources = resources.memory(
            LinuxMemoryBuilder::default()
                .limit(limit)
                .swap(limit)
                .build()?,
        );
    }
    if r.cpu_shares.is_some() || r.cpu_millis.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(s) = r.cpu_shares {
            cpu = cpu.shares(s);
        }
        if let Some(m) = r.cpu_millis {
            cpu = cpu.quota(m as i64 * 100).period(100_000u64);
        }
        resources = resources.cpu(cpu.build()?);
    }
    if let Some(p) = r.pids {
        resources = resources.pids(LinuxPidsBuilder::default().limit(p).build()?);
    }
    let default_linux = defaults.linux().clone().unwrap_or_default();
    let linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .cgroups_path(PathBuf::from(cgroups_path))
        .resources(resources.build()?)
        .masked_paths(default_linux.masked_paths().clone().unwrap_or_default())
        .readonly_paths(default_linux.readonly_paths().clone().unwrap_or_default())
        .seccomp(crate::seccomp::default_profile())
        .build()?;

    let mut spec = defaults;
    spec.set_hostname(Some(hostname));
    spec.set_process(Some(process));
    spec.set_root(Some(
        RootBuilder::default()
            .path("rootfs")
            .readonly(job.config.readonly_rootfs)
            .build()?,
    ));
    spec.set_mounts(Some(mounts));
    spec.set_linux(Some(linux));
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::JobId;

    fn job(args: &[&str]) -> JobSpec {
        JobSpec::new(
            "j1".parse::<JobId>().unwrap(),
            "img",
            args.iter().map(|s| s.to_string()).collect(),
        )
    }

    #[test]
    fn entrypoint_and_cmd_combine_like_docker() {
        let image = ImageDefaults {
            entrypoint: vec!["/init".into()],
            cmd: vec!["serve".into()],
            ..Default::default()
        };
        assert_eq!(argv(&job(&[]), &image).unwrap(), ["/init", "serve"]);
        assert_eq!(argv(&job(&["debug"]), &image).unwrap(), ["/init", "debug"]);
        let mut j = job(&[]);
        j.config.entrypoint = Some(vec!["/bin/sh".into()]);
        assert_eq!(argv(&j, &image).unwrap(), ["/bin/sh"]);
        assert!(matches!(
            argv(&job(&[]), &ImageDefaults::default()),
            Err(SpecError::NoCommand)
        ));
    }

    #[test]
    fn a_network_mode_this_build_does_not_know_is_refused() {
        let mut j = job(&["/bin/true"]);
        // As a job recorded by a newer host reads back (`macvlan`, say).
        j.config.network = NetworkMode::Unknown;
        let dir = tempfile::tempdir().unwrap();
        let e = build(
            &j,
            &ImageDefaults::default(),
            dir.path(),
            "/flynn/j1",
            None,
            Path::new("/dev/null"),
        )
        .unwrap_err();
        assert!(matches!(e, SpecError::UnknownNetwork), "{e}");
        assert!(e.to_string().contains("use bridge, none or host"), "{e}");
    }

    #[test]
    fn cgroup_hierarchies_are_found_in_mountinfo() {
        let info = "\
25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
28 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
29 25 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
30 1 0:28 / /proc rw - proc proc rw
31 1 0:29 / /mnt/cg rw - cgroup2 cgroup2 rw";
        assert_eq!(
            cgroup_mount_points(info),
            [
                "/sys/fs/cgroup",
                "/sys/fs/cgroup/cpu,cpuacct",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/unified"
            ]
        );
        let unified = "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate";
        assert_eq!(cgroup_mount_points(unified), ["/sys/fs/cgroup"]);
    }

    #[test]
    fn environment_layers_job_over_image() {
        let image = ImageDefaults {
            env: vec!["PATH=/bin".into(), "A=1".into()],
            ..Default::default()
        };
        let mut j = job(&["x"]);
        j.config.env.insert("A".into(), "2".into());
        let env = environment(&j, &image, "/root", "h");
        assert!(env.contains(&"PATH=/bin".to_string()));
        assert!(env.contains(&"A=2".to_string()));
        assert!(env.contains(&"HOME=/root".to_string()));
        assert!(env.contains(&"HOSTNAME=h".to_string()));
    }
}
