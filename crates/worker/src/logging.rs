//! Installs the `tracing` subscriber for the binaries that embed a worker (`blanket`,
//! `blanket-desktop`): to stderr (coloured on a terminal), or appended to a worker's log file.
//! One implementation for both, so their logs look alike; `RUST_LOG` overrides the level.

use std::path::Path;

use anyhow::Context;

/// Installs logging at `level`, into `logfile` when given.
///
/// # Errors
/// When the log file cannot be opened.
pub fn init(level: &str, logfile: Option<&Path>) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match logfile {
        Some(path) => {
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the log file {}", path.display()))?;
            builder
                .with_writer(std::sync::Mutex::new(file))
                .with_ansi(false)
                .init();
        }
        None => {
            let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
            builder
                .with_writer(std::io::stderr)
                .with_ansi(colour)
                .init();
        }
    }
    Ok(())
}
