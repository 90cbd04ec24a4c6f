//! Which coordinator the window shows: the one this process starts (the same
//! `blanket_server::Runtime` as `blanket serve`), or, when a Blanket already owns the port, that
//! one. Separate so the choice is made once, before any window exists; it never opens a second
//! writer on a data folder another coordinator serves.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use blanket_core::config::Config;
use blanket_core::wire::VersionInfo;
use blanket_server::{Runtime, StartError, WorkerCommand};

/// How long the running Blanket on a busy port gets to say who it is.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The coordinator the window will show.
pub enum Backend {
    /// Started here; stopped when the app quits.
    Embedded(Runtime),
    /// Another process's, at this URL (no trailing slash).
    Attached(String),
}

/// Starts the coordinator of `config` with local workers run by `workers` (the pool waits
/// for `Shell::start_local_pool`), or finds the Blanket that already listens on its port.
///
/// # Errors
/// When the port is taken by something that is not Blanket, or the data cannot be opened.
pub async fn start(config: Config, workers: Option<WorkerCommand>) -> anyhow::Result<Backend> {
    let port = config.port;
    let token = config.token.clone();
    match Runtime::start_without_pool(config, workers).await {
        Ok(runtime) => Ok(Backend::Embedded(runtime)),
        Err(StartError::PortInUse { bind, port: busy }) => {
            let url = format!("http://127.0.0.1:{port}");
            if is_blanket(&url, token.as_deref()).await {
                tracing::warn!(%url, "a Blanket coordinator already runs on this port: the window shows it instead of starting a second one");
                Ok(Backend::Attached(url))
            } else {
                Err(StartError::PortInUse { bind, port: busy }.into())
            }
        }
        Err(error) => Err(error).context("starting the coordinator"),
    }
}

/// The headless binary the app launches its local workers with, installed beside it.
const HEADLESS_BINARY: &str = "blanket";

/// The desktop app's local workers: `blanket worker`, from the headless binary beside this
/// one (the .deb installs both in `/usr/bin`, cargo builds both in `target/<profile>`). A worker
/// of this binary would map GTK and WebKit, which it never uses, so this one's own `worker`
/// mode is only the fallback when the headless binary is missing.
///
/// # Errors
/// When the running executable cannot be found.
pub fn desktop_workers() -> anyhow::Result<WorkerCommand> {
    let own = std::env::current_exe()
        .context("finding the blanket-desktop executable to launch workers")?;
    Ok(workers_beside(own))
}

fn workers_beside(own: PathBuf) -> WorkerCommand {
    let headless = own.with_file_name(format!("{HEADLESS_BINARY}{}", std::env::consts::EXE_SUFFIX));
    let program = if headless.is_file() {
        headless
    } else {
        tracing::info!(
            missing = %headless.display(),
            "no headless blanket beside the app: its local workers run as `blanket-desktop worker`, which takes more memory"
        );
        own
    };
    WorkerCommand {
        program,
        leading_args: vec!["worker".into()],
    }
}

/// Whether `GET url/version` answers as Blanket does.
async fn is_blanket(url: &str, token: Option<&str>) -> bool {
    let client = match reqwest::Client::builder().timeout(PROBE_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(error = %error, "cannot make an HTTP client to ask who owns the port");
            return false;
        }
    };
    let mut request = client.get(format!("{url}/version"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    match request.send().await {
        Ok(response) => response
            .json::<VersionInfo>()
            .await
            .is_ok_and(|version| version.name == "blanket"),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_run_the_headless_binary_beside_the_app() {
        let dir = tempfile::tempdir().unwrap();
        let headless = dir.path().join(HEADLESS_BINARY);
        std::fs::write(&headless, b"").unwrap();
        let command = workers_beside(dir.path().join("blanket-desktop"));
        assert_eq!(command.program, headless);
        assert_eq!(command.leading_args, ["worker"]);
    }

    #[test]
    fn without_the_headless_binary_workers_run_the_app_itself() {
        let dir = tempfile::tempdir().unwrap();
        let own = dir.path().join("blanket-desktop");
        let command = workers_beside(own.clone());
        assert_eq!(command.program, own);
        assert_eq!(command.leading_args, ["worker"]);
    }
}
