//! The shell's own commands, the only ones the window's pages may invoke (see
//! `capabilities/main.json`). Each asks the coordinator and returns `ShellError` on failure;
//! none touches SQL or builds a path, so they stay a few lines each.

use blanket_core::wire::{NewTask, Task};
use blanket_core::{Coordinator, TaskId};
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

/// Submits a task again with the same type, environment, tags, priority and timeout.
///
/// # Errors
/// `not_found` for an unknown task, `invalid` when its type no longer accepts it.
#[tauri::command]
pub async fn retry_task(shell: State<'_, Shell>, task_id: TaskId) -> Result<Task, ShellError> {
    shell.resubmit(task_id).await
}

/// Submits a new task like `task_id` (files uploaded with it are not copied).
///
/// # Errors
/// As [`Coordinator::task`] and [`Coordinator::submit`].
pub async fn resubmit(coordinator: &Coordinator, task_id: TaskId) -> blanket_core::Result<Task> {
    let task = coordinator.task(task_id).await?;
    coordinator.submit(retry_of(task), None).await
}

/// The submit request of a retry of `task`: its type, environment, tags, priority, timeout.
pub fn retry_of(task: Task) -> NewTask {
    NewTask {
        task_type: task.task_type,
        environment: task.default_env,
        priority: task.priority,
        tags: task.tags,
        timeout: Some(task.timeout),
    }
}
