//! Desktop notifications (notify-rust, over the session's D-Bus daemon): when a task ends it
//! says so, with "Show", "Open folder" and, for a failure, "Retry". What notifies, and how a
//! burst becomes one summary, is `blanket_core::notify_policy`; this module only delivers and
//! answers the actions. Without a daemon it logs one line and carries on.

use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use blanket_core::TaskId;
use blanket_core::config::NotifyConfig;
use blanket_core::hub::HubEvent;
use blanket_core::notify_policy::{self, Burst, Notice};
use tauri::{AppHandle, Manager, Runtime};
use tokio_util::sync::CancellationToken;

use crate::shell::Shell;

/// The application name the notification daemon shows and groups by.
const APP_NAME: &str = "Blanket";
/// How much of the end of a stderr log is read to find its last line.
const STDERR_TAIL_BYTES: u64 = 4096;

/// Set once the missing daemon has been logged, so it is said once, not per task.
static NO_DAEMON_LOGGED: AtomicBool = AtomicBool::new(false);

/// What a notification's actions act on.
#[derive(Clone, Debug)]
pub enum Target {
    /// One task: its page, folder and a retry.
    Task { id: TaskId, result_dir: PathBuf },
    /// A summary: the task list.
    List,
}

/// Watches the shell's hub for finished tasks and notifies per the settings until `stop`:
/// `settings` at first, then each `NotifySettingsChanged` the hub carries (a change saved from
/// a settings page or `PUT /config/notify`, or, attached, the other coordinator's settings on
/// connect), so a change takes effect without a restart. Subscribes before it returns, so
/// nothing published after the call is missed.
pub fn watch<R: Runtime>(
    app: AppHandle<R>,
    settings: NotifyConfig,
    stop: CancellationToken,
) -> impl Future<Output = ()> + use<R> {
    let mut events = app.state::<Shell>().hub.events();
    async move {
        let mut settings = settings;
        let mut burst = Burst::default();
        loop {
            let due = burst.due().map(tokio::time::Instant::from_std);
            tokio::select! {
                () = stop.cancelled() => return,
                event = events.next() => match event {
                    None => return,
                    Some(HubEvent::TaskFinished(finished)) => {
                        let focused = app.state::<Shell>().window_focused();
                        if notify_policy::wants_notice(&settings, &finished, focused) {
                            burst.push(finished, std::time::Instant::now());
                        }
                    }
                    Some(HubEvent::NotifySettingsChanged(changed)) => {
                        settings = NotifyConfig {
                            mode: changed.mode,
                            min_seconds: changed.min_seconds,
                            when_focused: changed.when_focused,
                        };
                    }
                    Some(_) => {}
                },
                () = sleep_until(due) => {
                    if let Some(notice) = burst.take_due(std::time::Instant::now()) {
                        deliver(&app, notice).await;
                    }
                }
            }
        }
    }
}

/// Shows `notice` and answers its actions on a thread of its own (waiting for an action
/// blocks until the notification closes).
pub async fn deliver<R: Runtime>(app: &AppHandle<R>, notice: Notice) {
    let (target, last_line) = match &notice {
        Notice::One(finished) => {
            let result_dir = PathBuf::from(&finished.result_dir);
            let last_line = if notice.offers_retry() {
                last_stderr_line(&result_dir).await
            } else {
                None
            };
            let target = Target::Task {
                id: finished.id,
                result_dir,
            };
            (target, last_line)
        }
        Notice::Summary { .. } => (Target::List, None),
    };
    let (title, body) = notice.text(last_line.as_deref());
    let retry = notice.offers_retry();
    let app = app.clone();
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || show_and_answer(&app, &title, &body, &target, retry));
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "could not start a thread for a notification");
    }
}

/// Shows a plain notice with no actions (the tray hint, "attached to another Blanket").
pub fn inform(title: &str, body: &str) {
    let (title, body) = (title.to_owned(), body.to_owned());
    let spawned = std::thread::Builder::new()
        .name("notification".into())
        .spawn(move || {
            let shown = notify_rust::Notification::new()
                .appname(APP_NAME)
                .summary(&title)
                .body(&body)
                .icon("dialog-information")
                .show();
            if let Err(error) = shown {
                no_daemon(&error);
            }
        });
    if let Err(error) = spawned {
        tracing::warn!(error = %error, "could not start a thread for a notification");
    }
}

/// Runs one action of a notification: `default` (its body, labelled "Show"), `open`, `retry`.
pub fn on_action<R: Runtime>(app: &AppHandle<R>, target: &Target, action: &str) {
    match (action, target) {
        ("default" | "show", Target::Task { id, .. }) => {
            crate::window::show(app, Some(&format!("/ui/tasks/{id}")));
        }
        ("default" | "show", Target::List) => {
            crate::window::show(app, Some(crate::window::TASKS_PAGE));
        }
        ("open", Target::Task { result_dir, .. }) => {
            if let Err(error) = tauri_plugin_opener::open_path(result_dir, None::<&str>) {
                tracing::warn!(error = %error, path = %result_dir.display(), "could not open a task's folder");
            }
        }
        ("retry", Target::Task { id, .. }) => {
            let (app, id) = (app.clone(), *id);
            tauri::async_runtime::spawn(async move {
                match app.state::<Shell>().retry(id).await {
                    Ok(task) => {
                        tracing::info!(task_id = %id, new_task_id = %task.id, "task retried from a notification")
                    }
                    Err(error) => {
                        tracing::warn!(task_id = %id, error = %error, "could not retry a task")
                    }
                }
            });
        }
        _ => {}
    }
}

fn show_and_answer<R: Runtime>(
    app: &AppHandle<R>,
    title: &str,
    body: &str,
    target: &Target,
    retry: bool,
) {
    let mut notification = notify_rust::Notification::new();
    notification
        .appname(APP_NAME)
        .summary(title)
        .body(body)
        .icon(if retry {
            "dialog-error"
        } else {
            "dialog-information"
        })
        .action("default", "Show");
    if matches!(target, Target::Task { .. }) {
        notification.action("open", "Open folder");
    }
    if retry {
        notification.action("retry", "Retry");
    }
    match notification.show() {
        Ok(handle) => handle.wait_for_action(|action| on_action(app, target, action)),
        Err(error) => no_daemon(&error),
    }
}

fn no_daemon(error: &notify_rust::error::Error) {
    if !NO_DAEMON_LOGGED.swap(true, Ordering::Relaxed) {
        tracing::warn!(error = %error, "no notification daemon answers: finished tasks are shown in the window only");
    }
}

/// The last non-empty line of the task's stderr log, if there is one.
async fn last_stderr_line(result_dir: &Path) -> Option<String> {
    let path = result_dir.join(blanket_worker::STDERR_LOG);
    tokio::task::spawn_blocking(move || read_last_line(&path))
        .await
        .ok()
        .flatten()
}

fn read_last_line(path: &Path) -> Option<String> {
    let mut file = std::fs::File::open(path).ok()?;
    let length = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(length.saturating_sub(STDERR_TAIL_BYTES)))
        .ok()?;
    let mut tail = Vec::new();
    file.read_to_end(&mut tail).ok()?;
    String::from_utf8_lossy(&tail)
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .map(str::to_owned)
}

async fn sleep_until(due: Option<tokio::time::Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_stderr_line_skips_trailing_blank_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(blanket_worker::STDERR_LOG);
        std::fs::write(&path, "first\nmake: *** [all] Error 2\n\n  \n").unwrap();
        assert_eq!(
            read_last_line(&path).as_deref(),
            Some("make: *** [all] Error 2")
        );
        assert_eq!(read_last_line(&dir.path().join("missing")), None);
    }
}
