//! The coordinator as a running service: bind the port, open the data, serve HTTP, reap lost
//! workers, start the local pool, and stop all of it in the one safe order. Shared by
//! `blanket serve` and the desktop shell so both start and stop alike; it installs no signal
//! handler and no logging, because each caller decides those.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use blanket_core::Coordinator;
use blanket_core::config::Config;
use blanket_core::local_workers::WorkerLauncher;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::{AppState, ServerOptions, open_files};

/// The async runtime the coordinator and its server run on, for `blanket serve` and the
/// desktop shell alike.
///
/// One worker thread more than the machine has cores: a change wakes every open stream at
/// once, and the second worker, woken by the first, is often placed on that worker's core and
/// left there for milliseconds while another core idles (Linux keeps a thread that just ran
/// where its cache is warm). With a spare worker, one lands on the idle core. On 2 cores the
/// fan-out to 1,000 streams measured p99 11.5-12.5 ms with 2 workers, 7.8-8.4 ms with 3 or 4.
///
/// # Errors
/// When the runtime's threads cannot be started.
pub fn async_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores + 1)
        .enable_all()
        .build()
}

/// The program that runs a local worker: the running binary, with the arguments that select
/// its worker mode (`blanket worker ...`, `blanket-desktop worker ...`).
#[derive(Clone, Debug)]
pub struct WorkerCommand {
    /// The executable to start.
    pub program: PathBuf,
    /// Arguments before the worker's own flags, e.g. `["worker"]`.
    pub leading_args: Vec<String>,
}

/// Why the coordinator did not start.
///
/// # Errors
/// `PortInUse` is the one a caller may recover from (another Blanket may own the port);
/// the others mean the configuration or the machine must change.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Something already listens on the configured port.
    #[error(
        "port {port} on {bind} is already in use (another Blanket or another program listens there): stop it, or pick another port with --port or BLANKET_PORT"
    )]
    PortInUse { bind: IpAddr, port: u16 },
    /// The port could not be bound for another reason.
    #[error("listening on {address}")]
    Listen {
        address: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The database, the results folder or the task types could not be opened.
    #[error("opening the coordinator's data")]
    Open(#[source] blanket_core::Error),
}

/// A coordinator serving HTTP, with its background tasks. End it with [`Runtime::shutdown`].
pub struct Runtime {
    coordinator: Coordinator,
    state: AppState,
    local_address: SocketAddr,
    stop_serving: CancellationToken,
    server: JoinHandle<()>,
    reaper: JoinHandle<()>,
    pool: Option<JoinHandle<()>>,
    // The tokio runtime `start` ran in, so the pool can be started from any thread later.
    tasks: tokio::runtime::Handle,
}

impl Runtime {
    /// Binds `config.bind:config.port`, opens the coordinator, serves the API and pages on
    /// it, and starts the reaper and (in the background) the local worker pool. Workers are
    /// launched with `workers`; `None` makes a coordinator that cannot launch any.
    /// Must run inside a tokio runtime, which then owns the spawned tasks.
    ///
    /// # Errors
    /// See [`StartError`]. Nothing was opened when it fails.
    pub async fn start(
        config: Config,
        workers: Option<WorkerCommand>,
    ) -> Result<Runtime, StartError> {
        let mut runtime = Runtime::start_without_pool(config, workers).await?;
        runtime.start_local_pool();
        Ok(runtime)
    }

    /// Like [`Runtime::start`], but the local pool waits for [`Runtime::start_local_pool`]:
    /// the desktop shell starts it once its window has loaded, so worker processes do not
    /// compete with the window for the CPU while it opens.
    ///
    /// # Errors
    /// See [`StartError`].
    pub async fn start_without_pool(
        config: Config,
        workers: Option<WorkerCommand>,
    ) -> Result<Runtime, StartError> {
        let address = SocketAddr::new(config.bind, config.port);
        let listener = match tokio::net::TcpListener::bind(address).await {
            Ok(listener) => listener,
            Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(StartError::PortInUse {
                    bind: config.bind,
                    port: config.port,
                });
            }
            Err(source) => return Err(StartError::Listen { address, source }),
        };
        let local_address = listener
            .local_addr()
            .map_err(|source| StartError::Listen { address, source })?;
        let mut options = ServerOptions::from_config(&config);
        options.max_streams =
            open_files::stream_cap(open_files::raise_limit(), options.max_streams);
        let max_streams = options.max_streams;
        let token = config.token.clone();
        let coordinator = Coordinator::open(config).await.map_err(StartError::Open)?;
        if let Some(workers) = workers {
            coordinator.attach_launcher(WorkerLauncher {
                program: workers.program,
                leading_args: workers.leading_args,
                server_url: loopback_url(local_address),
                token,
            });
        }
        let state = AppState::new(coordinator.clone(), options);
        let stop_serving = CancellationToken::new();
        let server = tokio::spawn(crate::serve(
            listener,
            state.clone(),
            stop_serving.clone().cancelled_owned(),
        ));
        tracing::info!(url = %format!("http://{local_address}/ui/"), max_streams, "blanket is serving");
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
        Ok(Runtime {
            coordinator,
            state,
            local_address,
            stop_serving,
            server,
            reaper,
            pool: None,
            tasks: tokio::runtime::Handle::current(),
        })
    }

    /// Tops the local worker pool up in the background, on the tokio runtime `start` ran in
    /// (so any thread may call it); a second call does nothing.
    pub fn start_local_pool(&mut self) {
        if self.pool.is_some() {
            return;
        }
        let coordinator = self.coordinator.clone();
        self.pool = Some(self.tasks.spawn(async move {
            if let Err(error) = coordinator.start_local_pool().await {
                tracing::error!(error = %error, "the local worker pool did not start: launch workers from the UI or with `blanket worker`");
            }
        }));
    }

    /// The coordinator being served.
    pub fn coordinator(&self) -> &Coordinator {
        &self.coordinator
    }

    /// The server's shared state (open stream count, metrics).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The address the server listens on (the real port when 0 was asked for).
    pub fn local_address(&self) -> SocketAddr {
        self.local_address
    }

    /// The URL this machine reaches the server at, without a trailing slash:
    /// `http://127.0.0.1:PORT` when bound to every interface.
    pub fn url(&self) -> String {
        loopback_url(self.local_address)
    }

    /// Stops in the one safe order: local workers first (their tasks are recorded `STOPPED`
    /// with the reason, and they report over HTTP, so the server still answers), then the
    /// live streams and the server, then the reaper, then the database is closed.
    ///
    /// # Errors
    /// When the server's task had panicked; the database is closed all the same.
    pub async fn shutdown(self) -> std::io::Result<()> {
        if let Some(pool) = &self.pool {
            pool.abort();
        }
        self.coordinator.stop_local_workers().await;
        self.stop_serving.cancel();
        let served = self.server.await.map_err(std::io::Error::other);
        let _ = self.reaper.await;
        self.coordinator.shutdown().await;
        served
    }
}

/// `http://ADDRESS`, with `127.0.0.1` standing in for an unspecified bind address.
fn loopback_url(address: SocketAddr) -> String {
    if address.ip().is_unspecified() {
        format!("http://127.0.0.1:{}", address.port())
    } else {
        format!("http://{address}")
    }
}
