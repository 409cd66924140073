//! The per-job monitor (`flynn-shim JOBDIR RUNDIR`, or `flynn-shim --standby` started ahead
//! of its job).
//!
//! libcontainer clones without exec, which deadlocks inside a busy multi-threaded process, so
//! each job is started from this small process instead. It detaches (fork + setsid) so that the
//! job outlives whoever started it, builds and starts the container while still
//! single-threaded, then pumps the job's stdout/stderr into `log.jsonl`, reaps the job and
//! writes `exit.json`. The container is made from a private copy of the host's mount
//! namespace that the shim leaves once the job runs: the job's root filesystem then stays
//! mounted only in the job's own namespace (the runtime unmounts the host's copy), so the
//! host's mount table does not grow with every running job, and nothing the host mounts or
//! unmounts later reaches into the job. Its files ([`JobDir`]):
//!
//! ```text
//! JOBDIR/error        why it did not start
//! JOBDIR/log.jsonl    output records
//! JOBDIR/exit.json    how it ended
//! RUNDIR/shim.json    input: {id, network, cgroup, tty, stdin}
//! RUNDIR/bundle/      config.json + rootfs (mounted by the runtime)
//! RUNDIR/state/       libcontainer's state
//! RUNDIR/shim.pid     the shim's own pid, for whoever watches it
//! RUNDIR/attach.sock  the attach protocol (`crate::attach`), served while the job runs
//! RUNDIR/pid          the job's init pid once it runs
//! ```

use crate::job::JobDir;
use std::fs::{self, File};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::sync::Arc;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use nix::sys::signal::{sigprocmask, SigHandler, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::hub::Hub;
use crate::log::{LogWriter, Stream};
use crate::spec::{JobId, NetworkMode};

/// What the runtime tells the shim.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShimConfig {
    /// The job id (also the container id).
    pub id: JobId,
    /// Network mode; for `none` the shim brings up loopback.
    pub network: NetworkMode,
    /// The job's cgroup path, for the OOM check.
    pub cgroup: String,
    /// Run the job on a terminal.
    #[serde(default)]
    pub tty: bool,
    /// Keep the job's stdin open for attached clients.
    #[serde(default)]
    pub stdin: bool,
    /// Cap on the job's log on disk, in bytes.
    #[serde(default = "default_log_max")]
    pub log_max_bytes: u64,
}

fn default_log_max() -> u64 {
    crate::log::DEFAULT_MAX_BYTES
}

pub use runtime_api::ExitStatus;

/// Restores default signal handling before the job's program starts (the shim, like every Rust
/// program, ignores SIGPIPE).
#[derive(Clone)]
struct DefaultSignals;

impl Executor for DefaultSignals {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        for sig in Signal::iterator().filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP)) {
            // SAFETY: setting SIG_DFL installs no Rust code as a handler; this runs in the
            // single-threaded container init just before exec.
            let _ = unsafe { nix::sys::signal::signal(sig, SigHandler::SigDfl) };
        }
        let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
        libcontainer::workload::default::get_executor().exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        libcontainer::workload::default::get_executor().validate(spec)
    }
}

fn fail(dir: &JobDir, msg: &str) -> i32 {
    let _ = dir.write(JobDir::ERROR, msg.as_bytes());
    1
}

/// Runs the shim for the job in `dir`; returns the process exit code.
pub fn run(dir: &JobDir) -> i32 {
    match detach() {
        Ok(true) => serve(dir),
        Ok(false) => 0,
        Err(e) => fail(dir, &e),
    }
}

/// Runs a shim started ahead of its job (`flynn-shim --standby`): detached at once, it waits
/// on stdin for the job's two directories (each path ended by a NUL byte, then end of file)
/// and serves that job as [`run`] would, its stderr going to the job's `shim.log`. It ends
/// quietly when stdin closes with no job (its runtime went away). See `job::standby`.
pub fn standby() -> i32 {
    match detach() {
        Ok(true) => {}
        Ok(false) => return 0,
        Err(e) => {
            eprintln!("flynn-shim: {e}");
            return 1;
        }
    }
    // Nothing of the caller's stays pinned while it waits.
    let _ = std::env::set_current_dir("/");
    // Ready: its pid on stdout, which it then closes (the runtime reads to the end).
    println!("{}", std::process::id());
    let null = match File::open("/dev/null") {
        Ok(null) => null,
        Err(e) => {
            eprintln!("flynn-shim: /dev/null: {e}");
            return 1;
        }
    };
    let _ = nix::unistd::dup2_stdout(&null);
    let mut msg = Vec::new();
    if std::io::Read::read_to_end(&mut std::io::stdin(), &mut msg).is_err() {
        return 1;
    }
    let Some(dir) = crate::job::standby::decode(&msg) else {
        return 0;
    };
    match fs::OpenOptions::new()
        .append(true)
        .open(dir.file(JobDir::SHIM_LOG))
    {
        Ok(log) => {
            let _ = nix::unistd::dup2_stderr(&log);
        }
        Err(e) => return fail(&dir, &format!("shim.log: {e}")),
    }
    let _ = nix::unistd::dup2_stdin(&null);
    serve(&dir)
}

/// Detaches: forks, and the child leads a new session. True in the child, which goes on;
/// false in the first process, which should exit at once (its caller waits for it).
fn detach() -> Result<bool, String> {
    // SAFETY: the process is single-threaded here, so the child may run any code.
    match unsafe { nix::unistd::fork() } {
        Ok(nix::unistd::ForkResult::Parent { .. }) => return Ok(false),
        Ok(nix::unistd::ForkResult::Child) => {}
        Err(e) => return Err(format!("fork: {e}")),
    }
    let _ = nix::unistd::setsid();
    Ok(true)
}

/// Serves the job in `dir` from the detached process.
fn serve(dir: &JobDir) -> i32 {
    // Sockets are bound by relative names: a socket path is limited to 108 bytes. Entered
    // before `shim.pid` is written: the run directory as working directory is how the runtime
    // tells this job's shim from a process that reused its pid (`job::shim_alive`).
    if let Err(e) = std::env::set_current_dir(dir.run_path()) {
        return fail(dir, &format!("entering {}: {e}", dir.run_path().display()));
    }
    if let Err(e) = dir.write(JobDir::SHIM_PID, std::process::id().to_string().as_bytes()) {
        return fail(dir, &format!("writing shim.pid: {e}"));
    }
    if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
        return fail(dir, &format!("prctl(PR_SET_CHILD_SUBREAPER): {e}"));
    }
    let cfg: ShimConfig = match fs::read(dir.file(JobDir::SHIM_CONFIG))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => return fail(dir, &format!("reading shim.json: {e}")),
    };
    let host_mounts = match private_mounts() {
        Ok(ns) => ns,
        Err(e) => return fail(dir, &e),
    };
    match supervise(dir, &cfg, &host_mounts) {
        Ok((status, hub)) => {
            // exit.json first: an attached client told of the exit may act on it at once.
            let written = serde_json::to_vec(&status)
                .is_ok_and(|json| dir.write(JobDir::EXIT, &json).is_ok());
            hub.exit(status);
            if written {
                0
            } else {
                1
            }
        }
        Err(msg) => fail(dir, &msg),
    }
}

/// Moves the shim into a private copy of its mount namespace (nothing propagates either way);
/// returns the namespace it came from.
fn private_mounts() -> Result<File, String> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{unshare, CloneFlags};
    let host = File::open("/proc/self/ns/mnt").map_err(|e| format!("/proc/self/ns/mnt: {e}"))?;
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making the shim's mounts private: {e}"))?;
    Ok(host)
}

/// Moves the shim back into the mount namespace `ns` and into `cwd` there (a working
/// directory stays on the mounts of the namespace it was entered in).
fn return_to_mounts(ns: &File, cwd: &Path) -> Result<(), String> {
    use nix::sched::{setns, CloneFlags};
    setns(ns, CloneFlags::CLONE_NEWNS).map_err(|e| format!("setns back: {e}"))?;
    std::env::set_current_dir(cwd).map_err(|e| format!("entering {}: {e}", cwd.display()))
}

fn supervise(
    dir: &JobDir,
    cfg: &ShimConfig,
    host_mounts: &File,
) -> Result<(ExitStatus, Arc<Hub>), String> {
    let attach = UnixListener::bind(JobDir::ATTACH_SOCKET)
        .map_err(|e| format!("{}: {e}", JobDir::ATTACH_SOCKET))?;
    let builder = ContainerBuilder::new(cfg.id.to_string(), SyscallType::default())
        .with_root_path(dir.file(JobDir::STATE))
        .map_err(|e| format!("state dir: {e}"))?
        .with_executor(DefaultSignals);
    let (builder, io) = if cfg.tty {
        let console = UnixListener::bind(JobDir::CONSOLE_SOCKET)
            .map_err(|e| format!("{}: {e}", JobDir::CONSOLE_SOCKET))?;
        let builder = builder.with_console_socket(Some(dir.file(JobDir::CONSOLE_SOCKET)));
        (builder, JobIo::Terminal(console))
    } else {
        let (out_r, out_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (err_r, err_w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
        let (stdin, input) = if cfg.stdin {
            let (r, w) = nix::unistd::pipe().map_err(|e| format!("pipe: {e}"))?;
            (File::from(r), Some(File::from(w)))
        } else {
            let null = File::open("/dev/null").map_err(|e| format!("/dev/null: {e}"))?;
            (null, None)
        };
        let builder = builder
            .with_stdin(stdin)
            .with_stdout(out_w)
            .with_stderr(err_w);
        let pipes = JobIo::Pipes {
            out: File::from(out_r),
            err: File::from(err_r),
            input,
        };
        (builder, pipes)
    };
    let mut container = builder
        .as_init(dir.bundle())
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| format!("creating the container: {e}"))?;
    // libcontainer uses its own version of nix: carry the pid over as a number.
    let pid = Pid::from_raw(
        container
            .pid()
            .ok_or("the container has no init pid")?
            .as_raw(),
    );
    let io = match io {
        JobIo::Terminal(console) => match receive_terminal(&console) {
            Ok(master) => JobIo::Master(master),
            Err(e) => {
                let _ = container.delete(true);
                return Err(format!("receiving the job's terminal: {e}"));
            }
        },
        pipes => pipes,
    };
    let _ = fs::remove_file(JobDir::CONSOLE_SOCKET);
    if cfg.network == NetworkMode::None {
        if let Err(e) = loopback_up(pid) {
            let _ = container.delete(true);
            return Err(format!("bringing up loopback: {e}"));
        }
    }
    if let Err(e) = cgroups_read_only(pid) {
        let _ = container.delete(true);
        return Err(format!("making /sys/fs/cgroup read-only in the job: {e}"));
    }
    if let Err(e) = container.start() {
        let _ = container.delete(true);
        return Err(format!("starting the container: {e}"));
    }
    // Back to the host's mounts (still single-threaded, as setns needs): the private copy
    // goes away with its last process, the job's namespace keeping what the job needs.
    let back = std::env::current_dir()
        .map_err(|e| e.to_string())
        .and_then(|cwd| return_to_mounts(host_mounts, &cwd));
    if let Err(e) = back {
        let _ = container.delete(true);
        return Err(e);
    }
    dir.write(JobDir::PID, pid.to_string().as_bytes())
        .map_err(|e| format!("pid file: {e}"))?;

    // Threads are safe from here on: libcontainer has done its clones.
    let log = LogWriter::open(dir.path(), cfg.log_max_bytes).map_err(|e| format!("log: {e}"))?;
    let (outputs, hub) = match io {
        JobIo::Master(master) => {
            let input = master.try_clone().ok();
            (vec![(master, Stream::Stdout)], Hub::new(input, true))
        }
        JobIo::Pipes { out, err, input } => (
            vec![(out, Stream::Stdout), (err, Stream::Stderr)],
            Hub::new(input, false),
        ),
        JobIo::Terminal(_) => unreachable!("the terminal was received above"),
    };
    let server = hub.clone();
    std::thread::spawn(move || server.serve(attach));
    // One thread reads every output stream, so lines are logged in the order the kernel
    // hands them over; clients get the output without ever holding the reading up.
    let tee = hub.clone();
    let pump = std::thread::spawn(move || log.pump_all(outputs, |s, d| tee.output(s, d)));
    let status = reap(pid);
    match pump.join() {
        Ok(Err(e)) => tracing::warn!(error = %e, "logging the job's output"),
        Err(_) => tracing::warn!("the log thread panicked"),
        Ok(Ok(())) => {}
    }
    let oom_killed = oom_kills(&cfg.cgroup) > 0;
    if let Err(e) = container.delete(true) {
        tracing::warn!(error = %e, "deleting the container state");
    }
    let status = ExitStatus {
        oom_killed,
        ..status
    };
    let _ = fs::remove_file(JobDir::ATTACH_SOCKET);
    Ok((status, hub))
}

/// Where the job's input and output go.
enum JobIo {
    /// A terminal, whose master side arrives on this socket.
    Terminal(UnixListener),
    /// The terminal's master side.
    Master(File),
    /// Pipes for stdout and stderr, and stdin when the job keeps it open.
    Pipes {
        out: File,
        err: File,
        input: Option<File>,
    },
}

/// Accepts libcontainer's connection on the console socket and takes the terminal's master
/// side from it (SCM_RIGHTS).
fn receive_terminal(console: &UnixListener) -> Result<File, String> {
    use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
    let (conn, _) = console.accept().map_err(|e| format!("accept: {e}"))?;
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        conn.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::empty(),
    )
    .map_err(|e| format!("recvmsg: {e}"))?;
    for c in msg.cmsgs().map_err(|e| e.to_string())? {
        if let ControlMessageOwned::ScmRights(fds) = c {
            if let Some(&fd) = fds.first() {
                // SAFETY: the kernel just installed this descriptor for us; nothing else owns it.
                return Ok(unsafe { File::from_raw_fd(fd) });
            }
        }
    }
    Err("no descriptor in the console message".into())
}

/// Waits for `pid`, reaping any orphan that is reparented to the shim meanwhile.
fn reap(pid: Pid) -> ExitStatus {
    loop {
        match waitpid(None, None) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => {
                return ExitStatus {
                    code: Some(code),
                    signal: None,
                    oom_killed: false,
                }
            }
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => {
                return ExitStatus {
                    code: None,
                    signal: Some(sig as i32),
                    oom_killed: false,
                }
            }
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(_) => {
                return ExitStatus {
                    code: None,
                    signal: None,
                    oom_killed: false,
                }
            }
        }
    }
}

/// The OOM kill count of the job's memory cgroup (v2 `memory.events`, v1 `memory.oom_control`).
fn oom_kills(cgroup: &str) -> u64 {
    let rel = cgroup.trim_start_matches('/');
    let candidates = [
        format!("/sys/fs/cgroup/{rel}/memory.events"),
        format!("/sys/fs/cgroup/memory/{rel}/memory.oom_control"),
    ];
    candidates
        .iter()
        .filter_map(|p| fs::read_to_string(p).ok())
        .flat_map(|s| {
            s.lines()
                .filter_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|n| n.trim().parse::<u64>().ok())
                })
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0)
}

/// Remounts `/sys/fs/cgroup` and every cgroup hierarchy under it read-only in the mount
/// namespace of `pid` (the job's init, created but not started).
///
/// libcontainer mounts the v1 hierarchies with fixed flags, ignoring the mount's `ro`; a job
/// could then lift its own limits (`echo max > pids.max`) and make cgroups of its own. Each
/// mount is remounted in place (a bind remount changes only that mount's flags), so every
/// hierarchy stays mounted once.
fn cgroups_read_only(pid: Pid) -> Result<(), String> {
    use nix::mount::{mount, MsFlags};
    use nix::sched::{setns, CloneFlags};
    let info = fs::read_to_string(format!("/proc/{pid}/mountinfo")).map_err(|e| e.to_string())?;
    let points = crate::oci::cgroup_mount_points(&info);
    if points.is_empty() {
        return Ok(());
    }
    let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
    let own = File::open("/proc/self/ns/mnt").map_err(|e| e.to_string())?;
    let theirs = File::open(format!("/proc/{pid}/ns/mnt")).map_err(|e| e.to_string())?;
    setns(&theirs, CloneFlags::CLONE_NEWNS).map_err(|e| format!("setns: {e}"))?;
    let flags = MsFlags::MS_REMOUNT
        | MsFlags::MS_BIND
        | MsFlags::MS_RDONLY
        | MsFlags::MS_NOSUID
        | MsFlags::MS_NODEV
        | MsFlags::MS_NOEXEC;
    let result = points.iter().try_for_each(|p| {
        mount(None::<&str>, p.as_str(), None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("remounting {p}: {e}"))
    });
    return_to_mounts(&own, &cwd)?;
    result
}

/// Sets `lo` up in the network namespace of `pid`, then returns to the shim's own namespace.
fn loopback_up(pid: Pid) -> Result<(), String> {
    use nix::sched::{setns, CloneFlags};
    let own = File::open("/proc/self/ns/net").map_err(|e| e.to_string())?;
    let theirs = File::open(format!("/proc/{pid}/ns/net")).map_err(|e| e.to_string())?;
    setns(&theirs, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns: {e}"))?;
    let result = set_lo_flags();
    setns(&own, CloneFlags::CLONE_NEWNET).map_err(|e| format!("setns back: {e}"))?;
    result
}

fn set_lo_flags() -> Result<(), String> {
    let sock = nix::sys::socket::socket(
        nix::sys::socket::AddressFamily::Inet,
        nix::sys::socket::SockType::Datagram,
        nix::sys::socket::SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| format!("socket: {e}"))?;
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: the socket is open and `req` is a valid ifreq naming "lo".
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } < 0 {
        return Err(format!("SIOCGIFFLAGS: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short };
    // SAFETY: as above; the kernel reads the flags.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } < 0 {
        return Err(format!("SIOCSIFFLAGS: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
