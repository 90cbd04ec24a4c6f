//! A task's uploaded files on disk: listing what a submit staged. It blocks on the file
//! system, so the coordinator runs it in `spawn_blocking`; whether a name is safe is
//! `upload`'s call.

use std::path::Path;

use crate::error::{Error, Result};

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

    #[test]
    fn list_gives_every_file_below_with_slashes_and_skips_empty_folders() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.txt", "b");
        write(dir.path(), "inputs/deep/a.csv", "a");
        std::fs::create_dir_all(dir.path().join("empty")).unwrap();
        assert_eq!(list(dir.path()).unwrap(), ["b.txt", "inputs/deep/a.csv"]);
    }
}
