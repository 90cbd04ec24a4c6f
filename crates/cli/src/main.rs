//! The `blanket` command: `serve` (also what a bare `blanket` does, as the old binary did) and
//! the client commands. Parses arguments, installs logging, hands off to one module per
//! command, and prints errors itself as one clear line.

mod logging;
mod serve;
mod worker;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Blanket: a local task runner. Run long jobs without babysitting terminals.
#[derive(Parser, Debug)]
#[command(
    name = "blanket",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `blanket` serves, as the old binary did.
    #[command(flatten)]
    serve: serve::ServeArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start the coordinator: REST API, live streams and web UI.
    Serve(serve::ServeArgs),
    /// Run a worker that claims and runs tasks for a coordinator.
    Worker(worker::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Some(Command::Serve(args)) => serve::run(args),
        Some(Command::Worker(args)) => worker::run(args),
        None => serve::run(cli.serve),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Printed here rather than returned, so the user sees one line, not a backtrace.
            eprintln!("blanket: {error:#}");
            ExitCode::FAILURE
        }
    }
}
