//! The worker: registers with a coordinator, claims tasks whose tags it has (a long poll, no
//! sleeping loop), runs each as a supervised process group and reports back over HTTP only,
//! like any third-party client. It never opens the database.

pub mod cli;
mod client;
pub mod logging;
mod prepare;
mod supervise;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use blanket_core::wire::{ClaimedTask, WorkerUpdate};
use blanket_core::{TaskId, TaskState, WorkerId};
use tokio_util::sync::CancellationToken;

pub use client::Client;
pub use supervise::{STDERR_LOG, STDOUT_LOG};

use supervise::Outcome;

/// How long one claim waits on the coordinator before asking again: the longest it allows, so
/// an idle worker wakes itself and the coordinator as seldom as it can.
const CLAIM_WAIT: Duration = Duration::from_secs(60);
/// How long one heartbeat is held by the coordinator, the longest it allows. It may outlast
/// the lease: the coordinator hears a worker all the while its heartbeat is held open.
const HEARTBEAT_WAIT: Duration = Duration::from_secs(60);

/// What a worker is told to be.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// The coordinator, e.g. `http://127.0.0.1:8773`.
    pub server_url: String,
    pub id: WorkerId,
    /// A task runs here only if all its tags are among these (none: any task).
    pub tags: Vec<String>,
    /// Seconds between retries when the coordinator cannot be reached.
    pub check_interval: f64,
    /// Where this worker's own log goes, shown in its record.
    pub logfile: String,
    pub daemon: bool,
    pub token: Option<String>,
}

/// Why a worker stopped early.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// No coordinator answered.
    #[error("{0}")]
    Unreachable(String),
    /// The coordinator refused a report (the task is no longer ours, the worker is unknown).
    #[error("{0}")]
    Refused(String),
    /// The coordinator answered something unexpected.
    #[error("{0}")]
    Coordinator(String),
}

/// Signals from outside the worker loop: `drain` stops after the current task, `force` kills it.
#[derive(Clone, Default)]
pub struct StopSignals {
    pub drain: CancellationToken,
    pub force: CancellationToken,
}

/// The task being run, shared with the heartbeat loop so it can be stopped from there.
struct Current {
    task: Mutex<Option<(TaskId, CancellationToken)>>,
    // Bumped whenever the task changes, so a heartbeat held by the coordinator is sent again
    // with the new task in it: a cancel of that task then reaches the worker at once.
    changes: tokio::sync::watch::Sender<u64>,
}

impl Default for Current {
    fn default() -> Self {
        Current {
            task: Mutex::new(None),
            changes: tokio::sync::watch::Sender::new(0),
        }
    }
}

impl Current {
    fn set(&self, task: Option<(TaskId, CancellationToken)>) {
        *lock(&self.task) = task;
        self.changes
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    fn running(&self) -> Vec<TaskId> {
        lock(&self.task).iter().map(|(id, _)| *id).collect()
    }

    fn stop_if(&self, cancelled: &[TaskId]) {
        if let Some((id, stop)) = lock(&self.task).as_ref()
            && cancelled.contains(id)
        {
            tracing::info!(task_id = %id, "task cancelled by the coordinator");
            stop.cancel();
        }
    }
}

/// Runs the worker until it is told to stop (by the coordinator or `signals`).
///
/// # Errors
/// When the coordinator refuses to register the worker.
pub async fn run(options: WorkerOptions, signals: StopSignals) -> Result<(), WorkerError> {
    let client = Client::new(&options.server_url, options.token.clone(), options.id)?;
    let registration = WorkerUpdate {
        tags: Some(options.tags.clone()),
        pid: Some(std::process::id()),
        stopped: Some(false),
        check_interval: Some(options.check_interval),
        started_ts: Some(blanket_core::wire::now()),
        logfile: Some(options.logfile.clone()),
        daemon: Some(options.daemon),
    };
    let retry = Duration::from_secs_f64(options.check_interval.max(0.5));
    if !register_until_reachable(&client, &registration, retry, &signals.drain).await? {
        return Ok(());
    }
    tracing::info!(worker_id = %options.id, server = %options.server_url, tags = ?options.tags, "worker registered");
    let current = Arc::new(Current::default());
    let finished = CancellationToken::new();
    let heartbeat = tokio::spawn(heartbeat_loop(
        client.clone(),
        registration.clone(),
        Arc::clone(&current),
        signals.clone(),
        finished.clone(),
    ));
    let outcome = claim_loop(&client, &current, &signals, retry).await;
    finished.cancel();
    let _ = heartbeat.await;
    let goodbye = WorkerUpdate {
        stopped: Some(true),
        ..WorkerUpdate::default()
    };
    if let Err(error) = client.register(&goodbye).await {
        tracing::warn!(error = %error, "could not record that the worker stopped");
    }
    tracing::info!(worker_id = %options.id, "worker stopped");
    outcome
}

/// Registers, retrying while nobody answers. `false` when told to stop before registering.
async fn register_until_reachable(
    client: &Client,
    registration: &WorkerUpdate,
    retry: Duration,
    drain: &CancellationToken,
) -> Result<bool, WorkerError> {
    loop {
        match client.register(registration).await {
            Ok(()) => return Ok(true),
            Err(WorkerError::Unreachable(message)) => {
                tracing::warn!(cause = %message, "coordinator unreachable, retrying registration");
                tokio::select! {
                    () = tokio::time::sleep(retry) => {}
                    () = drain.cancelled() => return Ok(false),
                }
            }
            Err(error) => return Err(error),
        }
    }
}

async fn claim_loop(
    client: &Client,
    current: &Current,
    signals: &StopSignals,
    retry: Duration,
) -> Result<(), WorkerError> {
    while !signals.drain.is_cancelled() {
        let claimed = tokio::select! {
            claimed = client.claim(CLAIM_WAIT) => claimed,
            () = signals.drain.cancelled() => break,
        };
        match claimed {
            Ok(Some(claimed)) => run_task(client, current, signals, claimed).await,
            Ok(None) => {}
            Err(WorkerError::Refused(message)) => {
                // The coordinator forgot us (deleted, or a new data directory): register again.
                tracing::warn!(cause = %message, "claim refused, registering again");
                wait_or_stop(retry, &signals.drain).await;
            }
            Err(error) => {
                tracing::warn!(error = %error, "claim failed, retrying");
                wait_or_stop(retry, &signals.drain).await;
            }
        }
    }
    Ok(())
}

async fn wait_or_stop(delay: Duration, drain: &CancellationToken) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        () = drain.cancelled() => {}
    }
}

#[tracing::instrument(skip_all, fields(task_id = %claimed.task.id, task_type = %claimed.task.task_type, attempt = claimed.task.attempts))]
async fn run_task(client: &Client, current: &Current, signals: &StopSignals, claimed: ClaimedTask) {
    let task = claimed.task;
    let stop = signals.force.child_token();
    current.set(Some((task.id, stop.clone())));
    let context = prepare::Context {
        server_url: client.base(),
        worker_pid: std::process::id(),
    };
    let report = match prepare::prepare(&task, &claimed.task_type, &context).await {
        Err(reason) => Some((TaskState::Error, None, Some(reason))),
        Ok(prepared) => match supervise::start(&prepared).await {
            Err(reason) => Some((TaskState::Error, None, Some(reason))),
            Ok(running) => supervise_running(client, &task, running, &stop).await,
        },
    };
    if let Some((state, exit_code, reason)) = report {
        tracing::info!(state = %state, exit_code, "task finished");
        // A finish that cannot be delivered is retried until the coordinator is back; only a
        // forced stop of the worker gives up on it.
        match client
            .finish(task.id, state, exit_code, reason.as_deref(), &signals.force)
            .await
        {
            Ok(()) => {}
            Err(WorkerError::Refused(message)) => {
                tracing::info!(cause = %message, "final report refused")
            }
            Err(error) => tracing::warn!(error = %error, "final report not delivered"),
        }
    }
    current.set(None);
}

/// Reports the start, forwards progress, waits for the end; `None` when the coordinator
/// already decided the outcome (the task was cancelled or taken away).
async fn supervise_running(
    client: &Client,
    task: &blanket_core::wire::Task,
    running: supervise::Running,
    stop: &CancellationToken,
) -> Option<(TaskState, Option<i32>, Option<String>)> {
    match client.run(task.id, running.pid()).await {
        Ok(_) => {}
        Err(WorkerError::Refused(message)) => {
            tracing::info!(cause = %message, "the task is no longer ours, stopping it");
            stop.cancel();
        }
        Err(error) => tracing::warn!(error = %error, "could not report the start; running anyway"),
    }
    let progress = tokio::spawn(forward_progress(
        client.clone(),
        task.id,
        running.progress(),
    ));
    let timeout = Duration::from_secs(task.timeout.max(1));
    let outcome = running.wait(timeout, stop).await;
    progress.abort();
    match outcome {
        Outcome::Exited(0) => Some((TaskState::Success, Some(0), None)),
        Outcome::Exited(code) => Some((
            TaskState::Error,
            Some(code),
            Some(format!("exited with code {code}")),
        )),
        Outcome::Signaled(signal) => Some((
            TaskState::Error,
            None,
            Some(format!("killed by signal {signal}")),
        )),
        Outcome::TimedOut => Some((
            TaskState::TimedOut,
            None,
            Some(format!("timed out after {} s", task.timeout)),
        )),
        Outcome::Stopped => Some((
            TaskState::Stopped,
            None,
            Some("stopped: its worker was force-stopped".into()),
        )),
    }
}

async fn forward_progress(
    client: Client,
    task_id: TaskId,
    mut progress: tokio::sync::watch::Receiver<Option<u8>>,
) {
    while progress.changed().await.is_ok() {
        let value = *progress.borrow_and_update();
        if let Some(value) = value
            && let Err(error) = client.progress(task_id, value).await
        {
            tracing::debug!(error = %error, "progress not reported");
        }
    }
}

/// Keeps the lease alive and learns, as it happens, of cancels and stop requests.
async fn heartbeat_loop(
    client: Client,
    registration: WorkerUpdate,
    current: Arc<Current>,
    signals: StopSignals,
    finished: CancellationToken,
) {
    let mut changes = current.changes.subscribe();
    loop {
        changes.borrow_and_update();
        let running = current.running();
        let reply = tokio::select! {
            reply = client.heartbeat(&running, HEARTBEAT_WAIT) => reply,
            _ = changes.changed() => continue,
            () = finished.cancelled() => return,
        };
        match reply {
            Ok(reply) => {
                current.stop_if(&reply.cancelled_tasks);
                if reply.force {
                    signals.force.cancel();
                }
                if reply.stop {
                    signals.drain.cancel();
                }
            }
            Err(WorkerError::Refused(_)) => {
                if let Err(error) = client.register(&registration).await {
                    tracing::warn!(error = %error, "could not register again");
                }
            }
            Err(error) => {
                tracing::debug!(error = %error, "heartbeat failed");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = finished.cancelled() => return,
                }
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded value is replaced whole, so a poisoned lock holds nothing half-written.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
