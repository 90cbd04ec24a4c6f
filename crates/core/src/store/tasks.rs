//! Task rows: insert, read, list with filters, state changes with their audit rows, claims
//! and deletes. Every state change checks `TaskState::check_transition` inside the same
//! transaction that writes it, so two racing changes cannot both apply.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter, types::Value};

use super::{Store, sql_error};
use crate::error::{Error, Result};
use crate::filter::TaskFilter;
use crate::id::{TaskId, WorkerId};
use crate::state::TaskState;
use crate::wire::{self, Task, TaskEvent};

const TASK_COLUMNS: &str = "id, type, state, tags, env, created_ts, started_ts, last_updated_ts, \
    finished_ts, timeout, progress, worker_id, pid, result_dir, type_digest, exit_code, priority, \
    attempts, reason";

/// How many waiting tasks a claim examines per query while looking for one whose tags fit.
const CLAIM_SCAN_CHUNK: i64 = 64;

/// Everything needed to store a new task and its frozen type.
#[derive(Clone, Debug)]
pub struct NewTaskRow {
    pub id: TaskId,
    pub task_type: String,
    pub tags: Vec<String>,
    pub environment: BTreeMap<String, String>,
    pub timeout: u64,
    pub priority: i64,
    pub result_dir: String,
    pub type_digest: String,
    /// The type file's text, frozen with the task.
    pub type_source: String,
    /// The parsed type as JSON, frozen with the task.
    pub type_spec: wire::TaskType,
    /// The files uploaded with it, relative to its directory with `/` between folders.
    pub uploads: Vec<String>,
    pub actor: String,
    /// Why it was submitted, for its first audit row (a retry names its original).
    pub reason: Option<String>,
}

/// A state change asked of a task. `worker`, when given, fences the change: it applies only
/// if the task is still assigned to that worker.
#[derive(Clone, Debug)]
pub enum TaskChange {
    /// `CLAIMED` -> `RUNNING`.
    Run {
        pid: u32,
        timeout: Option<u64>,
        worker: Option<WorkerId>,
    },
    /// Progress of a running task, 0-100; not a transition, so no audit row.
    Progress {
        progress: u8,
        worker: Option<WorkerId>,
    },
    /// `RUNNING` (or `CLAIMED`) -> a terminal state.
    Finish {
        state: TaskState,
        exit_code: Option<i32>,
        reason: Option<String>,
        worker: Option<WorkerId>,
    },
    /// Any live state -> `STOPPED`, at a person's request.
    Cancel { reason: String },
    /// `CLAIMED`/`RUNNING` -> `WAITING`, when its worker was lost and its type allows it.
    Requeue { reason: String },
}

/// A task that was just claimed, with the frozen type its worker must run.
#[derive(Clone, Debug)]
pub struct Claimed {
    pub task: Task,
    pub task_type: wire::TaskType,
}

/// How many tasks are in each state.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskCounts {
    pub by_state: BTreeMap<&'static str, u64>,
}

impl Store {
    /// Stores a new `WAITING` task with its frozen type and its first audit row.
    pub async fn insert_task(&self, row: NewTaskRow) -> Result<Task> {
        self.write(move |connection| insert_task(connection, &row))
            .await
    }

    /// One task.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn task(&self, id: TaskId) -> Result<Task> {
        self.read(move |connection| load_task(connection, id)).await
    }

    /// The tasks that pass `filter`, oldest first unless it says reverse.
    pub async fn list_tasks(&self, filter: TaskFilter) -> Result<Vec<Task>> {
        self.read(move |connection| list_tasks(connection, &filter, false).map(|(tasks, _)| tasks))
            .await
    }

    /// How many tasks pass `filter`, ignoring its limit and offset.
    pub async fn count_tasks(&self, filter: TaskFilter) -> Result<u64> {
        self.read(move |connection| list_tasks(connection, &filter, true).map(|(_, count)| count))
            .await
    }

    /// A task's audit trail, oldest first.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn task_events(&self, id: TaskId) -> Result<Vec<TaskEvent>> {
        self.read(move |connection| {
            let seq = task_seq(connection, id)?;
            let mut statement = connection
                .prepare_cached(
                    "SELECT ts, from_state, to_state, actor, reason FROM task_events \
                     WHERE task_seq = ?1 ORDER BY rowid",
                )
                .map_err(sql_error)?;
            let rows = statement
                .query_map([seq], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Option<String>>(1)?,
                        row.get::<_, String>(2)?,
                        row.get::<_, String>(3)?,
                        row.get::<_, Option<String>>(4)?,
                    ))
                })
                .map_err(sql_error)?;
            let mut events = Vec::new();
            for row in rows {
                let (ts, from, to, actor, reason) = row.map_err(sql_error)?;
                events.push(TaskEvent {
                    ts,
                    from: from.as_deref().map(parse_state).transpose()?,
                    to: parse_state(&to)?,
                    actor,
                    reason,
                });
            }
            Ok(events)
        })
        .await
    }

    /// The files uploaded with a task, relative to its directory, sorted; empty for a task
    /// submitted before uploads were recorded.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn task_uploads(&self, id: TaskId) -> Result<Vec<String>> {
        self.read(move |connection| {
            let seq = task_seq(connection, id)?;
            let mut statement = connection
                .prepare_cached("SELECT path FROM task_uploads WHERE task_seq = ?1 ORDER BY path")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([seq], |row| row.get::<_, String>(0))
                .map_err(sql_error)?;
            rows.collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql_error)
        })
        .await
    }

    /// The type frozen into a task at submit time.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn frozen_type(&self, id: TaskId) -> Result<(wire::TaskType, String)> {
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT t.spec, t.source FROM tasks JOIN task_types t ON t.digest = tasks.type_digest \
                     WHERE tasks.id = ?1",
                    [id.to_string()],
                    |row| Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?)),
                )
                .optional()
                .map_err(sql_error)?
                .ok_or_else(|| not_found(id))
                .and_then(|(spec, source)| Ok((parse_json(&spec, "frozen task type")?, source)))
        })
        .await
    }

    /// Applies `change` to a task, writing an audit row for a transition.
    ///
    /// # Errors
    /// `NotFound` for an unknown id, `Conflict` when the current state (or the fencing
    /// worker) does not allow it.
    pub async fn change_task(&self, id: TaskId, change: TaskChange, actor: String) -> Result<Task> {
        self.write(move |connection| change_task(connection, id, &change, &actor))
            .await
    }

    /// Claims the first waiting task, by priority then age, whose tags the worker has.
    /// Runs as one write, so no two workers can claim the same task.
    ///
    /// # Errors
    /// `NotFound` for an unregistered worker. A stopped or stopping worker gets `None`.
    pub async fn claim_task(&self, worker_id: WorkerId) -> Result<Option<Claimed>> {
        self.write(move |connection| claim_task(connection, worker_id))
            .await
    }

    /// Deletes a task and its audit trail; a live one is stopped first (in the same write).
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn delete_task(&self, id: TaskId, actor: String) -> Result<Task> {
        self.write(move |connection| {
            let mut task = load_task(connection, id)?;
            if !task.state.is_terminal() {
                task = change_task(
                    connection,
                    id,
                    &TaskChange::Cancel {
                        reason: "deleted".into(),
                    },
                    &actor,
                )?;
            }
            connection
                .execute("DELETE FROM tasks WHERE id = ?1", [id.to_string()])
                .map_err(sql_error)?;
            Ok(task)
        })
        .await
    }

    /// How many tasks are in each state.
    pub async fn task_counts(&self) -> Result<TaskCounts> {
        self.read(|connection| {
            let mut statement = connection
                .prepare_cached("SELECT state, COUNT(*) FROM tasks GROUP BY state")
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
                })
                .map_err(sql_error)?;
            let mut counts = TaskCounts::default();
            for state in TaskState::ALL {
                counts.by_state.insert(state.as_str(), 0);
            }
            for row in rows {
                let (state, count) = row.map_err(sql_error)?;
                let state = parse_state(&state)?;
                counts
                    .by_state
                    .insert(state.as_str(), u64::try_from(count).unwrap_or(0));
            }
            Ok(counts)
        })
        .await
    }

    /// Gives back the live tasks of a worker that is gone: `CLAIMED` ones return to the
    /// queue; `RUNNING` ones end `ERROR` with `reason`, or return to the queue when their type
    /// says `requeue_on_lost`. Returns the changed tasks.
    pub async fn release_tasks_of(&self, worker_id: WorkerId, reason: String) -> Result<Vec<Task>> {
        self.write(move |connection| release_tasks_of(connection, worker_id, &reason))
            .await
    }

    /// The live (`CLAIMED` or `RUNNING`) tasks assigned to a worker.
    pub async fn live_tasks_of(&self, worker_id: WorkerId) -> Result<Vec<Task>> {
        self.read(move |connection| live_tasks_of(connection, worker_id))
            .await
    }
}

fn insert_task(connection: &Connection, row: &NewTaskRow) -> Result<Task> {
    let now = wire::now();
    let spec = serde_json::to_string(&row.type_spec)
        .map_err(|error| Error::Internal(format!("cannot encode task type: {error}")))?;
    connection
        .prepare_cached(
            "INSERT OR IGNORE INTO task_types (digest, name, source, spec, created_ts) VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .and_then(|mut statement| {
            statement.execute(params![row.type_digest, row.task_type, row.type_source, spec, now])
        })
        .map_err(sql_error)?;
    let tags = to_json(&row.tags)?;
    let environment = to_json(&row.environment)?;
    let timeout = i64::try_from(row.timeout).unwrap_or(i64::MAX);
    connection
        .prepare_cached(
            "INSERT INTO tasks (id, type, state, tags, env, created_ts, last_updated_ts, timeout, \
             result_dir, type_digest, priority) VALUES (?1, ?2, 'WAITING', ?3, ?4, ?5, ?5, ?6, ?7, ?8, ?9)",
        )
        .and_then(|mut statement| {
            statement.execute(params![
                row.id.to_string(),
                row.task_type,
                tags,
                environment,
                row.id.created_seconds(),
                timeout,
                row.result_dir,
                row.type_digest,
                row.priority
            ])
        })
        .map_err(sql_error)?;
    let seq = connection.last_insert_rowid();
    let mut upload_statement = connection
        .prepare_cached("INSERT OR IGNORE INTO task_uploads (task_seq, path) VALUES (?1, ?2)")
        .map_err(sql_error)?;
    for path in &row.uploads {
        upload_statement
            .execute(params![seq, path])
            .map_err(sql_error)?;
    }
    insert_event(
        connection,
        seq,
        None,
        TaskState::Waiting,
        &row.actor,
        row.reason.as_deref(),
    )?;
    load_task(connection, row.id)
}

pub(super) fn change_task(
    connection: &Connection,
    id: TaskId,
    change: &TaskChange,
    actor: &str,
) -> Result<Task> {
    let task = load_task(connection, id)?;
    let now = wire::now();
    let fence = |worker: &Option<WorkerId>| match worker {
        Some(worker) if *worker != task.worker_id => Err(Error::Conflict(format!(
            "task {id} is no longer assigned to worker {worker} (it is {} on worker {}): stop working on it",
            task.state, task.worker_id
        ))),
        _ => Ok(()),
    };
    let id_text = id.to_string();
    let (to, reason) = match change {
        TaskChange::Run {
            pid,
            timeout,
            worker,
        } => {
            fence(worker)?;
            task.state.check_transition(TaskState::Running)?;
            let timeout = timeout.map(|timeout| i64::try_from(timeout).unwrap_or(i64::MAX));
            connection
                .execute(
                    "UPDATE tasks SET state = 'RUNNING', pid = ?2, started_ts = ?3, last_updated_ts = ?3, \
                     timeout = COALESCE(?4, timeout) WHERE id = ?1",
                    params![id_text, pid, now, timeout],
                )
                .map_err(sql_error)?;
            (TaskState::Running, None)
        }
        TaskChange::Progress { progress, worker } => {
            fence(worker)?;
            if task.state != TaskState::Running {
                return Err(Error::Conflict(format!(
                    "task {id} is {} and only a RUNNING task reports progress",
                    task.state
                )));
            }
            connection
                .execute(
                    "UPDATE tasks SET progress = ?2, last_updated_ts = ?3 WHERE id = ?1",
                    params![id_text, progress, now],
                )
                .map_err(sql_error)?;
            return load_task(connection, id);
        }
        TaskChange::Finish {
            state,
            exit_code,
            reason,
            worker,
        } => {
            fence(worker)?;
            if !state.is_terminal() {
                return Err(Error::Invalid(format!(
                    "finish state {state} is not a final state: use SUCCESS, ERROR, TIMEDOUT or STOPPED"
                )));
            }
            task.state.check_transition(*state)?;
            connection
                .execute(
                    "UPDATE tasks SET state = ?2, exit_code = ?3, reason = ?4, finished_ts = ?5, \
                     last_updated_ts = ?5, progress = CASE WHEN ?2 = 'SUCCESS' THEN 100 ELSE progress END \
                     WHERE id = ?1",
                    params![id_text, state.as_str(), exit_code, reason, now],
                )
                .map_err(sql_error)?;
            (*state, reason.clone())
        }
        TaskChange::Cancel { reason } => {
            task.state.check_transition(TaskState::Stopped)?;
            connection
                .execute(
                    "UPDATE tasks SET state = 'STOPPED', reason = ?2, finished_ts = ?3, last_updated_ts = ?3 \
                     WHERE id = ?1",
                    params![id_text, reason, now],
                )
                .map_err(sql_error)?;
            (TaskState::Stopped, Some(reason.clone()))
        }
        TaskChange::Requeue { reason } => {
            task.state.check_transition(TaskState::Waiting)?;
            connection
                .execute(
                    "UPDATE tasks SET state = 'WAITING', worker_id = ?2, pid = 0, started_ts = 0, progress = 0, \
                     reason = ?3, last_updated_ts = ?4 WHERE id = ?1",
                    params![id_text, WorkerId::NONE.to_string(), reason, now],
                )
                .map_err(sql_error)?;
            (TaskState::Waiting, Some(reason.clone()))
        }
    };
    let seq = task_seq(connection, id)?;
    insert_event(
        connection,
        seq,
        Some(task.state),
        to,
        actor,
        reason.as_deref(),
    )?;
    load_task(connection, id)
}

fn claim_task(connection: &Connection, worker_id: WorkerId) -> Result<Option<Claimed>> {
    let worker = connection
        .query_row(
            "SELECT tags, stopped OR stop_requested FROM workers WHERE id = ?1",
            [worker_id.to_string()],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?)),
        )
        .optional()
        .map_err(sql_error)?;
    let Some((worker_tags, stopping)) = worker else {
        return Err(Error::NotFound(format!(
            "worker {worker_id} is not registered: register it first with PUT /worker/{worker_id}"
        )));
    };
    let now = wire::now();
    connection
        .execute(
            "UPDATE workers SET last_heard_ts = ?2, lost = 0 WHERE id = ?1",
            params![worker_id.to_string(), now],
        )
        .map_err(sql_error)?;
    if stopping || super::workers::queue_paused(connection)? {
        return Ok(None);
    }
    let worker_tags: Vec<String> = parse_json(&worker_tags, "worker tags")?;
    let mut statement = connection
        .prepare_cached(
            "SELECT seq, id, tags FROM tasks WHERE state = 'WAITING' \
             ORDER BY priority DESC, seq LIMIT ?1 OFFSET ?2",
        )
        .map_err(sql_error)?;
    let mut offset = 0;
    loop {
        let candidates = statement
            .query_map([CLAIM_SCAN_CHUNK, offset], |row| {
                Ok((
                    row.get::<_, i64>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })
            .map_err(sql_error)?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(sql_error)?;
        if candidates.is_empty() {
            return Ok(None);
        }
        for (seq, id, tags) in &candidates {
            let task_tags: Vec<String> = parse_json(tags, "task tags")?;
            // A worker registered with no tags at all takes any task (API contract).
            let fits =
                worker_tags.is_empty() || task_tags.iter().all(|tag| worker_tags.contains(tag));
            if !fits {
                continue;
            }
            connection
                .execute(
                    "UPDATE tasks SET state = 'CLAIMED', worker_id = ?2, last_updated_ts = ?3, \
                     attempts = attempts + 1, reason = NULL WHERE seq = ?1",
                    params![seq, worker_id.to_string(), now],
                )
                .map_err(sql_error)?;
            insert_event(
                connection,
                *seq,
                Some(TaskState::Waiting),
                TaskState::Claimed,
                &format!("worker:{worker_id}"),
                None,
            )?;
            let id: TaskId = id.parse()?;
            let task = load_task(connection, id)?;
            let spec = connection
                .query_row(
                    "SELECT spec FROM task_types WHERE digest = ?1",
                    [&task.type_digest],
                    |row| row.get::<_, String>(0),
                )
                .map_err(sql_error)?;
            return Ok(Some(Claimed {
                task,
                task_type: parse_json(&spec, "frozen task type")?,
            }));
        }
        offset += CLAIM_SCAN_CHUNK;
    }
}

pub(super) fn release_tasks_of(
    connection: &Connection,
    worker_id: WorkerId,
    reason: &str,
) -> Result<Vec<Task>> {
    let mut released = Vec::new();
    for task in live_tasks_of(connection, worker_id)? {
        let requeue =
            task.state == TaskState::Claimed || requeue_on_lost(connection, &task.type_digest)?;
        let change = if requeue {
            TaskChange::Requeue {
                reason: reason.to_string(),
            }
        } else {
            TaskChange::Finish {
                state: TaskState::Error,
                exit_code: None,
                reason: Some(reason.to_string()),
                worker: None,
            }
        };
        released.push(change_task(connection, task.id, &change, "coordinator")?);
    }
    Ok(released)
}

fn requeue_on_lost(connection: &Connection, digest: &str) -> Result<bool> {
    let spec: String = connection
        .query_row(
            "SELECT spec FROM task_types WHERE digest = ?1",
            [digest],
            |row| row.get(0),
        )
        .map_err(sql_error)?;
    let spec: wire::TaskType = parse_json(&spec, "frozen task type")?;
    Ok(spec.requeue_on_lost)
}

pub(super) fn live_tasks_of(connection: &Connection, worker_id: WorkerId) -> Result<Vec<Task>> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {TASK_COLUMNS} FROM tasks WHERE worker_id = ?1 AND state IN ('CLAIMED', 'RUNNING') ORDER BY seq"
        ))
        .map_err(sql_error)?;
    let rows = statement
        .query_map([worker_id.to_string()], read_task_row)
        .map_err(sql_error)?;
    rows.map(|row| row.map_err(sql_error).and_then(finish_task_row))
        .collect()
}

fn list_tasks(
    connection: &Connection,
    filter: &TaskFilter,
    count_only: bool,
) -> Result<(Vec<Task>, u64)> {
    let mut conditions = Vec::new();
    let mut values: Vec<Value> = Vec::new();
    if !filter.states.is_empty() {
        conditions.push(format!("state IN ({})", placeholders(filter.states.len())));
        values.extend(
            filter
                .states
                .iter()
                .map(|state| Value::Text(state.as_str().into())),
        );
    }
    if !filter.types.is_empty() {
        conditions.push(format!("type IN ({})", placeholders(filter.types.len())));
        values.extend(filter.types.iter().map(|name| Value::Text(name.clone())));
    }
    // Ids start with their creation second, so a time range is an id range on the unique index.
    if let Some(after) = filter.created_after {
        conditions.push("id >= ?".into());
        values.push(Value::Text(TaskId::lowest_at(after).to_string()));
    }
    if let Some(before) = filter.created_before {
        // Inclusive, like createdAfter: every id of the second `before` is below the next one.
        conditions.push("id < ?".into());
        values.push(Value::Text(
            TaskId::lowest_at(before.saturating_add(1)).to_string(),
        ));
    }
    let where_clause = if conditions.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", conditions.join(" AND "))
    };
    let filters_tags = !filter.required_tags.is_empty() || filter.max_tags.is_some();
    if count_only && !filters_tags {
        let count: i64 = connection
            .query_row(
                &format!("SELECT COUNT(*) FROM tasks {where_clause}"),
                params_from_iter(values),
                |row| row.get(0),
            )
            .map_err(sql_error)?;
        return Ok((Vec::new(), u64::try_from(count).unwrap_or(0)));
    }
    let order = if filter.reverse { "DESC" } else { "ASC" };
    let limit = i64::try_from(filter.limit).unwrap_or(i64::MAX);
    let offset = i64::try_from(filter.offset).unwrap_or(i64::MAX);
    // Tag filters are checked here rather than in SQL (tags are a JSON list), so paging
    // happens after them.
    let paging = if filters_tags {
        String::new()
    } else {
        format!("LIMIT {limit} OFFSET {offset}")
    };
    let sql =
        format!("SELECT {TASK_COLUMNS} FROM tasks {where_clause} ORDER BY seq {order} {paging}");
    let mut statement = connection.prepare_cached(&sql).map_err(sql_error)?;
    let rows = statement
        .query_map(params_from_iter(values), read_task_row)
        .map_err(sql_error)?;
    let mut tasks = Vec::new();
    let mut matched: u64 = 0;
    for row in rows {
        let task = finish_task_row(row.map_err(sql_error)?)?;
        if filters_tags {
            if !filter.matches_tags(&task.tags) {
                continue;
            }
            matched += 1;
            if count_only || matched <= filter.offset as u64 {
                continue;
            }
        }
        tasks.push(task);
        if !count_only && tasks.len() >= filter.limit {
            break;
        }
    }
    Ok((tasks, matched))
}

fn load_task(connection: &Connection, id: TaskId) -> Result<Task> {
    let mut statement = connection
        .prepare_cached(&format!("SELECT {TASK_COLUMNS} FROM tasks WHERE id = ?1"))
        .map_err(sql_error)?;
    let row = statement
        .query_row([id.to_string()], read_task_row)
        .optional()
        .map_err(sql_error)?;
    row.ok_or_else(|| not_found(id)).and_then(finish_task_row)
}

fn task_seq(connection: &Connection, id: TaskId) -> Result<i64> {
    connection
        .query_row(
            "SELECT seq FROM tasks WHERE id = ?1",
            [id.to_string()],
            |row| row.get(0),
        )
        .optional()
        .map_err(sql_error)?
        .ok_or_else(|| not_found(id))
}

fn insert_event(
    connection: &Connection,
    seq: i64,
    from: Option<TaskState>,
    to: TaskState,
    actor: &str,
    reason: Option<&str>,
) -> Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO task_events (task_seq, ts, from_state, to_state, actor, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .and_then(|mut statement| {
            statement.execute(params![seq, wire::now(), from.map(TaskState::as_str), to.as_str(), actor, reason])
        })
        .map_err(sql_error)?;
    Ok(())
}

/// The raw columns of a task row, converted outside rusqlite's closure so that a corrupt
/// value becomes our error rather than a panic.
struct TaskRow {
    id: String,
    task_type: String,
    state: String,
    tags: String,
    environment: String,
    created_ts: i64,
    started_ts: i64,
    last_updated_ts: i64,
    finished_ts: i64,
    timeout: i64,
    progress: i64,
    worker_id: String,
    pid: i64,
    result_dir: String,
    type_digest: String,
    exit_code: Option<i64>,
    priority: i64,
    attempts: i64,
    reason: Option<String>,
}

/// Reads the columns in `TASK_COLUMNS` order.
fn read_task_row(row: &Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: row.get(0)?,
        task_type: row.get(1)?,
        state: row.get(2)?,
        tags: row.get(3)?,
        environment: row.get(4)?,
        created_ts: row.get(5)?,
        started_ts: row.get(6)?,
        last_updated_ts: row.get(7)?,
        finished_ts: row.get(8)?,
        timeout: row.get(9)?,
        progress: row.get(10)?,
        worker_id: row.get(11)?,
        pid: row.get(12)?,
        result_dir: row.get(13)?,
        type_digest: row.get(14)?,
        exit_code: row.get(15)?,
        priority: row.get(16)?,
        attempts: row.get(17)?,
        reason: row.get(18)?,
    })
}

fn finish_task_row(row: TaskRow) -> Result<Task> {
    Ok(Task {
        id: row.id.parse()?,
        task_type: row.task_type,
        state: parse_state(&row.state)?,
        tags: parse_json(&row.tags, "task tags")?,
        default_env: parse_json(&row.environment, "task environment")?,
        created_ts: row.created_ts,
        started_ts: row.started_ts,
        last_updated_ts: row.last_updated_ts,
        finished_ts: row.finished_ts,
        timeout: u64::try_from(row.timeout).unwrap_or(0),
        progress: u8::try_from(row.progress.clamp(0, 100)).unwrap_or(0),
        worker_id: row.worker_id.parse()?,
        pid: u32::try_from(row.pid).unwrap_or(0),
        result_dir: row.result_dir,
        type_digest: row.type_digest,
        exit_code: row.exit_code.and_then(|code| i32::try_from(code).ok()),
        priority: row.priority,
        attempts: u32::try_from(row.attempts).unwrap_or(0),
        reason: row.reason,
    })
}

fn placeholders(count: usize) -> String {
    vec!["?"; count].join(", ")
}

fn parse_state(text: &str) -> Result<TaskState> {
    text.parse()
        .map_err(|_| Error::Internal(format!("the database holds an unknown task state {text:?}")))
}

pub(super) fn parse_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> Result<T> {
    serde_json::from_str(text)
        .map_err(|error| Error::Internal(format!("the database holds unreadable {what}: {error}")))
}

pub(super) fn to_json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|error| {
        Error::Internal(format!("cannot encode a value for the database: {error}"))
    })
}

fn not_found(id: TaskId) -> Error {
    Error::NotFound(format!(
        "task {id} not found: it was never submitted or has been deleted (GET /task/ lists tasks)"
    ))
}
