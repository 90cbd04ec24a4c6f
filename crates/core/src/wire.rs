//! The JSON shapes every client relies on: REST bodies, SSE data and desktop event payloads.
//! These are promises to the outside (old scripts, the CLI, remote workers, the webview), so
//! changes are additive; field names follow the old server's, including its quirks.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::id::{TaskId, WorkerId};
use crate::state::TaskState;

/// SSE `event:` name and desktop event name announcing that the task list changed.
pub const TASKS_CHANGED: &str = "tasks-changed";
/// SSE `event:` name and desktop event name announcing that the worker list changed.
pub const WORKERS_CHANGED: &str = "workers-changed";
/// Desktop event name of [`TaskFinished`].
pub const TASK_FINISHED: &str = "task-finished";
/// Desktop event name of [`TaskProgress`].
pub const TASK_PROGRESS: &str = "task-progress";
/// SSE `event:` name and desktop event name of [`NotifySettings`], sent when they change.
pub const NOTIFY_SETTINGS_CHANGED: &str = "notify-settings-changed";
/// SSE `event:` name telling a client of the typed events that it missed some: reload.
pub const RESYNC: &str = "resync";

/// The current unix time in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            i64::try_from(elapsed.as_secs()).unwrap_or(i64::MAX)
        })
}

/// The desktop notification settings in effect (`GET /config/notify`) and where changes go.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NotifySettings {
    pub mode: crate::config::NotifyMode,
    pub min_seconds: u64,
    pub when_focused: bool,
    /// The config file changes are saved to.
    pub file: Option<String>,
    /// Why changes cannot be saved, when they cannot (an old JSON file, no config folder).
    pub read_only: Option<String>,
    /// The keys set above the config file, each with what sets it (`"minSeconds": "the
    /// environment variable BLANKET_NOTIFY_MIN_SECONDS"`); they cannot be changed here.
    pub locked: BTreeMap<String, String>,
}

/// A change of the notification settings (`PUT /config/notify`); keys left out keep their
/// value. Loosely typed so a bad value gets a message naming the key and the fix.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NotifyChange {
    pub mode: Option<String>,
    pub min_seconds: Option<i64>,
    pub when_focused: Option<bool>,
}

/// A task as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub id: TaskId,
    #[serde(rename = "type")]
    pub task_type: String,
    pub state: TaskState,
    pub tags: Vec<String>,
    /// The merged execution environment; the old name is kept on purpose.
    pub default_env: BTreeMap<String, String>,
    pub created_ts: i64,
    pub started_ts: i64,
    pub last_updated_ts: i64,
    pub finished_ts: i64,
    pub timeout: u64,
    pub progress: u8,
    pub worker_id: WorkerId,
    pub pid: u32,
    pub result_dir: String,
    pub type_digest: String,
    pub exit_code: Option<i32>,
    pub priority: i64,
    pub attempts: u32,
    /// Why the task reached its current state, when someone said (a cancel, a lost worker).
    pub reason: Option<String>,
}

/// One entry of a task's audit trail: a transition, when, by whom and why.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskEvent {
    pub ts: i64,
    /// `null` for the submit that created the task.
    pub from: Option<TaskState>,
    pub to: TaskState,
    /// Who caused it: `api`, `worker:<id>`, `reaper`, `coordinator`.
    pub actor: String,
    pub reason: Option<String>,
}

/// The body of `POST /task/` (the JSON form, or the multipart part `data`).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewTask {
    #[serde(rename = "type")]
    pub task_type: String,
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    #[serde(default)]
    pub priority: i64,
    /// Tags on top of the type's own.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Overrides the type's timeout, in seconds.
    #[serde(default)]
    pub timeout: Option<u64>,
}

/// A variable of a task type with a default value.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DefaultVariable {
    pub name: String,
    #[serde(default)]
    pub value: String,
    #[serde(default)]
    pub description: String,
}

/// A variable the submitter must give.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RequiredVariable {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// A hint shown as the input's placeholder.
    #[serde(default, rename = "type")]
    pub kind: String,
}

/// A variable the submitter may give; `value` is a placeholder, not a default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct OptionalVariable {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub value: String,
}

/// The variables of a task type.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    #[serde(default)]
    pub default: Vec<DefaultVariable>,
    #[serde(default)]
    pub required: Vec<RequiredVariable>,
    #[serde(default)]
    pub optional: Vec<OptionalVariable>,
}

/// A task type as the API shows it. A broken file is listed too, with `error` set and
/// no `command`, so a user sees why a type is missing.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskType {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub timeout: u64,
    #[serde(default)]
    pub command: String,
    #[serde(default)]
    pub executor: String,
    #[serde(default)]
    pub environment: Environment,
    #[serde(default)]
    pub files_to_include: Vec<Vec<String>>,
    /// Whether a task of this type goes back to the queue when its worker is lost.
    #[serde(default)]
    pub requeue_on_lost: bool,
    #[serde(rename = "loadedTs", default)]
    pub loaded_ts: i64,
    #[serde(rename = "configFile", default)]
    pub config_file: String,
    #[serde(rename = "versionHash", default)]
    pub version_hash: String,
    /// Keys of the file this version does not know, kept and shown as they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
    /// Why the file could not be loaded; absent for a good type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The 1-based line of `error` in the file, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
}

/// A worker as the API shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Worker {
    pub id: WorkerId,
    pub tags: Vec<String>,
    pub pid: u32,
    pub stopped: bool,
    pub check_interval: f64,
    pub started_ts: i64,
    pub logfile: String,
    pub daemon: bool,
    pub last_heard_ts: i64,
    /// `running`, `stopping`, `stopped` or `lost`.
    pub status: WorkerStatus,
    /// The task it is running, if any.
    pub current_task: Option<TaskId>,
    /// Whether this coordinator launched it (and so can restart it).
    pub launched: bool,
}

/// What a worker is doing, as far as the coordinator knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkerStatus {
    Running,
    Stopping,
    Stopped,
    Lost,
}

impl WorkerStatus {
    /// The wire spelling, e.g. `running`.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkerStatus::Running => "running",
            WorkerStatus::Stopping => "stopping",
            WorkerStatus::Stopped => "stopped",
            WorkerStatus::Lost => "lost",
        }
    }
}

/// The body of `PUT /worker/:id`: fields merge into the stored record; absent ones stay.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerUpdate {
    pub tags: Option<Vec<String>>,
    pub pid: Option<u32>,
    pub stopped: Option<bool>,
    pub check_interval: Option<f64>,
    pub started_ts: Option<i64>,
    pub logfile: Option<String>,
    pub daemon: Option<bool>,
}

/// The answer to a heartbeat.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HeartbeatReply {
    /// The worker must stop after its current task.
    pub stop: bool,
    /// The worker must kill its current task too.
    pub force: bool,
    /// Tasks of this worker that were cancelled (or taken away): kill them.
    pub cancelled_tasks: Vec<TaskId>,
}

/// `GET /version`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct VersionInfo {
    pub name: String,
    pub version: String,
    pub author: String,
}

/// The typed payload sent when a task reaches a terminal state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFinished {
    pub id: TaskId,
    #[serde(rename = "type")]
    pub task_type: String,
    pub state: TaskState,
    pub exit_code: Option<i32>,
    pub started_ts: i64,
    pub finished_ts: i64,
    pub result_dir: String,
    pub reason: Option<String>,
    /// Whether a person asked for the end (a cancel), so nobody needs telling.
    pub by_user: bool,
}

/// The typed payload sent when a running task reports progress.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskProgress {
    pub id: TaskId,
    pub progress: u8,
}

/// The body of every error answer.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
}

/// The answer to a successful claim: the task, and the type frozen into it that the worker
/// must run (not the type file as it may read now).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimedTask {
    #[serde(flatten)]
    pub task: Task,
    pub task_type: TaskType,
}
