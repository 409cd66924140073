//! Creating a job: a use of its image, the overlay root filesystem, the network, the OCI spec
//! and the checks of what the job will run, then the shim, waited on until the job runs.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use pinkerton::config::ImageConfig;
use pinkerton::store::StoreError;

use super::{init, io, json, JobDir, JobState, Runtime, RuntimeError, EXTERNAL_IP, START_TIMEOUT};
use crate::oci;
use crate::rootfs;
use crate::shim::ShimConfig;
use crate::spec::{BindMount, JobSpec};

impl Runtime {
    /// Sets up and starts a job; returns once it runs (or failed to start). Its shim is the
    /// standby one when one waits ([`Runtime::with_standby_shim`]), else one started for it.
    pub fn create(&self, spec: &JobSpec) -> Result<i32, RuntimeError> {
        let dir = self.dir(&spec.id);
        if dir.exists() {
            return Err(RuntimeError::Exists(spec.id.clone()));
        }
        self.create_in(spec, &dir)
    }

    /// [`Runtime::create`] into `dir`, which is new or holds only the log of an earlier run.
    pub(super) fn create_in(&self, spec: &JobSpec, dir: &JobDir) -> Result<i32, RuntimeError> {
        let image_err = |source| RuntimeError::Image {
            image: spec.config.image.clone(),
            source,
        };
        // Taken before anything else, so that no `rm` or `gc` deletes the layers under the job.
        let image = self
            .store
            .add_use(&self.store_user(&spec.id), &spec.config.image)
            .map_err(image_err)?;
        let result = self.create_from(spec, dir, &image);
        if result.is_err() {
            let _ = self.store.remove_use(&self.store_user(&spec.id));
        }
        result
    }

    fn create_from(
        &self,
        spec: &JobSpec,
        dir: &JobDir,
        image: &pinkerton::store::ImageRecord,
    ) -> Result<i32, RuntimeError> {
        let image_err = |source| RuntimeError::Image {
            image: spec.config.image.clone(),
            source,
        };
        let config = self.store.read_blob(&image.id).map_err(image_err)?;
        let config = ImageConfig::parse(&config).map_err(|e| RuntimeError::ImageConfig {
            image: spec.config.image.clone(),
            reason: e.to_string(),
        })?;
        // Bottom: the mount points every job mounts over, so that no job of an image without
        // them makes them in its own upper directory.
        let mut layers = vec![self.mount_points.clone()];
        for d in &image.layers {
            if !self.store.has_layer(d) {
                return Err(image_err(StoreError::NoSuchImage(format!(
                    "{} (layer {d} missing; pull it again)",
                    spec.config.image
                ))));
            }
            layers.push(self.store.layer_path(d));
        }
        let result = self.prepare_and_start(spec, dir, &layers, &config);
        if result.is_err() {
            let _ = self.remove_dir(dir, &[]);
        }
        result
    }

    fn prepare_and_start(
        &self,
        spec: &JobSpec,
        dir: &JobDir,
        layers: &[PathBuf],
        config: &ImageConfig,
    ) -> Result<i32, RuntimeError> {
        let rootfs = dir.rootfs();
        // On disk first: a job is found by its directory there (see `Runtime::remove_dir`).
        for d in [&dir.file(JobDir::UPPER), &dir.file(JobDir::WORK), &rootfs] {
            fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
        }
        rootfs::mount_overlay(
            layers,
            &dir.file(JobDir::UPPER),
            &dir.file(JobDir::WORK),
            &rootfs,
        )?;
        let cgroup = self.cgroup_path(&spec.id);
        let mut with_volumes = spec.clone();
        let mut netns = None;
        if spec.config.network == crate::spec::NetworkMode::Bridge {
            let att = self.network.attach(
                spec.id.as_str(),
                &oci::hostname(spec),
                &spec.config.ports,
                dir.run_path(),
            )?;
            dir.write(JobDir::NET, &json(&att))
                .map_err(io("writing the network attachment"))?;
            // Where the job is reached, unless the job was given an address to announce.
            with_volumes
                .config
                .env
                .entry(EXTERNAL_IP.into())
                .or_insert_with(|| att.ip.to_string());
            for f in ["resolv.conf", "hosts", "hostname"] {
                let source = dir.run_path().join(f).display().to_string();
                with_volumes.config.mounts.push(BindMount {
                    source,
                    target: format!("/etc/{f}"),
                    readonly: false,
                });
            }
            netns = Some(att.netns);
        }
        for v in &spec.config.volumes {
            let source = self.volumes.path(&v.name)?;
            let (source, target, readonly) =
                (source.display().to_string(), v.target.clone(), v.readonly);
            with_volumes.config.mounts.push(BindMount {
                source,
                target,
                readonly,
            });
        }
        let oci = oci::build(
            &with_volumes,
            &config.defaults,
            &rootfs,
            &cgroup,
            netns.as_deref(),
            &self.init,
        )?;
        if let Some(process) = oci.process() {
            // The program the job runs (behind the init, when it has one).
            let args = oci::argv(&with_volumes, &config.defaults)?;
            let env = process.env().clone().unwrap_or_default();
            let path = env
                .iter()
                .find_map(|e| e.strip_prefix("PATH="))
                .unwrap_or_default();
            let cwd = process.cwd().display().to_string();
            let targets: Vec<&str> = with_volumes
                .config
                .mounts
                .iter()
                .map(|m| m.target.as_str())
                .collect();
            let under_mount = targets
                .iter()
                .any(|t| cwd == *t || cwd.starts_with(&format!("{}/", t.trim_end_matches('/'))));
            if !under_mount {
                crate::exec::ensure_working_dir(&rootfs, &cwd)?;
            }
            if let Some(argv0) = args.first() {
                crate::exec::check(&rootfs, argv0, path, &cwd, &targets)?;
            }
        }
        crate::atomic::write(&dir.bundle(), JobDir::OCI_CONFIG, &json(&oci))
            .map_err(io("writing config.json"))?;
        let shim_cfg = ShimConfig {
            id: spec.id.clone(),
            network: spec.config.network,
            cgroup,
            tty: spec.config.tty,
            stdin: spec.config.stdin,
            log_max_bytes: spec.log_max_bytes.unwrap_or(crate::log::DEFAULT_MAX_BYTES),
        };
        dir.write(JobDir::SHIM_CONFIG, &json(&shim_cfg))
            .map_err(io("writing the shim config"))?;
        // Last: its presence marks a job whose files are all written.
        dir.write(JobDir::SPEC, &json(spec))
            .map_err(io("writing the job spec"))?;
        let shim_log =
            fs::File::create(dir.file(JobDir::SHIM_LOG)).map_err(io("creating the shim log"))?;
        if !self.standby.as_ref().is_some_and(|s| s.hand_over(dir)) {
            self.start_shim(spec, dir, shim_log)?;
        }
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let state = self.state_in(dir);
            if matches!(state, JobState::Running(_) | JobState::Exited(_)) {
                unmount_host_copy(dir);
                if netns.is_some() {
                    if let Err(e) = self.network.unpin(spec.id.as_str()) {
                        tracing::warn!(error = %e, "unpinning a started job's network namespace");
                    }
                }
            }
            match state {
                JobState::Running(pid) => {
                    if spec.config.init {
                        init::wait_ready(pid, || matches!(self.state_in(dir), JobState::Exited(_)));
                    }
                    return Ok(pid);
                }
                JobState::Exited(_) => return Ok(0),
                JobState::Failed => {
                    let reason = fs::read_to_string(dir.file(JobDir::ERROR)).unwrap_or_default();
                    return Err(RuntimeError::StartFailed {
                        id: spec.id.clone(),
                        reason,
                    });
                }
                JobState::Starting if Instant::now() > deadline => {
                    return Err(RuntimeError::StartFailed {
                        id: spec.id.clone(),
                        reason: "the shim did not report within 30 s".into(),
                    })
                }
                JobState::Starting => std::thread::sleep(Duration::from_micros(500)),
            }
        }
    }

    /// Starts the shim of the job in `dir` (no standby took it); returns once it detached.
    fn start_shim(&self, spec: &JobSpec, dir: &JobDir, log: fs::File) -> Result<(), RuntimeError> {
        let status = Command::new(&self.shim)
            .arg(dir.path())
            .arg(dir.run_path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .status()
            .map_err(io(format!("running {}", self.shim.display())))?;
        if status.success() {
            return Ok(());
        }
        let reason = fs::read_to_string(dir.file(JobDir::ERROR))
            .unwrap_or_else(|_| format!("shim exited with {status}"));
        Err(RuntimeError::StartFailed {
            id: spec.id.clone(),
            reason,
        })
    }
}

/// Unmounts the host's copy of a started job's root filesystem: the job keeps its own in its
/// mount namespace (the shim made it from a private copy), and the host's mount table stays
/// the same size however many jobs run. A failure leaves the mount to the job's release.
fn unmount_host_copy(dir: &JobDir) {
    if let Err(e) = rootfs::unmount(&dir.rootfs()) {
        tracing::warn!(error = %e, "unmounting the host's copy of a job's root filesystem");
    }
}
