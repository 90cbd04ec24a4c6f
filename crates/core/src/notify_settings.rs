//! The notification settings as they change at run time: the live copy, and saving a change
//! into the TOML config file read at start (or the default one), keeping comments and other
//! keys. Separate from `config` as the only code that writes a config file; keys set by the
//! environment or a flag are not changed, since a saved value would not win over them.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Mutex;

use crate::config::{NotifyConfig, NotifyMode, Origin};
use crate::error::{Error, Result};
use crate::wire::{NotifyChange, NotifySettings};

/// The live notification settings and where a change of them is saved.
#[derive(Debug)]
pub struct LiveNotify {
    // std Mutex, held while a change is saved so two changes do not interleave their
    // read-modify-write of the file; never held across `.await`.
    current: Mutex<NotifyConfig>,
    origin: Origin,
}

impl LiveNotify {
    /// Starts from the settings and origin of the configuration read at start.
    pub fn new(notify: NotifyConfig, origin: Origin) -> LiveNotify {
        LiveNotify {
            current: Mutex::new(notify),
            origin,
        }
    }

    /// The settings in effect now.
    pub fn current(&self) -> NotifyConfig {
        self.lock().clone()
    }

    /// The settings in effect now, with where changes go and which keys are locked.
    pub fn view(&self) -> NotifySettings {
        view_of(&self.lock(), &self.origin)
    }

    /// Checks `change`, saves it into the config file and makes it live. Blocking (file I/O).
    ///
    /// # Errors
    /// `Invalid` for a bad value or a config file that no longer parses; `Conflict` when a
    /// changed key is locked or the file is the old JSON; `Unavailable` when there is no
    /// config file to save to; `Io` when the file cannot be written.
    pub fn apply(&self, change: &NotifyChange) -> Result<NotifySettings> {
        let mut current = self.lock();
        let wanted = changed(&current, change)?;
        if wanted == *current {
            return Ok(view_of(&current, &self.origin));
        }
        let locks = &self.origin.notify_locks;
        for (key, file_key, differs, lock) in [
            ("mode", "mode", wanted.mode != current.mode, &locks.mode),
            (
                "minSeconds",
                "min_seconds",
                wanted.min_seconds != current.min_seconds,
                &locks.min_seconds,
            ),
            (
                "whenFocused",
                "when_focused",
                wanted.when_focused != current.when_focused,
                &locks.when_focused,
            ),
        ] {
            if let (true, Some(lock)) = (differs, lock) {
                return Err(Error::Conflict(format!(
                    "{key} (notify.{file_key}) is set by {lock}, which wins over the config \
                     file: unset it to change this setting here"
                )));
            }
        }
        if let Some(reason) = read_only_reason(&self.origin) {
            return Err(Error::Conflict(reason));
        }
        let Some(file) = &self.origin.file else {
            return Err(Error::Unavailable(NO_FILE.to_owned()));
        };
        save(file, &wanted)?;
        tracing::info!(file = %file.display(), mode = %wanted.mode, min_seconds = wanted.min_seconds, when_focused = wanted.when_focused, "notification settings saved");
        *current = wanted;
        Ok(view_of(&current, &self.origin))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NotifyConfig> {
        self.current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Why settings cannot be saved when there is no config folder at all.
const NO_FILE: &str = "there is no config folder to save settings in: start Blanket with \
                       --config FILE.toml, or set the BLANKET_NOTIFY_* variables";

fn read_only_reason(origin: &Origin) -> Option<String> {
    match &origin.file {
        None => Some(NO_FILE.to_owned()),
        Some(file) if origin.file_is_old_json => Some(format!(
            "the configuration was read from {}, the old server's JSON format, which Blanket \
             reads but never rewrites: move its settings into a TOML file (docs/usage.md shows \
             the keys) and start with --config FILE.toml, or set the BLANKET_NOTIFY_* variables",
            file.display()
        )),
        Some(_) => None,
    }
}

fn view_of(notify: &NotifyConfig, origin: &Origin) -> NotifySettings {
    let locks = &origin.notify_locks;
    let locked: BTreeMap<String, String> = [
        ("mode", &locks.mode),
        ("minSeconds", &locks.min_seconds),
        ("whenFocused", &locks.when_focused),
    ]
    .into_iter()
    .filter_map(|(key, lock)| lock.clone().map(|lock| (key.to_owned(), lock)))
    .collect();
    NotifySettings {
        mode: notify.mode,
        min_seconds: notify.min_seconds,
        when_focused: notify.when_focused,
        file: origin.file.as_ref().map(|file| file.display().to_string()),
        read_only: read_only_reason(origin),
        locked,
    }
}

/// `current` with `change` applied, every value checked.
fn changed(current: &NotifyConfig, change: &NotifyChange) -> Result<NotifyConfig> {
    let mut wanted = current.clone();
    if let Some(mode) = &change.mode {
        wanted.mode = mode.parse::<NotifyMode>().map_err(|_| {
            Error::Invalid(format!(
                "mode {mode:?} is unknown: use \"all\", \"failures-only\" or \"none\""
            ))
        })?;
    }
    if let Some(seconds) = change.min_seconds {
        wanted.min_seconds = u64::try_from(seconds).map_err(|_| {
            Error::Invalid(format!(
                "minSeconds is {seconds}: use 0 or more seconds (0 notifies about every task)"
            ))
        })?;
    }
    if let Some(when_focused) = change.when_focused {
        wanted.when_focused = when_focused;
    }
    Ok(wanted)
}

/// Writes `notify` into the `[notify]` table of the TOML file at `path`, creating the file
/// (and its folder) when missing and keeping everything else in it as it was. The new text
/// replaces the old in one rename, so a reader never sees half a file.
fn save(path: &Path, notify: &NotifyConfig) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(error) => {
            return Err(Error::io(
                format!("reading config file {}", path.display()),
                error,
            ));
        }
    };
    let mut document: toml_edit::DocumentMut = text.parse().map_err(|error| {
        Error::Invalid(format!(
            "config file {} no longer parses, so the change was not saved: fix it, then try \
             again ({error})",
            path.display()
        ))
    })?;
    let table = document
        .entry("notify")
        .or_insert_with(toml_edit::table)
        .as_table_like_mut()
        .ok_or_else(|| {
            Error::Invalid(format!(
                "notify in config file {} is not a table: make it a [notify] section, then try \
                 again",
                path.display()
            ))
        })?;
    set_keeping_comments(table, "mode", notify.mode.as_str().into());
    set_keeping_comments(
        table,
        "min_seconds",
        i64::try_from(notify.min_seconds).unwrap_or(i64::MAX).into(),
    );
    set_keeping_comments(table, "when_focused", notify.when_focused.into());
    let folder = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(folder).map_err(|error| {
        Error::io(
            format!("creating the config folder {}", folder.display()),
            error,
        )
    })?;
    let staged = path.with_extension("toml.saving");
    let written = std::fs::write(&staged, document.to_string())
        .and_then(|()| match std::fs::metadata(path) {
            // The file may hold a token: keep its permissions.
            Ok(metadata) => std::fs::set_permissions(&staged, metadata.permissions()),
            Err(_) => Ok(()),
        })
        .and_then(|()| std::fs::rename(&staged, path));
    written.map_err(|error| {
        let _ = std::fs::remove_file(&staged);
        Error::io(format!("saving config file {}", path.display()), error)
    })
}

/// Sets `key` to `value`, keeping the comments around an existing value.
fn set_keeping_comments(
    table: &mut dyn toml_edit::TableLike,
    key: &str,
    mut value: toml_edit::Value,
) {
    match table.get_mut(key) {
        Some(toml_edit::Item::Value(old)) => {
            *value.decor_mut() = old.decor().clone();
            *old = value;
        }
        _ => {
            table.insert(key, toml_edit::Item::Value(value));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{NotifyLocks, Settings};

    fn origin(file: PathBuf) -> Origin {
        Origin {
            file: Some(file),
            ..Origin::default()
        }
    }

    fn change(mode: Option<&str>, min_seconds: Option<i64>) -> NotifyChange {
        NotifyChange {
            mode: mode.map(str::to_owned),
            min_seconds,
            when_focused: None,
        }
    }

    #[test]
    fn a_change_is_saved_keeping_comments_and_other_keys_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let original = "# my settings\nport = 9000 # not the default\n\n[notify]\n# quiet please\nmode = \"all\" # for now\n";
        std::fs::write(&path, original).unwrap();
        let live = LiveNotify::new(NotifyConfig::default(), origin(path.clone()));
        let view = live
            .apply(&change(Some("failures-only"), Some(30)))
            .unwrap();
        assert_eq!(view.mode, NotifyMode::FailuresOnly);
        assert_eq!(view.min_seconds, 30);
        assert_eq!(live.current().min_seconds, 30);
        let saved = std::fs::read_to_string(&path).unwrap();
        assert!(saved.contains("# my settings"), "{saved}");
        assert!(saved.contains("port = 9000 # not the default"), "{saved}");
        assert!(saved.contains("# quiet please"), "{saved}");
        assert!(
            saved.contains("mode = \"failures-only\" # for now"),
            "{saved}"
        );
        let read_back = Settings::from_file(&path).unwrap();
        assert_eq!(read_back.port, Some(9000));
        assert_eq!(read_back.notify_mode, Some(NotifyMode::FailuresOnly));
        assert_eq!(read_back.notify_min_seconds, Some(30));
        assert_eq!(read_back.notify_when_focused, Some(false));
    }

    #[test]
    fn a_missing_file_and_folder_are_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blanket").join("config.toml");
        let live = LiveNotify::new(NotifyConfig::default(), origin(path.clone()));
        live.apply(&change(Some("none"), None)).unwrap();
        let read_back = Settings::from_file(&path).unwrap();
        assert_eq!(read_back.notify_mode, Some(NotifyMode::None));
    }

    #[test]
    fn bad_values_are_refused_naming_the_key_and_nothing_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let live = LiveNotify::new(NotifyConfig::default(), origin(path.clone()));
        let error = live.apply(&change(None, Some(-5))).unwrap_err();
        assert!(
            matches!(&error, Error::Invalid(message) if message.contains("minSeconds is -5")),
            "{error}"
        );
        let error = live.apply(&change(Some("loud"), None)).unwrap_err();
        assert!(
            matches!(&error, Error::Invalid(message) if message.contains("\"loud\"")),
            "{error}"
        );
        assert_eq!(live.current(), NotifyConfig::default());
        assert!(!path.exists());
    }

    #[test]
    fn a_key_set_by_the_environment_is_locked_and_says_why() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        let origin = Origin {
            notify_locks: NotifyLocks {
                min_seconds: Some("the environment variable BLANKET_NOTIFY_MIN_SECONDS".into()),
                ..NotifyLocks::default()
            },
            ..origin(path.clone())
        };
        let live = LiveNotify::new(NotifyConfig::default(), origin);
        assert_eq!(
            live.view().locked["minSeconds"],
            "the environment variable BLANKET_NOTIFY_MIN_SECONDS"
        );
        let error = live.apply(&change(None, Some(0))).unwrap_err();
        assert!(
            matches!(&error, Error::Conflict(message) if message.contains("BLANKET_NOTIFY_MIN_SECONDS")),
            "{error}"
        );
        // Sending the locked key's current value along with a change is fine.
        live.apply(&change(Some("none"), Some(10))).unwrap();
        let read_back = Settings::from_file(&path).unwrap();
        assert_eq!(read_back.notify_mode, Some(NotifyMode::None));
    }

    #[test]
    fn an_old_json_config_is_never_rewritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, "{\"port\": 9000}").unwrap();
        let origin = Origin {
            file_is_old_json: true,
            ..origin(path.clone())
        };
        let live = LiveNotify::new(NotifyConfig::default(), origin);
        assert!(live.view().read_only.unwrap().contains("JSON"));
        let error = live.apply(&change(Some("none"), None)).unwrap_err();
        assert!(
            matches!(&error, Error::Conflict(message) if message.contains("TOML")),
            "{error}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"port\": 9000}");
    }

    #[test]
    fn a_broken_file_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "port = \n").unwrap();
        let live = LiveNotify::new(NotifyConfig::default(), origin(path.clone()));
        let error = live.apply(&change(Some("none"), None)).unwrap_err();
        assert!(matches!(error, Error::Invalid(_)), "{error}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "port = \n");
        assert_eq!(live.current(), NotifyConfig::default());
    }
}
