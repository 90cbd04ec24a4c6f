//! The worker pages: the list with live rows and the launch form, a worker's page with its
//! log, and the form posts (launch, stop, force-stop, restart, delete) behind them.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use blanket_core::WorkerId;
use blanket_core::wire::{Worker, WorkerStatus};
use serde::Deserialize;

use super::logtail;
use super::task_detail::LogView;
use super::views::{self, Chrome, Moment, Nav};
use super::{FlashKind, Hx, PageError, flash_response, hx_redirect, render, safe_next, see_other};
use crate::AppState;
use crate::api::{ApiPath, worker_id};

/// `GET /ui/workers`.
pub async fn workers_page(State(state): State<AppState>) -> Response {
    let list = worker_list(&state).await;
    let page = WorkersPage {
        chrome: Chrome::new("Workers", Nav::Workers),
        list,
    };
    render(StatusCode::OK, &page)
}

/// `GET /ui/partials/workers-rows`.
pub async fn workers_rows_partial(State(state): State<AppState>) -> Response {
    let list = worker_list(&state).await;
    render(StatusCode::OK, &WorkersRowsPartial { list })
}

/// `GET /ui/workers/new`: the launch form as a page of its own.
pub async fn workers_new_page(State(state): State<AppState>) -> Response {
    let page = NewWorkerPage {
        chrome: Chrome::new("New worker", Nav::Workers),
        form: LaunchForm::blank(&state, true),
    };
    render(StatusCode::OK, &page)
}

/// `GET /ui/partials/new-worker`: the launch form for the panel of the list page.
pub async fn new_worker_partial(State(state): State<AppState>) -> Response {
    let form = LaunchForm::blank(&state, false);
    render(StatusCode::OK, &NewWorkerPartial { form })
}

/// The fields of the launch form.
#[derive(Debug, Default, Deserialize)]
pub struct LaunchFields {
    #[serde(default)]
    tags: String,
    #[serde(default, rename = "checkInterval")]
    check_interval: String,
    #[serde(default)]
    standalone: String,
}

/// `POST /ui/workers`: launches a local worker and answers once it has registered.
pub async fn workers_launch(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    fields: Result<Form<LaunchFields>, FormRejection>,
) -> Response {
    // A body that is not the form must not launch a worker with the defaults.
    let (fields, unreadable) = match fields {
        Ok(Form(fields)) => (fields, None),
        Err(rejection) => (
            LaunchFields::default(),
            Some(format!(
                "The form could not be read ({}): fill it in and send it again.",
                rejection.body_text()
            )),
        ),
    };
    let tags: Vec<String> = fields
        .tags
        .split(',')
        .map(str::trim)
        .filter(|tag| !tag.is_empty())
        .map(str::to_string)
        .collect();
    let interval = match fields.check_interval.trim() {
        "" => Ok(2.0),
        text => text
            .parse::<f64>()
            .ok()
            .filter(|seconds| seconds.is_finite())
            .ok_or_else(|| {
                format!("Check interval {text:?} is not a number of seconds: use e.g. 2 or 0.5.")
            }),
    };
    let outcome = match (unreadable, interval) {
        (Some(message), _) | (None, Err(message)) => Err(message),
        (None, Ok(interval)) => state
            .coordinator
            .launch_worker(tags, interval)
            .await
            .map_err(|error| PageError::from(error).message),
    };
    match outcome {
        Ok(worker) if htmx => {
            let done = NewWorkerDone {
                id: worker.id.to_string(),
                pid: worker.pid,
            };
            render(StatusCode::OK, &done)
        }
        Ok(worker) => see_other(&format!("/ui/workers/{}", worker.id)),
        Err(message) => {
            let form = LaunchForm {
                tags: fields.tags,
                check_interval: fields.check_interval,
                error: Some(message),
                standalone: !fields.standalone.is_empty() || !htmx,
            };
            if htmx {
                render(StatusCode::UNPROCESSABLE_ENTITY, &NewWorkerPartial { form })
            } else {
                let page = NewWorkerPage {
                    chrome: Chrome::new("New worker", Nav::Workers),
                    form,
                };
                render(StatusCode::UNPROCESSABLE_ENTITY, &page)
            }
        }
    }
}

/// `GET /ui/workers/:id`: one worker, with its log.
pub async fn workers_detail_page(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let outcome = async {
        let worker = state.coordinator.worker(parse_worker_id(&id)?).await?;
        let now = blanket_core::wire::now();
        let summary = worker_row(&worker, now);
        let log = if worker.logfile.is_empty() {
            None
        } else {
            let snapshot = logtail::snapshot(worker.logfile.clone().into()).await;
            let live = worker.status != WorkerStatus::Stopped;
            let id = worker.id.to_string();
            Some(LogView::new(
                "worker",
                "Log",
                snapshot,
                live,
                [
                    format!("/worker/{id}/log"),
                    format!("/worker/{id}/logs"),
                    format!("/worker/{id}"),
                ],
                if live {
                    "live worker log"
                } else {
                    "worker log output"
                },
            ))
        };
        Ok::<WorkerDetailPage, PageError>(WorkerDetailPage {
            chrome: Chrome::new(format!("Worker {}", summary.pid), Nav::Workers),
            logfile: worker.logfile.clone(),
            worker: summary.clone(),
            summary: Some(summary),
            log,
        })
    }
    .await;
    match outcome {
        Ok(page) => render(StatusCode::OK, &page),
        Err(error) => error.respond(htmx),
    }
}

/// `GET /ui/partials/worker-summary/:id`: the part of a worker's page that changes.
pub async fn worker_summary_partial(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let id = match parse_worker_id(&id) {
        Ok(id) => id,
        Err(error) => return error.respond(true),
    };
    let summary = match state.coordinator.worker(id).await {
        Ok(worker) => Some(worker_row(&worker, blanket_core::wire::now())),
        Err(blanket_core::Error::NotFound(_)) => None,
        Err(error) => return PageError::from(error).respond(true),
    };
    let partial = WorkerSummaryPartial { summary };
    render(StatusCode::OK, &partial)
}

/// The fields of a worker action's form.
#[derive(Debug, Default, Deserialize)]
pub struct WorkerActionForm {
    #[serde(default)]
    force: Option<String>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    after: Option<String>,
}

/// `POST /ui/workers/:id/stop`: stop after the current task, or with `force=true` at once.
pub async fn workers_stop(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(id): ApiPath<String>,
    form: Result<Form<WorkerActionForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    let force = matches!(form.force.as_deref(), Some("true" | "1" | "on" | "yes"));
    let outcome = match parse_worker_id(&id) {
        Ok(id) => state
            .coordinator
            .stop_worker(id, force)
            .await
            .map_err(PageError::from),
        Err(error) => Err(error),
    };
    let message = if force {
        "is stopping now; its task was killed"
    } else {
        "stops after its current task"
    };
    respond_to_action(outcome, htmx, &form, message)
}

/// `POST /ui/workers/:id/restart`: starts a stopped or lost worker again.
pub async fn workers_restart(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(id): ApiPath<String>,
    form: Result<Form<WorkerActionForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    let outcome = match parse_worker_id(&id) {
        Ok(id) => state
            .coordinator
            .restart_worker(id)
            .await
            .map_err(PageError::from),
        Err(error) => Err(error),
    };
    respond_to_action(outcome, htmx, &form, "was started again")
}

/// `POST /ui/workers/:id/delete`: forgets a worker that is not running.
pub async fn workers_delete(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(id): ApiPath<String>,
    form: Result<Form<WorkerActionForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    let outcome = match parse_worker_id(&id) {
        Ok(id) => state
            .coordinator
            .delete_worker(id)
            .await
            .map_err(PageError::from),
        Err(error) => Err(error),
    };
    respond_to_action(outcome, htmx, &form, "was removed from the list")
}

fn respond_to_action(
    outcome: Result<Worker, PageError>,
    htmx: bool,
    form: &WorkerActionForm,
    done: &str,
) -> Response {
    let next = safe_next(form.next.as_deref(), "/ui/workers");
    match outcome {
        Ok(_) if htmx && form.after.as_deref() == Some("navigate") => hx_redirect(&next),
        Ok(worker) if htmx => flash_response(
            StatusCode::OK,
            FlashKind::Success,
            &format!("Worker {} {done}.", worker_name(&worker)),
            None,
        ),
        Ok(_) => see_other(&next),
        Err(error) => error.respond(htmx),
    }
}

fn worker_name(worker: &Worker) -> String {
    if worker.pid > 0 {
        format!(
            "{} (pid {})",
            views::short_id(&worker.id.to_string()),
            worker.pid
        )
    } else {
        views::short_id(&worker.id.to_string())
    }
}

fn parse_worker_id(text: &str) -> Result<WorkerId, PageError> {
    worker_id(text).map_err(PageError::from)
}

#[derive(Template)]
#[template(path = "workers.html")]
struct WorkersPage {
    chrome: Chrome,
    list: WorkerList,
}

#[derive(Template)]
#[template(path = "workers_rows_partial.html")]
struct WorkersRowsPartial {
    list: WorkerList,
}

#[derive(Template)]
#[template(path = "worker_new.html")]
struct NewWorkerPage {
    chrome: Chrome,
    form: LaunchForm,
}

#[derive(Template)]
#[template(path = "new_worker_form.html")]
struct NewWorkerPartial {
    form: LaunchForm,
}

#[derive(Template)]
#[template(path = "new_worker_done.html")]
struct NewWorkerDone {
    id: String,
    pid: u32,
}

#[derive(Template)]
#[template(path = "worker_detail.html")]
struct WorkerDetailPage {
    chrome: Chrome,
    worker: WorkerRow,
    summary: Option<WorkerRow>,
    logfile: String,
    log: Option<LogView>,
}

#[derive(Template)]
#[template(path = "worker_summary.html")]
struct WorkerSummaryPartial {
    summary: Option<WorkerRow>,
}

/// Every worker, ready to show.
struct WorkerList {
    rows: Vec<WorkerRow>,
    error: Option<String>,
}

/// One worker as a row (and as the summary of its page).
#[derive(Clone)]
struct WorkerRow {
    id: String,
    short_id: String,
    pid: u32,
    status: &'static str,
    tags: String,
    last_heard: Moment,
    started: Moment,
    current_task: String,
    current_short: String,
    check_interval: String,
    launched: bool,
    daemon: bool,
    can_stop: bool,
    can_force: bool,
    can_restart: bool,
    can_delete: bool,
}

/// The launch form.
struct LaunchForm {
    tags: String,
    check_interval: String,
    error: Option<String>,
    standalone: bool,
}

impl LaunchForm {
    fn blank(state: &AppState, standalone: bool) -> LaunchForm {
        LaunchForm {
            tags: views::join_tags(&state.coordinator.config().worker_tags),
            check_interval: "2".into(),
            error: None,
            standalone,
        }
    }
}

async fn worker_list(state: &AppState) -> WorkerList {
    match state.coordinator.workers().await {
        Ok(workers) => {
            let now = blanket_core::wire::now();
            WorkerList {
                rows: workers
                    .iter()
                    .map(|worker| worker_row(worker, now))
                    .collect(),
                error: None,
            }
        }
        Err(error) => WorkerList {
            rows: Vec::new(),
            error: Some(PageError::from(error).message),
        },
    }
}

fn worker_row(worker: &Worker, now: i64) -> WorkerRow {
    let id = worker.id.to_string();
    let current_task = worker
        .current_task
        .map(|task| task.to_string())
        .unwrap_or_default();
    WorkerRow {
        short_id: views::short_id(&id),
        id,
        pid: worker.pid,
        status: views::worker_status(worker.status),
        tags: views::join_tags(&worker.tags),
        last_heard: Moment::at(worker.last_heard_ts, now),
        started: Moment::at(worker.started_ts, now),
        current_short: views::short_id(&current_task),
        current_task,
        check_interval: format!("{} s", worker.check_interval),
        launched: worker.launched,
        daemon: worker.daemon,
        can_stop: worker.status == WorkerStatus::Running,
        can_force: matches!(
            worker.status,
            WorkerStatus::Running | WorkerStatus::Stopping
        ),
        can_restart: matches!(worker.status, WorkerStatus::Stopped | WorkerStatus::Lost),
        can_delete: matches!(worker.status, WorkerStatus::Stopped | WorkerStatus::Lost),
    }
}
