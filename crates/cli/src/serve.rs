//! `blanket serve`: resolves the configuration (defaults < file < environment < flags),
//! then runs `blanket_server::Runtime` (the start and shutdown order the desktop shell shares)
//! until Ctrl-C or SIGTERM.

use std::path::PathBuf;

use anyhow::Context;
use blanket_core::config::{Config, Settings};
use blanket_server::{Runtime, WorkerCommand};
use clap::Args;

// Flags of `blanket serve`; each overrides its `BLANKET_*` variable and the config file.
#[derive(Args, Debug, Default)]
pub struct ServeArgs {
    /// Port to listen on (0 picks a free one) [env: BLANKET_PORT] [default: 8773]
    #[arg(short, long)]
    port: Option<u16>,
    /// Address to listen on; anything but loopback needs --token [env: BLANKET_BIND]
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// Folder for the database, task results and worker logs [env: BLANKET_DATA_DIR]
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Folder of task type files (*.toml); repeat for several [env: BLANKET_TYPES_DIR]
    #[arg(long = "types-dir")]
    types_dirs: Vec<PathBuf>,
    /// Config file: Blanket TOML or the old server's config.json
    #[arg(short, long, env = "BLANKET_CONFIG")]
    config: Option<PathBuf>,
    /// Token every request must carry (Authorization: Bearer TOKEN) [env: BLANKET_TOKEN]
    #[arg(long)]
    token: Option<String>,
    /// How many local workers to start [env: BLANKET_WORKERS]
    #[arg(long)]
    workers: Option<usize>,
}

impl ServeArgs {
    fn settings(&self) -> Settings {
        Settings {
            port: self.port,
            bind: self.bind,
            data_dir: self.data_dir.clone(),
            types_dirs: (!self.types_dirs.is_empty()).then(|| self.types_dirs.clone()),
            token: self.token.clone(),
            local_workers: self.workers,
            ..Settings::default()
        }
    }
}

/// Runs the coordinator until a shutdown signal.
pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(
        args.config.as_deref(),
        |name| std::env::var(name).ok(),
        args.settings(),
    )
    .context("reading the configuration")?;
    config.validate().context("checking the configuration")?;
    blanket_worker::logging::init(&config.log_level, None)?;
    let runtime = blanket_server::async_runtime().context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let workers = WorkerCommand {
        program: std::env::current_exe()
            .context("finding the blanket executable to launch workers")?,
        leading_args: vec!["worker".into()],
    };
    let runtime = Runtime::start(config, Some(workers)).await?;
    shutdown_signal().await;
    runtime.shutdown().await.context("serving HTTP")
}

/// Resolves on Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
