//! The tray icon: live counts (running / waiting / failed since the window was last looked at)
//! in its tooltip and menu, and the menu's actions. The menu calls `on_menu`, which tests call
//! too, since Xvfb has no tray host to click. Counts come from the coordinator (in process or,
//! attached, over REST), never kept here; what wakes the tray is the shell's hub.

use std::future::Future;

use blanket_core::TaskState;
use blanket_core::hub::{HubEvent, Topic};
use blanket_core::notify_policy::Outcome;
use tauri::image::Image;
use tauri::menu::{Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::TrayIconBuilder;
use tauri::{AppHandle, Manager, Runtime};
use tokio_util::sync::CancellationToken;

use crate::shell::Shell;
use crate::window;

/// The tray icon's id.
pub const TRAY: &str = "main";
/// Menu item ids, as `on_menu` receives them.
pub const OPEN: &str = "open";
/// See [`OPEN`].
pub const NEW_TASK: &str = "new-task";
/// See [`OPEN`].
pub const DATA_FOLDER: &str = "data-folder";
/// See [`OPEN`].
pub const PAUSE: &str = "pause";
/// See [`OPEN`].
pub const QUIT: &str = "quit";
/// The page with the new-task form.
const NEW_TASK_PAGE: &str = "/ui/tasks/new";

/// The menu items whose text changes, kept so updates need not rebuild the menu.
pub struct TrayItems<R: Runtime> {
    counts: MenuItem<R>,
    pause: MenuItem<R>,
}

/// Live counts the tray shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Tasks claimed or running.
    pub running: u64,
    /// Tasks waiting in the queue.
    pub waiting: u64,
    /// Tasks that failed or timed out since the window last had the focus.
    pub failed_since_look: usize,
}

/// Builds the tray icon and its menu, and manages [`TrayItems`].
///
/// # Errors
/// When the platform has no tray (the app runs on without one).
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    let counts = MenuItem::with_id(app, "counts", "Starting…", false, None::<&str>)?;
    let pause = MenuItem::with_id(app, PAUSE, "Pause queue", true, None::<&str>)?;
    let menu = Menu::with_items(
        app,
        &[
            &counts,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, OPEN, "Open Blanket", true, None::<&str>)?,
            &MenuItem::with_id(app, NEW_TASK, "New task…", true, None::<&str>)?,
            &MenuItem::with_id(app, DATA_FOLDER, "Open data folder", true, None::<&str>)?,
            &pause,
            &PredefinedMenuItem::separator(app)?,
            &MenuItem::with_id(app, QUIT, "Quit", true, None::<&str>)?,
        ],
    )?;
    TrayIconBuilder::with_id(TRAY)
        .icon(Image::from_bytes(include_bytes!("../../icons/32x32.png"))?)
        .tooltip("Blanket")
        .menu(&menu)
        .show_menu_on_left_click(true)
        .on_menu_event(|app, event| on_menu(app, event.id().as_ref()))
        .build(app)?;
    app.manage(TrayItems { counts, pause });
    Ok(())
}

/// Runs a menu item's action.
pub fn on_menu<R: Runtime>(app: &AppHandle<R>, id: &str) {
    match id {
        OPEN => window::show(app, None),
        NEW_TASK => window::show(app, Some(NEW_TASK_PAGE)),
        DATA_FOLDER => {
            let shell = app.state::<Shell>();
            if let Err(error) = tauri_plugin_opener::open_path(&shell.data_dir, None::<&str>) {
                tracing::warn!(error = %error, path = %shell.data_dir.display(), "could not open the data folder");
            }
        }
        PAUSE => {
            let app = app.clone();
            tauri::async_runtime::spawn(async move { toggle_queue(&app).await });
        }
        QUIT => crate::lifecycle::quit(app),
        _ => {}
    }
}

/// Pauses the queue when it runs, resumes it when paused.
pub async fn toggle_queue<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    let toggled = match shell.queue_status().await {
        Ok(status) => shell.set_queue_paused(!status.queue_paused).await,
        Err(error) => Err(error),
    };
    match toggled {
        // The hub's nudge follows too, but only once the pause is stored: say it at once.
        Ok(()) => shell.tray_refresh.notify_one(),
        Err(error) => tracing::warn!(error = %error, "could not pause or resume the queue"),
    }
}

/// Keeps the tray's counts and pause item current until `stop`: woken by task nudges
/// (coalesced), finished tasks (for failures) and looks at the window. Subscribes before it
/// returns, so nothing published after the call is missed.
pub fn follow<R: Runtime>(
    app: AppHandle<R>,
    stop: CancellationToken,
) -> impl Future<Output = ()> + use<R> {
    let hub = app.state::<Shell>().hub.clone();
    let mut tasks = hub.subscribe(Topic::Tasks);
    let mut events = hub.events();
    async move {
        loop {
            refresh(&app).await;
            let shell = app.state::<Shell>();
            tokio::select! {
                () = stop.cancelled() => return,
                alive = tasks.changed() => if !alive { return },
                () = shell.tray_refresh.notified() => {}
                event = events.next() => match event {
                    None => return,
                    Some(HubEvent::TaskFinished(finished)) => {
                        let failed = Outcome::of(finished.state).is_some_and(Outcome::is_failure);
                        if failed && !finished.by_user && !shell.window_focused() {
                            shell.count_failure();
                        }
                    }
                    Some(_) => {}
                },
            }
        }
    }
}

/// The counts line: `2 running · 3 waiting · 1 failed`.
pub fn counts_text(counts: Counts) -> String {
    let mut text = format!("{} running · {} waiting", counts.running, counts.waiting);
    if counts.failed_since_look > 0 {
        text.push_str(&format!(" · {} failed", counts.failed_since_look));
    }
    text
}

/// The counts the tray shows now, and whether the queue is paused.
pub async fn counts<R: Runtime>(app: &AppHandle<R>) -> (Counts, bool) {
    let shell = app.state::<Shell>();
    let status = shell.queue_status().await.unwrap_or_else(|error| {
        tracing::warn!(error = %error, "could not count tasks for the tray");
        Default::default()
    });
    let count = |state: TaskState| status.tasks.get(state.as_str()).copied().unwrap_or(0);
    let counts = Counts {
        running: count(TaskState::Running) + count(TaskState::Claimed),
        waiting: count(TaskState::Waiting),
        failed_since_look: shell.failed_since_look(),
    };
    (counts, status.queue_paused)
}

/// The tooltip and menu texts for `counts` and the queue flag: `(counts line, tooltip, pause
/// item)`.
pub fn texts(counts: Counts, paused: bool) -> (String, String, &'static str) {
    let line = counts_text(counts);
    let tooltip = format!("Blanket: {line}");
    let pause = if paused {
        "Resume queue"
    } else {
        "Pause queue"
    };
    (line, tooltip, pause)
}

async fn refresh<R: Runtime>(app: &AppHandle<R>) {
    let (counts, paused) = counts(app).await;
    let Some(items) = app.try_state::<TrayItems<R>>() else {
        return;
    };
    let (line, tooltip, pause) = texts(counts, paused);
    let updated = items
        .counts
        .set_text(&line)
        .and_then(|()| items.pause.set_text(pause));
    let tooltip = app
        .tray_by_id(TRAY)
        .map(|tray| tray.set_tooltip(Some(tooltip)));
    if let Err(error) = updated.and(tooltip.unwrap_or(Ok(()))) {
        tracing::debug!(error = %error, "could not update the tray");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_line_names_failures_only_when_there_are_some() {
        let mut counts = Counts {
            running: 2,
            waiting: 3,
            failed_since_look: 0,
        };
        assert_eq!(counts_text(counts), "2 running · 3 waiting");
        counts.failed_since_look = 1;
        assert_eq!(counts_text(counts), "2 running · 3 waiting · 1 failed");
    }

    #[test]
    fn the_tooltip_carries_the_counts_and_the_pause_item_says_what_it_will_do() {
        let counts = Counts {
            running: 1,
            waiting: 0,
            failed_since_look: 2,
        };
        let (line, tooltip, pause) = texts(counts, true);
        assert_eq!(line, "1 running · 0 waiting · 2 failed");
        assert_eq!(tooltip, "Blanket: 1 running · 0 waiting · 2 failed");
        assert_eq!(pause, "Resume queue");
        assert_eq!(texts(counts, false).2, "Pause queue");
    }
}
