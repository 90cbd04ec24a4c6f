//! The `worker` subcommand shared by the `blanket` and `blanket-desktop` binaries: its flags,
//! signal handling and `--daemon`. It is the binary half of this crate (anyhow errors, clap
//! flags) over `run`, which takes plain `WorkerOptions`; it installs the worker's logging.
//! The first SIGTERM or Ctrl-C lets the current task finish (like `PUT /worker/:id/stop`), a
//! second kills it; `--daemon` starts the same command detached and returns at once.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Stdio;

use anyhow::Context;
use blanket_core::WorkerId;
use clap::Args;

use crate::{StopSignals, WorkerOptions};

// Flags of `blanket worker` (the old CLI's spellings are accepted too).
// Not a `///` doc: clap would show it over the about of `blanket worker` (see `Command` in
// crates/cli/src/main.rs).
#[derive(Args, Debug)]
pub struct WorkerArgs {
    /// Tags this worker has; it runs tasks whose tags are all among them (CSV or repeated)
    #[arg(short, long, value_delimiter = ',')]
    tags: Vec<String>,
    /// Worker id (24 hex characters); a new one by default
    #[arg(long)]
    id: Option<WorkerId>,
    /// The coordinator's URL
    #[arg(
        long,
        env = "BLANKET_SERVER_URL",
        default_value = "http://127.0.0.1:8773"
    )]
    server: String,
    /// Seconds between retries while the coordinator cannot be reached
    #[arg(long, alias = "checkinterval", default_value_t = 2.0)]
    check_interval: f64,
    /// Write this worker's own log to this file instead of stderr
    #[arg(long)]
    logfile: Option<PathBuf>,
    /// Start detached in the background and print its pid
    #[arg(short, long)]
    daemon: bool,
    /// Token for a coordinator that needs one
    #[arg(long, env = "BLANKET_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// Runs the worker until it is stopped; `init_logging` installs the binary's subscriber,
/// into the worker's log file when one was given.
///
/// # Errors
/// A bad flag, a log file that cannot be opened, or a coordinator that refuses the worker.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    if !(args.check_interval.is_finite() && args.check_interval >= 0.5) {
        anyhow::bail!(
            "--check-interval {} is too small: give at least 0.5 seconds",
            args.check_interval
        );
    }
    if args.daemon {
        return daemonize();
    }
    crate::logging::init("info", args.logfile.as_deref())?;
    let options = WorkerOptions {
        server_url: args.server.trim_end_matches('/').to_string(),
        id: args.id.unwrap_or_else(WorkerId::generate),
        tags: args
            .tags
            .into_iter()
            .map(|tag| tag.trim().to_string())
            .filter(|tag| !tag.is_empty())
            .collect(),
        check_interval: args.check_interval,
        logfile: args
            .logfile
            .map(|path| path.display().to_string())
            .unwrap_or_default(),
        daemon: false,
        token: args.token,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let signals = StopSignals::default();
        tokio::spawn(escalate_on_signals(signals.clone()));
        crate::run(options, signals)
            .await
            .context("the worker stopped on an error")
    })
}

/// First signal: finish the current task and stop. Second: kill it too.
async fn escalate_on_signals(signals: StopSignals) {
    let Ok(mut terminate) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
    else {
        return;
    };
    let Ok(mut interrupt) =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
    else {
        return;
    };
    let mut received = 0;
    loop {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
        received += 1;
        if received == 1 {
            tracing::info!("stopping after the current task (signal again to kill it)");
            signals.drain.cancel();
        } else {
            tracing::info!("stopping now");
            signals.force.cancel();
            signals.drain.cancel();
        }
    }
}

/// Starts this same command without `--daemon`, detached, and prints its pid.
fn daemonize() -> anyhow::Result<()> {
    let program = std::env::current_exe().context("finding the running executable")?;
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|arg| arg != "-d" && arg != "--daemon")
        .collect();
    let child = std::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .context("starting the worker in the background")?;
    println!("{}", child.id());
    Ok(())
}
