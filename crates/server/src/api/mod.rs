//! The JSON handlers of the REST contract, one module per resource, named `<resource>_<verb>`.
//! Each handler parses its input into core types, calls one `Coordinator` method and shapes
//! the answer; errors map through `ApiError` with `?`.

pub mod meta;
pub mod queue;
pub mod tasks;
pub mod types;
pub mod workers;

use blanket_core::{TaskId, WorkerId};

use crate::ApiError;

/// A task id from the path, or a 400 saying what an id looks like.
pub fn task_id(text: &str) -> Result<TaskId, ApiError> {
    text.parse().map_err(ApiError::from)
}

/// A worker id from the path, or a 400 saying what an id looks like.
pub fn worker_id(text: &str) -> Result<WorkerId, ApiError> {
    text.parse().map_err(ApiError::from)
}
