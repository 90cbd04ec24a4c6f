//! Turns an uploaded file's name into a path inside a task's directory, or refuses it.
//! The one place that decides what a safe name is, so no upload can leave its directory;
//! it only judges the name and never touches the file system.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use crate::error::{Error, Result};

/// The longest accepted name, in bytes, all components together.
pub const MAX_NAME_BYTES: usize = 1024;

/// The longest accepted single component, in bytes (the usual file-system limit).
pub const MAX_COMPONENT_BYTES: usize = 255;

/// File names the worker writes at the top of every task directory.
pub const RESERVED_NAMES: [&str; 2] = ["blanket.stdout.log", "blanket.stderr.log"];

/// The path, relative to a task's directory, that an upload named `name` is saved under.
///
/// `name` uses `/` between folders (`inputs/data.csv`); each component must be a plain name.
/// The result has only normal components, so joining it to the task directory stays inside.
///
/// # Errors
/// `Invalid` saying why the name is refused and what to use instead, for: an empty name,
/// control characters (NUL included), an absolute path, a drive prefix, a backslash, a
/// leading `~`, `.` or `..` components, empty components (`a//b`, a trailing `/`), a
/// component over [`MAX_COMPONENT_BYTES`] or a name over [`MAX_NAME_BYTES`], and the
/// worker's own log names ([`RESERVED_NAMES`]) at the top level.
pub fn safe_relative_path(name: &str) -> Result<PathBuf> {
    let refuse = |why: &str| {
        Error::Invalid(format!(
            "uploaded file name {} is refused: {why}; name the file part with a plain relative \
             path such as data.csv or inputs/data.csv",
            shown(name)
        ))
    };
    if name.is_empty() {
        return Err(refuse("it is empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(refuse(&format!(
            "it is {} bytes long, more than the {MAX_NAME_BYTES} allowed",
            name.len()
        )));
    }
    if name.chars().any(char::is_control) {
        return Err(refuse("it contains a control character"));
    }
    if name.contains('\\') {
        return Err(refuse(
            "it contains a backslash, which some systems read as a folder separator; use / between folders",
        ));
    }
    if name.starts_with('/') {
        return Err(refuse("it is an absolute path"));
    }
    if name.starts_with('~') {
        return Err(refuse("it starts with ~, which reads as a home folder"));
    }
    if has_drive_prefix(name) {
        return Err(refuse("it starts with a drive letter such as C:"));
    }
    for component in name.split('/') {
        match component {
            "" => return Err(refuse("it has an empty folder name (// or a trailing /)")),
            "." => return Err(refuse("it has a . component")),
            ".." => {
                return Err(refuse(
                    "it has a .. component, which leads out of the task directory",
                ));
            }
            _ if component.len() > MAX_COMPONENT_BYTES => {
                return Err(refuse(&format!(
                    "one of its parts is {} bytes long, more than the {MAX_COMPONENT_BYTES} allowed",
                    component.len()
                )));
            }
            _ => {}
        }
    }
    // Compared without case because macOS and Windows file systems ignore it, so
    // `Blanket.Stdout.Log` would overwrite the worker's log there.
    if RESERVED_NAMES
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(name))
    {
        return Err(refuse(
            "the worker writes the task's own output log under that name",
        ));
    }
    let path = PathBuf::from(name);
    // The checks above are meant to be complete; this guards against a platform reading a
    // name differently than they assume (a Windows prefix, say) before anything is written.
    if !path
        .components()
        .all(|component| matches!(component, Component::Normal(_)))
    {
        return Err(refuse("it is not a plain relative path on this system"));
    }
    Ok(path)
}

/// The uploads of one submit so far, so that no two of them need the same path as a file and
/// as a folder (`x` and `x/y`), which no file system can hold.
#[derive(Debug, Default)]
pub struct UploadNames {
    files: BTreeSet<PathBuf>,
}

impl UploadNames {
    /// The path `name` is saved under (see [`safe_relative_path`]), remembered for the
    /// uploads that follow. A name given twice is the same file, written again.
    ///
    /// # Errors
    /// What [`safe_relative_path`] refuses, and `Invalid` naming both uploads when one would
    /// be a folder of the other.
    pub fn accept(&mut self, name: &str) -> Result<PathBuf> {
        let path = safe_relative_path(name)?;
        let clash = self.files.iter().find(|earlier| {
            *earlier != &path && (path.starts_with(earlier) || earlier.starts_with(&path))
        });
        if let Some(earlier) = clash {
            let (file, folder) = if path.starts_with(earlier) {
                (earlier.as_path(), path.as_path())
            } else {
                (path.as_path(), earlier.as_path())
            };
            return Err(Error::Invalid(format!(
                "uploaded file names {} and {} clash: {} would have to be a file and a folder at once; rename one of them",
                shown(&path_text(file)),
                shown(&path_text(folder)),
                shown(&path_text(file)),
            )));
        }
        self.files.insert(path.clone());
        Ok(path)
    }
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// Whether `name` starts like `C:`, which Windows reads as a drive.
fn has_drive_prefix(name: &str) -> bool {
    let mut characters = name.chars();
    matches!(
        (characters.next(), characters.next()),
        (Some(letter), Some(':')) if letter.is_ascii_alphabetic()
    )
}

/// The name quoted for a message, cut short so a hostile name cannot flood the log.
fn shown(name: &str) -> String {
    const SHOWN_CHARS: usize = 80;
    if name.chars().count() <= SHOWN_CHARS {
        format!("{name:?}")
    } else {
        let start: String = name.chars().take(SHOWN_CHARS).collect();
        format!("{start:?}...")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use proptest::prelude::*;

    use super::*;

    fn refused(name: &str) -> String {
        match safe_relative_path(name) {
            Err(Error::Invalid(message)) => message,
            other => panic!("expected {name:?} to be refused, got {other:?}"),
        }
    }

    #[test]
    fn plain_names_are_kept() {
        assert_eq!(
            safe_relative_path("data.csv").unwrap(),
            PathBuf::from("data.csv")
        );
        assert_eq!(
            safe_relative_path("inputs/data.csv").unwrap(),
            Path::new("inputs").join("data.csv")
        );
        assert_eq!(
            safe_relative_path("a/b/c/d.txt").unwrap(),
            PathBuf::from("a/b/c/d.txt")
        );
        assert_eq!(
            safe_relative_path(".hidden").unwrap(),
            PathBuf::from(".hidden")
        );
        assert_eq!(
            safe_relative_path("..dots").unwrap(),
            PathBuf::from("..dots")
        );
        assert_eq!(
            safe_relative_path("r\u{e9}sum\u{e9} final.pdf").unwrap(),
            PathBuf::from("r\u{e9}sum\u{e9} final.pdf")
        );
        assert_eq!(safe_relative_path("a~b").unwrap(), PathBuf::from("a~b"));
    }

    #[test]
    fn every_accepted_path_stays_inside_the_task_directory() {
        for name in [
            "x",
            "inputs/data.csv",
            "a/b/c",
            "..dots/x..",
            "blanket.json",
        ] {
            let path = safe_relative_path(name).unwrap();
            assert!(path.is_relative());
            assert!(path.components().all(|c| matches!(c, Component::Normal(_))));
        }
    }

    #[test]
    fn parent_components_are_refused() {
        for name in ["..", "../x", "a/../../b", "a/..", "inputs/../../etc/passwd"] {
            let error = refused(name);
            assert!(error.contains(".. component"), "{error}");
            assert!(error.contains("inputs/data.csv"), "{error}");
        }
    }

    #[test]
    fn absolute_paths_are_refused() {
        assert!(refused("/etc/x").contains("absolute"));
        assert!(refused("/").contains("absolute"));
        assert!(refused("//server/share").contains("absolute"));
        assert!(refused("C:/Windows/x").contains("drive"));
        assert!(refused("c:x").contains("drive"));
    }

    #[test]
    fn control_characters_are_refused() {
        for name in [
            "a\0b",
            "a\nb",
            "tab\there",
            "bell\u{7}",
            "del\u{7f}",
            "c1\u{85}",
        ] {
            assert!(refused(name).contains("control character"), "{name:?}");
        }
        // The message escapes the character instead of printing it raw.
        assert!(refused("a\0b").contains("\"a\\0b\""));
    }

    #[test]
    fn backslashes_are_refused() {
        assert!(refused("..\\x").contains("backslash"));
        assert!(refused("a\\b.txt").contains("backslash"));
        assert!(refused("C:\\Windows\\x").contains("backslash"));
    }

    #[test]
    fn home_prefix_is_refused() {
        assert!(refused("~").contains("~"));
        assert!(refused("~/.ssh/authorized_keys").contains("home folder"));
        assert!(refused("~root/x").contains("home folder"));
    }

    #[test]
    fn dot_and_empty_components_are_refused() {
        assert!(refused("").contains("empty"));
        assert!(refused(".").contains(". component"));
        assert!(refused("./x").contains(". component"));
        assert!(refused("a/./b").contains(". component"));
        assert!(refused("a//b").contains("empty folder name"));
        assert!(refused("a/").contains("empty folder name"));
    }

    #[test]
    fn overlong_names_are_refused() {
        let long_component = "x".repeat(256);
        let error = refused(&long_component);
        assert!(error.contains("256 bytes"), "{error}");
        assert!(
            error.len() < 400,
            "the message quotes a shortened name: {error}"
        );
        assert!(safe_relative_path(&"x".repeat(255)).is_ok());

        let deep = vec!["abcdefghi"; 103].join("/");
        assert!(deep.len() > MAX_NAME_BYTES);
        assert!(refused(&deep).contains("1024"));
        let deep_enough = vec!["abcdefghi"; 102].join("/");
        assert!(deep_enough.len() <= MAX_NAME_BYTES);
        assert!(safe_relative_path(&deep_enough).is_ok());

        let huge = "a/".repeat(100_000);
        assert!(refused(&huge).contains("bytes long"));
    }

    #[test]
    fn reserved_log_names_are_refused_at_the_top_only() {
        for name in [
            "blanket.stdout.log",
            "blanket.stderr.log",
            "Blanket.Stdout.LOG",
        ] {
            assert!(refused(name).contains("output log"), "{name}");
        }
        assert!(safe_relative_path("inputs/blanket.stdout.log").is_ok());
        assert!(safe_relative_path("blanket.stdout.log.bak").is_ok());
    }

    /// One path component as a hostile client might write it.
    fn component() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(String::new()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just("~".to_owned()),
            Just("C:".to_owned()),
            "[a-z0-9._-]{1,12}",
            "\\PC{1,8}",
            "[\\x00-\\x1f\\\\/:]{1,3}",
        ]
    }

    #[test]
    fn a_name_that_is_both_a_file_and_a_folder_is_refused_naming_both() {
        let mut names = UploadNames::default();
        assert_eq!(names.accept("x").unwrap(), PathBuf::from("x"));
        assert_eq!(names.accept("x").unwrap(), PathBuf::from("x"));
        assert_eq!(names.accept("xy/z").unwrap(), PathBuf::from("xy/z"));
        let message = match names.accept("x/y") {
            Err(Error::Invalid(message)) => message,
            other => panic!("expected x/y to be refused, got {other:?}"),
        };
        assert!(message.contains(r#""x" and "x/y" clash"#), "{message}");
        let mut names = UploadNames::default();
        names.accept("inputs/a/b.csv").unwrap();
        assert!(names.accept("inputs/a").is_err());
        assert!(names.accept("inputs").is_err());
        assert!(names.accept("inputs/a/c.csv").is_ok());
    }

    proptest! {
        #[test]
        fn an_accepted_name_never_leaves_the_task_directory(
            name in prop_oneof![
                "\\PC{0,40}",
                prop::collection::vec(component(), 1..6).prop_map(|parts| parts.join("/")),
                prop::collection::vec(component(), 1..4).prop_map(|parts| format!("/{}", parts.join("/"))),
            ]
        ) {
            if let Ok(path) = safe_relative_path(&name) {
                prop_assert!(path.is_relative(), "{name:?}");
                prop_assert!(
                    path.components().all(|part| matches!(part, Component::Normal(_))),
                    "{name:?} -> {path:?}"
                );
                let task_dir = Path::new("/data/results/task");
                prop_assert!(task_dir.join(&path).starts_with(task_dir));
                prop_assert!(name.len() <= MAX_NAME_BYTES);
                prop_assert!(!name.split('/').any(|part| part == ".." || part == "." || part.is_empty()));
                prop_assert!(!name.chars().any(char::is_control));
            }
        }

        #[test]
        fn plain_relative_names_are_kept_as_written(
            parts in prop::collection::vec("[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,15}", 1..5)
        ) {
            let name = parts.join("/");
            prop_assume!(!RESERVED_NAMES.iter().any(|reserved| reserved.eq_ignore_ascii_case(&name)));
            prop_assert_eq!(safe_relative_path(&name).unwrap(), PathBuf::from(&name));
        }

        #[test]
        fn accepted_uploads_never_need_one_path_as_file_and_folder(
            names in prop::collection::vec(prop::collection::vec("[ab]", 1..4).prop_map(|parts| parts.join("/")), 0..8)
        ) {
            let mut upload_names = UploadNames::default();
            let accepted: Vec<PathBuf> = names.iter().filter_map(|name| upload_names.accept(name).ok()).collect();
            for first in &accepted {
                for second in &accepted {
                    prop_assert!(first == second || !second.starts_with(first), "{first:?} and {second:?}");
                }
            }
        }

        #[test]
        fn names_with_a_dot_dot_component_are_refused(
            before in prop::collection::vec("[a-z]{1,5}", 0..3),
            after in prop::collection::vec("[a-z]{1,5}", 0..3),
        ) {
            let name = before.iter().map(String::as_str).chain([".."]).chain(after.iter().map(String::as_str)).collect::<Vec<_>>().join("/");
            prop_assert!(safe_relative_path(&name).is_err(), "{name:?}");
        }
    }
}
