//! The SQLite store: the only module that sees SQL, a `Connection` or a `Row`.
//! Writes run on one writer thread that batches whatever is queued into one transaction (each
//! job in its own savepoint); reads run in `spawn_blocking` on a small pool of read-only
//! connections (WAL lets them read while the writer writes); WAL checkpoints run on a thread
//! of their own, so their copying and fsync never delay a commit. No async code touches SQLite.

mod schema;
mod tasks;
mod workers;

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::wire;

pub use tasks::{Claimed, NewTaskRow, TaskChange, TaskCounts};

/// How many queued writes one transaction takes at most; bounds the latency of the first.
const MAX_BATCH: usize = 256;
/// Read-only connections kept open for reuse.
const READ_POOL_SIZE: usize = 4;
/// The WAL size, in pages, past which the writer asks for a checkpoint: SQLite's own
/// auto-checkpoint threshold, which the writer's WAL hook replaces.
const CHECKPOINT_PAGES: i32 = 1000;

thread_local! {
    /// The writer thread's WAL size in pages after its last commit, as SQLite's WAL hook
    /// reports it (the hook takes a plain function, so it reaches the writer through this).
    static WAL_PAGES: Cell<i32> = const { Cell::new(0) };
}

/// A handle on the database. Cloning shares the same writer thread and read pool.
#[derive(Clone)]
pub struct Store {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    // std Mutex: held only to push or pop a job sender or a connection, never across `.await`.
    writer: Mutex<Option<mpsc::Sender<WriterMessage>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Connection>>,
}

/// What a write job hands back to the writer: what to do once the whole transaction has
/// committed (or failed to).
type Completion = Box<dyn FnOnce(Result<()>) + Send>;

/// A unit of work for the writer thread.
trait WriteJob: Send {
    /// Runs inside the batch's transaction; `false` rolls back this job's savepoint only.
    fn run(self: Box<Self>, connection: &Connection) -> (bool, Completion);
    /// Answers without running, when no transaction could be started.
    fn fail(self: Box<Self>, error: Error);
}

struct Job<F, T> {
    work: F,
    reply: oneshot::Sender<Result<T>>,
}

impl<F, T> WriteJob for Job<F, T>
where
    F: FnOnce(&Connection) -> Result<T> + Send,
    T: Send + 'static,
{
    fn run(self: Box<Self>, connection: &Connection) -> (bool, Completion) {
        let outcome = (self.work)(connection);
        let keep = outcome.is_ok();
        let reply = self.reply;
        let completion: Completion = Box::new(move |committed: Result<()>| {
            let _ = reply.send(committed.and(outcome));
        });
        (keep, completion)
    }

    fn fail(self: Box<Self>, error: Error) {
        let _ = self.reply.send(Err(error));
    }
}

enum WriterMessage {
    Job(Box<dyn WriteJob>),
    Close(oneshot::Sender<()>),
}

impl Store {
    /// Opens (creating if needed) the database at `path`, migrates it to the current schema
    /// and starts the writer thread.
    ///
    /// # Errors
    /// `Invalid` for a file that is not a SQLite database or comes from a newer version,
    /// `Unavailable` when it cannot be opened or written.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|source| Error::io(format!("creating {}", parent.display()), source))?;
        }
        let mut connection = Connection::open(path).map_err(|error| storage_error(path, &error))?;
        configure(&connection).map_err(|error| storage_error(path, &error))?;
        schema::migrate(&mut connection, path)?;
        // Heartbeats held by a coordinator that is gone ended with it.
        connection
            .execute(
                "UPDATE workers SET held_until_ts = ?1 WHERE held_until_ts > ?1",
                [wire::now()],
            )
            .map_err(|error| storage_error(path, &error))?;
        let checkpointer = Checkpointer::start(path)?;
        // Replaces SQLite's auto-checkpoint, which would run inside the writer's COMMIT.
        connection.wal_hook(Some(note_wal_pages));
        let (sender, receiver) = mpsc::channel();
        let writer_thread = std::thread::Builder::new()
            .name("blanket-db-writer".into())
            .spawn(move || run_writer(connection, receiver, checkpointer))
            .map_err(|source| Error::io("starting the database writer thread", source))?;
        Ok(Store {
            shared: Arc::new(Shared {
                path: path.to_path_buf(),
                writer: Mutex::new(Some(sender)),
                writer_thread: Mutex::new(Some(writer_thread)),
                readers: Mutex::new(Vec::new()),
            }),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Finishes queued writes, checkpoints the WAL and stops the writer. Later writes fail
    /// with `Unavailable`. Safe to call more than once.
    pub async fn close(&self) {
        let sender = lock(&self.shared.writer).take();
        if let Some(sender) = sender {
            let (done, finished) = oneshot::channel();
            if sender.send(WriterMessage::Close(done)).is_ok() {
                let _ = finished.await;
            }
        }
        let thread = lock(&self.shared.writer_thread).take();
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
        lock(&self.shared.readers).clear();
    }

    /// Runs `job` on the writer thread inside a transaction; resolves after the commit.
    async fn write<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (reply, answer) = oneshot::channel();
        let write_job: Box<dyn WriteJob> = Box::new(Job { work: job, reply });
        let sent = match lock(&self.shared.writer).as_ref() {
            Some(sender) => sender.send(WriterMessage::Job(write_job)).is_ok(),
            None => false,
        };
        if !sent {
            return Err(Error::Unavailable(
                "the database is closed: the coordinator is shutting down".into(),
            ));
        }
        answer
            .await
            .map_err(|_| Error::Internal("the database writer stopped before answering".into()))?
    }

    /// Runs `job` on a pooled read-only connection off the async executor.
    async fn read<T: Send + 'static>(
        &self,
        job: impl FnOnce(&Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let pooled = lock(&shared.readers).pop();
            let connection = match pooled {
                Some(connection) => connection,
                None => open_reader(&shared.path)?,
            };
            let outcome = job(&connection);
            let mut readers = lock(&shared.readers);
            if readers.len() < READ_POOL_SIZE {
                readers.push(connection);
            }
            outcome
        })
        .await
        .map_err(|error| Error::Internal(format!("a database read panicked: {error}")))?
    }
}

fn configure(connection: &Connection) -> rusqlite::Result<()> {
    // WAL lets readers run beside the writer; NORMAL keeps every commit safe from a crashed
    // process (only a power cut can lose the last commits) without an fsync per commit.
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(())
}

fn open_reader(path: &Path) -> Result<Connection> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|error| storage_error(path, &error))?;
    connection
        .busy_timeout(std::time::Duration::from_secs(5))
        .map_err(|error| storage_error(path, &error))?;
    Ok(connection)
}

/// The thread that checkpoints the WAL when the writer asks, on a connection of its own.
struct Checkpointer {
    // Capacity one and `try_send`: requests made while a checkpoint runs become one more.
    requests: mpsc::SyncSender<()>,
    thread: JoinHandle<()>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer> {
        let connection = Connection::open(path).map_err(|error| storage_error(path, &error))?;
        configure(&connection).map_err(|error| storage_error(path, &error))?;
        let (requests, received) = mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("blanket-db-checkpoint".into())
            .spawn(move || {
                while received.recv().is_ok() {
                    // PASSIVE copies what no reader still needs and waits for no one: the
                    // writer keeps committing meanwhile.
                    if let Err(error) = connection.execute_batch("PRAGMA wal_checkpoint(PASSIVE)")
                    {
                        tracing::warn!(error = %error, "database checkpoint failed; the next one tries again");
                    }
                }
            })
            .map_err(|source| Error::io("starting the database checkpoint thread", source))?;
        Ok(Checkpointer { requests, thread })
    }

    /// Asks for a checkpoint once the WAL has grown past `CHECKPOINT_PAGES`; never waits.
    fn request_if_due(&self) {
        if WAL_PAGES.get() >= CHECKPOINT_PAGES {
            let _ = self.requests.try_send(());
        }
    }

    /// Lets a running checkpoint finish and ends the thread.
    fn stop(self) {
        drop(self.requests);
        if self.thread.join().is_err() {
            tracing::warn!("the database checkpoint thread panicked");
        }
    }
}

/// The writer's WAL hook: records the WAL's size after each commit for `Checkpointer`.
fn note_wal_pages(_wal: &rusqlite::hooks::Wal, pages: std::ffi::c_int) -> rusqlite::Result<()> {
    WAL_PAGES.set(pages);
    Ok(())
}

fn run_writer(
    connection: Connection,
    receiver: mpsc::Receiver<WriterMessage>,
    checkpointer: Checkpointer,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut close_request = None;
    while let Ok(first) = receiver.recv() {
        match first {
            WriterMessage::Job(job) => batch.push(job),
            WriterMessage::Close(done) => close_request = Some(done),
        }
        while close_request.is_none() && batch.len() < MAX_BATCH {
            match receiver.try_recv() {
                Ok(WriterMessage::Job(job)) => batch.push(job),
                Ok(WriterMessage::Close(done)) => close_request = Some(done),
                Err(_) => break,
            }
        }
        if !batch.is_empty() {
            commit_batch(&connection, &mut batch);
            checkpointer.request_if_due();
        }
        if let Some(done) = close_request.take() {
            checkpointer.stop();
            close(connection);
            let _ = done.send(());
            return;
        }
    }
    checkpointer.stop();
    close(connection);
}

fn commit_batch(connection: &Connection, batch: &mut Vec<Box<dyn WriteJob>>) {
    if let Err(error) = connection.execute_batch("BEGIN IMMEDIATE") {
        tracing::error!(error = %error, "database transaction could not start");
        for job in batch.drain(..) {
            job.fail(write_failure(&error));
        }
        return;
    }
    let mut completions = Vec::with_capacity(batch.len());
    let mut jobs = batch.drain(..);
    let mut transaction_lost = false;
    for job in jobs.by_ref() {
        let savepoint_started = connection.execute_batch("SAVEPOINT job").is_ok();
        let (keep, completion) = job.run(connection);
        completions.push(completion);
        if connection.is_autocommit() {
            // SQLite rolls the whole transaction back after some errors (disk full, I/O
            // error): the jobs before are undone, and one run after would commit on its own
            // while its caller is told the batch failed.
            transaction_lost = true;
            break;
        }
        if savepoint_started {
            let end = if keep {
                "RELEASE job"
            } else {
                "ROLLBACK TO job; RELEASE job"
            };
            if let Err(error) = connection.execute_batch(end) {
                tracing::error!(error = %error, "database savepoint could not end");
            }
        }
    }
    for job in jobs {
        job.fail(rolled_back());
    }
    let committed = if transaction_lost {
        Err(rolled_back())
    } else {
        connection.execute_batch("COMMIT").map_err(|error| {
            let _ = connection.execute_batch("ROLLBACK");
            write_failure(&error)
        })
    };
    if let Err(error) = &committed {
        tracing::error!(error = %error, "database commit failed");
    }
    for completion in completions {
        completion(match &committed {
            Ok(()) => Ok(()),
            Err(error) => Err(Error::Unavailable(error.to_string())),
        });
    }
}

fn close(connection: Connection) {
    let _ = connection.execute_batch("PRAGMA optimize; PRAGMA wal_checkpoint(TRUNCATE);");
    if let Err((_, error)) = connection.close() {
        tracing::warn!(error = %error, "database did not close cleanly");
    }
}

fn write_failure(error: &rusqlite::Error) -> Error {
    Error::Unavailable(format!(
        "the database cannot take writes ({error}): check that the data directory is writable and the disk has room"
    ))
}

/// The answer to the jobs of a batch whose transaction SQLite rolled back on its own.
fn rolled_back() -> Error {
    Error::Unavailable(
        "the database cannot take writes (a write failed and SQLite rolled the transaction back): check that the data directory is writable and the disk has room".into(),
    )
}

/// Maps a SQLite failure to what the caller can do about it.
fn storage_error(path: &Path, error: &rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => Error::Invalid(format!(
            "{} is not a SQLite database: point the `database` setting at a new file",
            path.display()
        )),
        Some(
            ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::CannotOpen
            | ErrorCode::SystemIoFailure
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::PermissionDenied,
        ) => Error::Unavailable(format!(
            "the database {} cannot be used ({error}): check that the data directory is writable and the disk has room",
            path.display()
        )),
        _ => Error::Internal(format!("database error on {}: {error}", path.display())),
    }
}

/// Converts a SQLite error met inside a job.
fn sql_error(error: rusqlite::Error) -> Error {
    use rusqlite::ErrorCode;
    match error.sqlite_error_code() {
        Some(
            ErrorCode::DiskFull
            | ErrorCode::ReadOnly
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::PermissionDenied
            | ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked,
        ) => write_failure(&error),
        _ => Error::Internal(format!("database error: {error}")),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the guarded values half-updated (they
    // are pushed or popped whole), so a poisoned lock is safe to keep using.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that inserts setting `key`, and the receiver of its answer.
    fn insert_setting(key: &'static str) -> (Box<dyn WriteJob>, oneshot::Receiver<Result<()>>) {
        let (reply, answer) = oneshot::channel();
        let work = move |connection: &Connection| {
            connection
                .execute("INSERT INTO settings (key, value) VALUES (?1, 'x')", [key])
                .map(|_| ())
                .map_err(sql_error)
        };
        (Box::new(Job { work, reply }), answer)
    }

    #[tokio::test]
    async fn the_checkpoint_thread_copies_a_grown_wal_into_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blanket.db");
        let store = Store::open(&path).unwrap();
        let size = || std::fs::metadata(&path).unwrap().len();
        let before = size();
        // About a page per commit, until the WAL is past the checkpoint threshold.
        let pages = usize::try_from(CHECKPOINT_PAGES).unwrap();
        for index in 0..pages + 100 {
            store
                .write(move |connection: &Connection| {
                    connection
                        .execute(
                            "INSERT INTO settings (key, value) VALUES (?1, ?2)",
                            (format!("key-{index}"), "x".repeat(3000)),
                        )
                        .map(|_| ())
                        .map_err(sql_error)
                })
                .await
                .unwrap();
        }
        // In WAL mode only a checkpoint writes to the database file itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while size() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint copied the WAL into the database"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        store.close().await;
    }

    #[test]
    fn disk_full_read_only_and_io_errors_are_unavailable_and_say_what_to_check() {
        for (code, cause) in [
            (rusqlite::ffi::SQLITE_FULL, "full"),
            (rusqlite::ffi::SQLITE_READONLY, "readonly"),
            (rusqlite::ffi::SQLITE_IOERR_WRITE, "writing to disk"),
            (rusqlite::ffi::SQLITE_CANTOPEN, "open"),
        ] {
            let error = sql_error(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(code),
                None,
            ));
            let message = error.to_string();
            assert!(matches!(error, Error::Unavailable(_)), "{code}: {message}");
            assert!(message.contains(cause), "{message}");
            assert!(
                message.contains("writable") && message.contains("room"),
                "{message}"
            );
        }
        let constraint = sql_error(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
            None,
        ));
        assert!(matches!(constraint, Error::Internal(_)), "{constraint}");
    }

    #[test]
    fn a_batch_whose_transaction_sqlite_rolled_back_commits_none_of_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blanket.db");
        let mut connection = Connection::open(&path).unwrap();
        configure(&connection).unwrap();
        schema::migrate(&mut connection, &path).unwrap();
        let (before, before_answer) = insert_setting("before");
        // What SQLite does on its own after a disk-full or I/O error inside a statement.
        let (reply, failing_answer) = oneshot::channel::<Result<()>>();
        let failing: Box<dyn WriteJob> = Box::new(Job {
            work: |connection: &Connection| {
                connection.execute_batch("ROLLBACK").map_err(sql_error)?;
                Err(Error::Unavailable("disk I/O error".into()))
            },
            reply,
        });
        let (after, after_answer) = insert_setting("after");
        commit_batch(&connection, &mut vec![before, failing, after]);
        for answer in [before_answer, failing_answer, after_answer] {
            let error = answer.blocking_recv().unwrap().unwrap_err();
            assert!(matches!(error, Error::Unavailable(_)), "{error}");
            assert!(error.to_string().contains("writable"), "{error}");
        }
        let stored: i64 = connection
            .query_row("SELECT COUNT(*) FROM settings", [], |row| row.get(0))
            .unwrap();
        assert_eq!(stored, 0, "a job of the failed batch was committed");
        // The connection takes the next batch as usual.
        let (again, again_answer) = insert_setting("again");
        commit_batch(&connection, &mut vec![again]);
        again_answer.blocking_recv().unwrap().unwrap();
    }
}
