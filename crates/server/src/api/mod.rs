//! The JSON handlers of the REST contract, one module per resource, named `<resource>_<verb>`.
//! Each handler parses its input into core types, calls one `Coordinator` method and shapes
//! the answer; errors map through `ApiError` with `?`.

pub mod meta;
pub mod queue;
pub mod tasks;
pub mod types;
pub mod workers;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use blanket_core::{TaskId, WorkerId};

use crate::ApiError;

/// Path parameters whose rejection (a segment that is not UTF-8 once percent-decoded, such
/// as `/task/%ff`) answers in the API's `{"error": ...}` shape instead of axum's plain text.
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(rejection) => Err(ApiError::BadRequest(format!(
                "the URL path is not valid: {} (percent-encode it as UTF-8)",
                rejection.body_text()
            ))),
        }
    }
}

/// A task id from the path, or a 400 saying what an id looks like.
pub fn task_id(text: &str) -> Result<TaskId, ApiError> {
    text.parse().map_err(ApiError::from)
}

/// A worker id from the path, or a 400 saying what an id looks like.
pub fn worker_id(text: &str) -> Result<WorkerId, ApiError> {
    text.parse().map_err(ApiError::from)
}
