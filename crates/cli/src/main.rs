//! The `blanket` command: `serve` (also what a bare `blanket` does, as the old binary did) and
//! the client commands. Parses arguments, installs logging, hands off to one module per
//! command, and prints errors itself as one clear line.

mod client;
mod commands;
mod ids;
mod output;
mod serve;
mod sse;
mod worker;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};

use commands::{meta, ps, submit, tasks, types, wait, workers};

/// The exit codes, shown under `blanket --help` and in the man page.
const EXIT_CODES: &str = "\
Exit codes:
  0    done; with --wait/--follow and `wait`: the task ended SUCCESS
  1    blanket failed (no coordinator, unknown id, refused request), `validate` found a
       broken file, or the task ended ERROR with exit code 1
  2    the command line is wrong
  N    with --wait/--follow and `wait`: the task ended ERROR with its own exit code N
  124  the task ended TIMEDOUT
  125  the task ended ERROR without an exit code (it could not start, its worker was lost)
  130  Ctrl-C stopped the waiting (the task goes on unless --cancel-on-interrupt)
  143  the task ended STOPPED (cancelled)
`wait` with several tasks exits with the first non-zero code, in the order given.

Environment: BLANKET_SERVER_URL (the coordinator, default http://127.0.0.1:8773 or the config
file's port), BLANKET_TOKEN (its token), NO_COLOR (no colour). See `blanket man`.";

/// Blanket: a local task runner. Run long jobs without babysitting terminals.
#[derive(Parser, Debug)]
#[command(
    name = "blanket",
    version,
    about,
    args_conflicts_with_subcommands = true,
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// With no subcommand, `blanket` serves, as the old binary did.
    #[command(flatten)]
    serve: serve::ServeArgs,
}

// Deferred: a run builds the flags of its own command only, not those of all seventeen (which
// took a third of the instructions of a `blanket submit`). A deferred command takes the doc
// comment of its `Args` struct, and of those flattened or nested in it, as its about, over
// the variant's below; so those structs and enums carry plain `//` comments
// (`subcommands_keep_their_about` checks it).
#[derive(Subcommand, Debug)]
#[command(defer = true)]
enum Command {
    /// Start the coordinator: REST API, live streams and web UI.
    Serve(serve::ServeArgs),
    /// Run a worker that claims and runs tasks for a coordinator.
    Worker(worker::WorkerArgs),
    /// Submit a task; --wait or --follow to see it through.
    Submit(submit::SubmitArgs),
    /// List tasks, newest last (filters, -q for ids, --json).
    Ps(ps::PsArgs),
    /// Show one task: state, times, environment and history.
    Show(tasks::ShowArgs),
    /// Print a task's output (-f to follow it live).
    Logs(tasks::LogsArgs),
    /// Wait until tasks end; exit with the first failure's code.
    Wait(wait::WaitArgs),
    /// Cancel tasks (ids as arguments or on stdin).
    Cancel(tasks::IdsArgs),
    /// Delete tasks and their folders (ids as arguments or on stdin).
    Rm(tasks::IdsArgs),
    /// Submit a task again with the same type, environment, priority and tags.
    Retry(submit::RetryArgs),
    /// List, launch, stop, restart or forget workers.
    Workers(workers::WorkersArgs),
    /// List task types, or show one.
    Types(types::TypesArgs),
    /// Check task type files offline, reporting file:line:column: message.
    Validate(types::ValidateArgs),
    /// Check the coordinator's task types (the old CLI's command).
    TaskValidate(types::TaskValidateArgs),
    /// Print the version of blanket and of the coordinator.
    Version(meta::VersionArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions(meta::CompletionsArgs),
    /// Print the man page (roff), or write one per command with --dir.
    Man(meta::ManArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        None | Some(Command::Serve(_) | Command::Worker(_))
    ) {
        die_quietly_on_closed_pipe();
    }
    let outcome = match cli.command {
        Some(Command::Serve(args)) => serve::run(args).map(|()| ExitCode::SUCCESS),
        Some(Command::Worker(args)) => worker::run(args).map(|()| ExitCode::SUCCESS),
        None => serve::run(cli.serve).map(|()| ExitCode::SUCCESS),
        Some(Command::Submit(args)) => commands::block_on(submit::run(args)),
        Some(Command::Ps(args)) => commands::block_on(ps::run(args)),
        Some(Command::Show(args)) => commands::block_on(tasks::show(args)),
        Some(Command::Logs(args)) => commands::block_on(tasks::logs(args)),
        Some(Command::Wait(args)) => commands::block_on(wait::run(args)),
        Some(Command::Cancel(args)) => commands::block_on(tasks::cancel(args)),
        Some(Command::Rm(args)) => commands::block_on(tasks::remove(args)),
        Some(Command::Retry(args)) => commands::block_on(submit::retry(args)),
        Some(Command::Workers(args)) => commands::block_on(workers::run(args)),
        Some(Command::Types(args)) => commands::block_on(types::run(args)),
        Some(Command::Validate(args)) => types::validate(args),
        Some(Command::TaskValidate(args)) => commands::block_on(types::task_validate(args)),
        Some(Command::Version(args)) => commands::block_on(meta::version(args)),
        Some(Command::Completions(args)) => meta::completions(&args, full_command()),
        Some(Command::Man(args)) => meta::man(&args, full_command()),
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // Printed here rather than returned, so the user sees one line, not a backtrace.
            eprintln!("blanket: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The whole command line, for what walks all of it (completions, man). `workers` and `types`
/// are built eagerly here, as without deferring: clap copies the tree under `blanket help` before
/// it runs deferred builds, which would leave out their own subcommands (`blanket help workers ls`).
fn full_command() -> clap::Command {
    Cli::command().mut_subcommands(|command| match command.get_name() {
        "workers" => eager::<workers::WorkersArgs>(&command, "workers"),
        "types" => eager::<types::TypesArgs>(&command, "types"),
        _ => command,
    })
}

/// A command `name` with the flags of `T` added now rather than deferred, in the place and with
/// the about of `command` (the variant's; none of them has a long one).
fn eager<T: clap::Args>(command: &clap::Command, name: &'static str) -> clap::Command {
    let eager =
        T::augment_args(clap::Command::new(name)).display_order(command.get_display_order());
    match command.get_about() {
        Some(about) => eager.about(about.clone()),
        None => eager,
    }
}

/// Lets a client command end silently, as `ls` or `cat` do, when the reader of its output
/// goes away (`blanket ps | head`): Rust ignores SIGPIPE, which turns every later `println!`
/// into a panic. The server and the worker keep ignoring it: a closed socket must not kill them.
#[expect(
    unsafe_code,
    reason = "restoring the default SIGPIPE action needs libc::signal; nothing else runs yet"
)]
fn die_quietly_on_closed_pipe() {
    // SAFETY: called at the start of main, before any thread exists; SIG_DFL is a valid action.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_keep_their_about() {
        let listed = Cli::command();
        let mut built = Cli::command();
        built.build();
        for command in listed.get_subcommands() {
            let name = command.get_name();
            let built = built.find_subcommand(name).unwrap();
            assert_eq!(built.get_about(), command.get_about(), "blanket {name}");
            assert_eq!(built.get_long_about(), None, "blanket {name}");
        }
    }

    #[test]
    fn help_lists_the_subcommands_of_deferred_commands() {
        let mut command = full_command();
        command.build();
        let help = command.find_subcommand("help").unwrap();
        let subcommands = |name: &str| -> Vec<String> {
            help.find_subcommand(name)
                .unwrap()
                .get_subcommands()
                .map(|command| command.get_name().to_owned())
                .collect()
        };
        assert_eq!(
            subcommands("workers"),
            ["ls", "launch", "stop", "restart", "rm"]
        );
        assert_eq!(subcommands("types"), ["ls", "show"]);
    }
}
