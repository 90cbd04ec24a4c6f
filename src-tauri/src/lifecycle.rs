//! How the app ends: Quit (tray), SIGTERM or Ctrl-C all run the same graceful shutdown as
//! `blanket serve` (local workers stopped with their tasks recorded, streams ended, database
//! closed) and only then exit. Closing the window is not quitting: it hides to the tray.

use tauri::{AppHandle, Manager, Runtime};

use crate::shell::Shell;

/// Shuts the embedded coordinator down and exits the app; a second call does nothing.
pub fn quit<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    if !shell.begin_quit() {
        return;
    }
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        shutdown(&app).await;
        app.exit(0);
    });
}

/// Stops the shell's own tasks, then the embedded runtime, in `blanket serve`'s order.
pub async fn shutdown<R: Runtime>(app: &AppHandle<R>) {
    let shell = app.state::<Shell>();
    shell.stop.cancel();
    if let Some(runtime) = shell.take_runtime() {
        tracing::info!("shutting down");
        if let Err(error) = runtime.shutdown().await {
            tracing::error!(error = %error, "the HTTP server had failed");
        }
    }
}

/// Quits on SIGTERM or Ctrl-C, as the tray's Quit does.
pub async fn quit_on_signals<R: Runtime>(app: AppHandle<R>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut terminate), Ok(mut interrupt)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot listen for SIGTERM and Ctrl-C: quit from the tray");
        return;
    };
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    quit(&app);
}

/// The run loop's handler: an exit nobody asked for through `quit` (the last window closed
/// by the platform, a session logout) goes through `quit` first, so nothing is cut short.
pub fn on_run_event<R: Runtime>(app: &AppHandle<R>, event: tauri::RunEvent) {
    if let tauri::RunEvent::ExitRequested { api, .. } = event {
        let quitting = app
            .try_state::<Shell>()
            .is_none_or(|shell| shell.quitting());
        if !quitting {
            api.prevent_exit();
            quit(app);
        }
    }
}
