//! The shell's own commands, the only ones the window's pages may invoke (see
//! `capabilities/main.json`). Each asks the coordinator and returns `ShellError` on failure;
//! none touches SQL or builds a path, so they stay a few lines each.

use blanket_core::TaskId;
use blanket_core::wire::Task;
use tauri::State;

use crate::error::ShellError;
use crate::shell::Shell;

/// Opens a task's result folder in the user's file manager.
///
/// # Errors
/// `not_found` for an unknown task, `unavailable` when the folder cannot be opened.
#[tauri::command]
pub async fn open_task_folder(shell: State<'_, Shell>, task_id: TaskId) -> Result<(), ShellError> {
    let task = shell.coordinator()?.task(task_id).await?;
    tauri_plugin_opener::open_path(&task.result_dir, None::<&str>).map_err(|error| ShellError {
        code: "unavailable",
        message: format!(
            "could not open {} ({error}): open it from the task's page instead",
            task.result_dir
        ),
    })
}

/// Retries a finished task, its uploaded files included (`Coordinator::retry`), on whichever
/// coordinator the window shows.
///
/// # Errors
/// `not_found` for an unknown task, `conflict` while it has not finished or when an upload is
/// gone, `invalid` when its type no longer accepts it.
#[tauri::command]
pub async fn retry_task(shell: State<'_, Shell>, task_id: TaskId) -> Result<Task, ShellError> {
    shell.retry(task_id).await
}
