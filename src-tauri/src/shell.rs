//! `Shell`, the one value the app manages: which coordinator the window shows, the embedded
//! runtime until it is shut down, the hub the bridge, tray and notifier follow, and the few
//! flags they share. It holds no task state of its own: counts and tasks are always asked of
//! the coordinator, in this process or, attached, over its REST API.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use blanket_core::wire::Task;
use blanket_core::{Coordinator, Hub, TaskId};
use blanket_server::Runtime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::error::ShellError;
use crate::remote::{QueueStatus, Remote};

/// The shell's shared state; Tauri's managed state is already shared, so no `Arc` around it.
pub struct Shell {
    /// The server the window shows, e.g. `http://127.0.0.1:8773`, no trailing slash.
    pub base_url: String,
    /// Blanket's data folder (opened by the tray's "Open data folder").
    pub data_dir: PathBuf,
    /// What the bridge, the tray and the notifier follow: the embedded coordinator's hub, or
    /// one the attached coordinator's event stream is relayed into.
    pub hub: Hub,
    /// Cancelled when the app quits: ends the bridge, the notifier and the tray updates.
    pub stop: CancellationToken,
    /// Woken when the tray's counts may have changed without a hub event (the window was
    /// looked at).
    pub tray_refresh: Notify,
    coordinator: Option<Coordinator>,
    remote: Option<Remote>,
    // std Mutex: taken to start the pool and, at quit, to move the runtime out; never held
    // across `.await`.
    runtime: Mutex<Option<Runtime>>,
    revealed: AtomicBool,
    window_focused: AtomicBool,
    failed_since_look: AtomicUsize,
    quitting: AtomicBool,
}

impl Shell {
    /// State for a window on the coordinator embedded in this process.
    pub fn embedded(runtime: Runtime) -> Shell {
        let config = runtime.coordinator().config();
        Shell {
            base_url: runtime.url(),
            data_dir: config.data_dir.clone(),
            hub: runtime.coordinator().hub().clone(),
            stop: CancellationToken::new(),
            tray_refresh: Notify::new(),
            coordinator: Some(runtime.coordinator().clone()),
            remote: None,
            runtime: Mutex::new(Some(runtime)),
            revealed: AtomicBool::new(false),
            window_focused: AtomicBool::new(false),
            failed_since_look: AtomicUsize::new(0),
            quitting: AtomicBool::new(false),
        }
    }

    /// State for a window on a coordinator that another process runs at `base_url`, reached
    /// with `token` when set; [`Shell::remote`] relays its events into [`Shell::hub`].
    pub fn attached(base_url: String, data_dir: PathBuf, token: Option<String>) -> Shell {
        Shell {
            remote: Some(Remote::new(base_url.clone(), token)),
            base_url,
            data_dir,
            hub: Hub::new(),
            stop: CancellationToken::new(),
            tray_refresh: Notify::new(),
            coordinator: None,
            runtime: Mutex::new(None),
            revealed: AtomicBool::new(false),
            window_focused: AtomicBool::new(false),
            failed_since_look: AtomicUsize::new(0),
            quitting: AtomicBool::new(false),
        }
    }

    /// The embedded coordinator.
    ///
    /// # Errors
    /// `unavailable` when the window shows another process's coordinator.
    pub fn coordinator(&self) -> Result<&Coordinator, ShellError> {
        self.coordinator.as_ref().ok_or_else(ShellError::attached)
    }

    /// The embedded coordinator, if this process runs one.
    pub fn embedded_coordinator(&self) -> Option<&Coordinator> {
        self.coordinator.as_ref()
    }

    /// The other process's coordinator, when attached.
    pub fn remote(&self) -> Option<&Remote> {
        self.remote.as_ref()
    }

    /// Task counts and the queue flag, from whichever coordinator the window shows.
    ///
    /// # Errors
    /// When the coordinator cannot answer.
    pub async fn queue_status(&self) -> Result<QueueStatus, ShellError> {
        match (&self.coordinator, &self.remote) {
            (Some(coordinator), _) => {
                let status = coordinator.status().await?;
                Ok(QueueStatus {
                    tasks: status
                        .tasks
                        .by_state
                        .into_iter()
                        .map(|(state, count)| (state.to_owned(), count))
                        .collect(),
                    queue_paused: status.queue_paused,
                })
            }
            (None, Some(remote)) => remote.status().await,
            (None, None) => Err(ShellError::attached()),
        }
    }

    /// Pauses or resumes the queue of whichever coordinator the window shows.
    ///
    /// # Errors
    /// When the coordinator cannot do it.
    pub async fn set_queue_paused(&self, paused: bool) -> Result<(), ShellError> {
        match (&self.coordinator, &self.remote) {
            (Some(coordinator), _) => Ok(coordinator.set_queue_paused(paused).await?),
            (None, Some(remote)) => remote.set_queue_paused(paused).await,
            (None, None) => Err(ShellError::attached()),
        }
    }

    /// Retries a finished task, uploads included, on whichever coordinator the window shows.
    ///
    /// # Errors
    /// `not_found` for an unknown task, `conflict` while it has not finished or when an upload
    /// is gone, `invalid` when its type no longer accepts it.
    pub async fn retry(&self, task_id: TaskId) -> Result<Task, ShellError> {
        match (&self.coordinator, &self.remote) {
            (Some(coordinator), _) => Ok(coordinator.retry(task_id).await?),
            (None, Some(remote)) => remote.retry(task_id).await,
            (None, None) => Err(ShellError::attached()),
        }
    }

    /// `base_url` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// Moves the runtime out, for the one shutdown; `None` the second time.
    pub fn take_runtime(&self) -> Option<Runtime> {
        self.runtime
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }

    /// Starts the embedded coordinator's local workers, once; nothing when attached.
    pub fn start_local_pool(&self) {
        if let Some(runtime) = self
            .runtime
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
        {
            runtime.start_local_pool();
        }
    }

    /// Whether this is the first call: the window is shown once at start, never again on its
    /// own.
    pub fn first_reveal(&self) -> bool {
        !self.revealed.swap(true, Ordering::SeqCst)
    }

    /// Records whether the window has the focus; focusing it counts as a look at the tasks.
    pub fn set_window_focused(&self, focused: bool) {
        self.window_focused.store(focused, Ordering::Relaxed);
        if focused && self.failed_since_look.swap(0, Ordering::Relaxed) > 0 {
            self.tray_refresh.notify_one();
        }
    }

    /// Whether the window has the focus now.
    pub fn window_focused(&self) -> bool {
        self.window_focused.load(Ordering::Relaxed)
    }

    /// Counts one more failure the user has not looked at yet.
    pub fn count_failure(&self) {
        self.failed_since_look.fetch_add(1, Ordering::Relaxed);
    }

    /// Failures since the window last had the focus.
    pub fn failed_since_look(&self) -> usize {
        self.failed_since_look.load(Ordering::Relaxed)
    }

    /// Marks the app as quitting; `false` when it already was, so quitting runs once.
    pub fn begin_quit(&self) -> bool {
        !self.quitting.swap(true, Ordering::SeqCst)
    }

    /// Whether the app is quitting.
    pub fn quitting(&self) -> bool {
        self.quitting.load(Ordering::SeqCst)
    }
}
