//! `GET /results/<task id>/<path>`: the files of a task's directory, and folder listings.
//! Every path is resolved (symlinks included) and must stay inside that task's directory;
//! anything leading out answers 404, exactly like a file that does not exist.

use std::path::{Component, Path as FsPath, PathBuf};

use axum::Json;
use axum::extract::{Request, State};
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::api::{ApiPath, task_id};
use crate::pages::escape_html;
use crate::{ApiError, AppState};

/// One entry of a folder listing.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    name: String,
    is_dir: bool,
    size: u64,
}

/// `GET /results/<task id>`: the task directory's listing.
pub async fn results_get_root(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(&state, &id, "", request).await
}

/// `GET /results/<task id>/<path>`: a file, or a folder's listing.
pub async fn results_get(
    State(state): State<AppState>,
    ApiPath((id, path)): ApiPath<(String, String)>,
    request: Request,
) -> Result<Response, ApiError> {
    serve(&state, &id, &path, request).await
}

async fn serve(
    state: &AppState,
    id: &str,
    path: &str,
    request: Request,
) -> Result<Response, ApiError> {
    let id = task_id(id)?;
    let not_found = || {
        ApiError::NotFound(format!(
            "no file {path:?} in the results of task {id}: GET /results/{id}/ lists them"
        ))
    };
    let relative = FsPath::new(path);
    if relative
        .components()
        .any(|component| !matches!(component, Component::Normal(_)))
    {
        return Err(not_found());
    }
    let wants_json = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|accept| accept.contains("application/json"));
    let Ok(root) =
        tokio::fs::canonicalize(state.coordinator.config().results_dir.join(id.to_string())).await
    else {
        // A task that has not started has no directory yet: its listing is empty.
        if path.is_empty() && state.coordinator.task(id).await.is_ok() {
            return Ok(listing_response(&id.to_string(), path, &[], wants_json));
        }
        return Err(not_found());
    };
    let target = tokio::fs::canonicalize(root.join(relative))
        .await
        .map_err(|_| not_found())?;
    if !target.starts_with(&root) {
        return Err(not_found());
    }
    let metadata = tokio::fs::metadata(&target)
        .await
        .map_err(|_| not_found())?;
    if metadata.is_dir() {
        let entries = list(&root, &target).await.map_err(|_| not_found())?;
        return Ok(listing_response(
            &id.to_string(),
            path,
            &entries,
            wants_json,
        ));
    }
    let response = ServeFile::new(&target)
        .oneshot(request)
        .await
        .map_err(|error| ApiError::Internal(format!("serving {}: {error}", target.display())))?;
    Ok(response.into_response())
}

/// The entries of `dir` that stay inside `root` (a symlink leading out is left out).
async fn list(root: &FsPath, dir: &FsPath) -> std::io::Result<Vec<Entry>> {
    let mut entries = Vec::new();
    let mut reader = tokio::fs::read_dir(dir).await?;
    while let Some(entry) = reader.next_entry().await? {
        let Ok(resolved): Result<PathBuf, _> = tokio::fs::canonicalize(entry.path()).await else {
            continue;
        };
        if !resolved.starts_with(root) {
            continue;
        }
        let Ok(metadata) = tokio::fs::metadata(&resolved).await else {
            continue;
        };
        entries.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            is_dir: metadata.is_dir(),
            size: metadata.len(),
        });
    }
    entries.sort_by(|left, right| left.name.cmp(&right.name));
    Ok(entries)
}

fn listing_response(id: &str, path: &str, entries: &[Entry], wants_json: bool) -> Response {
    if wants_json {
        Json(entries).into_response()
    } else {
        Html(listing_page(id, path, entries)).into_response()
    }
}

fn listing_page(id: &str, path: &str, entries: &[Entry]) -> String {
    let base = if path.is_empty() {
        format!("/results/{id}")
    } else {
        format!("/results/{id}/{}", path.trim_end_matches('/'))
    };
    let rows: String = entries
        .iter()
        .map(|entry| {
            let suffix = if entry.is_dir { "/" } else { "" };
            format!(
                "<li><a href=\"{}/{}{suffix}\">{}{suffix}</a> <small>{} bytes</small></li>\n",
                escape_html(&base),
                escape_html(&entry.name),
                escape_html(&entry.name),
                entry.size
            )
        })
        .collect();
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Results of {id}</title></head>\
         <body><h1>Results of task {id}</h1><ul>\n{rows}</ul></body></html>\n",
        id = escape_html(id)
    )
}
