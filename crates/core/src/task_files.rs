//! A task's uploaded files on disk: listing what a submit staged, and copying a finished
//! task's uploads into a retry's staging folder. It blocks on the file system, so the
//! coordinator runs it in `spawn_blocking`; whether a name is safe is `upload`'s call.

use std::path::Path;

use crate::error::{Error, Result};
use crate::id::TaskId;
use crate::upload;

/// Every regular file below `dir`, relative to it with `/` between folders, sorted: the files
/// of a staged upload, whose names `upload` already judged.
///
/// # Errors
/// `Io` when a folder cannot be read.
pub fn list(dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = std::fs::read_dir(&folder)
            .map_err(|source| Error::io(format!("reading {}", folder.display()), source))?;
        for entry in entries {
            let entry = entry
                .map_err(|source| Error::io(format!("reading {}", folder.display()), source))?;
            let path = entry.path();
            let kind = entry
                .file_type()
                .map_err(|source| Error::io(format!("reading {}", path.display()), source))?;
            if kind.is_dir() {
                folders.push(path);
            } else if kind.is_file() {
                found.push(relative_text(dir, &path)?);
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Copies `paths` (relative, as [`list`] gives them) from the directory of task `task_id`,
/// `from`, into `to`, making folders as needed. Each source must still be a plain file inside
/// `from`: a task may have replaced its input with a link since, and a retry must not carry
/// out whatever that link points at.
///
/// # Errors
/// `Invalid` for a recorded path that `upload::safe_relative_path` refuses; `Conflict` when a
/// file is gone or no longer a plain file inside `from`; `Io` when copying fails.
pub fn copy(task_id: TaskId, from: &Path, to: &Path, paths: &[String]) -> Result<()> {
    let root = from.canonicalize().map_err(|source| {
        gone_or_io(
            task_id,
            &format!("its folder {}", from.display()),
            from,
            source,
        )
    })?;
    for text in paths {
        let relative = upload::safe_relative_path(text)?;
        let source = from.join(&relative);
        let what = format!("its uploaded file {text:?}");
        let metadata = std::fs::symlink_metadata(&source)
            .map_err(|error| gone_or_io(task_id, &what, &source, error))?;
        let inside = source
            .canonicalize()
            .is_ok_and(|canonical| canonical.starts_with(&root));
        if !metadata.is_file() || !inside {
            return Err(Error::Conflict(format!(
                "task {task_id} cannot be retried: {what} is no longer a plain file in its folder \
                 (the task replaced it); submit a new task with the file instead"
            )));
        }
        let destination = to.join(&relative);
        if let Some(parent) = destination.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|error| Error::io(format!("creating {}", parent.display()), error))?;
        }
        std::fs::copy(&source, &destination).map_err(|error| {
            Error::io(
                format!("copying {} to {}", source.display(), destination.display()),
                error,
            )
        })?;
    }
    Ok(())
}

/// `Conflict` when `path` is missing (the retry cannot be made from what is left), else `Io`.
fn gone_or_io(task_id: TaskId, what: &str, path: &Path, error: std::io::Error) -> Error {
    if error.kind() == std::io::ErrorKind::NotFound {
        Error::Conflict(format!(
            "task {task_id} cannot be retried: {what} is no longer there (it was moved or \
             deleted); submit a new task with the file instead"
        ))
    } else {
        Error::io(format!("reading {}", path.display()), error)
    }
}

fn relative_text(dir: &Path, path: &Path) -> Result<String> {
    let relative = path.strip_prefix(dir).map_err(|_| {
        Error::Internal(format!("{} is not below {}", path.display(), dir.display()))
    })?;
    let parts = relative
        .components()
        .map(|component| component.as_os_str().to_str())
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| {
            Error::Internal(format!(
                "uploaded file {} has a name that is not UTF-8",
                path.display()
            ))
        })?;
    Ok(parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, relative: &str, text: &str) {
        let path = dir.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn task_id() -> TaskId {
        "0123456789abcdef01234567".parse().unwrap()
    }

    #[test]
    fn list_gives_every_file_below_with_slashes_and_skips_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.txt", "b");
        write(dir.path(), "inputs/deep/a.csv", "a");
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        assert_eq!(list(dir.path()).unwrap(), ["b.txt", "inputs/deep/a.csv"]);
    }

    #[test]
    fn copy_brings_the_named_files_and_nothing_else() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        write(from.path(), "in.txt", "words here");
        write(from.path(), "inputs/x y.csv", "1,2");
        write(from.path(), "output.txt", "written by the task");
        let paths = ["in.txt".to_owned(), "inputs/x y.csv".to_owned()];
        copy(task_id(), from.path(), to.path(), &paths).unwrap();
        assert_eq!(list(to.path()).unwrap(), paths);
        assert_eq!(
            std::fs::read_to_string(to.path().join("inputs/x y.csv")).unwrap(),
            "1,2"
        );
    }

    #[test]
    fn copy_refuses_a_missing_file_a_link_and_a_bad_recorded_name() {
        let from = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        write(outside.path(), "secret", "not yours");
        std::os::unix::fs::symlink(outside.path().join("secret"), from.path().join("link"))
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), from.path().join("folder")).unwrap();
        for (path, expected) in [
            ("gone.txt", "is no longer there"),
            ("link", "no longer a plain file"),
            ("folder/secret", "no longer a plain file"),
        ] {
            match copy(task_id(), from.path(), to.path(), &[path.to_owned()]) {
                Err(Error::Conflict(message)) => {
                    assert!(message.contains(expected), "{path}: {message}");
                    assert!(message.contains(&task_id().to_string()), "{message}");
                }
                other => panic!("{path}: expected Conflict, got {other:?}"),
            }
        }
        assert!(matches!(
            copy(task_id(), from.path(), to.path(), &["../x".to_owned()]),
            Err(Error::Invalid(_))
        ));
        assert!(list(to.path()).unwrap().is_empty());
    }
}
