//! Log files over HTTP: a task's stdout/stderr and a worker's own log, as a live SSE stream
//! (replay, then follow; resumable with `Last-Event-ID`), as a tail, or whole.
//! Following costs no polling loop: one shared inotify watcher wakes the streams whose
//! folder changed, and the hub tells them when their task ended.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::sse::Event;
use axum::response::{IntoResponse, Response};
use blanket_core::hub::HubEvent;
use blanket_core::wire::WorkerStatus;
use blanket_core::{Coordinator, TaskId, WorkerId};
use futures_util::stream::{self, Stream};
use notify::{RecursiveMode, Watcher};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;
use tower::ServiceExt;
use tower_http::services::ServeFile;

use crate::api::{ApiPath, task_id, worker_id};
use crate::error::ApiQuery;
use crate::{ApiError, AppState};

/// The default and largest `n` of a tail.
const DEFAULT_TAIL_LINES: usize = 500;
const MAX_TAIL_LINES: usize = 100_000;
/// How much of a file one read takes while streaming.
const READ_CHUNK: usize = 64 * 1024;

/// One inotify watcher shared by every log stream, so a thousand followers cost one file
/// descriptor and one watch per folder, not one per client.
#[derive(Default)]
pub struct FolderWatcher {
    // Two std mutexes, never across `.await`. `watcher` serialises watch and unwatch calls
    // (which wait for notify's thread); `folders` is all that notify's callback takes, and no
    // one holds it while calling into notify, so the callback can never deadlock with them.
    watcher: Mutex<Option<notify::RecommendedWatcher>>,
    folders: Arc<Mutex<WatchedFolders>>,
}

/// Each watched folder's change counter and how many streams follow it.
type WatchedFolders = HashMap<PathBuf, (watch::Sender<u64>, usize)>;

/// A subscription to changes in one folder; unwatches the folder with the last one dropped.
pub struct FolderChanges {
    receiver: watch::Receiver<u64>,
    folder: PathBuf,
    owner: Arc<FolderWatcher>,
}

impl FolderWatcher {
    /// Subscribes to changes of the files in `folder`.
    fn subscribe(self: &Arc<Self>, folder: &FsPath) -> Result<FolderChanges, ApiError> {
        let mut watcher = lock(&self.watcher);
        if watcher.is_none() {
            let folders = Arc::clone(&self.folders);
            let created =
                notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                    let Ok(event) = event else { return };
                    if !is_write(&event.kind) {
                        return;
                    }
                    let folders = lock(&folders);
                    for path in &event.paths {
                        if let Some((sender, _)) =
                            path.parent().and_then(|parent| folders.get(parent))
                        {
                            sender
                                .send_modify(|generation| *generation = generation.wrapping_add(1));
                        }
                    }
                })
                .map_err(|error| {
                    ApiError::Busy(format!(
                        "cannot watch log files ({error}): use /log/tail instead"
                    ))
                })?;
            *watcher = Some(created);
        }
        let existing = lock(&self.folders).get_mut(folder).map(|(sender, count)| {
            *count += 1;
            sender.subscribe()
        });
        let receiver = match existing {
            Some(receiver) => receiver,
            None => {
                if let Some(watcher) = watcher.as_mut() {
                    watcher
                        .watch(folder, RecursiveMode::NonRecursive)
                        .map_err(|error| {
                            ApiError::Busy(format!(
                                "cannot watch {} ({error}): use /log/tail instead",
                                folder.display()
                            ))
                        })?;
                }
                let (sender, receiver) = watch::channel(0);
                lock(&self.folders).insert(folder.to_path_buf(), (sender, 1));
                receiver
            }
        };
        Ok(FolderChanges {
            receiver,
            folder: folder.to_path_buf(),
            owner: Arc::clone(self),
        })
    }
}

/// Whether an event may have added to a file. Opens and reads are not: the follower's own
/// read of the log would otherwise wake it again, forever.
fn is_write(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::{AccessKind, AccessMode};
    matches!(
        kind,
        EventKind::Create(_)
            | EventKind::Modify(_)
            | EventKind::Remove(_)
            | EventKind::Access(AccessKind::Close(AccessMode::Write))
    )
}

impl Drop for FolderChanges {
    fn drop(&mut self) {
        let mut watcher = lock(&self.owner.watcher);
        let last = {
            let mut folders = lock(&self.owner.folders);
            let last = match folders.get_mut(&self.folder) {
                Some((_, count)) => {
                    *count -= 1;
                    *count == 0
                }
                None => false,
            };
            if last {
                folders.remove(&self.folder);
            }
            last
        };
        if last && let Some(watcher) = watcher.as_mut() {
            let _ = watcher.unwatch(&self.folder);
        }
    }
}

/// Which of a task's two logs.
fn task_log_path(result_dir: &str, query: &ApiQuery) -> Result<PathBuf, ApiError> {
    let name = match query.get("stream") {
        None | Some("" | "stdout") => "blanket.stdout.log",
        Some("stderr") => "blanket.stderr.log",
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "stream={other:?} is not a log: use stream=stdout or stream=stderr"
            )));
        }
    };
    Ok(FsPath::new(result_dir).join(name))
}

/// `GET /task/:id/log`: SSE of the log, replayed then followed until the task has ended and
/// the file is drained; resumes after the line named by `Last-Event-ID`.
pub async fn tasks_log(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: ApiQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = task_id(&id)?;
    let task = state.coordinator.task(id).await?;
    let path = task_log_path(&task.result_dir, &query)?;
    // A task that has not started has no directory yet (its worker makes it), nor does one
    // that ended without starting; make it, so the stream can watch it or end at once empty.
    tokio::fs::create_dir_all(&task.result_dir)
        .await
        .map_err(|error| ApiError::Internal(format!("creating {}: {error}", task.result_dir)))?;
    let end = EndWhen::TaskEnded(id);
    follow(&state, path, resume_after(&headers), end)
}

/// `GET /task/:id/log/tail?n=500`: the last lines, as text.
pub async fn tasks_log_tail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: ApiQuery,
) -> Result<Response, ApiError> {
    let task = state.coordinator.task(task_id(&id)?).await?;
    let path = task_log_path(&task.result_dir, &query)?;
    tail_response(path, &query).await
}

/// `GET /worker/:id/log`: SSE of the worker's own log, followed until it stops.
pub async fn workers_log(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let id = worker_id(&id)?;
    let path = worker_log_path(&state.coordinator, id).await?;
    follow(
        &state,
        path,
        resume_after(&headers),
        EndWhen::WorkerStopped(id),
    )
}

/// `GET /worker/:id/log/tail?n=500`.
pub async fn workers_log_tail(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    query: ApiQuery,
) -> Result<Response, ApiError> {
    let path = worker_log_path(&state.coordinator, worker_id(&id)?).await?;
    tail_response(path, &query).await
}

/// `GET /worker/:id/logs`: the whole log file.
pub async fn workers_logs(
    State(state): State<AppState>,
    ApiPath(id): ApiPath<String>,
    request: Request,
) -> Result<Response, ApiError> {
    let path = worker_log_path(&state.coordinator, worker_id(&id)?).await?;
    if !tokio::fs::try_exists(&path).await.unwrap_or(false) {
        return Err(ApiError::NotFound(format!(
            "worker {id} has not written its log {} yet",
            path.display()
        )));
    }
    let mut response = ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(|error| ApiError::Internal(format!("serving {}: {error}", path.display())))?
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    Ok(response)
}

async fn worker_log_path(coordinator: &Coordinator, id: WorkerId) -> Result<PathBuf, ApiError> {
    let worker = coordinator.worker(id).await?;
    if worker.logfile.is_empty() {
        return Err(ApiError::NotFound(format!(
            "worker {id} did not say where it logs: start it with --logfile to have one"
        )));
    }
    Ok(PathBuf::from(worker.logfile))
}

fn resume_after(headers: &HeaderMap) -> u64 {
    headers
        .get("last-event-id")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

async fn tail_response(path: PathBuf, query: &ApiQuery) -> Result<Response, ApiError> {
    let lines = query
        .parse::<usize>("n", "a number of lines, e.g. 500")?
        .unwrap_or(DEFAULT_TAIL_LINES)
        .min(MAX_TAIL_LINES);
    let text = tokio::task::spawn_blocking(move || tail(&path, lines))
        .await
        .map_err(|error| ApiError::Internal(format!("reading a log tail panicked: {error}")))?
        .map_err(|error| ApiError::Internal(format!("reading a log tail: {error}")))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

/// The last `lines` lines of a file, reading backwards so a huge log costs only its tail.
/// A missing file (the task has not started) is an empty tail.
fn tail(path: &FsPath, lines: usize) -> std::io::Result<String> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(error) => return Err(error),
    };
    let length = file.metadata()?.len();
    let mut start = length;
    let mut collected: Vec<u8> = Vec::new();
    while start > 0 {
        let step = start.min(READ_CHUNK as u64);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0u8; usize::try_from(step).unwrap_or(READ_CHUNK)];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&collected);
        collected = chunk;
        let body = collected.strip_suffix(b"\n").unwrap_or(&collected);
        if body.iter().filter(|&&byte| byte == b'\n').count() >= lines {
            break;
        }
    }
    if lines == 0 {
        return Ok(String::new());
    }
    // Count newlines back from the end, ignoring the one that ends the last line.
    let body_end = collected.len() - usize::from(collected.ends_with(b"\n"));
    let mut from = 0;
    let mut seen = 0;
    for index in (0..body_end).rev() {
        if collected[index] == b'\n' {
            seen += 1;
            if seen == lines {
                from = index + 1;
                break;
            }
        }
    }
    Ok(String::from_utf8_lossy(&collected[from..]).into_owned())
}

/// When a followed log is complete.
#[derive(Clone, Copy)]
enum EndWhen {
    TaskEnded(TaskId),
    WorkerStopped(WorkerId),
}

impl EndWhen {
    async fn reached(self, coordinator: &Coordinator) -> bool {
        match self {
            EndWhen::TaskEnded(id) => coordinator
                .task(id)
                .await
                .map_or(true, |task| task.state.is_terminal()),
            EndWhen::WorkerStopped(id) => coordinator
                .worker(id)
                .await
                .map_or(true, |worker| worker.status == WorkerStatus::Stopped),
        }
    }

    fn concerns(self, event: &HubEvent) -> bool {
        match (self, event) {
            (_, HubEvent::Resync) => true,
            (EndWhen::TaskEnded(id), HubEvent::TaskChanged { id: changed, .. }) => *changed == id,
            (EndWhen::TaskEnded(id), HubEvent::TaskFinished(finished)) => finished.id == id,
            (EndWhen::WorkerStopped(id), HubEvent::WorkerChanged { id: changed }) => *changed == id,
            _ => false,
        }
    }
}

/// Where a stream is in its file.
struct Follower {
    coordinator: Coordinator,
    path: PathBuf,
    offset: u64,
    line: u64,
    skip_through: u64,
    partial: Vec<u8>,
    pending: std::collections::VecDeque<Event>,
    changes: FolderChanges,
    events: blanket_core::hub::Events,
    end: EndWhen,
    finished: bool,
    shutdown: tokio_util::sync::CancellationToken,
    _slot: crate::sse::StreamSlot,
}

fn follow(
    state: &AppState,
    path: PathBuf,
    skip_through: u64,
    end: EndWhen,
) -> Result<Response, ApiError> {
    let slot = state.streams.acquire(state.options.max_streams)?;
    let folder = path
        .parent()
        .map(FsPath::to_path_buf)
        .ok_or_else(|| ApiError::NotFound(format!("{} is not a log file", path.display())))?;
    if !folder.is_dir() {
        return Err(ApiError::NotFound(format!(
            "the log folder {} does not exist (the task's directory was deleted)",
            folder.display()
        )));
    }
    // Subscribe before the first read, so a write in between still wakes the stream.
    let changes = state.folder_watcher.subscribe(&folder)?;
    let events = state.coordinator.hub().events();
    let follower = Follower {
        coordinator: state.coordinator.clone(),
        path,
        offset: 0,
        line: 0,
        skip_through,
        partial: Vec::new(),
        pending: std::collections::VecDeque::new(),
        changes,
        events,
        end,
        finished: false,
        shutdown: state.shutdown.clone(),
        _slot: slot,
    };
    Ok(crate::sse_events::sse_response(
        log_events(follower),
        state.options.keepalive,
    ))
}

fn log_events(follower: Follower) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(follower, |mut follower| async move {
        loop {
            if let Some(event) = follower.pending.pop_front() {
                return Some((Ok(event), follower));
            }
            if follower.finished {
                return None;
            }
            follower.read_available().await;
            if !follower.pending.is_empty() {
                continue;
            }
            // At the end of what is written: done if the source has ended (read once more,
            // since the last lines may have landed just before it ended), else wait.
            if follower.end.reached(&follower.coordinator).await {
                follower.read_available().await;
                follower.flush_partial();
                follower.finished = true;
                continue;
            }
            if !follower.wait_for_more().await {
                return None;
            }
        }
    })
}

impl Follower {
    async fn read_available(&mut self) {
        let Ok(mut file) = tokio::fs::File::open(&self.path).await else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).await.is_err() {
            return;
        }
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            let read = match file.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(read) => read,
            };
            self.offset += read as u64;
            for &byte in &buffer[..read] {
                if byte == b'\n' {
                    let line = std::mem::take(&mut self.partial);
                    self.push_line(&line);
                } else {
                    self.partial.push(byte);
                }
            }
            if self.pending.len() > 1024 {
                break;
            }
        }
    }

    fn flush_partial(&mut self) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.push_line(&line);
        }
    }

    fn push_line(&mut self, line: &[u8]) {
        self.line += 1;
        if self.line <= self.skip_through {
            return;
        }
        let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line));
        // The trailing newline makes a second, empty `data:` line, so a client appending
        // the data gets the line and its newline, as with the old server.
        let event = Event::default()
            .event("message")
            .id(self.line.to_string())
            .data(format!("{text}\n"));
        self.pending.push_back(event);
    }

    /// Waits until the folder changes or the source may have ended; `false` on shutdown.
    async fn wait_for_more(&mut self) -> bool {
        let end = self.end;
        tokio::select! {
            changed = self.changes.receiver.changed() => changed.is_ok(),
            event = async {
                loop {
                    match self.events.next().await {
                        Some(event) if end.concerns(&event) => return true,
                        Some(_) => {}
                        None => return false,
                    }
                }
            } => event,
            () = self.shutdown.cancelled() => false,
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map is changed by whole inserts and removes, so a poisoned lock holds nothing torn.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let text: String = (1..=5000).map(|index| format!("line {index}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        assert_eq!(tail(&path, 3).unwrap(), "line 4998\nline 4999\nline 5000\n");
        assert_eq!(tail(&path, 1).unwrap(), "line 5000\n");
        assert_eq!(tail(&path, 0).unwrap(), "");
        assert_eq!(tail(&path, 10_000).unwrap(), text);
    }

    #[test]
    fn tail_of_a_missing_or_unterminated_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(tail(&dir.path().join("missing"), 5).unwrap(), "");
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc").unwrap();
        assert_eq!(tail(&path, 2).unwrap(), "b\nc");
    }
}
