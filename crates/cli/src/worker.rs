//! `blanket worker`: the flags, logging and the run live in `blanket_worker::cli`, shared with
//! the desktop binary's `blanket-desktop worker`.

pub use blanket_worker::cli::WorkerArgs;

/// Runs the worker until it is stopped.
pub fn run(args: WorkerArgs) -> anyhow::Result<()> {
    blanket_worker::cli::run(args)
}
