//! Worker handlers: register/update (fields merge), heartbeat, stop, delete, list, get.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use blanket_core::TaskId;
use blanket_core::wire::{HeartbeatReply, Worker, WorkerUpdate};

use super::{ApiPath, worker_id};
use crate::error::{ApiJson, ApiQuery};
use crate::{ApiError, AppState};

/// The longest a heartbeat may be held waiting for news.
const MAX_HEARTBEAT_WAIT: Duration = Duration::from_secs(60);

/// `GET /worker/`.
pub async fn workers_list(State(state): State<AppState>) -> Result<Json<Vec<Worker>>, ApiError> {
    Ok(Json(state.coordinator.workers().await?))
}

/// `GET /worker/:id`.
pub async fn workers_get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Worker>, ApiError> {
    Ok(Json(state.coordinator.worker(worker_id(&id)?).await?))
}

/// `PUT /worker/:id`: a worker registers or updates itself; absent fields keep their value.
pub async fn workers_register(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Worker>, ApiError> {
    let id = worker_id(&id)?;
    // Taken as a `Result` so an oversized body answers in JSON like every other error.
    let body = body.map_err(|rejection| {
        if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(format!(
                "the worker JSON is larger than the {}-byte limit (max_json_bytes in the config)",
                state.options.max_json_bytes
            ))
        } else {
            ApiError::BadRequest(format!(
                "the body could not be read: {}",
                rejection.body_text()
            ))
        }
    })?;
    let update: WorkerUpdate = if body.iter().all(u8::is_ascii_whitespace) {
        WorkerUpdate::default()
    } else {
        serde_json::from_slice(&body).map_err(|error| {
            ApiError::BadRequest(format!(
                r#"the worker JSON is not valid: {error} (expected fields like {{"tags": ["bash"], "pid": 1234, "checkInterval": 2}})"#
            ))
        })?
    };
    if let Some(interval) = update.check_interval
        && !(interval.is_finite() && interval >= 0.5)
    {
        return Err(ApiError::BadRequest(format!(
            "checkInterval {interval} is too small: give at least 0.5 seconds"
        )));
    }
    Ok(Json(state.coordinator.register_worker(id, update).await?))
}

/// `PUT /worker/:id/heartbeat?running=ID,ID&wait=SECONDS`: the worker is alive; the answer
/// says whether it must stop and which of the tasks it runs were cancelled.
pub async fn workers_heartbeat(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: ApiQuery,
) -> Result<Json<HeartbeatReply>, ApiError> {
    let id = worker_id(&id)?;
    let mut running = Vec::new();
    for (_, value) in query.pairs().filter(|(name, _)| *name == "running") {
        for item in value
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
        {
            running.push(item.parse::<TaskId>()?);
        }
    }
    let wait = query
        .parse::<f64>("wait", "seconds to wait, e.g. 20")?
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map_or(Duration::ZERO, |seconds| {
            Duration::from_secs_f64(seconds).min(MAX_HEARTBEAT_WAIT)
        });
    Ok(Json(state.coordinator.heartbeat(id, running, wait).await?))
}

/// `PUT /worker/:id/stop?force=true`: stop after the current task, or kill it too.
pub async fn workers_stop(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: ApiQuery,
) -> Result<Json<Worker>, ApiError> {
    let force = query.flag("force")?;
    Ok(Json(
        state
            .coordinator
            .stop_worker(worker_id(&id)?, force)
            .await?,
    ))
}

/// The body of `POST /worker/`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchBody {
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default = "default_check_interval")]
    check_interval: f64,
}

fn default_check_interval() -> f64 {
    2.0
}

/// `POST /worker/`: launches a local worker process; answers once it has registered.
pub async fn workers_launch(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<LaunchBody>,
) -> Result<Json<Worker>, ApiError> {
    Ok(Json(
        state
            .coordinator
            .launch_worker(body.tags, body.check_interval)
            .await?,
    ))
}

/// `PUT /worker/:id/restart`: starts a stopped worker again with its config.
pub async fn workers_restart(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Worker>, ApiError> {
    Ok(Json(
        state.coordinator.restart_worker(worker_id(&id)?).await?,
    ))
}

/// `DELETE /worker/:id`: 409 while it runs.
pub async fn workers_delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Worker>, ApiError> {
    Ok(Json(
        state.coordinator.delete_worker(worker_id(&id)?).await?,
    ))
}
