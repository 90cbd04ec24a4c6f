//! The main window: the embedded server's pages at its loopback URL, navigation kept inside
//! that origin (other links go to the system browser), shown once its first page has loaded,
//! close hides to the tray. It renders nothing itself: every page comes from the server.

use tauri::webview::NewWindowResponse;
use tauri::{AppHandle, Manager, Runtime, Url, WebviewUrl, WebviewWindow, WebviewWindowBuilder};

use crate::shell::Shell;

/// The main window's label, as the capability file names it.
pub const MAIN: &str = "main";
/// The page of the task list.
pub const TASKS_PAGE: &str = "/ui/";
/// The marker file saying the "still running in the tray" hint was shown once.
const TRAY_HINT_MARKER: &str = "desktop-tray-hint-shown";

/// Opens the main window on `shell`'s tasks page, hidden until the page has loaded (see
/// [`reveal`]).
///
/// # Errors
/// When the URL is malformed or the window cannot be made.
pub fn create<R: Runtime>(app: &AppHandle<R>, shell: &Shell) -> anyhow::Result<WebviewWindow<R>> {
    let url = Url::parse(&shell.url(TASKS_PAGE))?;
    let home = url.clone();
    let window = WebviewWindowBuilder::new(app, MAIN, WebviewUrl::External(url))
        .title("Blanket")
        .inner_size(1100.0, 760.0)
        .min_inner_size(480.0, 360.0)
        // Shown by `reveal` once the page has loaded: a window mapped while its web process
        // is still loading makes WebKitGTK's first paint wait up to 500 ms for a backing
        // store (one start in three here), and the user would see a blank window meanwhile.
        .visible(false)
        .on_navigation(move |target| {
            let inside = stays_inside(&home, target);
            if !inside {
                open_outside(target);
            }
            inside
        })
        .on_page_load(|window, payload| {
            if matches!(payload.event(), tauri::webview::PageLoadEvent::Finished) {
                tracing::info!(url = %payload.url(), "page loaded in the window");
                reveal(window.app_handle());
            }
        })
        .on_new_window(|target, _features| {
            // `target="_blank"` links (a log file, a result) open in the browser: a second
            // webview would have no capability and no tray to come back to.
            open_outside(&target);
            NewWindowResponse::Deny
        })
        .build()?;
    Ok(window)
}

/// Shows the main window the first time it is called and starts the local pool (the window
/// is up: now the workers may take the CPU); later calls only make sure the pool runs, so a
/// page loaded in a window the user hid leaves it hidden.
pub fn reveal<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    if shell.first_reveal() {
        match app.get_webview_window(MAIN) {
            Some(window) => match window.show() {
                Ok(()) => tracing::info!("window shown"),
                Err(error) => tracing::warn!(error = %error, "could not show the window"),
            },
            None => tracing::warn!("the main window is gone"),
        }
    }
    shell.start_local_pool();
}

/// Shows, raises and focuses the main window, on `path` when given (e.g. `/ui/tasks/ID`).
pub fn show<R: Runtime>(app: &AppHandle<R>, path: Option<&str>) {
    let Some(window) = app.get_webview_window(MAIN) else {
        tracing::warn!("the main window is gone");
        return;
    };
    if let Some(path) = path {
        let shell = app.state::<Shell>();
        match Url::parse(&shell.url(path)) {
            Ok(url) => {
                if let Err(error) = window.navigate(url) {
                    tracing::warn!(error = %error, path, "could not open a page in the window");
                }
            }
            Err(error) => tracing::warn!(error = %error, path, "not a page of ours"),
        }
    }
    let shown = window
        .show()
        .and_then(|()| window.unminimize())
        .and_then(|()| window.set_focus());
    if let Err(error) = shown {
        tracing::warn!(error = %error, "could not bring the window forward");
    }
}

/// Window events: closing hides to the tray (saying so the first time), focus is recorded.
pub fn on_event<R: Runtime>(window: &tauri::Window<R>, event: &tauri::WindowEvent) {
    if window.label() != MAIN {
        return;
    }
    let shell = window.state::<Shell>();
    match event {
        tauri::WindowEvent::CloseRequested { api, .. } if !shell.quitting() => {
            api.prevent_close();
            if let Err(error) = window.hide() {
                tracing::warn!(error = %error, "could not hide the window");
            }
            shell.set_window_focused(false);
            hint_tray_once(&shell);
        }
        tauri::WindowEvent::Focused(focused) => shell.set_window_focused(*focused),
        _ => {}
    }
}

/// Whether `target` may load in the window: only pages of the server it was opened on.
pub fn stays_inside(home: &Url, target: &Url) -> bool {
    target.origin() == home.origin() || target.as_str() == "about:blank"
}

/// Opens a web or mail link in the user's browser or mail program; anything else is refused.
fn open_outside(target: &Url) {
    if !matches!(target.scheme(), "http" | "https" | "mailto") {
        tracing::warn!(url = %target, "refused to open a link with this scheme");
        return;
    }
    if let Err(error) = tauri_plugin_opener::open_url(target.as_str(), None::<&str>) {
        tracing::warn!(url = %target, error = %error, "could not open a link in the browser");
    }
}

fn hint_tray_once(shell: &Shell) {
    let marker = shell.data_dir.join(TRAY_HINT_MARKER);
    if marker.exists() {
        return;
    }
    crate::notify::inform(
        "Blanket is still running",
        "Your tasks keep running. Open Blanket again from its tray icon, or quit it there.",
    );
    if let Err(error) = std::fs::write(&marker, b"") {
        tracing::warn!(error = %error, path = %marker.display(), "could not remember that the tray hint was shown");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_servers_own_origin_stays_in_the_window() {
        let home = Url::parse("http://127.0.0.1:8773/ui/").unwrap();
        let inside = |text: &str| stays_inside(&home, &Url::parse(text).unwrap());
        assert!(inside(
            "http://127.0.0.1:8773/ui/tasks/0123456789abcdef01234567"
        ));
        assert!(inside("about:blank"));
        assert!(!inside("http://127.0.0.1:8774/ui/"));
        assert!(!inside("http://localhost:8773/ui/"));
        assert!(!inside("https://example.org/"));
        assert!(!inside("file:///etc/passwd"));
    }
}
