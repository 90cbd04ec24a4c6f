//! Blanket's HTTP face: the REST API of the old server, SSE streams, the HTML pages and the
//! guards every request passes. It knows the `Coordinator`, never SQLite or Tauri, so the
//! headless binary and the desktop shell serve exactly the same thing.

mod api;
mod error;
mod guard;
mod logs;
mod metrics;
mod open_files;
mod pages;
mod results;
pub mod runtime;
mod sse;
mod sse_events;
mod stalled_body;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post, put};
use blanket_core::Coordinator;
use tokio_util::sync::CancellationToken;
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

pub use error::ApiError;
pub use metrics::HttpMetrics;
pub use runtime::{Runtime, StartError, WorkerCommand, async_runtime};

/// Settings of the HTTP layer that are not the coordinator's business.
#[derive(Clone, Debug)]
pub struct ServerOptions {
    /// Every request needs `Authorization: Bearer <token>` when set.
    pub token: Option<String>,
    /// Host names accepted besides the loopback ones (DNS-rebinding guard).
    pub allowed_hosts: Vec<String>,
    /// How often an idle SSE stream sends a comment line.
    pub keepalive: Duration,
    /// How long a client may go silent mid-request: a connection with no complete request
    /// head in that time (new, or idle between requests) is closed, and a request whose body
    /// gives nothing for that long is answered 408 and closed.
    pub stall_timeout: Duration,
    /// The largest multipart submit, in bytes.
    pub max_upload_bytes: u64,
    /// The largest JSON body, in bytes.
    pub max_json_bytes: usize,
    /// How many SSE streams may be open at once.
    pub max_streams: usize,
}

impl ServerOptions {
    /// The options the coordinator's configuration asks for.
    pub fn from_config(config: &blanket_core::config::Config) -> ServerOptions {
        ServerOptions {
            token: config.token.clone(),
            allowed_hosts: config.allowed_hosts.clone(),
            keepalive: Duration::from_secs(config.keepalive_seconds),
            stall_timeout: Duration::from_secs(config.header_timeout_seconds),
            max_upload_bytes: config.max_upload_bytes,
            max_json_bytes: config.max_json_bytes,
            max_streams: 4096,
        }
    }
}

/// What every handler can reach. Cloning is cheap.
#[derive(Clone)]
pub struct AppState {
    pub coordinator: Coordinator,
    pub options: Arc<ServerOptions>,
    pub metrics: Arc<HttpMetrics>,
    /// Cancelled when the server shuts down, so long-lived streams end and let it.
    pub shutdown: CancellationToken,
    streams: Arc<sse::StreamSlots>,
    folder_watcher: Arc<logs::FolderWatcher>,
}

impl AppState {
    /// State for serving `coordinator` with `options`.
    pub fn new(coordinator: Coordinator, options: ServerOptions) -> AppState {
        AppState {
            coordinator,
            options: Arc::new(options),
            metrics: Arc::new(HttpMetrics::default()),
            shutdown: CancellationToken::new(),
            streams: Arc::new(sse::StreamSlots::default()),
            folder_watcher: Arc::new(logs::FolderWatcher::default()),
        }
    }

    /// How many live streams (SSE) are open now.
    pub fn open_streams(&self) -> usize {
        self.streams.open()
    }
}

/// The whole application: every route behind the guards, with trailing slashes optional
/// (`/task/` and `/task` are the same route, as old clients use both).
pub fn app(state: AppState) -> NormalizePath<Router> {
    NormalizePathLayer::trim_trailing_slash().layer(router(state))
}

/// Every route, behind the guards.
pub fn router(state: AppState) -> Router {
    let upload_limit = usize::try_from(state.options.max_upload_bytes).unwrap_or(usize::MAX);
    let routes = Router::new()
        .route("/", get(pages::root_redirect))
        .route("/version", get(api::meta::version_get))
        .route("/config", get(api::meta::config_get))
        .route(
            "/config/notify",
            get(api::meta::config_notify_get).put(api::meta::config_notify_put),
        )
        .route("/ops/status", get(api::meta::status_get))
        .route("/metrics", get(metrics::metrics_get))
        .route("/openapi.json", get(api::meta::openapi_get))
        .route(
            "/task",
            get(api::tasks::tasks_list)
                .post(api::tasks::tasks_create)
                .layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/task/claim/{worker_id}", post(api::tasks::tasks_claim))
        .route(
            "/task/{id}",
            get(api::tasks::tasks_get).delete(api::tasks::tasks_delete),
        )
        .route("/task/{id}/cancel", put(api::tasks::tasks_cancel))
        .route("/task/{id}/retry", post(api::tasks::tasks_retry))
        .route("/task/{id}/events", get(api::tasks::tasks_events))
        .route("/task/{id}/run", put(api::tasks::tasks_run))
        .route("/task/{id}/progress", put(api::tasks::tasks_progress))
        .route("/task/{id}/finish", put(api::tasks::tasks_finish))
        .route("/task/{id}/log", get(logs::tasks_log))
        .route("/task/{id}/log/tail", get(logs::tasks_log_tail))
        .route("/task_type", get(api::types::types_list))
        .route("/task_type/{name}", get(api::types::types_get))
        .route(
            "/worker",
            get(api::workers::workers_list).post(api::workers::workers_launch),
        )
        .route(
            "/worker/{id}",
            get(api::workers::workers_get)
                .put(api::workers::workers_register)
                .delete(api::workers::workers_delete),
        )
        .route(
            "/worker/{id}/heartbeat",
            put(api::workers::workers_heartbeat),
        )
        .route("/worker/{id}/stop", put(api::workers::workers_stop))
        .route("/worker/{id}/restart", put(api::workers::workers_restart))
        .route("/worker/{id}/log", get(logs::workers_log))
        .route("/worker/{id}/log/tail", get(logs::workers_log_tail))
        .route("/worker/{id}/logs", get(logs::workers_logs))
        .route("/queue", get(api::queue::queue_get))
        .route("/queue/pause", put(api::queue::queue_pause))
        .route("/queue/resume", put(api::queue::queue_resume))
        .route("/results/{id}", get(results::results_get_root))
        .route("/results/{id}/{*path}", get(results::results_get))
        .route("/ui", get(pages::tasks_page))
        .route(
            "/ui/tasks",
            post(pages::tasks_create).layer(DefaultBodyLimit::max(upload_limit)),
        )
        .route("/ui/tasks/new", get(pages::tasks_new_page))
        .route("/ui/tasks/{id}", get(pages::tasks_detail_page))
        .route("/ui/tasks/{id}/cancel", post(pages::tasks_cancel))
        .route("/ui/tasks/{id}/delete", post(pages::tasks_delete))
        .route("/ui/tasks/{id}/retry", post(pages::tasks_retry))
        .route("/ui/queue/pause", post(pages::queue_pause))
        .route("/ui/queue/resume", post(pages::queue_resume))
        .route(
            "/ui/workers",
            get(pages::workers_page).post(pages::workers_launch),
        )
        .route("/ui/workers/new", get(pages::workers_new_page))
        .route("/ui/workers/{id}", get(pages::workers_detail_page))
        .route("/ui/workers/{id}/stop", post(pages::workers_stop))
        .route("/ui/workers/{id}/restart", post(pages::workers_restart))
        .route("/ui/workers/{id}/delete", post(pages::workers_delete))
        .route("/ui/task-types", get(pages::types_page))
        .route("/ui/task-types/reload", post(pages::types_reload))
        .route("/ui/task-types/{name}", get(pages::types_detail_page))
        .route("/ui/about", get(pages::about_page))
        .route(
            "/ui/settings",
            get(pages::settings_page).post(pages::settings_save),
        )
        .route("/ui/partials/tasks-rows", get(pages::tasks_rows_partial))
        .route("/ui/partials/new-task", get(pages::new_task_partial))
        .route(
            "/ui/partials/task-type-env",
            get(pages::task_type_env_partial),
        )
        .route(
            "/ui/partials/custom-env-row",
            get(pages::custom_env_row_partial),
        )
        .route(
            "/ui/partials/task-summary/{id}",
            get(pages::task_summary_partial),
        )
        .route(
            "/ui/partials/workers-rows",
            get(pages::workers_rows_partial),
        )
        .route("/ui/partials/new-worker", get(pages::new_worker_partial))
        .route(
            "/ui/partials/worker-summary/{id}",
            get(pages::worker_summary_partial),
        )
        .route("/ui/static/{*path}", get(pages::static_get))
        .route("/ui/sse/tasks", get(sse::tasks_changes))
        .route("/ui/sse/workers", get(sse::workers_changes))
        .route("/ui/sse/events", get(sse_events::events))
        .fallback(api::meta::no_route)
        .method_not_allowed_fallback(api::meta::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.options.max_json_bytes));
    guard::wrap(routes, state.clone()).with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, then ends the live streams and
/// waits for open requests to finish.
///
/// Each connection is HTTP/1 with a header-read timeout: one that has not sent a complete
/// request head within the stall timeout is closed, whether it is new (a client that connects
/// and sends nothing, or stops mid-headers) or kept alive between requests, so idle sockets
/// cannot use up the open files (a body that stalls is `stalled_body`'s). An answer being sent
/// (a stream, a long poll) is never cut, because hyper only runs that timer while it waits for
/// a head. Accept errors (`EMFILE`) are logged and retried by axum's listener, so serving never
/// fails.
pub async fn serve(
    mut listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let mut connections = hyper::server::conn::http1::Builder::new();
    connections
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(state.options.stall_timeout);
    let streams_end = state.shutdown.clone();
    let app = app(state);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, _address) = tokio::select! {
            accepted = axum::serve::Listener::accept(&mut listener) => accepted,
            () = &mut shutdown => break,
        };
        // Each answer and each SSE event is one write: Nagle would hold an event back until
        // the client acknowledged the one before (up to its delayed-ACK time).
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(error = %error, "could not set TCP_NODELAY on a connection");
        }
        let connection = connections.serve_connection(
            hyper_util::rt::TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(app.clone()),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                // A client that hung up or timed out is routine, not the server's fault.
                tracing::debug!(error = %error, "connection ended with an error");
            }
        });
    }
    streams_end.cancel();
    drop(listener);
    graceful.shutdown().await;
}
