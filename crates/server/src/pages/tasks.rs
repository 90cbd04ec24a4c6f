//! The task list: its filter form (values in the URL), paging, live rows and the queue
//! switch, and the row actions (cancel, delete, retry). Every handler calls the same
//! `Coordinator` method as the JSON API; the new-task form and a task's page live beside it.

use askama::Template;
use axum::Form;
use axum::extract::State;
use axum::extract::rejection::FormRejection;
use axum::http::StatusCode;
use axum::response::Response;
use blanket_core::filter::{TaskFilter, parse_time};
use blanket_core::wire::Task;
use blanket_core::{TaskId, TaskState};
use serde::Deserialize;

use super::views::{self, Chrome, Moment, Nav};
use super::{FlashKind, Hx, PageError, flash_response, hx_redirect, render, safe_next, see_other};
use crate::AppState;
use crate::api::ApiPath;
use crate::api::task_id;
use crate::error::ApiQuery;

/// Rows per page when the URL does not say.
const DEFAULT_PAGE_SIZE: usize = 50;
/// The most rows one page renders, whatever the URL asks.
const MAX_PAGE_SIZE: usize = 1000;

/// `GET /ui/`: the task list.
pub async fn tasks_page(State(state): State<AppState>, query: ApiQuery) -> Response {
    let list = task_list(&state, &query).await;
    let status = if list.error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let page = TasksPage {
        chrome: Chrome::new("Tasks", Nav::Tasks),
        filter: filter_form(&state, &query),
        queue: QueueState {
            paused: list.queue_paused,
        },
        oob: false,
        list,
    };
    render(status, &page)
}

/// `GET /ui/partials/tasks-rows`: the rows, the pager and the queue state, for a refresh.
pub async fn tasks_rows_partial(State(state): State<AppState>, query: ApiQuery) -> Response {
    let list = task_list(&state, &query).await;
    let partial = TasksRowsPartial {
        queue: QueueState {
            paused: list.queue_paused,
        },
        oob: true,
        list,
    };
    render(StatusCode::OK, &partial)
}

/// The fields of a row action's form.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    /// Where a plain post returns to.
    #[serde(default)]
    next: Option<String>,
    /// `navigate`: htmx goes to `next` too (a deleted task's own page cannot stay).
    #[serde(default)]
    after: Option<String>,
}

/// `POST /ui/tasks/:id/cancel`.
pub async fn tasks_cancel(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(id): ApiPath<String>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    let outcome = match parse_task_id(&id) {
        Ok(id) => state
            .coordinator
            .cancel_task(id)
            .await
            .map_err(PageError::from),
        Err(error) => Err(error),
    };
    match outcome {
        Ok(task) if htmx => flash_response(
            StatusCode::OK,
            FlashKind::Success,
            &format!("Task {} cancelled.", views::short_id(&task.id.to_string())),
            None,
        ),
        Ok(task) => see_other(&safe_next(
            form.next.as_deref(),
            &format!("/ui/tasks/{}", task.id),
        )),
        Err(error) => error.respond(htmx),
    }
}

/// `POST /ui/tasks/:id/delete`: the record and its folder; a live task is stopped first.
pub async fn tasks_delete(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(id): ApiPath<String>,
    form: Result<Form<ActionForm>, FormRejection>,
) -> Response {
    let form = form.map(|Form(form)| form).unwrap_or_default();
    let outcome = match parse_task_id(&id) {
        Ok(id) => state
            .coordinator
            .delete_task(id)
            .await
            .map_err(PageError::from),
        Err(error) => Err(error),
    };
    let next = safe_next(form.next.as_deref(), "/ui/");
    match outcome {
        Ok(_) if htmx && form.after.as_deref() == Some("navigate") => hx_redirect(&next),
        Ok(task) if htmx => flash_response(
            StatusCode::OK,
            FlashKind::Success,
            &format!("Task {} deleted.", views::short_id(&task.id.to_string())),
            None,
        ),
        Ok(_) => see_other(&next),
        Err(error) => error.respond(htmx),
    }
}

/// `POST /ui/tasks/:id/retry`: a new task like a finished one, its uploaded files copied
/// (`Coordinator::retry`).
pub async fn tasks_retry(
    State(state): State<AppState>,
    Hx(htmx): Hx,
    ApiPath(id): ApiPath<String>,
) -> Response {
    let outcome =
        async { Ok::<Task, PageError>(state.coordinator.retry(parse_task_id(&id)?).await?) }.await;
    match outcome {
        Ok(task) if htmx => {
            let id = task.id.to_string();
            flash_response(
                StatusCode::OK,
                FlashKind::Success,
                &format!("Submitted again as task {}.", views::short_id(&id)),
                Some((format!("/ui/tasks/{id}"), "Open it".into())),
            )
        }
        Ok(task) => see_other(&format!("/ui/tasks/{}", task.id)),
        Err(error) => error.respond(htmx),
    }
}

/// `POST /ui/queue/pause`: no task is claimed until resumed.
pub async fn queue_pause(State(state): State<AppState>, Hx(htmx): Hx) -> Response {
    set_queue(&state, htmx, true).await
}

/// `POST /ui/queue/resume`.
pub async fn queue_resume(State(state): State<AppState>, Hx(htmx): Hx) -> Response {
    set_queue(&state, htmx, false).await
}

async fn set_queue(state: &AppState, htmx: bool, paused: bool) -> Response {
    match state.coordinator.set_queue_paused(paused).await {
        Ok(()) if htmx => render(
            StatusCode::OK,
            &QueueStatePartial {
                queue: QueueState { paused },
                oob: false,
            },
        ),
        Ok(()) => see_other("/ui/"),
        Err(error) => PageError::from(error).respond(htmx),
    }
}

#[derive(Template)]
#[template(path = "tasks.html")]
struct TasksPage {
    chrome: Chrome,
    filter: FilterForm,
    queue: QueueState,
    /// Whether the pager and queue state go out of band (a refresh), not in place (a page).
    oob: bool,
    list: TaskList,
}

#[derive(Template)]
#[template(path = "tasks_rows_partial.html")]
struct TasksRowsPartial {
    queue: QueueState,
    oob: bool,
    list: TaskList,
}

#[derive(Template)]
#[template(path = "queue_state.html")]
struct QueueStatePartial {
    queue: QueueState,
    oob: bool,
}

/// Whether the queue is paused.
struct QueueState {
    paused: bool,
}

/// One page of the task list, ready to show.
struct TaskList {
    rows: Vec<TaskRow>,
    total: u64,
    total_text: String,
    first: u64,
    last: u64,
    previous: Option<String>,
    next: Option<String>,
    /// The URL of this list's rows partial (same filters and page).
    rows_url: String,
    /// The URL of this page, where a row action returns to.
    page_url: String,
    filtered: bool,
    error: Option<String>,
    queue_paused: bool,
    type_count: usize,
    first_type: Option<String>,
}

/// One task as a row.
struct TaskRow {
    id: String,
    short_id: String,
    /// The id's last characters: ids of one second share their first eight.
    id_tail: String,
    task_type: String,
    state: &'static str,
    state_class: &'static str,
    progress: u8,
    tags: String,
    created: Moment,
    duration: String,
    exit_code: String,
    can_cancel: bool,
    can_retry: bool,
}

/// The filter form, filled from the URL.
struct FilterForm {
    states: Vec<Choice>,
    types: Vec<Choice>,
    required_tags: String,
    created_after: String,
    created_before: String,
    limit: String,
    oldest_first: bool,
    active: bool,
}

/// A checkbox of the filter form.
struct Choice {
    value: String,
    checked: bool,
}

async fn task_list(state: &AppState, query: &ApiQuery) -> TaskList {
    let catalog = state.coordinator.catalog();
    let type_count = catalog.len();
    let first_type = catalog
        .listing()
        .into_iter()
        .find(|task_type| task_type.error.is_none())
        .map(|task_type| task_type.name);
    let pairs: Vec<(String, String)> = query
        .pairs()
        .filter(|(_, value)| !value.trim().is_empty())
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let query_text = encode_query(&pairs, &[]);
    let rows_url = format!("/ui/partials/tasks-rows{query_text}");
    let page_url = format!("/ui/{query_text}");
    let queue_paused = state.coordinator.queue_paused().await.unwrap_or(false);
    let mut list = TaskList {
        rows: Vec::new(),
        total: 0,
        total_text: String::new(),
        first: 0,
        last: 0,
        previous: None,
        next: None,
        rows_url,
        page_url,
        filtered: is_filtered(&pairs),
        error: None,
        queue_paused,
        type_count,
        first_type,
    };
    let filter = match list_filter(&pairs) {
        Ok(filter) => filter,
        Err(message) => {
            list.error = Some(message);
            return list;
        }
    };
    let (tasks, total) = tokio::join!(
        state.coordinator.tasks(filter.clone()),
        state.coordinator.count_tasks(filter.clone())
    );
    let (tasks, total) = match (tasks, total) {
        (Ok(tasks), Ok(total)) => (tasks, total),
        (Err(error), _) | (_, Err(error)) => {
            list.error = Some(PageError::from(error).message);
            return list;
        }
    };
    let now = blanket_core::wire::now();
    let offset = filter.offset as u64;
    list.total = total;
    list.total_text = views::thousands(total);
    list.first = if tasks.is_empty() { 0 } else { offset + 1 };
    list.last = offset + tasks.len() as u64;
    if filter.offset > 0 {
        let previous = filter.offset.saturating_sub(filter.limit);
        list.previous = Some(format!(
            "/ui/{}",
            encode_query(&pairs, &[("offset", previous)])
        ));
    }
    if list.last < total {
        let next = filter.offset + filter.limit;
        list.next = Some(format!("/ui/{}", encode_query(&pairs, &[("offset", next)])));
    }
    list.rows = tasks.iter().map(|task| task_row(task, now)).collect();
    list
}

/// The list filter of the UI: the API's, newest first and 50 a page unless the URL says.
fn list_filter(pairs: &[(String, String)]) -> Result<TaskFilter, String> {
    let mut filter = TaskFilter::from_query_pairs(
        pairs
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str())),
    )
    .map_err(|error| PageError::from(error).message)?;
    if !pairs.iter().any(|(name, _)| name == "limit") {
        filter.limit = DEFAULT_PAGE_SIZE;
    }
    filter.limit = filter.limit.clamp(1, MAX_PAGE_SIZE);
    if !pairs.iter().any(|(name, _)| name == "reverseSort") {
        filter.reverse = true;
    }
    Ok(filter)
}

fn is_filtered(pairs: &[(String, String)]) -> bool {
    pairs.iter().any(|(name, _)| {
        matches!(
            name.as_str(),
            "states" | "types" | "requiredTags" | "maxTags" | "createdAfter" | "createdBefore"
        )
    })
}

fn task_row(task: &Task, now: i64) -> TaskRow {
    let id = task.id.to_string();
    TaskRow {
        short_id: views::short_id(&id),
        id_tail: id.chars().skip(20).collect(),
        id,
        task_type: task.task_type.clone(),
        state: task.state.as_str(),
        state_class: views::state_class(task.state),
        progress: task.progress.min(100),
        tags: views::join_tags(&task.tags),
        created: Moment::at(task.created_ts, now),
        duration: views::task_duration(task, now),
        exit_code: task
            .exit_code
            .map(|code| code.to_string())
            .unwrap_or_default(),
        can_cancel: !task.state.is_terminal(),
        can_retry: task.state.is_terminal(),
    }
}

fn filter_form(state: &AppState, query: &ApiQuery) -> FilterForm {
    let values = |key: &str| -> Vec<String> {
        query
            .pairs()
            .filter(|(name, _)| *name == key)
            .flat_map(|(_, value)| value.split(','))
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_string)
            .collect()
    };
    let chosen_states: Vec<String> = values("states")
        .into_iter()
        .map(|state| state.to_ascii_uppercase())
        .collect();
    let states = TaskState::ALL
        .iter()
        .map(|state| Choice {
            value: state.as_str().to_string(),
            checked: chosen_states.iter().any(|chosen| chosen == state.as_str()),
        })
        .collect();
    let chosen_types = values("types");
    let mut type_names: Vec<String> = state
        .coordinator
        .catalog()
        .listing()
        .into_iter()
        .filter(|task_type| task_type.error.is_none())
        .map(|task_type| task_type.name)
        .collect();
    for chosen in &chosen_types {
        if !type_names.contains(chosen) {
            type_names.push(chosen.clone());
        }
    }
    let types = type_names
        .into_iter()
        .map(|name| Choice {
            checked: chosen_types.contains(&name),
            value: name,
        })
        .collect();
    let time_value = |key: &str| -> String {
        let text = query.get(key).unwrap_or("").trim();
        if text.is_empty() {
            return String::new();
        }
        // A datetime-local input shows only its own format; other accepted forms become it.
        parse_time(text).map_or_else(|_| text.to_string(), views::input_time)
    };
    let limit = query.get("limit").unwrap_or("").trim().to_string();
    FilterForm {
        states,
        types,
        required_tags: values("requiredTags").join(","),
        created_after: time_value("createdAfter"),
        created_before: time_value("createdBefore"),
        oldest_first: matches!(
            query
                .get("reverseSort")
                .map(str::to_ascii_lowercase)
                .as_deref(),
            Some("false" | "0" | "no" | "off")
        ),
        active: query.pairs().any(|(name, value)| {
            !value.trim().is_empty()
                && matches!(
                    name,
                    "states" | "types" | "requiredTags" | "createdAfter" | "createdBefore"
                )
        }),
        limit,
    }
}

/// `?a=1&b=2` from `pairs`, with `overrides` replacing (or adding) their keys; empty when
/// nothing is left. An `offset` of 0 is left out.
fn encode_query(pairs: &[(String, String)], overrides: &[(&str, usize)]) -> String {
    let mut parts: Vec<String> = pairs
        .iter()
        .filter(|(name, _)| !overrides.iter().any(|(key, _)| key == name))
        .map(|(name, value)| format!("{}={}", encode_component(name), encode_component(value)))
        .collect();
    for (key, value) in overrides {
        if *key == "offset" && *value == 0 {
            continue;
        }
        parts.push(format!("{key}={value}"));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("?{}", parts.join("&"))
    }
}

/// Percent-encodes everything but unreserved characters (and keeps `,` readable).
pub(super) fn encode_component(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b',' => {
                encoded.push(char::from(byte));
            }
            other => encoded.push_str(&format!("%{other:02X}")),
        }
    }
    encoded
}

pub(super) fn parse_task_id(text: &str) -> Result<TaskId, PageError> {
    task_id(text).map_err(PageError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    #[test]
    fn query_encoding_replaces_the_offset_and_escapes_values() {
        let query = pairs(&[
            ("states", "RUNNING,WAITING"),
            ("requiredTags", "a b&c"),
            ("offset", "50"),
        ]);
        assert_eq!(
            encode_query(&query, &[("offset", 100)]),
            "?states=RUNNING,WAITING&requiredTags=a%20b%26c&offset=100"
        );
        assert_eq!(
            encode_query(&query, &[("offset", 0)]),
            "?states=RUNNING,WAITING&requiredTags=a%20b%26c"
        );
        assert_eq!(encode_query(&[], &[]), "");
    }

    #[test]
    fn the_ui_lists_newest_first_fifty_a_page_unless_told() {
        let filter = list_filter(&[]).unwrap();
        assert!(filter.reverse);
        assert_eq!(filter.limit, DEFAULT_PAGE_SIZE);
        let filter = list_filter(&pairs(&[("reverseSort", "false"), ("limit", "100000")])).unwrap();
        assert!(!filter.reverse);
        assert_eq!(filter.limit, MAX_PAGE_SIZE);
        assert!(list_filter(&pairs(&[("createdAfter", "yesterday")])).is_err());
    }
}
