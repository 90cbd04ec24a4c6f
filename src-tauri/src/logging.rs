//! Installs the `tracing` subscriber of the desktop binary: to stderr for the shell itself, or
//! appended to the worker's log file in `blanket-desktop worker` mode. `RUST_LOG` overrides.
//! The same behaviour as the `blanket` binary's, kept here because a library installs none.

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
