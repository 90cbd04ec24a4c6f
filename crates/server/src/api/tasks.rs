//! Task handlers: submit (JSON or multipart with files), list with filters, get, delete,
//! cancel, the audit trail, and the worker-side claim/run/progress/finish reports.

use std::time::Duration;

use axum::Json;
use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use blanket_core::coordinator::{FinishReport, StagedUpload};
use blanket_core::filter::TaskFilter;
use blanket_core::upload::UploadNames;
use blanket_core::wire::{ClaimedTask, NewTask, Task, TaskEvent};
use blanket_core::{TaskState, WorkerId};
use tokio::io::AsyncWriteExt;

use super::{ApiPath, task_id, worker_id};
use crate::error::ApiQuery;
use crate::{ApiError, AppState};

/// The longest a claim may wait for a task.
const MAX_CLAIM_WAIT: Duration = Duration::from_secs(60);

/// `GET /task/`: filtered list, or a bare number with `count=true`.
pub async fn tasks_list(
    State(state): State<AppState>,
    query: ApiQuery,
) -> Result<Response, ApiError> {
    let filter = TaskFilter::from_query_pairs(query.pairs())?;
    if query.flag("count")? {
        let count = state.coordinator.count_tasks(filter).await?;
        return Ok(Json(count).into_response());
    }
    Ok(Json(state.coordinator.tasks(filter).await?).into_response())
}

/// `POST /task/`: JSON `{"type": ..., "environment": {...}}`, or multipart with a part `data`
/// holding that JSON and any number of file parts saved into the task's directory.
pub async fn tasks_create(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ApiError> {
    let is_multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/form-data"));
    let task = if is_multipart {
        let multipart = Multipart::from_request(request, &state)
            .await
            .map_err(|rejection| {
                ApiError::BadRequest(format!(
                    "the multipart body is malformed: {}",
                    rejection.body_text()
                ))
            })?;
        submit_multipart(&state, multipart).await?
    } else {
        let limit = state.options.max_json_bytes;
        let bytes = axum::body::to_bytes(request.into_body(), limit)
            .await
            .map_err(|error| json_body_error(&error, limit))?;
        let new_task = parse_new_task(&bytes)?;
        state.coordinator.submit(new_task, None).await?
    };
    Ok(created(&task))
}

fn created(task: &Task) -> Response {
    let location = format!("/task/{}", task.id);
    (
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        Json(task),
    )
        .into_response()
}

fn parse_new_task(bytes: &[u8]) -> Result<NewTask, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::BadRequest(
            r#"the body is empty: send JSON like {"type": "echo_task", "environment": {"NAME": "world"}}"#.into(),
        ));
    }
    serde_json::from_slice(bytes).map_err(|error| {
        ApiError::BadRequest(format!(
            r#"the task JSON is not valid: {error} (expected {{"type": "echo_task", "environment": {{"NAME": "world"}}}})"#
        ))
    })
}

async fn submit_multipart(state: &AppState, mut multipart: Multipart) -> Result<Task, ApiError> {
    let upload = state.coordinator.stage_upload().await?;
    match receive_parts(state, &upload, &mut multipart).await {
        Ok(new_task) => Ok(state.coordinator.submit(new_task, Some(upload)).await?),
        Err(error) => {
            if let Err(cleanup) = tokio::fs::remove_dir_all(upload.path()).await {
                tracing::warn!(error = %cleanup, "could not remove a rejected upload");
            }
            Err(error)
        }
    }
}

/// Streams every file part to disk (never whole in memory) and returns the `data` part.
async fn receive_parts(
    state: &AppState,
    upload: &StagedUpload,
    multipart: &mut Multipart,
) -> Result<NewTask, ApiError> {
    let limit = state.options.max_upload_bytes;
    let mut received: u64 = 0;
    let mut new_task = None;
    let mut upload_names = UploadNames::default();
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or_default().to_string();
        if name == "data" {
            let bytes = field.bytes().await.map_err(multipart_error)?;
            if bytes.len() > state.options.max_json_bytes {
                return Err(ApiError::TooLarge(
                    "the data part is larger than the 1 MiB JSON limit".into(),
                ));
            }
            new_task = Some(parse_new_task(&bytes)?);
            continue;
        }
        let relative = upload_names.accept(&name)?;
        let destination = upload.path().join(&relative);
        if let Some(parent) = destination.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|error| io_error("creating an upload folder", &error))?;
        }
        let mut file = tokio::fs::File::create(&destination)
            .await
            .map_err(|error| io_error("creating an uploaded file", &error))?;
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            received += chunk.len() as u64;
            if received > limit {
                return Err(ApiError::TooLarge(format!(
                    "the uploaded files are larger than the {limit}-byte limit (max_upload_bytes in the config)"
                )));
            }
            file.write_all(&chunk)
                .await
                .map_err(|error| io_error("writing an uploaded file", &error))?;
        }
        file.flush()
            .await
            .map_err(|error| io_error("writing an uploaded file", &error))?;
    }
    new_task.ok_or_else(|| {
        ApiError::BadRequest(
            r#"the multipart body has no part named "data": add one holding the task JSON, e.g. {"type": "wordcount_task"}"#
                .into(),
        )
    })
}

/// A JSON body that could not be read: over the limit (413), or broken off or badly framed
/// by the client (400).
fn json_body_error(error: &axum::Error, limit: usize) -> ApiError {
    let over_limit = std::error::Error::source(error)
        .is_some_and(|source| source.is::<http_body_util::LengthLimitError>());
    if over_limit {
        ApiError::TooLarge(format!(
            "the JSON body is larger than the {limit}-byte limit: send large inputs as uploaded files (multipart)"
        ))
    } else {
        ApiError::BadRequest(format!(
            "the body could not be read ({error}): send it whole, with a Content-Length or valid chunked framing"
        ))
    }
}

fn multipart_error(error: axum::extract::multipart::MultipartError) -> ApiError {
    if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::TooLarge(
            "the upload is larger than the limit (max_upload_bytes in the config)".into(),
        )
    } else {
        ApiError::BadRequest(format!(
            "the multipart body is malformed: {}",
            error.body_text()
        ))
    }
}

fn io_error(what: &str, error: &std::io::Error) -> ApiError {
    if error.raw_os_error() == Some(28) || error.kind() == std::io::ErrorKind::ReadOnlyFilesystem {
        ApiError::Busy(format!(
            "{what} failed ({error}): free disk space or make the data directory writable"
        ))
    } else {
        ApiError::Internal(format!("{what}: {error}"))
    }
}

/// `GET /task/:id`.
pub async fn tasks_get(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.coordinator.task(task_id(&id)?).await?))
}

/// `DELETE /task/:id`: the record and its directory; a live task is stopped first.
pub async fn tasks_delete(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.coordinator.delete_task(task_id(&id)?).await?))
}

/// `PUT /task/:id/cancel`.
pub async fn tasks_cancel(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Task>, ApiError> {
    Ok(Json(state.coordinator.cancel_task(task_id(&id)?).await?))
}

/// `POST /task/:id/retry`: a new task like a finished one, its uploaded files copied: 201
/// with the new task; 409 while the original has not finished.
pub async fn tasks_retry(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Response, ApiError> {
    Ok(created(&state.coordinator.retry(task_id(&id)?).await?))
}

/// `GET /task/:id/events`: the audit trail.
pub async fn tasks_events(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<Vec<TaskEvent>>, ApiError> {
    Ok(Json(state.coordinator.task_events(task_id(&id)?).await?))
}

/// `POST /task/claim/:workerId?wait=SECONDS`: 200 with the task, or 204 when nothing fits.
pub async fn tasks_claim(
    State(state): State<AppState>,
    ApiPath(worker): ApiPath<String>,
    query: ApiQuery,
) -> Result<Response, ApiError> {
    let worker = worker_id(&worker)?;
    let wait = query
        .parse::<f64>("wait", "seconds to wait, e.g. 30")?
        .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
        .map_or(Duration::ZERO, |seconds| {
            Duration::from_secs_f64(seconds).min(MAX_CLAIM_WAIT)
        });
    match state.coordinator.claim(worker, wait).await? {
        Some(claimed) => Ok(Json(ClaimedTask {
            task: claimed.task,
            task_type: claimed.task_type,
        })
        .into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `PUT /task/:id/run?pid=&timeout=&typeDigest=&workerId=`.
pub async fn tasks_run(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: ApiQuery,
) -> Result<Json<Task>, ApiError> {
    let pid = query
        .parse::<u32>("pid", "the process id, a whole number")?
        .unwrap_or(0);
    let timeout = query.parse::<u64>("timeout", "seconds, a whole number")?;
    let worker = fencing_worker(&query)?;
    Ok(Json(
        state
            .coordinator
            .run_task(task_id(&id)?, pid, timeout, worker)
            .await?,
    ))
}

/// `PUT /task/:id/progress?progress=0..100`.
pub async fn tasks_progress(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: ApiQuery,
) -> Result<Json<Task>, ApiError> {
    let progress = query
        .parse::<u8>("progress", "a whole number from 0 to 100")?
        .ok_or_else(|| {
            ApiError::BadRequest("query parameter progress is missing: add ?progress=42".into())
        })?;
    let worker = fencing_worker(&query)?;
    Ok(Json(
        state
            .coordinator
            .report_progress(task_id(&id)?, progress, worker)
            .await?,
    ))
}

/// `PUT /task/:id/finish?state=SUCCESS|ERROR|TIMEDOUT|STOPPED&exitCode=&reason=`.
pub async fn tasks_finish(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: ApiQuery,
) -> Result<Json<Task>, ApiError> {
    let final_state = query
        .parse::<TaskState>("state", "SUCCESS, ERROR, TIMEDOUT or STOPPED")?
        .ok_or_else(|| ApiError::BadRequest("query parameter state is missing: add ?state=SUCCESS (or ERROR, TIMEDOUT, STOPPED)".into()))?;
    let report = FinishReport {
        state: final_state,
        exit_code: query.parse::<i32>("exitCode", "the process exit code, a whole number")?,
        reason: query
            .get("reason")
            .filter(|reason| !reason.is_empty())
            .map(str::to_string),
    };
    let worker = fencing_worker(&query)?;
    Ok(Json(
        state
            .coordinator
            .finish_task(task_id(&id)?, report, worker)
            .await?,
    ))
}

/// The optional `workerId` a worker sends so a report on a task it no longer owns is refused.
fn fencing_worker(query: &ApiQuery) -> Result<Option<WorkerId>, ApiError> {
    match query.get("workerId") {
        None | Some("") => Ok(None),
        Some(text) => worker_id(text).map(Some),
    }
}
