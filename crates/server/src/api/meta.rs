//! Handlers about the server itself: version, effective config, runtime status, the OpenAPI
//! document, and the JSON answers for unknown routes and methods.

use axum::Json;
use axum::extract::State;
use axum::http::{Method, Uri, header};
use axum::response::IntoResponse;
use blanket_core::wire::{NotifyChange, NotifySettings, VersionInfo};
use serde_json::{Value, json};

use crate::error::ApiJson;
use crate::{ApiError, AppState};

/// The OpenAPI document of the REST API, kept in sync with the router by a test.
const OPENAPI: &str = include_str!("../../openapi.json");

/// `GET /version`.
pub async fn version_get() -> Json<VersionInfo> {
    Json(VersionInfo {
        name: "blanket".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        author: "Blanket Desktop developers".into(),
    })
}

/// `GET /config/`: the configuration in effect, secrets hidden, notification settings live.
pub async fn config_get(State(state): State<AppState>) -> Json<Value> {
    Json(config_view(&state.coordinator))
}

/// The configuration as `GET /config/` and the About page show it: as read at start, with the
/// notification settings as they are now.
pub fn config_view(coordinator: &blanket_core::Coordinator) -> Value {
    let mut view = coordinator.config().public_view();
    let notify = coordinator.notify_config();
    view["notify"] = json!({
        "mode": notify.mode.as_str(),
        "min_seconds": notify.min_seconds,
        "when_focused": notify.when_focused,
    });
    view
}

/// `GET /config/notify`: the notification settings, where changes are saved, which are locked.
pub async fn config_notify_get(State(state): State<AppState>) -> Json<NotifySettings> {
    Json(state.coordinator.notify_settings())
}

/// `PUT /config/notify`: changes the notification settings, saved to the config file and
/// live at once.
pub async fn config_notify_put(
    State(state): State<AppState>,
    ApiJson(change): ApiJson<NotifyChange>,
) -> Result<Json<NotifySettings>, ApiError> {
    Ok(Json(state.coordinator.change_notify(change).await?))
}

/// `GET /ops/status/`.
pub async fn status_get(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    let status = state.coordinator.status().await?;
    let workers: serde_json::Map<String, Value> = status
        .workers_by_status
        .iter()
        .map(|(worker_status, count)| (worker_status.as_str().to_string(), json!(count)))
        .collect();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptimeSeconds": status.uptime_seconds,
        "startedTs": status.started_ts,
        "tasks": status.tasks.by_state,
        "workers": workers,
        "subscribers": {
            "tasks": status.task_subscribers,
            "workers": status.worker_subscribers,
            "events": status.event_subscribers,
        },
        "taskTypes": status.task_types,
        "brokenTaskTypes": status.broken_task_types,
        "queuePaused": status.queue_paused,
        "database": state.coordinator.config().database.display().to_string(),
    })))
}

/// `GET /openapi.json`.
pub async fn openapi_get() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

/// Any path no route serves.
pub async fn no_route(uri: Uri) -> ApiError {
    ApiError::NotFound(format!(
        "no such endpoint {}: GET /openapi.json lists the API",
        uri.path()
    ))
}

/// A known path asked with a method it does not take.
pub async fn method_not_allowed(method: Method, uri: Uri) -> impl IntoResponse {
    let message = format!(
        "{method} is not allowed on {}: GET /openapi.json lists the methods of each endpoint",
        uri.path()
    );
    (
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        Json(blanket_core::wire::ErrorBody { error: message }),
    )
}
