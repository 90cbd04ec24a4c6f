//! `blanket worker`: the flags and the run live in `blanket_worker::cli`, shared with the
//! desktop binary's `blanket-desktop worker`; this module only plugs in the CLI's logging.

pub use blanket_worker::cli::WorkerArgs;

/// Runs the worker until it is stopped.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    blanket_worker::cli::run(args, |logfile| crate::logging::init("info", logfile))
}
