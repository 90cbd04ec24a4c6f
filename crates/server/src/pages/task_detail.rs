//! A task's page: every field, the timeline from the audit trail, the files of its folder,
//! and its logs, tail first (see `logtail`), followed live by the page. The part that changes
//! is a partial the page refreshes on `tasks-changed`.

use std::path::PathBuf;

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use blanket_core::TaskId;
use blanket_core::wire::{Task, TaskEvent};

use super::logtail::{self, LogSnapshot};
use super::tasks::{encode_component, parse_task_id};
use super::views::{self, Chrome, Moment, Nav};
use super::{Hx, PageError, render};
use crate::AppState;
use crate::api::ApiPath;

/// The most entries of a result folder a task page lists.
const MAX_LISTED_FILES: usize = 200;

/// `GET /ui/tasks/:id`: everything about one task, with its logs.
pub async fn tasks_detail_page(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(id): ApiPath<String>,
) -> Response {
    match task_detail(&state, &id).await {
        Ok(page) => render(StatusCode::OK, &page),
        Err(error) => error.respond(htmx),
    }
}

/// `GET /ui/partials/task-summary/:id`: the part of a task's page that changes.
pub async fn task_summary_partial(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let summary = match parse_task_id(&id) {
        Ok(id) => match state.coordinator.task(id).await {
            Ok(task) => task_summary(&state, &task).await,
            Err(blanket_core::Error::NotFound(_)) => TaskSummary::deleted(id),
            Err(error) => return PageError::from(error).respond(true),
        },
        Err(error) => return error.respond(true),
    };
    render(StatusCode::OK, &TaskSummaryPartial { summary })
}

#[derive(Template)]
#[template(path = "task_detail.html")]
struct TaskDetailPage {
    chrome: Chrome,
    detail: TaskDetail,
    summary: TaskSummary,
    logs: Vec<LogView>,
}

#[derive(Template)]
#[template(path = "task_summary.html")]
struct TaskSummaryPartial {
    summary: TaskSummary,
}

/// The unchanging part of a task's page.
struct TaskDetail {
    id: String,
    short_id: String,
    task_type: String,
    type_exists: bool,
    environment: Vec<(String, String)>,
    result_dir: String,
    type_digest: String,
    type_digest_short: String,
    type_source: String,
}

/// The part of a task's page that a change refreshes.
struct TaskSummary {
    id: String,
    deleted: bool,
    state: &'static str,
    state_class: &'static str,
    terminal: bool,
    progress: u8,
    tags: String,
    priority: i64,
    attempts: u32,
    timeout: String,
    created: Moment,
    started: Moment,
    finished: Moment,
    updated: Moment,
    duration: String,
    exit_code: String,
    reason: String,
    worker_id: String,
    worker_short: String,
    pid: u32,
    timeline: Vec<TimelineEntry>,
    files: Vec<FileEntry>,
    more_files: bool,
}

struct TimelineEntry {
    moment: Moment,
    from: String,
    to: &'static str,
    to_class: &'static str,
    actor: String,
    reason: String,
}

struct FileEntry {
    name: String,
    href: String,
    size: String,
    is_dir: bool,
}

/// One of a task's (or worker's) logs, as a tab of the page.
pub struct LogView {
    /// `stdout`, `stderr` or `worker`.
    pub stream: &'static str,
    pub label: &'static str,
    pub text: String,
    pub start: u64,
    pub lines: u64,
    pub size: String,
    pub exists: bool,
    pub live: bool,
    pub follow_url: String,
    pub download_url: String,
    /// The JSON record that says whether the log is complete once its stream ends.
    pub status_url: String,
    pub aria_label: &'static str,
}

impl LogView {
    /// A log tab from its snapshot; `urls` are the follow, download and status URLs.
    pub fn new(
        stream: &'static str,
        label: &'static str,
        snapshot: LogSnapshot,
        live: bool,
        urls: [String; 3],
        aria_label: &'static str,
    ) -> LogView {
        let [follow_url, download_url, status_url] = urls;
        LogView {
            stream,
            label,
            size: views::human_size(snapshot.size),
            text: snapshot.text,
            start: snapshot.start,
            lines: snapshot.lines,
            exists: snapshot.exists,
            live,
            follow_url,
            download_url,
            status_url,
            aria_label,
        }
    }
}

impl TaskSummary {
    fn deleted(id: TaskId) -> TaskSummary {
        let id = id.to_string();
        TaskSummary {
            id,
            deleted: true,
            state: "",
            state_class: "",
            terminal: true,
            progress: 0,
            tags: String::new(),
            priority: 0,
            attempts: 0,
            timeout: String::new(),
            created: Moment::default(),
            started: Moment::default(),
            finished: Moment::default(),
            updated: Moment::default(),
            duration: String::new(),
            exit_code: String::new(),
            reason: String::new(),
            worker_id: String::new(),
            worker_short: String::new(),
            pid: 0,
            timeline: Vec::new(),
            files: Vec::new(),
            more_files: false,
        }
    }
}

async fn task_detail(state: &AppState, id: &str) -> Result<TaskDetailPage, PageError> {
    let id = parse_task_id(id)?;
    let task = state.coordinator.task(id).await?;
    let (summary, frozen, stdout, stderr) = tokio::join!(
        task_summary(state, &task),
        state.coordinator.task_type_of(id),
        logtail::snapshot(PathBuf::from(&task.result_dir).join("blanket.stdout.log")),
        logtail::snapshot(PathBuf::from(&task.result_dir).join("blanket.stderr.log")),
    );
    let id_text = task.id.to_string();
    let live = !task.state.is_terminal();
    let logs = vec![
        LogView::new(
            "stdout",
            "Output",
            stdout,
            live,
            [
                format!("/task/{id_text}/log"),
                format!("/results/{id_text}/blanket.stdout.log"),
                format!("/task/{id_text}"),
            ],
            "task stdout",
        ),
        LogView::new(
            "stderr",
            "Errors",
            stderr,
            live,
            [
                format!("/task/{id_text}/log?stream=stderr"),
                format!("/results/{id_text}/blanket.stderr.log"),
                format!("/task/{id_text}"),
            ],
            "task stderr",
        ),
    ];
    let type_source = frozen.map(|(_, source)| source).unwrap_or_default();
    let detail = TaskDetail {
        short_id: views::short_id(&id_text),
        id: id_text,
        type_exists: state.coordinator.catalog().get(&task.task_type).is_some(),
        task_type: task.task_type.clone(),
        environment: task
            .default_env
            .iter()
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        result_dir: task.result_dir.clone(),
        type_digest: task.type_digest.clone(),
        type_digest_short: task.type_digest.chars().take(12).collect(),
        type_source,
    };
    Ok(TaskDetailPage {
        chrome: Chrome::new(format!("Task {}", detail.short_id), Nav::Tasks),
        detail,
        summary,
        logs,
    })
}

async fn task_summary(state: &AppState, task: &Task) -> TaskSummary {
    let now = blanket_core::wire::now();
    let (events, (files, more_files)) =
        tokio::join!(state.coordinator.task_events(task.id), list_files(task));
    let timeline = events
        .unwrap_or_default()
        .iter()
        .map(|event| timeline_entry(event, now))
        .collect();
    let id = task.id.to_string();
    let worker_id = if task.worker_id.is_none() {
        String::new()
    } else {
        task.worker_id.to_string()
    };
    TaskSummary {
        worker_short: views::short_id(&worker_id),
        worker_id,
        id,
        deleted: false,
        state: task.state.as_str(),
        state_class: views::state_class(task.state),
        terminal: task.state.is_terminal(),
        progress: task.progress.min(100),
        tags: views::join_tags(&task.tags),
        priority: task.priority,
        attempts: task.attempts,
        timeout: views::short_duration(task.timeout),
        created: Moment::at(task.created_ts, now),
        started: Moment::at(task.started_ts, now),
        finished: Moment::at(task.finished_ts, now),
        updated: Moment::at(task.last_updated_ts, now),
        duration: views::task_duration(task, now),
        exit_code: task
            .exit_code
            .map(|code| code.to_string())
            .unwrap_or_default(),
        reason: task.reason.clone().unwrap_or_default(),
        pid: task.pid,
        timeline,
        files,
        more_files,
    }
}

fn timeline_entry(event: &TaskEvent, now: i64) -> TimelineEntry {
    TimelineEntry {
        moment: Moment::at(event.ts, now),
        from: event
            .from
            .map(|state| state.as_str().to_string())
            .unwrap_or_default(),
        to: event.to.as_str(),
        to_class: views::state_class(event.to),
        actor: event.actor.clone(),
        reason: event.reason.clone().unwrap_or_default(),
    }
}

/// The entries of the task's folder (not recursive), sorted, at most [`MAX_LISTED_FILES`].
async fn list_files(task: &Task) -> (Vec<FileEntry>, bool) {
    let id = task.id.to_string();
    let Ok(mut reader) = tokio::fs::read_dir(&task.result_dir).await else {
        return (Vec::new(), false);
    };
    let mut entries = Vec::new();
    let mut more = false;
    while let Ok(Some(entry)) = reader.next_entry().await {
        if entries.len() >= MAX_LISTED_FILES {
            more = true;
            break;
        }
        let Ok(metadata) = entry.metadata().await else {
            continue;
        };
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_dir = metadata.is_dir();
        entries.push(FileEntry {
            href: format!(
                "/results/{id}/{}{}",
                encode_component(&name),
                if is_dir { "/" } else { "" }
            ),
            size: if is_dir {
                String::new()
            } else {
                views::human_size(metadata.len())
            },
            name,
            is_dir,
        });
    }
    entries.sort_by(|left, right| left.name.cmp(&right.name));
    (entries, more)
}
