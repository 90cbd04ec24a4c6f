//! Start at login, off until the user turns it on from the Settings page. The platform's
//! mechanism is tauri-plugin-autostart's (an XDG autostart entry, `~/.config/autostart/
//! Blanket.desktop`, on Linux); the page is granted these two commands, not the plugin's own,
//! and the state it shows is always read back from the system, never remembered here.

use tauri::plugin::TauriPlugin;
use tauri::{AppHandle, Runtime};
use tauri_plugin_autostart::ManagerExt;

use crate::error::ShellError;

/// The plugin, launching this same executable with no arguments at login.
pub fn plugin<R: Runtime>() -> TauriPlugin<R> {
    tauri_plugin_autostart::Builder::new().build()
}

/// Whether Blanket starts at login now.
///
/// # Errors
/// `unavailable` when the system's autostart entry cannot be read.
#[tauri::command]
pub fn autostart_enabled<R: Runtime>(app: AppHandle<R>) -> Result<bool, ShellError> {
    app.autolaunch().is_enabled().map_err(unavailable)
}

/// Turns start at login on or off; answers the state read back afterwards.
///
/// # Errors
/// `unavailable` when the system's autostart entry cannot be written or removed.
#[tauri::command]
pub fn set_autostart<R: Runtime>(app: AppHandle<R>, enabled: bool) -> Result<bool, ShellError> {
    let manager = app.autolaunch();
    let changed = if enabled {
        manager.enable()
    } else {
        manager.disable()
    };
    changed.map_err(unavailable)?;
    let now = manager.is_enabled().map_err(unavailable)?;
    tracing::info!(enabled = now, "start at login changed");
    Ok(now)
}

fn unavailable(error: tauri_plugin_autostart::Error) -> ShellError {
    ShellError {
        code: "unavailable",
        message: format!("the system's start-at-login entry could not be changed or read: {error}"),
    }
}
