//! `blanket serve`: resolves the configuration (defaults < file < environment < flags),
//! opens the coordinator, serves HTTP until Ctrl-C or SIGTERM, then shuts down in order:
//! stop accepting, end live streams, finish writes, close the database.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use blanket_core::Coordinator;
use blanket_core::config::{Config, Settings};
use blanket_server::{AppState, ServerOptions};
use clap::Args;

/// Flags of `blanket serve`; each overrides its `BLANKET_*` variable and the config file.
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
    init_logging(&config.log_level);
    if config.local_workers > 0 && args.workers.is_some() {
        bail!(
            "--workers {} is not available yet: local workers arrive with the worker runtime, so use --workers 0 and start workers by hand",
            config.local_workers
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let address = SocketAddr::new(config.bind, config.port);
    let listener = match tokio::net::TcpListener::bind(address).await {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "port {} on {} is already in use (another Blanket or another program listens there): stop it, or pick another port with --port or BLANKET_PORT",
            config.port,
            config.bind
        ),
        Err(error) => return Err(error).with_context(|| format!("listening on {address}")),
    };
    let local = listener
        .local_addr()
        .context("reading the listening address")?;
    let options = ServerOptions::from_config(&config);
    let coordinator = Coordinator::open(config)
        .await
        .context("opening the coordinator's data")?;
    let state = AppState::new(coordinator.clone(), options);
    tracing::info!(url = %format!("http://{local}/ui/"), "blanket is serving");
    let served = blanket_server::serve(listener, state, shutdown_signal()).await;
    coordinator.shutdown().await;
    served.context("serving HTTP")
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

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .init();
}
