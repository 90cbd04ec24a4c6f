//! `blanket serve`: resolves the configuration (defaults < file < environment < flags),
//! opens the coordinator, serves HTTP until Ctrl-C or SIGTERM, then shuts down in order:
//! stop accepting, end live streams, finish writes, close the database.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use blanket_core::Coordinator;
use blanket_core::config::{Config, Settings};
use blanket_core::local_workers::WorkerLauncher;
use blanket_server::{AppState, ServerOptions};
use clap::Args;
use tokio_util::sync::CancellationToken;

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
    crate::logging::init(&config.log_level, None)?;
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
    let token = config.token.clone();
    let coordinator = Coordinator::open(config)
        .await
        .context("opening the coordinator's data")?;
    let own_url = if local.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", local.port())
    } else {
        format!("http://{local}")
    };
    coordinator.attach_launcher(WorkerLauncher {
        program: std::env::current_exe()
            .context("finding the blanket executable to launch workers")?,
        leading_args: vec!["worker".into()],
        server_url: own_url,
        token,
    });
    let state = AppState::new(coordinator.clone(), options);
    let stop_serving = CancellationToken::new();
    let server = tokio::spawn(blanket_server::serve(
        listener,
        state,
        stop_serving.clone().cancelled_owned(),
    ));
    tracing::info!(url = %format!("http://{local}/ui/"), "blanket is serving");
    let reaper = {
        let coordinator = coordinator.clone();
        let stop = stop_serving.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = coordinator.reap_lost_workers() => {}
                () = stop.cancelled() => {}
            }
        })
    };
    let pool = {
        let coordinator = coordinator.clone();
        tokio::spawn(async move {
            if let Err(error) = coordinator.start_local_pool().await {
                tracing::error!(error = %error, "the local worker pool did not start: launch workers from the UI or with `blanket worker`");
            }
        })
    };
    shutdown_signal().await;
    pool.abort();
    // Workers report their tasks' end over HTTP, so they stop before the server does.
    coordinator.stop_local_workers().await;
    stop_serving.cancel();
    let served = server.await.context("the HTTP server task failed")?;
    let _ = reaper.await;
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
