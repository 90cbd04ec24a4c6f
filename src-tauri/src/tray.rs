//! The tray icon: live counts (running / waiting / failed since the window was last looked at)
//! in its tooltip and menu, and the menu's actions. The menu calls `on_menu`, which tests call
//! too, since Xvfb has no tray host to click. Counts come from the coordinator, never kept here.

use blanket_core::hub::{HubEvent, Topic};
use blanket_core::notify_policy::Outcome;
use blanket_core::{Coordinator, TaskState};
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
    let Ok(coordinator) = shell.coordinator() else {
        tracing::warn!("the queue of a coordinator in another process is paused from its pages");
        return;
    };
    let toggled = match coordinator.queue_paused().await {
        Ok(paused) => coordinator.set_queue_paused(!paused).await,
        Err(error) => Err(error),
    };
    if let Err(error) = toggled {
        tracing::warn!(error = %error, "could not pause or resume the queue");
    }
}

/// Keeps the tray's counts and pause item current until `stop`: woken by task and worker
/// nudges (coalesced), finished tasks (for failures) and looks at the window.
pub async fn follow<R: Runtime>(
    app: AppHandle<R>,
    coordinator: Coordinator,
    stop: CancellationToken,
) {
    let hub = coordinator.hub().clone();
    let mut tasks = hub.subscribe(Topic::Tasks);
    let mut events = hub.events();
    loop {
        refresh(&app, &coordinator).await;
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

/// The counts line: `2 running · 3 waiting · 1 failed`.
pub fn counts_text(counts: Counts) -> String {
    let mut text = format!("{} running · {} waiting", counts.running, counts.waiting);
    if counts.failed_since_look > 0 {
        text.push_str(&format!(" · {} failed", counts.failed_since_look));
    }
    text
}

/// The counts the tray shows now.
pub async fn counts<R: Runtime>(app: &AppHandle<R>, coordinator: &Coordinator) -> Counts {
    let by_state = match coordinator.status().await {
        Ok(status) => status.tasks.by_state,
        Err(error) => {
            tracing::warn!(error = %error, "could not count tasks for the tray");
            Default::default()
        }
    };
    let count = |state: TaskState| by_state.get(state.as_str()).copied().unwrap_or(0);
    Counts {
        running: count(TaskState::Running) + count(TaskState::Claimed),
        waiting: count(TaskState::Waiting),
        failed_since_look: app.state::<Shell>().failed_since_look(),
    }
}

async fn refresh<R: Runtime>(app: &AppHandle<R>, coordinator: &Coordinator) {
    let text = counts_text(counts(app, coordinator).await);
    let paused = coordinator.queue_paused().await.unwrap_or(false);
    let Some(items) = app.try_state::<TrayItems<R>>() else {
        return;
    };
    let pause_text = if paused {
        "Resume queue"
    } else {
        "Pause queue"
    };
    let updated = items
        .counts
        .set_text(&text)
        .and_then(|()| items.pause.set_text(pause_text));
    let tooltip = app
        .tray_by_id(TRAY)
        .map(|tray| tray.set_tooltip(Some(format!("Blanket: {text}"))));
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
}
