//! Worker rows: registration that merges fields, heartbeats, stop requests, deletes, and the
//! queue-wide settings (pause). A worker's status is derived when read, from its flags and
//! how long ago it was heard, so no timer has to flip it. A worker is heard all the while a
//! heartbeat of its is held open (`held_until_ts`), so a long hold costs it nothing.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::TaskChange;
use super::tasks::{change_task, live_tasks_of, parse_json, release_tasks_of, to_json};
use super::{Store, sql_error};
use crate::error::{Error, Result};
use crate::id::{TaskId, WorkerId};
use crate::state::TaskState;
use crate::wire::{self, HeartbeatReply, Task, Worker, WorkerStatus, WorkerUpdate};

const WORKER_COLUMNS: &str = "id, tags, pid, stopped, check_interval, started_ts, logfile, daemon, \
    MAX(last_heard_ts, held_until_ts), lost, stop_requested, launched, \
    (SELECT t.id FROM tasks t WHERE t.worker_id = workers.id AND t.state IN ('CLAIMED', 'RUNNING') ORDER BY t.seq LIMIT 1)";

const QUEUE_PAUSED: &str = "queue_paused";
/// A claim not reported as running after this long was lost on its way to the worker.
const ABANDONED_CLAIM_SECONDS: i64 = 5;

impl Store {
    /// Registers a worker or merges `update` into its record; absent fields stay as they were.
    /// An explicit `stopped: false` (a worker starting) clears any stop request; an explicit
    /// `stopped: true` releases the tasks it still holds, which are returned beside it.
    pub async fn upsert_worker(
        &self,
        id: WorkerId,
        update: WorkerUpdate,
        launched: bool,
        lease_seconds: u64,
    ) -> Result<(Worker, Vec<Task>)> {
        self.write(move |connection| {
            let now = wire::now();
            let tags = update.tags.as_ref().map(to_json).transpose()?;
            let starting = update.stopped == Some(false);
            connection
                .execute(
                    "INSERT INTO workers (id, started_ts, last_heard_ts, launched) VALUES (?1, ?2, ?2, ?3) \
                     ON CONFLICT(id) DO UPDATE SET last_heard_ts = ?2, lost = 0, launched = launched OR ?3",
                    params![id.to_string(), now, launched],
                )
                .map_err(sql_error)?;
            connection
                .execute(
                    "UPDATE workers SET tags = COALESCE(?2, tags), pid = COALESCE(?3, pid), \
                     stopped = COALESCE(?4, stopped), check_interval = COALESCE(?5, check_interval), \
                     started_ts = COALESCE(?6, started_ts), logfile = COALESCE(?7, logfile), \
                     daemon = COALESCE(?8, daemon), \
                     stop_requested = CASE WHEN ?9 THEN 0 ELSE stop_requested END, \
                     force_stop = CASE WHEN ?9 THEN 0 ELSE force_stop END WHERE id = ?1",
                    params![
                        id.to_string(),
                        tags,
                        update.pid,
                        update.stopped,
                        update.check_interval,
                        update.started_ts,
                        update.logfile,
                        update.daemon,
                        starting
                    ],
                )
                .map_err(sql_error)?;
            let released = if update.stopped == Some(true) {
                release_tasks_of(connection, id, "its worker stopped")?
            } else {
                Vec::new()
            };
            Ok((load_worker(connection, id, now, lease_seconds)?, released))
        })
        .await
    }

    /// The oldest last-heard time among workers that are neither stopped nor lost (the end
    /// of a held heartbeat counting as heard): when the next one can become lost.
    pub async fn earliest_heartbeat(&self) -> Result<Option<i64>> {
        self.read(|connection| {
            connection
                .query_row(
                    "SELECT MIN(MAX(last_heard_ts, held_until_ts)) FROM workers WHERE stopped = 0 AND lost = 0",
                    [],
                    |row| row.get(0),
                )
                .map_err(sql_error)
        })
        .await
    }

    /// One worker.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn worker(&self, id: WorkerId, lease_seconds: u64) -> Result<Worker> {
        self.read(move |connection| load_worker(connection, id, wire::now(), lease_seconds))
            .await
    }

    /// Every worker, oldest registration first.
    pub async fn workers(&self, lease_seconds: u64) -> Result<Vec<Worker>> {
        self.read(move |connection| {
            let now = wire::now();
            let mut statement = connection
                .prepare_cached(&format!(
                    "SELECT {WORKER_COLUMNS} FROM workers ORDER BY started_ts, id"
                ))
                .map_err(sql_error)?;
            let rows = statement
                .query_map([], |row| read_worker_row(row, now, lease_seconds))
                .map_err(sql_error)?;
            rows.map(|row| row.map_err(sql_error)?).collect()
        })
        .await
    }

    /// Records that a worker is alive and tells it what to do: stop, and which of the tasks
    /// it says it runs are no longer its own (cancelled, deleted or given away). A task it
    /// claimed but does not run (its claim answer was lost) goes back to the queue; those
    /// tasks are returned beside the reply. The heartbeat is then held open for `hold`
    /// seconds, under the id `hold_id`, and the worker counts as heard until then (see
    /// [`Store::end_heartbeat_hold`]).
    ///
    /// # Errors
    /// `NotFound` for an unregistered worker.
    pub async fn heartbeat(
        &self,
        id: WorkerId,
        running: Vec<TaskId>,
        hold: u64,
        hold_id: u64,
    ) -> Result<(HeartbeatReply, Vec<Task>)> {
        self.write(move |connection| {
            let now = wire::now();
            let held_until = now.saturating_add(i64::try_from(hold).unwrap_or(i64::MAX));
            let flags = connection
                .query_row(
                    "UPDATE workers SET last_heard_ts = ?2, held_until_ts = ?3, hold_id = ?4, lost = 0 WHERE id = ?1 RETURNING stop_requested, force_stop",
                    params![id.to_string(), now, held_until, hold_id.cast_signed()],
                    |row| Ok((row.get::<_, bool>(0)?, row.get::<_, bool>(1)?)),
                )
                .optional()
                .map_err(sql_error)?;
            let Some((stop, force)) = flags else {
                return Err(unknown_worker(id));
            };
            let mut cancelled_tasks = Vec::new();
            for &task_id in &running {
                let owner = connection
                    .query_row(
                        "SELECT worker_id, state IN ('CLAIMED', 'RUNNING') FROM tasks WHERE id = ?1",
                        [task_id.to_string()],
                        |row| Ok((row.get::<_, String>(0)?, row.get::<_, bool>(1)?)),
                    )
                    .optional()
                    .map_err(sql_error)?;
                let still_ours = matches!(owner, Some((owner, true)) if owner == id.to_string());
                if !still_ours {
                    cancelled_tasks.push(task_id);
                }
            }
            let abandoned_before = wire::now() - ABANDONED_CLAIM_SECONDS;
            let mut requeued = Vec::new();
            for task in live_tasks_of(connection, id)? {
                if task.state == TaskState::Claimed && task.last_updated_ts < abandoned_before && !running.contains(&task.id) {
                    let change = TaskChange::Requeue {
                        reason: "claimed but never started by its worker".into(),
                    };
                    requeued.push(change_task(connection, task.id, &change, "coordinator")?);
                }
            }
            let reply = HeartbeatReply {
                stop,
                force,
                cancelled_tasks,
            };
            Ok((reply, requeued))
        })
        .await
    }

    /// The held heartbeat `hold_id` ended before its time (its connection closed: the worker
    /// may have died), so the worker's lease runs from now. A newer hold is left alone.
    pub async fn end_heartbeat_hold(&self, id: WorkerId, hold_id: u64) -> Result<()> {
        self.write(move |connection| {
            connection
                .execute(
                    "UPDATE workers SET held_until_ts = ?2 WHERE id = ?1 AND hold_id = ?3 AND held_until_ts > ?2",
                    params![id.to_string(), wire::now(), hold_id.cast_signed()],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    /// Asks a worker to stop after its current task, or at once with `force`.
    ///
    /// # Errors
    /// `NotFound` for an unknown id.
    pub async fn request_worker_stop(
        &self,
        id: WorkerId,
        force: bool,
        lease_seconds: u64,
    ) -> Result<Worker> {
        self.write(move |connection| {
            let changed = connection
                .execute(
                    "UPDATE workers SET stop_requested = 1, force_stop = force_stop OR ?2 WHERE id = ?1",
                    params![id.to_string(), force],
                )
                .map_err(sql_error)?;
            if changed == 0 {
                return Err(unknown_worker(id));
            }
            load_worker(connection, id, wire::now(), lease_seconds)
        })
        .await
    }

    /// Marks workers not heard from within the lease as lost; returns the newly lost ones.
    pub async fn mark_lost_workers(&self, lease_seconds: u64) -> Result<Vec<WorkerId>> {
        self.write(move |connection| {
            let cutoff = wire::now() - i64::try_from(lease_seconds).unwrap_or(i64::MAX);
            let mut statement = connection
                .prepare_cached(
                    "UPDATE workers SET lost = 1 WHERE stopped = 0 AND lost = 0 AND MAX(last_heard_ts, held_until_ts) < ?1 RETURNING id",
                )
                .map_err(sql_error)?;
            let rows = statement
                .query_map([cutoff], |row| row.get::<_, String>(0))
                .map_err(sql_error)?;
            rows.map(|row| row.map_err(sql_error)?.parse()).collect()
        })
        .await
    }

    /// Forgets a worker that is not running.
    ///
    /// # Errors
    /// `NotFound` for an unknown id, `Conflict` while it runs (stop it first).
    pub async fn delete_worker(&self, id: WorkerId, lease_seconds: u64) -> Result<Worker> {
        self.write(move |connection| {
            let worker = load_worker(connection, id, wire::now(), lease_seconds)?;
            if matches!(
                worker.status,
                WorkerStatus::Running | WorkerStatus::Stopping
            ) {
                return Err(Error::Conflict(format!(
                    "worker {id} is still {}: stop it first with PUT /worker/{id}/stop",
                    worker.status.as_str()
                )));
            }
            connection
                .execute("DELETE FROM workers WHERE id = ?1", [id.to_string()])
                .map_err(sql_error)?;
            Ok(worker)
        })
        .await
    }

    /// Pauses or resumes the queue: while paused, no task is claimed. Persisted.
    pub async fn set_queue_paused(&self, paused: bool) -> Result<()> {
        self.write(move |connection| {
            connection
                .execute(
                    "INSERT INTO settings (key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = ?2",
                    params![QUEUE_PAUSED, if paused { "true" } else { "false" }],
                )
                .map_err(sql_error)?;
            Ok(())
        })
        .await
    }

    /// Whether the queue is paused.
    pub async fn queue_is_paused(&self) -> Result<bool> {
        self.read(queue_paused).await
    }
}

pub(super) fn queue_paused(connection: &Connection) -> Result<bool> {
    let value = connection
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [QUEUE_PAUSED],
            |row| row.get::<_, String>(0),
        )
        .optional()
        .map_err(sql_error)?;
    Ok(value.as_deref() == Some("true"))
}

fn load_worker(
    connection: &Connection,
    id: WorkerId,
    now: i64,
    lease_seconds: u64,
) -> Result<Worker> {
    let mut statement = connection
        .prepare_cached(&format!(
            "SELECT {WORKER_COLUMNS} FROM workers WHERE id = ?1"
        ))
        .map_err(sql_error)?;
    statement
        .query_row([id.to_string()], |row| {
            read_worker_row(row, now, lease_seconds)
        })
        .optional()
        .map_err(sql_error)?
        .ok_or_else(|| unknown_worker(id))?
}

fn read_worker_row(
    row: &Row<'_>,
    now: i64,
    lease_seconds: u64,
) -> rusqlite::Result<Result<Worker>> {
    let id: String = row.get(0)?;
    let tags: String = row.get(1)?;
    let pid: i64 = row.get(2)?;
    let stopped: bool = row.get(3)?;
    // The end of a hold still open is in the future: the worker is heard now.
    let last_heard_ts = row.get::<_, i64>(8)?.min(now);
    let lost: bool = row.get(9)?;
    let stop_requested: bool = row.get(10)?;
    let current_task: Option<String> = row.get(12)?;
    let silent_too_long = now - last_heard_ts > i64::try_from(lease_seconds).unwrap_or(i64::MAX);
    let status = if stopped {
        WorkerStatus::Stopped
    } else if lost || silent_too_long {
        WorkerStatus::Lost
    } else if stop_requested {
        WorkerStatus::Stopping
    } else {
        WorkerStatus::Running
    };
    let check_interval: f64 = row.get(4)?;
    let started_ts: i64 = row.get(5)?;
    let logfile: String = row.get(6)?;
    let daemon: bool = row.get(7)?;
    let launched: bool = row.get(11)?;
    Ok((|| {
        Ok(Worker {
            id: id.parse()?,
            tags: parse_json(&tags, "worker tags")?,
            pid: u32::try_from(pid).unwrap_or(0),
            stopped,
            check_interval,
            started_ts,
            logfile,
            daemon,
            last_heard_ts,
            status,
            current_task: current_task.map(|task| task.parse()).transpose()?,
            launched,
        })
    })())
}

fn unknown_worker(id: WorkerId) -> Error {
    Error::NotFound(format!(
        "worker {id} not found: GET /worker/ lists the known workers"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: u64 = 30;

    /// Moves the worker's last heartbeat, and the end of its hold, `seconds` into the past.
    async fn age(store: &Store, id: WorkerId, seconds: i64) {
        store
            .write(move |connection| {
                connection
                    .execute(
                        "UPDATE workers SET last_heard_ts = last_heard_ts - ?2, held_until_ts = held_until_ts - ?2 WHERE id = ?1",
                        params![id.to_string(), seconds],
                    )
                    .map(drop)
                    .map_err(sql_error)
            })
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn a_worker_is_heard_while_its_heartbeat_is_held_and_lost_a_lease_after_it_ends_early() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("blanket.db")).unwrap();
        let id = WorkerId::generate();
        store
            .upsert_worker(id, WorkerUpdate::default(), false, LEASE)
            .await
            .unwrap();
        store.heartbeat(id, Vec::new(), 600, 7).await.unwrap();
        // Two leases since the heartbeat came, but its hold is still open.
        age(&store, id, 2 * 30).await;
        assert!(store.mark_lost_workers(LEASE).await.unwrap().is_empty());
        let worker = store.worker(id, LEASE).await.unwrap();
        assert_eq!(worker.status, WorkerStatus::Running);
        assert!(wire::now() - worker.last_heard_ts <= 1, "{worker:?}");

        // The end of an older hold leaves this one open.
        store.end_heartbeat_hold(id, 6).await.unwrap();
        age(&store, id, 2 * 30).await;
        assert!(store.mark_lost_workers(LEASE).await.unwrap().is_empty());

        // Its connection closed: the lease runs from now, not from the heartbeat.
        store.end_heartbeat_hold(id, 7).await.unwrap();
        assert!(store.mark_lost_workers(LEASE).await.unwrap().is_empty());
        age(&store, id, 31).await;
        assert_eq!(store.mark_lost_workers(LEASE).await.unwrap(), vec![id]);
        store.close().await;
    }

    #[tokio::test]
    async fn heartbeats_held_by_a_coordinator_that_stopped_end_when_the_store_opens_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blanket.db");
        let store = Store::open(&path).unwrap();
        let id = WorkerId::generate();
        store
            .upsert_worker(id, WorkerUpdate::default(), false, LEASE)
            .await
            .unwrap();
        store.heartbeat(id, Vec::new(), 600, 1).await.unwrap();
        store.close().await;

        let store = Store::open(&path).unwrap();
        age(&store, id, 31).await;
        assert_eq!(store.mark_lost_workers(LEASE).await.unwrap(), vec![id]);
        store.close().await;
    }
}
