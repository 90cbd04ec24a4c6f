//! The queue switch: `PUT /queue/pause` stops all claims until `PUT /queue/resume`. The flag
//! is persisted by the coordinator, so a restart keeps a paused queue paused.

use axum::Json;
use axum::extract::State;
use serde_json::{Value, json};

use crate::{ApiError, AppState};

/// `GET /queue/`: whether the queue is paused.
pub async fn queue_get(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "paused": state.coordinator.queue_paused().await? }),
    ))
}

/// `PUT /queue/pause`.
pub async fn queue_pause(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.coordinator.set_queue_paused(true).await?;
    Ok(Json(json!({ "paused": true })))
}

/// `PUT /queue/resume`.
pub async fn queue_resume(State(state): State<AppState>) -> Result<Json<Value>, ApiError> {
    state.coordinator.set_queue_paused(false).await?;
    Ok(Json(json!({ "paused": false })))
}
