//! The client commands, one module per group: each parses its own flags (clap derive), talks
//! to the coordinator only through `client::Client` over REST, and returns the exit code.
//! Offline ones (`validate`, `completions`, `man`) never build a connection.

pub mod meta;
pub mod ps;
pub mod submit;
pub mod tasks;
pub mod types;
pub mod wait;
pub mod workers;

use std::future::Future;
use std::process::ExitCode;

use anyhow::Context;

/// Runs one client command's future on a single-threaded runtime: a command makes one
/// request at a time, and a lone thread starts fastest (`blanket submit` in a loop).
///
/// # Errors
/// The runtime cannot start, or the command fails.
pub fn block_on(
    command: impl Future<Output = anyhow::Result<ExitCode>>,
) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(command)
}
