//! The coordinator: the one owner of Blanket's state. Every mutation from every front end goes
//! through it, is committed by `store`, and only then announced on the `Hub`.
//! It knows nothing of HTTP: the server, the CLI and the desktop shell are its callers.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::filter::TaskFilter;
use crate::hub::{Hub, HubEvent, Topic};
use crate::id::{TaskId, WorkerId};
use crate::local_workers::{self, Children, LaunchSpec, WorkerLauncher};
use crate::notify_settings::LiveNotify;
use crate::state::TaskState;
use crate::store::{Claimed, NewTaskRow, Store, TaskChange, TaskCounts};
use crate::task_files;
use crate::task_type::{self, Catalog};
use crate::wire::{self, HeartbeatReply, Task, TaskEvent, Worker, WorkerStatus, WorkerUpdate};

/// The folder under the results root where multipart uploads land before their task exists.
const INCOMING_DIR: &str = ".incoming";
/// How long a launched worker may take to register before its launch counts as failed.
const LAUNCH_DEADLINE: Duration = Duration::from_secs(15);
/// How long local workers get to stop their tasks at shutdown before they are killed.
const LOCAL_STOP_DEADLINE: Duration = Duration::from_secs(10);

/// The coordinator. Cloning is cheap and shares the same state.
#[derive(Clone)]
pub struct Coordinator {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    store: Store,
    hub: Hub,
    // std RwLock: readers clone the Arc and let go at once; a reload swaps it whole.
    catalog: RwLock<Arc<Catalog>>,
    started: Instant,
    started_ts: i64,
    launcher: OnceLock<WorkerLauncher>,
    children: Children,
    notify: LiveNotify,
    /// Tells each held heartbeat apart, so ending an old one never ends its successor.
    next_hold_id: AtomicU64,
    /// Wakes the lease reaper when a held heartbeat ends early and a lease may now run out
    /// sooner than it planned for.
    hold_ended: Notify,
}

/// A heartbeat being held. Dropped before its deadline (the worker's connection closed, it
/// may be dead; or the answer went out early), it ends the hold in the store, so the
/// worker's lease runs from then rather than from the hold's planned end.
struct HeldHeartbeat {
    coordinator: Coordinator,
    worker: WorkerId,
    hold_id: u64,
    ends_early: bool,
}

impl Drop for HeldHeartbeat {
    fn drop(&mut self) {
        if !self.ends_early {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (coordinator, worker, hold_id) = (self.coordinator.clone(), self.worker, self.hold_id);
        runtime.spawn(async move {
            match coordinator.inner.store.end_heartbeat_hold(worker, hold_id).await {
                Ok(()) => coordinator.inner.hold_ended.notify_one(),
                Err(error) => {
                    tracing::debug!(worker_id = %worker, error = %error, "could not end a held heartbeat")
                }
            }
        });
    }
}

/// A folder receiving the files of a submit that is still being uploaded.
#[derive(Debug)]
pub struct StagedUpload {
    path: PathBuf,
}

/// What a worker reports when its task ends.
#[derive(Clone, Debug)]
pub struct FinishReport {
    pub state: TaskState,
    pub exit_code: Option<i32>,
    pub reason: Option<String>,
}

/// Runtime figures for `/ops/status/` and `/metrics`.
#[derive(Clone, Debug)]
pub struct Status {
    pub uptime_seconds: u64,
    pub started_ts: i64,
    pub tasks: TaskCounts,
    pub workers_by_status: Vec<(WorkerStatus, u64)>,
    pub task_subscribers: usize,
    pub worker_subscribers: usize,
    pub event_subscribers: usize,
    pub task_types: usize,
    pub broken_task_types: usize,
    pub queue_paused: bool,
}

impl Coordinator {
    /// Opens the store, seeds the example types on first start and loads the task types.
    ///
    /// # Errors
    /// `Invalid` when the database file is not ours, `Unavailable` or `Io` when the data
    /// directory cannot be used.
    pub async fn open(config: Config) -> Result<Coordinator> {
        let setup_config = config.clone();
        let (store, catalog) = tokio::task::spawn_blocking(move || -> Result<(Store, Catalog)> {
            let config = setup_config;
            crate::config::check_database_file(&config.database)?;
            std::fs::create_dir_all(config.results_dir.join(INCOMING_DIR)).map_err(|source| {
                Error::io(
                    format!(
                        "creating the results directory {}",
                        config.results_dir.display()
                    ),
                    source,
                )
            })?;
            // Only the default folder gets the examples: a folder the user named is theirs.
            if config.types_dirs == [config.data_dir.join("types")] {
                for dir in &config.types_dirs {
                    task_type::seed_examples(dir)?;
                }
            }
            let store = Store::open(&config.database)?;
            Ok((store, Catalog::load(&config.types_dirs)))
        })
        .await
        .map_err(|error| Error::Internal(format!("opening the coordinator panicked: {error}")))??;
        tracing::info!(
            database = %config.database.display(),
            task_types = catalog.len(),
            broken_task_types = catalog.broken_count(),
            "coordinator opened"
        );
        let notify = LiveNotify::new(config.notify.clone(), config.origin.clone());
        Ok(Coordinator {
            inner: Arc::new(Inner {
                notify,
                config,
                store,
                hub: Hub::new(),
                catalog: RwLock::new(Arc::new(catalog)),
                started: Instant::now(),
                started_ts: wire::now(),
                launcher: OnceLock::new(),
                children: Children::default(),
                next_hold_id: AtomicU64::new(1),
                hold_ended: Notify::new(),
            }),
        })
    }

    /// The configuration in effect.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The notification settings in effect now (changed at run time by
    /// [`Coordinator::change_notify`]; `config().notify` is what they were at start).
    pub fn notify_config(&self) -> crate::config::NotifyConfig {
        self.inner.notify.current()
    }

    /// The notification settings, where a change is saved and which keys are locked.
    pub fn notify_settings(&self) -> wire::NotifySettings {
        self.inner.notify.view()
    }

    /// Saves a change of the notification settings to the config file, makes it live and
    /// announces it on the hub.
    ///
    /// # Errors
    /// As [`LiveNotify::apply`].
    pub async fn change_notify(&self, change: wire::NotifyChange) -> Result<wire::NotifySettings> {
        let coordinator = self.clone();
        let settings = tokio::task::spawn_blocking(move || coordinator.inner.notify.apply(&change))
            .await
            .map_err(|error| {
                Error::Internal(format!(
                    "saving the notification settings panicked: {error}"
                ))
            })??;
        self.inner
            .hub
            .publish(HubEvent::NotifySettingsChanged(settings.clone()));
        Ok(settings)
    }

    /// The hub every change is announced on.
    pub fn hub(&self) -> &Hub {
        &self.inner.hub
    }

    /// The task types loaded now.
    pub fn catalog(&self) -> Arc<Catalog> {
        Arc::clone(
            &self
                .inner
                .catalog
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }

    /// Reads the type directories again; queued tasks keep the type they were submitted with.
    pub async fn reload_types(&self) -> Result<Arc<Catalog>> {
        let dirs = self.inner.config.types_dirs.clone();
        let catalog = Arc::new(
            tokio::task::spawn_blocking(move || Catalog::load(&dirs))
                .await
                .map_err(|error| {
                    Error::Internal(format!("loading task types panicked: {error}"))
                })?,
        );
        *self
            .inner
            .catalog
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&catalog);
        Ok(catalog)
    }

    /// Makes a folder for the files of a submit being uploaded.
    pub async fn stage_upload(&self) -> Result<StagedUpload> {
        let path = self
            .inner
            .config
            .results_dir
            .join(INCOMING_DIR)
            .join(TaskId::generate().to_string());
        tokio::fs::create_dir_all(&path).await.map_err(|source| {
            Error::io(format!("creating upload folder {}", path.display()), source)
        })?;
        Ok(StagedUpload { path })
    }

    /// Submits a task: checks it against its type, freezes the type into it, moves any
    /// uploaded files into its directory (recording which they are) and stores it `WAITING`.
    ///
    /// # Errors
    /// `Invalid` for an unknown type, a missing required variable, a bad tag or timeout.
    pub async fn submit(
        &self,
        request: wire::NewTask,
        upload: Option<StagedUpload>,
    ) -> Result<Task> {
        let outcome = async {
            let mut row = self.checked_row(request)?;
            if let Some(upload) = &upload {
                let staged = upload.path.clone();
                row.uploads =
                    blocking("listing uploaded files", move || task_files::list(&staged)).await?;
            }
            self.insert_task(row, upload.as_ref()).await
        }
        .await;
        discard_on_error(upload.as_ref(), outcome).await
    }

    /// Submits a finished task again as a new one: its type as it is now (so an edited type
    /// file applies), with the original's own choices on top (the variables that differ from
    /// its type's defaults, the tags beyond the type's, its priority, its timeout when it set
    /// one), and a copy of the files uploaded with it. The new task's first audit row says
    /// whose retry it is.
    ///
    /// # Errors
    /// `NotFound` for an unknown id; `Conflict` while the original has not finished, or when
    /// an uploaded file is gone from its folder; `Invalid` when its type is gone or no longer
    /// accepts its environment.
    pub async fn retry(&self, id: TaskId) -> Result<Task> {
        let original = self.task(id).await?;
        if !original.state.is_terminal() {
            return Err(Error::Conflict(format!(
                "task {id} is {} and only a finished task can be retried: wait for it to end, \
                 or cancel it first (PUT /task/{id}/cancel)",
                original.state
            )));
        }
        let (frozen, _) = self.inner.store.frozen_type(id).await?;
        let mut row = self
            .checked_row(retry_request(&original, &frozen))
            .map_err(|error| match error {
                Error::Invalid(message) => Error::Invalid(format!(
                    "task {id} cannot be retried with its type as it is now: {message}; \
                     submit a new task instead"
                )),
                other => other,
            })?;
        row.uploads = self.inner.store.task_uploads(id).await?;
        row.reason = Some(format!("retry of {id}"));
        let upload = if row.uploads.is_empty() {
            None
        } else {
            Some(self.stage_upload().await?)
        };
        let outcome = async {
            if let Some(upload) = &upload {
                let (from, to, paths) = (
                    PathBuf::from(&original.result_dir),
                    upload.path.clone(),
                    row.uploads.clone(),
                );
                // Uploads may be large: the copy runs on a blocking thread, never the executor.
                blocking("copying uploaded files", move || {
                    task_files::copy(id, &from, &to, &paths)
                })
                .await?;
            }
            self.insert_task(row, upload.as_ref()).await
        }
        .await;
        discard_on_error(upload.as_ref(), outcome).await
    }

    /// Checks `request` against its type as loaded now and builds the row to store, with a
    /// new id and directory, no uploads and no reason.
    fn checked_row(&self, request: wire::NewTask) -> Result<NewTaskRow> {
        let catalog = self.catalog();
        let loaded = catalog.require(&request.task_type)?;
        let environment = loaded.resolve_environment(&request.environment)?;
        let mut tags = loaded.spec.tags.clone();
        for tag in request.tags {
            let tag = tag.trim().to_string();
            if tag.is_empty() || tag.contains(',') {
                return Err(Error::Invalid(format!(
                    "tag {tag:?} is not usable: tags are non-empty and contain no commas"
                )));
            }
            if !tags.contains(&tag) {
                tags.push(tag);
            }
        }
        let timeout = request.timeout.unwrap_or(loaded.spec.timeout);
        if timeout == 0 {
            return Err(Error::Invalid(
                "timeout 0 is not allowed: give the task's time limit in seconds".into(),
            ));
        }
        let id = TaskId::generate();
        let result_dir = self.inner.config.results_dir.join(id.to_string());
        Ok(NewTaskRow {
            id,
            task_type: loaded.spec.name.clone(),
            tags,
            environment,
            timeout,
            priority: request.priority,
            result_dir: result_dir.display().to_string(),
            type_digest: loaded.digest.clone(),
            type_source: loaded.source.clone(),
            type_spec: loaded.spec.clone(),
            uploads: Vec::new(),
            actor: "api".into(),
            reason: None,
        })
    }

    /// Moves `upload` (when given) into the row's directory, stores the row and announces it.
    async fn insert_task(&self, row: NewTaskRow, upload: Option<&StagedUpload>) -> Result<Task> {
        let result_dir = PathBuf::from(&row.result_dir);
        // Without uploads the directory is made when something needs it (the worker, a log
        // stream), which keeps a file-system write off the submit path: on some disks that
        // mkdir cost more than the whole rest of a submit.
        if let Some(upload) = upload {
            tokio::fs::rename(&upload.path, &result_dir)
                .await
                .map_err(|source| {
                    Error::io(
                        format!("creating task directory {}", result_dir.display()),
                        source,
                    )
                })?;
        }
        match self.inner.store.insert_task(row).await {
            Ok(task) => {
                tracing::debug!(task_id = %task.id, task_type = %task.task_type, "task submitted");
                self.announce_task(&task, false);
                Ok(task)
            }
            Err(error) => {
                remove_dir_logged(&result_dir).await;
                Err(error)
            }
        }
    }

    /// The tasks that pass `filter`.
    pub async fn tasks(&self, filter: TaskFilter) -> Result<Vec<Task>> {
        self.inner.store.list_tasks(filter).await
    }

    /// How many tasks pass `filter`.
    pub async fn count_tasks(&self, filter: TaskFilter) -> Result<u64> {
        self.inner.store.count_tasks(filter).await
    }

    /// One task.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn task(&self, id: TaskId) -> Result<Task> {
        self.inner.store.task(id).await
    }

    /// A task's audit trail.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn task_events(&self, id: TaskId) -> Result<Vec<TaskEvent>> {
        self.inner.store.task_events(id).await
    }

    /// The type a task was submitted with, and its TOML text.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn task_type_of(&self, id: TaskId) -> Result<(wire::TaskType, String)> {
        self.inner.store.frozen_type(id).await
    }

    /// Cancels a task that has not finished: it ends `STOPPED` at once, and its worker (told
    /// over its heartbeat) kills the process group.
    ///
    /// # Errors
    /// `NotFound` for an unknown id, `Conflict` when it already finished.
    pub async fn cancel_task(&self, id: TaskId) -> Result<Task> {
        let change = TaskChange::Cancel {
            reason: "cancelled by user".into(),
        };
        let task = self
            .inner
            .store
            .change_task(id, change, "api".into())
            .await?;
        self.announce_task(&task, true);
        Ok(task)
    }

    /// Deletes a task and its directory; a live task is cancelled first.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn delete_task(&self, id: TaskId) -> Result<Task> {
        let task = self.inner.store.delete_task(id, "api".into()).await?;
        remove_dir_logged(Path::new(&task.result_dir)).await;
        self.inner.hub.nudge(Topic::Tasks);
        self.inner.hub.publish(HubEvent::TaskChanged {
            id,
            state: task.state,
        });
        Ok(task)
    }

    /// Claims a task for a worker, waiting up to `wait` for one to arrive. The wait ends the
    /// moment a claimable task is committed (the hub wakes it), not on a timer.
    ///
    /// # Errors
    /// `NotFound` for an unregistered worker.
    pub async fn claim(&self, worker_id: WorkerId, wait: Duration) -> Result<Option<Claimed>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Subscribe before looking, so a task committed in between still wakes us.
            let mut queue = self.inner.hub.subscribe(Topic::Queue);
            if let Some(claimed) = self.inner.store.claim_task(worker_id).await? {
                self.announce_task(&claimed.task, false);
                return Ok(Some(claimed));
            }
            match tokio::time::timeout_at(deadline, queue.changed()).await {
                Ok(true) => continue,
                Ok(false) | Err(_) => return Ok(None),
            }
        }
    }

    /// Records that a claimed task's process started.
    ///
    /// # Errors
    /// `NotFound`, or `Conflict` unless the task is `CLAIMED` (by `worker`, when given).
    pub async fn run_task(
        &self,
        id: TaskId,
        pid: u32,
        timeout: Option<u64>,
        worker: Option<WorkerId>,
    ) -> Result<Task> {
        let change = TaskChange::Run {
            pid,
            timeout,
            worker,
        };
        let task = self
            .inner
            .store
            .change_task(id, change, actor_name(worker))
            .await?;
        self.announce_task(&task, false);
        Ok(task)
    }

    /// Records a running task's progress (0-100).
    ///
    /// # Errors
    /// `Invalid` above 100, `NotFound`, or `Conflict` unless the task is `RUNNING`.
    pub async fn report_progress(
        &self,
        id: TaskId,
        progress: u8,
        worker: Option<WorkerId>,
    ) -> Result<Task> {
        if progress > 100 {
            return Err(Error::Invalid(format!(
                "progress {progress} is out of range: give 0 to 100"
            )));
        }
        let change = TaskChange::Progress { progress, worker };
        let task = self
            .inner
            .store
            .change_task(id, change, actor_name(worker))
            .await?;
        self.inner.hub.nudge(Topic::Tasks);
        self.inner
            .hub
            .publish(HubEvent::TaskProgress(wire::TaskProgress { id, progress }));
        Ok(task)
    }

    /// Records how a task ended. The first final state wins.
    ///
    /// # Errors
    /// `NotFound`, `Invalid` for a non-final state, `Conflict` when it already ended or
    /// belongs to another worker.
    pub async fn finish_task(
        &self,
        id: TaskId,
        report: FinishReport,
        worker: Option<WorkerId>,
    ) -> Result<Task> {
        let change = TaskChange::Finish {
            state: report.state,
            exit_code: report.exit_code,
            reason: report.reason,
            worker,
        };
        let task = self
            .inner
            .store
            .change_task(id, change, actor_name(worker))
            .await?;
        self.announce_task(&task, false);
        Ok(task)
    }

    /// Registers a worker or merges fields into its record.
    pub async fn register_worker(&self, id: WorkerId, update: WorkerUpdate) -> Result<Worker> {
        let launched = self.inner.children.contains(id);
        let (worker, released) = self
            .inner
            .store
            .upsert_worker(id, update, launched, self.inner.config.lease_seconds)
            .await?;
        for task in &released {
            self.announce_task(task, false);
        }
        self.announce_worker(id);
        // A worker that (re)starts may be able to take tasks nobody else could.
        self.inner.hub.nudge(Topic::Queue);
        Ok(worker)
    }

    /// Records a heartbeat and answers what the worker must do. With `wait`, the answer is
    /// held until there is something to do (a stop, a cancelled task) or the wait ends; it
    /// wakes only for events about this worker or its tasks, not for every change. The
    /// worker counts as heard all the while: an open hold is proof of life, since the server
    /// drops it when the worker's connection closes, so a wait may be longer than the lease.
    ///
    /// # Errors
    /// `NotFound` for an unregistered worker.
    pub async fn heartbeat(
        &self,
        id: WorkerId,
        running: Vec<TaskId>,
        wait: Duration,
    ) -> Result<HeartbeatReply> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut held = HeldHeartbeat {
            coordinator: self.clone(),
            worker: id,
            hold_id: self.inner.next_hold_id.fetch_add(1, Ordering::Relaxed),
            ends_early: false,
        };
        let mut events = self.inner.hub.events();
        loop {
            let hold = deadline.saturating_duration_since(tokio::time::Instant::now());
            let (reply, requeued) = self
                .inner
                .store
                .heartbeat(
                    id,
                    running.clone(),
                    hold.as_secs() + u64::from(hold.subsec_nanos() > 0),
                    held.hold_id,
                )
                .await?;
            held.ends_early = !hold.is_zero();
            for task in &requeued {
                self.announce_task(task, false);
            }
            if reply.stop || !reply.cancelled_tasks.is_empty() {
                return Ok(reply);
            }
            let concerns_us = |event: &HubEvent| match event {
                HubEvent::TaskChanged { id: task, .. } => running.contains(task),
                HubEvent::TaskFinished(finished) => running.contains(&finished.id),
                HubEvent::WorkerChanged { id: worker } => *worker == id,
                HubEvent::TaskProgress(_) | HubEvent::NotifySettingsChanged(_) => false,
                HubEvent::Resync => true,
            };
            let woke = tokio::time::timeout_at(deadline, async {
                while let Some(event) = events.next().await {
                    if concerns_us(&event) {
                        return true;
                    }
                }
                false
            })
            .await;
            if !matches!(woke, Ok(true)) {
                held.ends_early = false;
                return Ok(reply);
            }
        }
    }

    /// Asks a worker to stop after its current task, or at once with `force`.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn stop_worker(&self, id: WorkerId, force: bool) -> Result<Worker> {
        let worker = self
            .inner
            .store
            .request_worker_stop(id, force, self.inner.config.lease_seconds)
            .await?;
        self.announce_worker(id);
        Ok(worker)
    }

    /// Forgets a worker that is not running.
    ///
    /// # Errors
    /// `NotFound` for an unknown id, `Conflict` while it runs.
    pub async fn delete_worker(&self, id: WorkerId) -> Result<Worker> {
        let worker = self
            .inner
            .store
            .delete_worker(id, self.inner.config.lease_seconds)
            .await?;
        self.announce_worker(id);
        Ok(worker)
    }

    /// Every worker.
    pub async fn workers(&self) -> Result<Vec<Worker>> {
        self.inner
            .store
            .workers(self.inner.config.lease_seconds)
            .await
    }

    /// One worker.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn worker(&self, id: WorkerId) -> Result<Worker> {
        self.inner
            .store
            .worker(id, self.inner.config.lease_seconds)
            .await
    }

    /// Lets this coordinator launch local workers with `launcher`. Only the first call counts.
    pub fn attach_launcher(&self, launcher: WorkerLauncher) {
        if self.inner.launcher.set(launcher).is_err() {
            tracing::warn!("a worker launcher was already attached");
        }
    }

    /// Launches a local worker process and answers once it has registered.
    ///
    /// # Errors
    /// `Invalid` for a check interval under 0.5 s, `Unavailable` when this coordinator
    /// cannot launch workers or the worker does not register in time.
    pub async fn launch_worker(&self, tags: Vec<String>, check_interval: f64) -> Result<Worker> {
        self.launch(WorkerId::generate(), tags, check_interval)
            .await
    }

    /// Starts a stopped or lost worker again, with its id, tags and check interval.
    ///
    /// # Errors
    /// `NotFound` for an unknown id, `Conflict` while it runs.
    pub async fn restart_worker(&self, id: WorkerId) -> Result<Worker> {
        let worker = self.worker(id).await?;
        if matches!(
            worker.status,
            WorkerStatus::Running | WorkerStatus::Stopping
        ) {
            return Err(Error::Conflict(format!(
                "worker {id} is still running: stop it first with PUT /worker/{id}/stop"
            )));
        }
        self.launch(id, worker.tags, worker.check_interval).await
    }

    async fn launch(&self, id: WorkerId, tags: Vec<String>, check_interval: f64) -> Result<Worker> {
        if !(check_interval.is_finite() && check_interval >= 0.5) {
            return Err(Error::Invalid(format!(
                "checkInterval {check_interval} is too small: give at least 0.5 seconds"
            )));
        }
        let launcher = self.inner.launcher.get().ok_or_else(|| {
            Error::Unavailable(
                "this coordinator cannot launch workers: start one with `blanket worker`".into(),
            )
        })?;
        let spec = LaunchSpec {
            id,
            tags,
            check_interval,
            logfile: local_workers::logfile_for(&self.inner.config.worker_logfile_template, id),
        };
        let mut workers = self.inner.hub.subscribe(Topic::Workers);
        let launched_at = wire::now();
        let mut child = launcher.spawn(&spec)?;
        let pid = child.id().unwrap_or(0);
        self.inner.children.insert(id, pid);
        let registered = tokio::time::timeout(LAUNCH_DEADLINE, async {
            loop {
                if let Ok(worker) = self.worker(id).await
                    && worker.status == WorkerStatus::Running
                    && worker.last_heard_ts >= launched_at
                {
                    return Ok(worker);
                }
                tokio::select! {
                    alive = workers.changed() => if !alive {
                        return Err(Error::Unavailable("the coordinator is shutting down".into()));
                    },
                    status = child.wait() => {
                        let status = status.map_or_else(|error| error.to_string(), |status| status.to_string());
                        return Err(Error::Unavailable(format!(
                            "the worker exited before registering ({status}): see its log at {}",
                            spec.logfile.display()
                        )));
                    }
                }
            }
        })
        .await;
        match registered {
            Ok(Ok(worker)) => {
                self.supervise_child(id, pid, child);
                tracing::info!(worker_id = %id, tags = ?worker.tags, "local worker launched");
                Ok(worker)
            }
            Ok(Err(error)) => {
                self.inner.children.remove(id, pid);
                Err(error)
            }
            Err(_) => {
                let _ = child.start_kill();
                self.inner.children.remove(id, pid);
                Err(Error::Unavailable(format!(
                    "the worker did not register within {} s: see its log at {}",
                    LAUNCH_DEADLINE.as_secs(),
                    spec.logfile.display()
                )))
            }
        }
    }

    /// Reaps a launched worker when it exits; one that exits without saying it stopped
    /// (it crashed or was killed) has its tasks released at once rather than after its lease.
    fn supervise_child(&self, id: WorkerId, pid: u32, mut child: tokio::process::Child) {
        let coordinator = self.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            if !coordinator.inner.children.remove(id, pid) {
                // A restart already launched a new process under this id: it is not ours
                // to judge, and its record is not this process's.
                coordinator.inner.hub.nudge(Topic::Workers);
                return;
            }
            // Whoever waits for local workers to exit (shutdown) learns it here.
            coordinator.inner.hub.nudge(Topic::Workers);
            let stopped_cleanly = coordinator
                .worker(id)
                .await
                .is_ok_and(|worker| worker.stopped);
            if !stopped_cleanly {
                tracing::warn!(worker_id = %id, status = ?status, "local worker exited unexpectedly");
                let update = WorkerUpdate {
                    stopped: Some(true),
                    ..WorkerUpdate::default()
                };
                if let Err(error) = coordinator.register_worker(id, update).await {
                    tracing::warn!(worker_id = %id, error = %error, "could not record a worker's exit");
                }
            }
        });
    }

    /// Tops the local pool up to the configured size (`local_workers`, `worker_tags`),
    /// counting launched workers that are still running, e.g. from before a restart.
    ///
    /// # Errors
    /// When a worker cannot be launched.
    pub async fn start_local_pool(&self) -> Result<()> {
        let wanted = self.inner.config.local_workers;
        let running = self
            .workers()
            .await?
            .into_iter()
            .filter(|worker| worker.launched && worker.status == WorkerStatus::Running)
            .count();
        for _ in running..wanted {
            self.launch_worker(self.inner.config.worker_tags.clone(), 1.0)
                .await?;
        }
        Ok(())
    }

    /// Stops the workers this coordinator launched: their tasks are recorded `STOPPED` with
    /// the reason, the workers kill them and exit; stragglers are killed after a deadline.
    /// Call it while the server still answers, so the workers can report.
    pub async fn stop_local_workers(&self) {
        // Launched workers of an earlier run of this coordinator (one killed with -9) are not
        // our children, but they are ours to stop all the same.
        let mut ids: Vec<WorkerId> = self
            .inner
            .children
            .all()
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        match self.workers().await {
            Ok(workers) => {
                for worker in workers {
                    if worker.launched
                        && worker.status == WorkerStatus::Running
                        && !ids.contains(&worker.id)
                    {
                        ids.push(worker.id);
                    }
                }
            }
            Err(error) => tracing::warn!(error = %error, "could not list workers to stop"),
        }
        if ids.is_empty() {
            return;
        }
        tracing::info!(count = ids.len(), "stopping local workers");
        let mut task_groups = Vec::new();
        for id in &ids {
            task_groups.extend(self.stop_for_shutdown(*id).await);
        }
        let deadline = tokio::time::Instant::now() + LOCAL_STOP_DEADLINE;
        let mut workers = self.inner.hub.subscribe(Topic::Workers);
        loop {
            let mut still_running = false;
            for id in &ids {
                let stopped = self.worker(*id).await.is_ok_and(|worker| {
                    matches!(worker.status, WorkerStatus::Stopped | WorkerStatus::Lost)
                });
                still_running |= self.inner.children.contains(*id) || !stopped;
            }
            if !still_running
                || tokio::time::timeout_at(deadline, workers.changed())
                    .await
                    .is_err()
            {
                break;
            }
        }
        let stragglers = self.inner.children.all();
        for (id, pid) in &stragglers {
            tracing::warn!(worker_id = %id, pid, "local worker did not stop in time, killing it");
            local_workers::kill_group(*pid);
        }
        if !stragglers.is_empty() {
            for pid in task_groups {
                local_workers::kill_group(pid);
            }
        }
    }

    /// Asks one worker to stop and records its live tasks `STOPPED` with the shutdown as the
    /// reason (the worker, told over its heartbeat, kills them). Returns their process groups.
    async fn stop_for_shutdown(&self, id: WorkerId) -> Vec<u32> {
        if let Err(error) = self.stop_worker(id, false).await {
            tracing::warn!(worker_id = %id, error = %error, "could not ask a worker to stop");
        }
        let tasks = match self.inner.store.live_tasks_of(id).await {
            Ok(tasks) => tasks,
            Err(error) => {
                tracing::warn!(worker_id = %id, error = %error, "could not list a worker's tasks");
                return Vec::new();
            }
        };
        let mut groups = Vec::new();
        for task in tasks {
            groups.push(task.pid);
            let change = TaskChange::Cancel {
                reason: "stopped: Blanket was shut down".into(),
            };
            match self
                .inner
                .store
                .change_task(task.id, change, "coordinator".into())
                .await
            {
                Ok(task) => self.announce_task(&task, true),
                Err(error) => {
                    tracing::warn!(task_id = %task.id, error = %error, "could not stop a task")
                }
            }
        }
        groups
    }

    /// Marks workers lost once their lease runs out and releases their tasks. Sleeps until
    /// the next lease can expire (not on a fixed tick), so an idle coordinator stays asleep.
    /// Runs until the hub closes; the caller ends it with the shutdown.
    pub async fn reap_lost_workers(&self) {
        let lease = self.inner.config.lease_seconds;
        let lease_duration = Duration::from_secs(lease);
        // Workers get one full lease after a (re)start to reach the coordinator again.
        tokio::time::sleep(lease_duration).await;
        loop {
            let mut workers = self.inner.hub.subscribe(Topic::Workers);
            match self.inner.store.mark_lost_workers(lease).await {
                Ok(lost) => {
                    for id in lost {
                        tracing::warn!(worker_id = %id, lease_seconds = lease, "worker lost: no heartbeat within its lease");
                        self.release_lost(id).await;
                    }
                }
                Err(error) => tracing::error!(error = %error, "checking worker leases failed"),
            }
            let next_check = match self.inner.store.earliest_heartbeat().await {
                Ok(Some(earliest)) => {
                    let due = earliest + i64::try_from(lease).unwrap_or(i64::MAX) + 1 - wire::now();
                    Some(Duration::from_secs(u64::try_from(due.max(1)).unwrap_or(1)))
                }
                Ok(None) => None,
                Err(error) => {
                    tracing::error!(error = %error, "reading worker leases failed");
                    Some(lease_duration)
                }
            };
            let due = async {
                match next_check {
                    Some(delay) => tokio::time::sleep(delay).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = due => {}
                () = self.inner.hold_ended.notified() => {}
                alive = workers.changed() => if !alive { return },
            }
        }
    }

    async fn release_lost(&self, id: WorkerId) {
        match self
            .inner
            .store
            .release_tasks_of(id, "worker lost".into())
            .await
        {
            Ok(released) => {
                for task in &released {
                    self.announce_task(task, false);
                }
            }
            Err(error) => {
                tracing::error!(worker_id = %id, error = %error, "could not release a lost worker's tasks")
            }
        }
        self.announce_worker(id);
    }

    /// Pauses the queue (no task is claimed until resumed) or resumes it. Persisted.
    pub async fn set_queue_paused(&self, paused: bool) -> Result<()> {
        self.inner.store.set_queue_paused(paused).await?;
        self.inner.hub.nudge(Topic::Tasks);
        self.inner.hub.nudge(Topic::Workers);
        if !paused {
            self.inner.hub.nudge(Topic::Queue);
        }
        Ok(())
    }

    /// Whether the queue is paused.
    pub async fn queue_paused(&self) -> Result<bool> {
        self.inner.store.queue_is_paused().await
    }

    /// Runtime figures.
    pub async fn status(&self) -> Result<Status> {
        let tasks = self.inner.store.task_counts().await?;
        let workers = self.workers().await?;
        let workers_by_status = [
            WorkerStatus::Running,
            WorkerStatus::Stopping,
            WorkerStatus::Stopped,
            WorkerStatus::Lost,
        ]
        .into_iter()
        .map(|status| {
            let count = workers
                .iter()
                .filter(|worker| worker.status == status)
                .count();
            (status, u64::try_from(count).unwrap_or(u64::MAX))
        })
        .collect();
        let catalog = self.catalog();
        let hub = &self.inner.hub;
        Ok(Status {
            uptime_seconds: self.inner.started.elapsed().as_secs(),
            started_ts: self.inner.started_ts,
            tasks,
            workers_by_status,
            task_subscribers: hub.subscriber_count(Topic::Tasks),
            worker_subscribers: hub.subscriber_count(Topic::Workers),
            event_subscribers: hub.event_subscriber_count(),
            task_types: catalog.len(),
            broken_task_types: catalog.broken_count(),
            queue_paused: self.inner.store.queue_is_paused().await?,
        })
    }

    /// Finishes pending writes and closes the database cleanly.
    pub async fn shutdown(&self) {
        self.inner.store.close().await;
        tracing::info!("coordinator closed");
    }

    fn announce_task(&self, task: &Task, by_user: bool) {
        let hub = &self.inner.hub;
        hub.nudge(Topic::Tasks);
        if task.state == TaskState::Waiting {
            hub.nudge(Topic::Queue);
        }
        hub.publish(HubEvent::TaskChanged {
            id: task.id,
            state: task.state,
        });
        if task.state.is_terminal() {
            hub.publish(HubEvent::TaskFinished(wire::TaskFinished {
                id: task.id,
                task_type: task.task_type.clone(),
                state: task.state,
                exit_code: task.exit_code,
                started_ts: task.started_ts,
                finished_ts: task.finished_ts,
                result_dir: task.result_dir.clone(),
                reason: task.reason.clone(),
                by_user,
            }));
        }
    }

    fn announce_worker(&self, id: WorkerId) {
        self.inner.hub.nudge(Topic::Workers);
        self.inner.hub.publish(HubEvent::WorkerChanged { id });
    }
}

/// What a retry of `task` submits: its type by name, so the type as loaded now decides its
/// command, defaults, tags and timeout, plus what the original's submitter chose beyond its
/// frozen type `frozen`: variables that differ from the type's defaults, tags beyond the
/// type's, its priority, and its timeout when it is not the type's.
fn retry_request(task: &Task, frozen: &wire::TaskType) -> wire::NewTask {
    let is_default = |name: &String, value: &String| {
        frozen
            .environment
            .default
            .iter()
            .any(|variable| variable.name == *name && variable.value == *value)
    };
    wire::NewTask {
        task_type: task.task_type.clone(),
        environment: task
            .default_env
            .iter()
            .filter(|(name, value)| !is_default(name, value))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect(),
        priority: task.priority,
        tags: task
            .tags
            .iter()
            .filter(|tag| !frozen.tags.contains(tag))
            .cloned()
            .collect(),
        timeout: (task.timeout != frozen.timeout).then_some(task.timeout),
    }
}

/// Runs blocking file-system `work` on the blocking pool; `what` names it if it panics.
async fn blocking<T: Send + 'static>(
    what: &str,
    work: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| Error::Internal(format!("{what} panicked: {error}")))?
}

fn actor_name(worker: Option<WorkerId>) -> String {
    match worker {
        Some(worker) => format!("worker:{worker}"),
        None => "api".into(),
    }
}

impl StagedUpload {
    /// The folder the uploaded files go into.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Passes `outcome` on, removing the staged `upload` first when it failed.
async fn discard_on_error(upload: Option<&StagedUpload>, outcome: Result<Task>) -> Result<Task> {
    if outcome.is_err()
        && let Some(upload) = upload
    {
        remove_dir_logged(&upload.path).await;
    }
    outcome
}

async fn remove_dir_logged(path: &Path) {
    match tokio::fs::remove_dir_all(path).await {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => {
            tracing::warn!(path = %path.display(), error = %error, "could not remove a task directory")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn frozen() -> wire::TaskType {
        wire::TaskType {
            name: "greet".into(),
            tags: vec!["bash".into(), "unix".into()],
            timeout: 60,
            environment: wire::Environment {
                default: vec![
                    wire::DefaultVariable {
                        name: "GREETING".into(),
                        value: "hello".into(),
                        ..wire::DefaultVariable::default()
                    },
                    wire::DefaultVariable {
                        name: "NAME".into(),
                        value: "world".into(),
                        ..wire::DefaultVariable::default()
                    },
                ],
                ..wire::Environment::default()
            },
            ..wire::TaskType::default()
        }
    }

    fn task(environment: &[(&str, &str)], tags: &[&str], timeout: u64) -> Task {
        Task {
            id: TaskId::generate(),
            task_type: "greet".into(),
            state: TaskState::Error,
            tags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            default_env: environment
                .iter()
                .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
                .collect(),
            created_ts: 0,
            started_ts: 0,
            last_updated_ts: 0,
            finished_ts: 0,
            timeout,
            progress: 0,
            worker_id: WorkerId::NONE,
            pid: 0,
            result_dir: String::new(),
            type_digest: String::new(),
            exit_code: Some(1),
            priority: 7,
            attempts: 1,
            reason: None,
        }
    }

    #[test]
    fn a_retry_keeps_what_the_submitter_chose_and_leaves_the_rest_to_the_type() {
        let original = task(
            &[("GREETING", "hello"), ("NAME", "again"), ("EXTRA", "1")],
            &["bash", "unix", "gpu"],
            60,
        );
        let request = retry_request(&original, &frozen());
        assert_eq!(request.task_type, "greet");
        assert_eq!(
            request.environment,
            BTreeMap::from([
                ("EXTRA".to_owned(), "1".to_owned()),
                ("NAME".to_owned(), "again".to_owned()),
            ])
        );
        assert_eq!(request.tags, ["gpu"]);
        assert_eq!(request.priority, 7);
        assert_eq!(request.timeout, None);
    }

    #[test]
    fn a_retry_keeps_a_timeout_the_submitter_set() {
        let original = task(&[("GREETING", "hello"), ("NAME", "world")], &["bash"], 5);
        let request = retry_request(&original, &frozen());
        assert_eq!(request.timeout, Some(5));
        assert!(request.environment.is_empty());
        assert!(request.tags.is_empty());
    }
}
