//! A service's life: logging set up, a tokio runtime, a shutdown signal that fires on
//! SIGINT or SIGTERM, and readiness once its listeners are bound. A binary's `main` parses
//! its flags and hands the rest to [`run`].

use std::future::Future;

use tokio::sync::watch;

/// Fires once, when the service should stop; cheap to clone and wait on from many tasks.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

/// Triggers a [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl Shutdown {
    /// A shutdown signal and its trigger.
    pub fn new() -> (ShutdownTrigger, Shutdown) {
        let (tx, rx) = watch::channel(false);
        (ShutdownTrigger(tx), Shutdown(rx))
    }

    /// Completes when shutdown is triggered (or its trigger is dropped).
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|stop| *stop).await;
    }

    /// True once shutdown was triggered.
    pub fn is_triggered(&self) -> bool {
        *self.0.borrow()
    }

    /// A shutdown that fires on SIGINT or SIGTERM.
    pub fn on_signals() -> std::io::Result<Shutdown> {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut int = signal(SignalKind::interrupt())?;
        let (trigger, shutdown) = Shutdown::new();
        tokio::spawn(async move {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
            }
            trigger.trigger();
        });
        Ok(shutdown)
    }
}

impl ShutdownTrigger {
    /// Tells every waiter to stop.
    pub fn trigger(&self) {
        let _ = self.0.send(true);
    }
}

/// Sets up logging (`RUST_LOG`, default `info`, to stderr), starts a multi-threaded tokio
/// runtime and runs `service` with a [`Shutdown`] that fires on SIGINT or SIGTERM; returns
/// what the service returns.
pub fn run<F, Fut, E>(service: F) -> Result<(), E>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<std::io::Error>,
{
    run_on(0, service)
}

/// As [`run`], on `threads` worker threads: 0 for one per CPU, 1 for a single-threaded
/// runtime (no work stealing, no cross-thread wakeups: the fastest for a process pinned to
/// one core).
pub fn run_on<F, Fut, E>(threads: usize, service: F) -> Result<(), E>
where
    F: FnOnce(Shutdown) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: From<std::io::Error>,
{
    init_logging();
    let rt = match threads {
        1 => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        0 => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?,
        n => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .enable_all()
            .build()?,
    };
    rt.block_on(async move {
        let shutdown = Shutdown::on_signals()?;
        service(shutdown).await
    })
}

/// Logs to stderr, filtered by `RUST_LOG` (default `info`). Safe to call twice.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
