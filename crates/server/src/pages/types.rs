//! The task type pages: every type with its description and tags, broken files with their
//! error and line, and one type's variables and TOML source. Reading only, plus a reload.

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blanket_core::wire::TaskType;

use super::views::{self, Chrome, Nav};
use super::{Hx, PageError, hx_redirect, render, see_other};
use crate::AppState;
use crate::api::ApiPath;

/// The most of a broken file's text its page shows.
const MAX_SOURCE_BYTES: u64 = 256 * 1024;

/// `GET /ui/task-types`.
pub async fn types_page(State(state): State<AppState>) -> Response {
    let catalog = state.coordinator.catalog();
    let (good, broken): (Vec<TaskType>, Vec<TaskType>) = catalog
        .listing()
        .into_iter()
        .partition(|task_type| task_type.error.is_none());
    let page = TypesPage {
        chrome: Chrome::new("Task Types", Nav::TaskTypes),
        types: good.iter().map(type_row).collect(),
        broken: broken.iter().map(broken_row).collect(),
        dirs: catalog
            .dirs()
            .iter()
            .map(|dir| dir.display().to_string())
            .collect(),
    };
    render(StatusCode::OK, &page)
}

/// `GET /ui/task-types/:name`: a type's variables and its file, or a broken file's error.
pub async fn types_detail_page(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(name): ApiPath<String>,
) -> Response {
    let catalog = state.coordinator.catalog();
    let Some(spec) = catalog
        .listing()
        .into_iter()
        .find(|task_type| task_type.name == name)
    else {
        return PageError::new(
            StatusCode::NOT_FOUND,
            format!("task type {name:?} not found: the Task Types page lists the known types"),
        )
        .respond(htmx);
    };
    let source = match catalog.get(&name) {
        Some(loaded) => loaded.source.clone(),
        None => read_source(&spec.config_file).await,
    };
    let marked = spec.line.unwrap_or(0);
    let lines = source
        .lines()
        .enumerate()
        .map(|(index, text)| SourceLine {
            number: index + 1,
            text: text.to_string(),
            marked: index + 1 == marked,
        })
        .collect();
    let page = TypeDetailPage {
        chrome: Chrome::new(format!("Task type {name}"), Nav::TaskTypes),
        row: type_row(&spec),
        broken: spec.error.as_ref().map(|_| broken_row(&spec)),
        command: spec.command.clone(),
        executor: spec.executor.clone(),
        defaults: spec
            .environment
            .default
            .iter()
            .map(|variable| Variable {
                name: variable.name.clone(),
                value: variable.value.clone(),
                description: variable.description.clone(),
            })
            .collect(),
        required: spec
            .environment
            .required
            .iter()
            .map(|variable| Variable {
                name: variable.name.clone(),
                value: variable.kind.clone(),
                description: variable.description.clone(),
            })
            .collect(),
        optional: spec
            .environment
            .optional
            .iter()
            .map(|variable| Variable {
                name: variable.name.clone(),
                value: variable.value.clone(),
                description: variable.description.clone(),
            })
            .collect(),
        files: spec
            .files_to_include
            .iter()
            .map(|entry| entry.join(" → "))
            .collect(),
        extra: spec
            .extra
            .iter()
            .map(|(key, value)| (key.clone(), value.to_string()))
            .collect(),
        lines,
    };
    render(StatusCode::OK, &page)
}

/// `POST /ui/task-types/reload`: reads the type folders again.
pub async fn types_reload(State(state): State<AppState>, Hx(htmx): Hx) -> Response {
    match state.coordinator.reload_types().await {
        Ok(_) if htmx => hx_redirect("/ui/task-types"),
        Ok(_) => see_other("/ui/task-types"),
        Err(error) => PageError::from(error).respond(htmx),
    }
}

async fn read_source(path: &str) -> String {
    if path.is_empty() {
        return String::new();
    }
    let Ok(metadata) = tokio::fs::metadata(path).await else {
        return String::new();
    };
    if metadata.len() > MAX_SOURCE_BYTES {
        return format!(
            "# The file is {} long; open it in an editor to see it.",
            views::human_size(metadata.len())
        );
    }
    tokio::fs::read(path)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
        .unwrap_or_default()
}

#[derive(Template)]
#[template(path = "task_types.html")]
struct TypesPage {
    chrome: Chrome,
    types: Vec<TypeRow>,
    broken: Vec<BrokenRow>,
    dirs: Vec<String>,
}

#[derive(Template)]
#[template(path = "task_type_detail.html")]
struct TypeDetailPage {
    chrome: Chrome,
    row: TypeRow,
    broken: Option<BrokenRow>,
    command: String,
    executor: String,
    defaults: Vec<Variable>,
    required: Vec<Variable>,
    optional: Vec<Variable>,
    files: Vec<String>,
    extra: Vec<(String, String)>,
    lines: Vec<SourceLine>,
}

struct TypeRow {
    name: String,
    description: String,
    tags: String,
    timeout: String,
    variables: usize,
    config_file: String,
    digest: String,
}

struct BrokenRow {
    name: String,
    config_file: String,
    error: String,
    line: String,
}

struct Variable {
    name: String,
    value: String,
    description: String,
}

struct SourceLine {
    number: usize,
    text: String,
    marked: bool,
}

fn type_row(spec: &TaskType) -> TypeRow {
    let environment = &spec.environment;
    TypeRow {
        name: spec.name.clone(),
        description: spec.description.clone(),
        tags: views::join_tags(&spec.tags),
        timeout: views::short_duration(spec.timeout),
        variables: environment.default.len()
            + environment.required.len()
            + environment.optional.len(),
        config_file: spec.config_file.clone(),
        digest: spec.version_hash.chars().take(12).collect(),
    }
}

fn broken_row(spec: &TaskType) -> BrokenRow {
    BrokenRow {
        name: spec.name.clone(),
        config_file: spec.config_file.clone(),
        error: spec.error.clone().unwrap_or_default(),
        line: spec.line.map(|line| line.to_string()).unwrap_or_default(),
    }
}
