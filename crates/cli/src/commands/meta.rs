//! Commands about blanket itself: `version` (this binary's, and the coordinator's when one
//! answers), `completions` for bash, zsh, fish and more, and the `man` page in roff.
//! They read the command-line definition handed in by `main`, so they never drift from it.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use blanket_core::wire::VersionInfo;
use clap::Args;
use clap_complete::Shell;
use serde_json::json;

use crate::client::{Client, ClientArgs};

// `blanket version`.
#[derive(Args, Debug)]
pub struct VersionArgs {
    /// Print the versions as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum, value_name = "SHELL")]
    shell: Shell,
}

// `blanket man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write one page per command (blanket.1, blanket-submit.1, ...) into this folder instead
    /// of printing blanket.1
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Runs `blanket version`: never fails for want of a coordinator, it says there is none.
///
/// # Errors
/// A malformed `--server` or config, or standard output closed.
pub async fn version(args: VersionArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let server = client.get_json::<VersionInfo>("/version").await;
    let own = env!("CARGO_PKG_VERSION");
    if args.json {
        let server = server
            .as_ref()
            .ok()
            .map(|info| json!({"name": info.name, "version": info.version, "url": client.base()}));
        println!(
            "{}",
            json!({"name": "blanket", "version": own, "server": server})
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!("blanket {own}");
    match server {
        Ok(info) => println!(
            "coordinator at {}: {} {}",
            client.base(),
            info.name,
            info.version
        ),
        Err(error) => println!("coordinator: {error:#}"),
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the completion script of `command` for the shell asked.
///
/// # Errors
/// Standard output closed.
pub fn completions(args: &CompletionsArgs, mut command: clap::Command) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    clap_complete::generate(args.shell, &mut command, "blanket", &mut stdout);
    stdout.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the man page of `command` in roff, or writes a page per subcommand into a folder.
///
/// # Errors
/// The folder or standard output cannot be written.
pub fn man(args: &ManArgs, command: clap::Command) -> anyhow::Result<ExitCode> {
    let command = command.name("blanket");
    match &args.dir {
        None => {
            let mut stdout = std::io::stdout().lock();
            clap_mangen::Man::new(command)
                .render(&mut stdout)
                .context("writing the man page to standard output")?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("creating the folder {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            println!("wrote the man pages into {}", dir.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
