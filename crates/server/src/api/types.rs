//! Task type handlers: the list (broken files included, with their error) and one type.

use axum::Json;
use axum::extract::State;
use blanket_core::wire::TaskType;

use super::ApiPath;
use crate::{ApiError, AppState};

/// `GET /task_type/`: every type, broken files listed with `error` and `line`.
pub async fn types_list(State(state): State<AppState>) -> Json<Vec<TaskType>> {
    Json(state.coordinator.catalog().listing())
}

/// `GET /task_type/:name`.
pub async fn types_get(
    State(state): State<AppState>,
    ApiPath(name): ApiPath<String>,
) -> Result<Json<TaskType>, ApiError> {
    state
        .coordinator
        .catalog()
        .listing()
        .into_iter()
        .find(|task_type| task_type.name == name)
        .map(Json)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "task type {name:?} not found: GET /task_type/ lists the known types"
            ))
        })
}
