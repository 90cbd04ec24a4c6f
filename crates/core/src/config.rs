//! The effective configuration: built-in defaults, then a config file (our TOML or the old
//! server's `config.json`), then environment variables, then command-line flags.
//! Each source is a `Settings` layer of optional values, resolved once at the end so paths
//! derived from `data_dir` follow it; nothing here creates folders or opens the database.

use std::fmt;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// The port the server listens on when nothing says otherwise.
pub const DEFAULT_PORT: u16 = 8773;
/// How many local workers the coordinator starts by default.
pub const DEFAULT_LOCAL_WORKERS: usize = 2;
/// The most local workers one coordinator supervises; more is almost surely a typo.
pub const MAX_LOCAL_WORKERS: usize = 256;
/// The tags of the default local workers, matching the bundled example types.
pub const DEFAULT_WORKER_TAGS: [&str; 2] = ["bash", "unix"];
/// The placeholder of the worker log file template that becomes the worker's id.
pub const WORKER_ID_PLACEHOLDER: &str = "{{.Id}}";
/// Default seconds a claim stays valid without a heartbeat.
pub const DEFAULT_LEASE_SECONDS: u64 = 30;
/// Default seconds between keep-alive messages.
pub const DEFAULT_KEEPALIVE_SECONDS: u64 = 30;
/// Default seconds a connection may take to send a request's head, or sit idle between requests.
pub const DEFAULT_HEADER_TIMEOUT_SECONDS: u64 = 30;
/// Default largest upload (all files of one submit together): 1 GiB.
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 1 << 30;
/// Default largest JSON request body: 1 MiB.
pub const DEFAULT_MAX_JSON_BYTES: usize = 1 << 20;
/// Default shortest run, in seconds, that earns a desktop notification.
pub const DEFAULT_NOTIFY_MIN_SECONDS: u64 = 10;
/// What [`Config::public_view`] shows instead of a token.
pub const REDACTED: &str = "***";

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";
/// The bbolt meta page magic (0xED0CDAED) right after the 16-byte page header, in either
/// byte order because bbolt writes it in the order of the machine that created the file.
const BBOLT_MAGIC_LITTLE: [u8; 4] = [0xED, 0xDA, 0x0C, 0xED];
const BBOLT_MAGIC_BIG: [u8; 4] = [0xED, 0x0C, 0xDA, 0xED];

/// Which finished tasks raise a desktop notification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NotifyMode {
    /// Every task that ran long enough.
    All,
    /// Only tasks that ended `ERROR` or `TIMEDOUT`.
    FailuresOnly,
    /// No notifications.
    None,
}

/// Desktop notification settings.
#[derive(Clone, Debug, PartialEq)]
pub struct NotifyConfig {
    /// Which finished tasks notify.
    pub mode: NotifyMode,
    /// Tasks that ran fewer seconds than this do not notify: the user is likely still watching.
    pub min_seconds: u64,
    /// Whether to notify while the app's window has the focus.
    pub when_focused: bool,
}

/// The effective configuration, every value decided.
///
/// Build it with [`Config::load`] or [`Settings::resolve`]; `Default` is the configuration
/// with no file, no environment and no flags. Paths are absolute. `Debug` hides the token.
#[derive(Clone, PartialEq)]
pub struct Config {
    /// TCP port of the server; 0 picks a free one.
    pub port: u16,
    /// Address the server binds; loopback unless a token is set.
    pub bind: IpAddr,
    /// The folder that holds Blanket's data; the other paths default to places inside it.
    pub data_dir: PathBuf,
    /// The SQLite database file.
    pub database: PathBuf,
    /// The folder holding one working directory per task.
    pub results_dir: PathBuf,
    /// Folders of task type files, in lookup order.
    pub types_dirs: Vec<PathBuf>,
    /// The bearer token clients must send; required for a non-loopback bind. Never shown.
    pub token: Option<String>,
    /// How many local workers the coordinator starts.
    pub local_workers: usize,
    /// Tags of the local workers.
    pub worker_tags: Vec<String>,
    /// Path of a worker's own log file, with [`WORKER_ID_PLACEHOLDER`] for its id.
    pub worker_logfile_template: String,
    /// Log filter: a level (`info`) or `tracing` directives (`blanket_core=debug,info`).
    pub log_level: String,
    /// Seconds a claimed or running task stays with a silent worker before it counts as lost.
    pub lease_seconds: u64,
    /// Seconds between keep-alive messages on long-lived connections.
    pub keepalive_seconds: u64,
    /// Seconds a connection may take to send a complete request head, new or kept alive
    /// between requests, before the server closes it; answers being sent are never cut.
    pub header_timeout_seconds: u64,
    /// Largest accepted upload, all files of one submit together.
    pub max_upload_bytes: u64,
    /// Largest accepted JSON request body.
    pub max_json_bytes: usize,
    /// Host names accepted in requests besides the loopback ones, lower case.
    pub allowed_hosts: Vec<String>,
    /// Desktop notifications, as configured at start; the coordinator keeps the live copy.
    pub notify: NotifyConfig,
    /// Where this configuration came from.
    pub origin: Origin,
}

/// Where a configuration came from, so settings changed at run time are saved where the next
/// start reads them, and settings a higher layer decides are not offered for change.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Origin {
    /// The file run-time changes are saved to: the one that was read, else
    /// [`default_config_path`]; `None` when neither exists (the platform has no config folder).
    pub file: Option<PathBuf>,
    /// Whether `file` is the old server's JSON, which is read but never rewritten.
    pub file_is_old_json: bool,
    /// The `notify` keys the environment or a flag sets, which a saved file cannot override.
    pub notify_locks: NotifyLocks,
}

/// For each `notify` key, what sets it above the config file (e.g. `the environment variable
/// BLANKET_NOTIFY_MODE`), or `None` when the file or the default decides it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NotifyLocks {
    /// What sets `notify.mode`.
    pub mode: Option<String>,
    /// What sets `notify.min_seconds`.
    pub min_seconds: Option<String>,
    /// What sets `notify.when_focused`.
    pub when_focused: Option<String>,
}

/// One layer of configuration: the values one source (file, environment, flags) sets.
///
/// `None` means "this source does not say". Layers combine with [`Settings::merge`] and
/// become a [`Config`] with [`Settings::resolve`], which fills the rest with defaults, so a
/// path derived from `data_dir` follows whichever layer set `data_dir` unless some layer set
/// that path itself. `Debug` hides the token.
#[derive(Clone, Default, PartialEq)]
pub struct Settings {
    /// See [`Config::port`].
    pub port: Option<u16>,
    /// See [`Config::bind`].
    pub bind: Option<IpAddr>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::database`]; defaults to `data_dir/blanket.db`.
    pub database: Option<PathBuf>,
    /// See [`Config::results_dir`]; defaults to `data_dir/results`.
    pub results_dir: Option<PathBuf>,
    /// See [`Config::types_dirs`]; defaults to `[data_dir/types]`.
    pub types_dirs: Option<Vec<PathBuf>>,
    /// See [`Config::token`].
    pub token: Option<String>,
    /// See [`Config::local_workers`].
    pub local_workers: Option<usize>,
    /// See [`Config::worker_tags`].
    pub worker_tags: Option<Vec<String>>,
    /// See [`Config::worker_logfile_template`]; defaults to `data_dir/workers/{{.Id}}.log`.
    pub worker_logfile_template: Option<String>,
    /// See [`Config::log_level`].
    pub log_level: Option<String>,
    /// See [`Config::lease_seconds`].
    pub lease_seconds: Option<u64>,
    /// See [`Config::keepalive_seconds`].
    pub keepalive_seconds: Option<u64>,
    /// See [`Config::header_timeout_seconds`].
    pub header_timeout_seconds: Option<u64>,
    /// See [`Config::max_upload_bytes`].
    pub max_upload_bytes: Option<u64>,
    /// See [`Config::max_json_bytes`].
    pub max_json_bytes: Option<usize>,
    /// See [`Config::allowed_hosts`].
    pub allowed_hosts: Option<Vec<String>>,
    /// See [`NotifyConfig::mode`].
    pub notify_mode: Option<NotifyMode>,
    /// See [`NotifyConfig::min_seconds`].
    pub notify_min_seconds: Option<u64>,
    /// See [`NotifyConfig::when_focused`].
    pub notify_when_focused: Option<bool>,
}

/// Where the config file is looked for when none is named: `<config dir>/blanket/config.toml`
/// (`$XDG_CONFIG_HOME` or `~/.config` on Linux), or `None` when the platform has no such folder.
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|dir| dir.join("blanket").join("config.toml"))
}

/// The data folder used when nothing sets one: `<data dir>/blanket` (`$XDG_DATA_HOME` or
/// `~/.local/share` on Linux), else `~/.local/share/blanket`, else `./blanket-data`.
pub fn default_data_dir() -> PathBuf {
    if let Some(dir) = dirs::data_dir() {
        dir.join("blanket")
    } else if let Some(home) = dirs::home_dir() {
        home.join(".local").join("share").join("blanket")
    } else {
        absolute_or_same(PathBuf::from("blanket-data"))
    }
}

/// Checks that `path` is not a file this version must leave alone before the store opens it.
///
/// A missing or empty file is fine (the store creates the database), and so is a SQLite
/// database. Anything else, in particular the old server's bbolt database, is refused so it
/// is never overwritten.
///
/// # Errors
/// `Invalid` when the file is not a SQLite database or `path` is a folder, saying to point
/// `database` at a new path; `Io` when the file exists but cannot be read.
pub fn check_database_file(path: &Path) -> Result<()> {
    let file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => {
            return Err(Error::io(
                format!("opening database file {}", path.display()),
                error,
            ));
        }
    };
    let metadata = file
        .metadata()
        .map_err(|error| Error::io(format!("reading database file {}", path.display()), error))?;
    if metadata.is_dir() {
        return Err(Error::Invalid(format!(
            "database path {} is a folder, not a file: point database at a file such as {}",
            path.display(),
            path.join("blanket.db").display()
        )));
    }
    let mut header = Vec::with_capacity(20);
    file.take(20)
        .read_to_end(&mut header)
        .map_err(|error| Error::io(format!("reading database file {}", path.display()), error))?;
    if header.is_empty() || header.starts_with(SQLITE_HEADER) {
        return Ok(());
    }
    let suggestion = path.with_extension("sqlite");
    let magic = header.get(16..20);
    if magic == Some(&BBOLT_MAGIC_LITTLE[..]) || magic == Some(&BBOLT_MAGIC_BIG[..]) {
        Err(Error::Invalid(format!(
            "database file {} is an old Blanket (bbolt) database, which this version cannot read; \
             it was left untouched: point database at a new path such as {}",
            path.display(),
            suggestion.display()
        )))
    } else {
        Err(Error::Invalid(format!(
            "database file {} is not a SQLite database (it looks like an old Blanket (bbolt) \
             database or another program's file, which this version cannot read); it was left \
             untouched: point database at a new path such as {}",
            path.display(),
            suggestion.display()
        )))
    }
}

impl NotifyMode {
    /// The spelling in files, variables and JSON: `all`, `failures-only`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyMode::All => "all",
            NotifyMode::FailuresOnly => "failures-only",
            NotifyMode::None => "none",
        }
    }
}

impl fmt::Display for NotifyMode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for NotifyMode {
    type Err = Error;

    /// Parses `all`, `failures-only` (or `failures_only`, `failures`) and `none` (or `off`),
    /// ignoring case.
    fn from_str(text: &str) -> Result<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(NotifyMode::All),
            "failures-only" | "failures_only" | "failures" => Ok(NotifyMode::FailuresOnly),
            "none" | "off" => Ok(NotifyMode::None),
            _ => Err(Error::Invalid(format!(
                "unknown notify mode {text:?}: use all, failures-only or none"
            ))),
        }
    }
}

impl Default for NotifyConfig {
    /// Notify about every task that ran at least [`DEFAULT_NOTIFY_MIN_SECONDS`], unless the
    /// window has the focus.
    fn default() -> Self {
        NotifyConfig {
            mode: NotifyMode::All,
            min_seconds: DEFAULT_NOTIFY_MIN_SECONDS,
            when_focused: false,
        }
    }
}

impl Default for Config {
    /// The configuration with no file, no environment variable and no flag.
    fn default() -> Self {
        Settings::default().fill_defaults()
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Config")
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database)
            .field("results_dir", &self.results_dir)
            .field("types_dirs", &self.types_dirs)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("local_workers", &self.local_workers)
            .field("worker_tags", &self.worker_tags)
            .field("worker_logfile_template", &self.worker_logfile_template)
            .field("log_level", &self.log_level)
            .field("lease_seconds", &self.lease_seconds)
            .field("keepalive_seconds", &self.keepalive_seconds)
            .field("header_timeout_seconds", &self.header_timeout_seconds)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("max_json_bytes", &self.max_json_bytes)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("notify", &self.notify)
            .field("origin", &self.origin)
            .finish()
    }
}

impl Config {
    /// The effective configuration: defaults < config file < environment < `flags`.
    ///
    /// With `config_path` the file must exist; without it the file at
    /// [`default_config_path`] is read when there is one. `env` looks a variable up (pass
    /// `|name| std::env::var(name).ok()`; tests pass a map). This does not call
    /// [`Config::validate`], because client commands only need the port and token.
    ///
    /// # Errors
    /// `Invalid` for a missing named file, a malformed file, a bad variable or a bad value;
    /// `Io` when the file cannot be read.
    pub fn load(
        config_path: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
        flags: Settings,
    ) -> Result<Config> {
        let (file, file_path) = match config_path {
            Some(path) => (Settings::from_file(path)?, Some(path.to_path_buf())),
            None => match default_config_path() {
                Some(path) if path.exists() => (Settings::from_file(&path)?, Some(path)),
                default => (Settings::default(), default),
            },
        };
        let environment = Settings::from_env(env)?;
        let notify_locks = NotifyLocks {
            mode: lock_of(&environment.notify_mode, &flags.notify_mode, "MODE"),
            min_seconds: lock_of(
                &environment.notify_min_seconds,
                &flags.notify_min_seconds,
                "MIN_SECONDS",
            ),
            when_focused: lock_of(
                &environment.notify_when_focused,
                &flags.notify_when_focused,
                "WHEN_FOCUSED",
            ),
        };
        let file_is_old_json = file_path.as_deref().is_some_and(|path| {
            std::fs::read_to_string(path).is_ok_and(|text| is_old_json(path, &text))
        });
        let mut config = file.merge(environment).merge(flags).resolve()?;
        config.origin = Origin {
            file: file_path.map(absolute_or_same),
            file_is_old_json,
            notify_locks,
        };
        Ok(config)
    }

    /// Whether the server only listens on the loopback interface.
    pub fn is_loopback_bind(&self) -> bool {
        self.bind.is_loopback()
    }

    /// Checks the rules a server must satisfy before it starts.
    ///
    /// # Errors
    /// `Invalid` for a non-loopback bind without a token, a zero lease, keep-alive, header
    /// timeout or body limit, too many local workers, or a worker log template without [`WORKER_ID_PLACEHOLDER`].
    pub fn validate(&self) -> Result<()> {
        if !self.is_loopback_bind() && self.token.is_none() {
            return Err(Error::Invalid(format!(
                "binding {} exposes every task to the network: set a token with --token or \
                 BLANKET_TOKEN, or bind 127.0.0.1",
                self.bind
            )));
        }
        for (name, value) in [
            ("lease_seconds", self.lease_seconds),
            ("keepalive_seconds", self.keepalive_seconds),
            ("header_timeout_seconds", self.header_timeout_seconds),
            ("max_upload_bytes", self.max_upload_bytes),
        ] {
            if value == 0 {
                return Err(Error::Invalid(format!(
                    "{name} is 0: use a positive number, or leave it out for the default"
                )));
            }
        }
        if self.max_json_bytes == 0 {
            return Err(Error::Invalid(
                "max_json_bytes is 0: use a positive number, or leave it out for the default"
                    .to_owned(),
            ));
        }
        if self.local_workers > MAX_LOCAL_WORKERS {
            return Err(Error::Invalid(format!(
                "local_workers is {}: use a number from 0 to {MAX_LOCAL_WORKERS}",
                self.local_workers
            )));
        }
        if !self.worker_logfile_template.contains(WORKER_ID_PLACEHOLDER) {
            return Err(Error::Invalid(format!(
                "worker_logfile_template {:?} has no {WORKER_ID_PLACEHOLDER}, so every worker \
                 would write the same log file: add it, e.g. {}",
                self.worker_logfile_template,
                default_worker_logfile_template(&self.data_dir)
            )));
        }
        Ok(())
    }

    /// The effective configuration as `GET /config/` shows it: the keys of the TOML file,
    /// paths as strings, and the token as [`REDACTED`] when set (`null` when not), never itself.
    pub fn public_view(&self) -> Value {
        json!({
            "port": self.port,
            "bind": self.bind.to_string(),
            "data_dir": path_text(&self.data_dir),
            "database": path_text(&self.database),
            "results_dir": path_text(&self.results_dir),
            "types_dirs": self.types_dirs.iter().map(|dir| path_text(dir)).collect::<Vec<_>>(),
            "token": self.token.as_ref().map(|_| REDACTED),
            "local_workers": self.local_workers,
            "worker_tags": self.worker_tags,
            "worker_logfile_template": self.worker_logfile_template,
            "log_level": self.log_level,
            "lease_seconds": self.lease_seconds,
            "keepalive_seconds": self.keepalive_seconds,
            "header_timeout_seconds": self.header_timeout_seconds,
            "max_upload_bytes": self.max_upload_bytes,
            "max_json_bytes": self.max_json_bytes,
            "allowed_hosts": self.allowed_hosts,
            "notify": {
                "mode": self.notify.mode.as_str(),
                "min_seconds": self.notify.min_seconds,
                "when_focused": self.notify.when_focused,
            },
        })
    }
}

impl fmt::Debug for Settings {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("Settings")
            .field("port", &self.port)
            .field("bind", &self.bind)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database)
            .field("results_dir", &self.results_dir)
            .field("types_dirs", &self.types_dirs)
            .field("token", &self.token.as_ref().map(|_| REDACTED))
            .field("local_workers", &self.local_workers)
            .field("worker_tags", &self.worker_tags)
            .field("worker_logfile_template", &self.worker_logfile_template)
            .field("log_level", &self.log_level)
            .field("lease_seconds", &self.lease_seconds)
            .field("keepalive_seconds", &self.keepalive_seconds)
            .field("header_timeout_seconds", &self.header_timeout_seconds)
            .field("max_upload_bytes", &self.max_upload_bytes)
            .field("max_json_bytes", &self.max_json_bytes)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("notify_mode", &self.notify_mode)
            .field("notify_min_seconds", &self.notify_min_seconds)
            .field("notify_when_focused", &self.notify_when_focused)
            .finish()
    }
}

impl Settings {
    /// Reads a config file: the old server's JSON when the name ends in `.json` or the text
    /// starts with `{`, our TOML otherwise. Relative paths in it are relative to its folder,
    /// and `~/` is the home folder.
    ///
    /// Our TOML refuses keys it does not know; the old JSON ignores them (with a warning),
    /// because old files carry settings this version has no use for.
    ///
    /// # Errors
    /// `Invalid` when the file does not exist, is not UTF-8, or has a syntax error, an
    /// unknown key or a bad value (naming the file and, where known, the line); `Io` when
    /// it cannot be read.
    pub fn from_file(path: &Path) -> Result<Settings> {
        let bytes = std::fs::read(path).map_err(|error| {
            if error.kind() == std::io::ErrorKind::NotFound {
                Error::Invalid(format!(
                    "config file {} does not exist: check the --config path, or leave it out to \
                     use the defaults",
                    path.display()
                ))
            } else {
                Error::io(format!("reading config file {}", path.display()), error)
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::Invalid(format!(
                "config file {} is not UTF-8 text: save it as UTF-8",
                path.display()
            ))
        })?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        // The folder relative paths are taken from; absolute so the result does not depend
        // on where the binary runs later.
        let absolute_file = absolute_or_same(path.to_path_buf());
        let folder = absolute_file.parent().unwrap_or(Path::new(""));
        if is_old_json(path, text) {
            settings_from_old_json(text, path, folder)
        } else {
            settings_from_toml(text, path, folder)
        }
    }

    /// Reads the `BLANKET_*` environment variables through `lookup`.
    ///
    /// `BLANKET_PORT`, `BLANKET_BIND` (an IP address or `localhost`), `BLANKET_DATA_DIR`,
    /// `BLANKET_TYPES_DIR` (a list in the platform's `PATH` form: `:`-separated on Unix),
    /// `BLANKET_TOKEN`, `BLANKET_WORKERS`, `BLANKET_LEASE_SECONDS`,
    /// `BLANKET_KEEPALIVE_SECONDS`, `BLANKET_HEADER_TIMEOUT_SECONDS`, `BLANKET_NOTIFY_MODE`, `BLANKET_NOTIFY_MIN_SECONDS`,
    /// `BLANKET_NOTIFY_WHEN_FOCUSED` (`true`/`false`/`1`/`0`/`yes`/`no`/`on`/`off`) and
    /// `BLANKET_LOG`. Values are trimmed; an empty variable counts as unset.
    ///
    /// # Errors
    /// `Invalid` naming the variable, its value and an example of a good one.
    pub fn from_env(lookup: impl Fn(&str) -> Option<String>) -> Result<Settings> {
        let variables = Variables(lookup);
        let seconds = "a whole number of seconds";
        Ok(Settings {
            port: variables.parsed("BLANKET_PORT", "a port number from 0 to 65535", "8773")?,
            bind: variables.read_with("BLANKET_BIND", parse_bind, "an IP address", "127.0.0.1")?,
            data_dir: variables.text("BLANKET_DATA_DIR").map(PathBuf::from),
            types_dirs: variables
                .text("BLANKET_TYPES_DIR")
                .map(|value| {
                    std::env::split_paths(&value)
                        .filter(|dir| !dir.as_os_str().is_empty())
                        .collect::<Vec<PathBuf>>()
                })
                .filter(|dirs| !dirs.is_empty()),
            token: variables.text("BLANKET_TOKEN"),
            local_workers: variables.parsed("BLANKET_WORKERS", "a number of local workers", "2")?,
            lease_seconds: variables.parsed("BLANKET_LEASE_SECONDS", seconds, "30")?,
            keepalive_seconds: variables.parsed("BLANKET_KEEPALIVE_SECONDS", seconds, "30")?,
            header_timeout_seconds: variables.parsed(
                "BLANKET_HEADER_TIMEOUT_SECONDS",
                seconds,
                "30",
            )?,
            notify_mode: variables.parsed(
                "BLANKET_NOTIFY_MODE",
                "all, failures-only or none",
                "failures-only",
            )?,
            notify_min_seconds: variables.parsed("BLANKET_NOTIFY_MIN_SECONDS", seconds, "10")?,
            notify_when_focused: variables.read_with(
                "BLANKET_NOTIFY_WHEN_FOCUSED",
                parse_bool,
                "true or false",
                "true",
            )?,
            log_level: variables.text("BLANKET_LOG"),
            ..Settings::default()
        })
    }

    /// Combines two layers: each value of `higher` that is set wins over this layer's.
    pub fn merge(self, higher: Settings) -> Settings {
        Settings {
            port: higher.port.or(self.port),
            bind: higher.bind.or(self.bind),
            data_dir: higher.data_dir.or(self.data_dir),
            database: higher.database.or(self.database),
            results_dir: higher.results_dir.or(self.results_dir),
            types_dirs: higher.types_dirs.or(self.types_dirs),
            token: higher.token.or(self.token),
            local_workers: higher.local_workers.or(self.local_workers),
            worker_tags: higher.worker_tags.or(self.worker_tags),
            worker_logfile_template: higher
                .worker_logfile_template
                .or(self.worker_logfile_template),
            log_level: higher.log_level.or(self.log_level),
            lease_seconds: higher.lease_seconds.or(self.lease_seconds),
            keepalive_seconds: higher.keepalive_seconds.or(self.keepalive_seconds),
            header_timeout_seconds: higher
                .header_timeout_seconds
                .or(self.header_timeout_seconds),
            max_upload_bytes: higher.max_upload_bytes.or(self.max_upload_bytes),
            max_json_bytes: higher.max_json_bytes.or(self.max_json_bytes),
            allowed_hosts: higher.allowed_hosts.or(self.allowed_hosts),
            notify_mode: higher.notify_mode.or(self.notify_mode),
            notify_min_seconds: higher.notify_min_seconds.or(self.notify_min_seconds),
            notify_when_focused: higher.notify_when_focused.or(self.notify_when_focused),
        }
    }

    /// Fills every unset value with its default and returns the configuration.
    ///
    /// Paths derived from `data_dir` (database, results, types, worker logs) are placed in
    /// the resolved `data_dir` unless set. `~/` becomes the home folder and relative paths
    /// become absolute against the current directory (a file's own relative paths were
    /// already taken against its folder). The old `{{.Id.Hex}}` in the worker log template
    /// becomes `{{.Id}}`. Tags, host names and the log level are trimmed.
    ///
    /// # Errors
    /// `Invalid` for an empty path, a token with spaces or control characters, an empty or
    /// comma-holding worker tag, an empty allowed host or an empty log level.
    pub fn resolve(self) -> Result<Config> {
        for (name, path) in [
            ("data_dir", &self.data_dir),
            ("database", &self.database),
            ("results_dir", &self.results_dir),
        ] {
            if path
                .as_ref()
                .is_some_and(|path| path.as_os_str().is_empty())
            {
                return Err(Error::Invalid(format!(
                    "{name} is an empty path: give a path, or leave it out for the default"
                )));
            }
        }
        if let Some(dirs) = &self.types_dirs
            && dirs.iter().any(|dir| dir.as_os_str().is_empty())
        {
            return Err(Error::Invalid(
                "types_dirs holds an empty path: remove it, or give a folder of task type files"
                    .to_owned(),
            ));
        }
        if let Some(token) = &self.token
            && (token.is_empty() || !token.bytes().all(|byte| byte.is_ascii_graphic()))
        {
            return Err(Error::Invalid(
                "token is empty or holds spaces, control or non-ASCII characters, so clients \
                 could not send it in a header: use printable ASCII, e.g. the output of \
                 `openssl rand -hex 32`"
                    .to_owned(),
            ));
        }
        let mut settings = self;
        if let Some(tags) = settings.worker_tags.take() {
            settings.worker_tags = Some(clean_list("worker_tags", tags, "bash")?);
        }
        if let Some(hosts) = settings.allowed_hosts.take() {
            let hosts = clean_list("allowed_hosts", hosts, "blanket.example.lan")?;
            settings.allowed_hosts = Some(
                hosts
                    .into_iter()
                    .map(|host| host.to_ascii_lowercase())
                    .collect(),
            );
        }
        if let Some(level) = settings.log_level.take() {
            let level = level.trim().to_owned();
            if level.is_empty() {
                return Err(Error::Invalid(
                    "log_level is empty: use error, warn, info, debug or trace".to_owned(),
                ));
            }
            settings.log_level = Some(level);
        }
        Ok(settings.fill_defaults())
    }

    /// Fills unset values with defaults; infallible, so `Config::default` needs no `expect`.
    fn fill_defaults(self) -> Config {
        let data_dir = self
            .data_dir
            .map(absolute_path)
            .unwrap_or_else(default_data_dir);
        let worker_logfile_template = match self.worker_logfile_template {
            Some(template) => {
                let template = template.replace("{{.Id.Hex}}", WORKER_ID_PLACEHOLDER);
                path_text(&absolute_path(PathBuf::from(template)))
            }
            None => default_worker_logfile_template(&data_dir),
        };
        Config {
            port: self.port.unwrap_or(DEFAULT_PORT),
            bind: self.bind.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            database: self
                .database
                .map(absolute_path)
                .unwrap_or_else(|| data_dir.join("blanket.db")),
            results_dir: self
                .results_dir
                .map(absolute_path)
                .unwrap_or_else(|| data_dir.join("results")),
            types_dirs: self.types_dirs.map_or_else(
                || vec![data_dir.join("types")],
                |dirs| dirs.into_iter().map(absolute_path).collect(),
            ),
            token: self.token,
            local_workers: self.local_workers.unwrap_or(DEFAULT_LOCAL_WORKERS),
            worker_tags: self.worker_tags.unwrap_or_else(|| {
                DEFAULT_WORKER_TAGS
                    .iter()
                    .map(|tag| (*tag).to_owned())
                    .collect()
            }),
            worker_logfile_template,
            log_level: self.log_level.unwrap_or_else(|| "info".to_owned()),
            lease_seconds: self.lease_seconds.unwrap_or(DEFAULT_LEASE_SECONDS),
            keepalive_seconds: self.keepalive_seconds.unwrap_or(DEFAULT_KEEPALIVE_SECONDS),
            header_timeout_seconds: self
                .header_timeout_seconds
                .unwrap_or(DEFAULT_HEADER_TIMEOUT_SECONDS),
            max_upload_bytes: self.max_upload_bytes.unwrap_or(DEFAULT_MAX_UPLOAD_BYTES),
            max_json_bytes: self.max_json_bytes.unwrap_or(DEFAULT_MAX_JSON_BYTES),
            allowed_hosts: self.allowed_hosts.unwrap_or_default(),
            notify: NotifyConfig {
                mode: self.notify_mode.unwrap_or(NotifyMode::All),
                min_seconds: self
                    .notify_min_seconds
                    .unwrap_or(DEFAULT_NOTIFY_MIN_SECONDS),
                when_focused: self.notify_when_focused.unwrap_or(false),
            },
            origin: Origin::default(),
            data_dir,
        }
    }
}

/// What sets a `notify` key above the config file: a flag wins over the environment variable
/// `BLANKET_NOTIFY_<suffix>`.
fn lock_of<T>(environment: &Option<T>, flags: &Option<T>, suffix: &str) -> Option<String> {
    if flags.is_some() {
        Some("a command-line flag".to_owned())
    } else {
        environment
            .is_some()
            .then(|| format!("the environment variable BLANKET_NOTIFY_{suffix}"))
    }
}

/// Whether a config file is the old server's JSON: its name ends in `.json` or its text
/// starts with `{`.
fn is_old_json(path: &Path, text: &str) -> bool {
    path.extension()
        .is_some_and(|extension| extension.eq_ignore_ascii_case("json"))
        || text
            .trim_start_matches('\u{feff}')
            .trim_start()
            .starts_with('{')
}

/// Our config file format. Field names are the TOML keys; unknown keys are refused so a
/// typo does not silently fall back to a default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    port: Option<u16>,
    bind: Option<toml::Spanned<String>>,
    data_dir: Option<String>,
    database: Option<String>,
    results_dir: Option<String>,
    types_dirs: Option<Vec<String>>,
    token: Option<String>,
    local_workers: Option<usize>,
    worker_tags: Option<Vec<String>>,
    worker_logfile_template: Option<String>,
    log_level: Option<String>,
    lease_seconds: Option<u64>,
    keepalive_seconds: Option<u64>,
    header_timeout_seconds: Option<u64>,
    max_upload_bytes: Option<u64>,
    max_json_bytes: Option<usize>,
    allowed_hosts: Option<Vec<String>>,
    notify: Option<TomlNotify>,
}

/// The `[notify]` table of [`TomlFile`].
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlNotify {
    mode: Option<toml::Spanned<String>>,
    min_seconds: Option<u64>,
    when_focused: Option<bool>,
}

fn settings_from_toml(text: &str, path: &Path, folder: &Path) -> Result<Settings> {
    let file: TomlFile = toml::from_str(text).map_err(|error| {
        let line = error.span().map(|span| line_of(text, span.start));
        let place = line
            .map(|line| format!(" line {line} ({})", line_text(text, line)))
            .unwrap_or_default();
        // The parser's message quotes the bad value, which on the token's line may be the
        // secret itself, so that line gets a message of our own.
        let message = if line.is_some_and(|line| is_token_line(text, line)) {
            "the token must be a quoted string such as token = \"a1b2c3\""
        } else {
            error.message().trim_end()
        };
        Error::Invalid(format!(
            "config file {}{place}: {message}; correct the value or remove the key",
            path.display()
        ))
    })?;
    let spanned_error = |span: std::ops::Range<usize>, what: String| {
        Error::Invalid(format!(
            "config file {} line {}: {what}",
            path.display(),
            line_of(text, span.start)
        ))
    };
    let bind = match file.bind {
        Some(bind) => Some(parse_bind(bind.get_ref()).ok_or_else(|| {
            spanned_error(
                bind.span(),
                format!(
                    "bind = {:?} is not an IP address: use e.g. bind = \"127.0.0.1\"",
                    bind.get_ref()
                ),
            )
        })?),
        None => None,
    };
    let (notify_mode, notify_min_seconds, notify_when_focused) = match file.notify {
        Some(notify) => {
            let mode = match notify.mode {
                Some(mode) => Some(mode.get_ref().parse().map_err(|_| {
                    spanned_error(
                        mode.span(),
                        format!(
                            "notify mode = {:?} is unknown: use \"all\", \"failures-only\" or \"none\"",
                            mode.get_ref()
                        ),
                    )
                })?),
                None => None,
            };
            (mode, notify.min_seconds, notify.when_focused)
        }
        None => (None, None, None),
    };
    let file_path = |key: &str, text: Option<String>| {
        text.map(|text| relative_to(folder, key, &text, path))
            .transpose()
    };
    Ok(Settings {
        port: file.port,
        bind,
        data_dir: file_path("data_dir", file.data_dir)?,
        database: file_path("database", file.database)?,
        results_dir: file_path("results_dir", file.results_dir)?,
        types_dirs: file
            .types_dirs
            .map(|dirs| {
                dirs.into_iter()
                    .map(|text| relative_to(folder, "types_dirs", &text, path))
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?,
        token: file.token,
        local_workers: file.local_workers,
        worker_tags: file.worker_tags,
        worker_logfile_template: file_path(
            "worker_logfile_template",
            file.worker_logfile_template,
        )?
        .map(|template| path_text(&template)),
        log_level: file.log_level,
        lease_seconds: file.lease_seconds,
        keepalive_seconds: file.keepalive_seconds,
        header_timeout_seconds: file.header_timeout_seconds,
        max_upload_bytes: file.max_upload_bytes,
        max_json_bytes: file.max_json_bytes,
        allowed_hosts: file.allowed_hosts,
        notify_mode,
        notify_min_seconds,
        notify_when_focused,
    })
}

/// Reads the old server's `config.json`. Its keys were case-insensitive (viper), nested
/// (`{"tasks": {"typesPaths": [...]}}`) or dotted (`"tasks.typesPaths"`); both are read.
fn settings_from_old_json(text: &str, path: &Path, folder: &Path) -> Result<Settings> {
    let document: Value = serde_json::from_str(text).map_err(|error| {
        Error::Invalid(format!(
            "config file {} is not valid JSON: {error}; fix the JSON there",
            path.display()
        ))
    })?;
    let Value::Object(_) = document else {
        return Err(Error::Invalid(format!(
            "config file {} is JSON but not an object: write it as {{\"port\": 8773, ...}}",
            path.display()
        )));
    };
    let mut entries = Vec::new();
    flatten_json("", &document, &mut entries);
    let bad_value = |key: &str, expected: &str| {
        Error::Invalid(format!(
            "config file {}: {key} must be {expected}",
            path.display()
        ))
    };
    let mut settings = Settings::default();
    for (key, value) in entries {
        match key.to_ascii_lowercase().as_str() {
            "port" => {
                let port = match &value {
                    Value::Number(number) => number.as_u64().and_then(|n| u16::try_from(n).ok()),
                    Value::String(text) => text.trim().parse().ok(),
                    _ => None,
                };
                settings.port =
                    Some(port.ok_or_else(|| bad_value(&key, "a port number such as 8773"))?);
            }
            "database" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| bad_value(&key, "a file path such as \"blanket.db\""))?;
                settings.database = Some(relative_to(folder, &key, text, path)?);
            }
            // `typesPath` (one folder) is what the oldest versions called it.
            "tasks.typespaths" | "tasks.typespath" => {
                let texts = json_texts(&value)
                    .ok_or_else(|| bad_value(&key, "a list of folder paths such as [\"types\"]"))?;
                let dirs = texts
                    .into_iter()
                    .map(|text| relative_to(folder, &key, text, path))
                    .collect::<Result<Vec<_>>>()?;
                settings.types_dirs = Some(dirs);
            }
            "tasks.resultspath" => {
                // The old server wrote a one-element list as its default.
                let texts = json_texts(&value).unwrap_or_default();
                let [text] = texts.as_slice() else {
                    return Err(bad_value(&key, "one folder path such as \"results\""));
                };
                settings.results_dir = Some(relative_to(folder, &key, text, path)?);
            }
            "workers.logfilenametemplate" => {
                let text = value.as_str().ok_or_else(|| {
                    bad_value(&key, "a file path template such as \"worker.{{.Id}}.log\"")
                })?;
                let template = relative_to(folder, &key, text, path)?;
                settings.worker_logfile_template = Some(path_text(&template));
            }
            "loglevel" => {
                let text = value
                    .as_str()
                    .ok_or_else(|| bad_value(&key, "a level such as \"info\""))?;
                settings.log_level = Some(old_log_level(text));
            }
            _ => {
                tracing::warn!(
                    key = %key,
                    file = %path.display(),
                    "ignoring a key of the old config file that this version does not use"
                );
            }
        }
    }
    Ok(settings)
}

/// Collects the leaves of a JSON object as dotted keys (`tasks.typesPaths`); arrays are leaves.
fn flatten_json(prefix: &str, value: &Value, entries: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let dotted = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                flatten_json(&dotted, inner, entries);
            }
        }
        // A null leaves the key unset, as it did for the old server.
        Value::Null => {}
        leaf => entries.push((prefix.to_owned(), leaf.clone())),
    }
}

/// A string or a list of strings.
fn json_texts(value: &Value) -> Option<Vec<&str>> {
    match value {
        Value::String(text) => Some(vec![text.as_str()]),
        Value::Array(items) => items.iter().map(Value::as_str).collect(),
        _ => None,
    }
}

/// The old server's logrus level names in `tracing` terms.
fn old_log_level(level: &str) -> String {
    match level.trim().to_ascii_lowercase().as_str() {
        "warning" => "warn".to_owned(),
        "fatal" | "panic" => "error".to_owned(),
        other => other.to_owned(),
    }
}

/// A path written in the config file at `file`: `~/` is the home folder and a relative
/// path is taken from `folder`, the file's own folder.
fn relative_to(folder: &Path, key: &str, text: &str, file: &Path) -> Result<PathBuf> {
    if text.trim().is_empty() {
        return Err(Error::Invalid(format!(
            "config file {}: {key} is an empty path: give a path, or remove the key for the default",
            file.display()
        )));
    }
    let expanded = expand_home(PathBuf::from(text));
    Ok(if expanded.is_relative() {
        folder.join(expanded)
    } else {
        expanded
    })
}

/// Replaces a leading `~` component with the home folder, when there is one.
fn expand_home(path: PathBuf) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path,
    }
}

/// `~/` expanded, then made absolute against the current directory.
fn absolute_path(path: PathBuf) -> PathBuf {
    absolute_or_same(expand_home(path))
}

/// The path made absolute against the current directory; unchanged when that fails (no
/// current directory), since a relative path still works for the process that has it.
fn absolute_or_same(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

fn default_worker_logfile_template(data_dir: &Path) -> String {
    path_text(
        &data_dir
            .join("workers")
            .join(format!("{WORKER_ID_PLACEHOLDER}.log")),
    )
}

fn path_text(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()
        .iter()
        .take(offset)
        .filter(|byte| **byte == b'\n')
        .count()
        + 1
}

/// Line `line` (1-based) of `text`, trimmed and cut short for a message; a `token` line is
/// masked because the value might be the real secret with a typo.
fn line_text(text: &str, line: usize) -> String {
    const SHOWN_CHARS: usize = 60;
    let content = text
        .lines()
        .nth(line.saturating_sub(1))
        .unwrap_or("")
        .trim();
    if is_token_line(text, line) {
        return format!("token = {REDACTED}");
    }
    if content.chars().count() > SHOWN_CHARS {
        let start: String = content.chars().take(SHOWN_CHARS).collect();
        format!("{start}...")
    } else {
        content.to_owned()
    }
}

/// Whether line `line` (1-based) of `text` sets the token.
fn is_token_line(text: &str, line: usize) -> bool {
    text.lines()
        .nth(line.saturating_sub(1))
        .is_some_and(|content| content.trim_start().starts_with("token"))
}

/// An IP address, `localhost`, or a bracketed IPv6 address (`[::1]`).
fn parse_bind(text: &str) -> Option<IpAddr> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("localhost") {
        return Some(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let unbracketed = trimmed
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(trimmed);
    unbracketed.parse().ok()
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// The environment as [`Settings::from_env`] reads it, through a lookup function.
struct Variables<F>(F);

impl<F: Fn(&str) -> Option<String>> Variables<F> {
    /// The trimmed value of `name`; `None` when it is unset or empty.
    fn text(&self, name: &str) -> Option<String> {
        (self.0)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    /// The value of `name` through its `FromStr`, as [`Variables::read_with`] does.
    fn parsed<T: FromStr>(&self, name: &str, expected: &str, example: &str) -> Result<Option<T>> {
        self.read_with(name, |text| text.parse().ok(), expected, example)
    }

    /// The value of `name` as `parse` reads it; `None` when unset. A value `parse` refuses is
    /// an error that says it is not `expected` and gives `example`.
    fn read_with<T>(
        &self,
        name: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        expected: &str,
        example: &str,
    ) -> Result<Option<T>> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        parse(&value).map(Some).ok_or_else(|| {
            Error::Invalid(format!(
                "environment variable {name}={value:?} is not {expected}: set e.g. \
                 {name}={example}, or unset it"
            ))
        })
    }
}

/// Trims each item and refuses empty ones and ones with a comma (lists are written as CSV
/// elsewhere, so a comma inside an item could never be matched).
fn clean_list(name: &str, items: Vec<String>, example: &str) -> Result<Vec<String>> {
    items
        .into_iter()
        .map(|item| {
            let trimmed = item.trim();
            if trimmed.is_empty() || trimmed.contains(',') {
                Err(Error::Invalid(format!(
                    "{name} holds {item:?}: each item must be non-empty and without commas, e.g. {example:?}"
                )))
            } else {
                Ok(trimmed.to_owned())
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use proptest::prelude::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    fn invalid(result: Result<impl fmt::Debug>) -> String {
        match result {
            Err(Error::Invalid(message)) => message,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn in_dir(dir: &Path) -> Settings {
        Settings {
            data_dir: Some(dir.to_path_buf()),
            ..Settings::default()
        }
    }

    #[test]
    fn defaults_without_any_source() {
        let config = Config::default();
        assert_eq!(config, Settings::default().resolve().unwrap());
        assert_eq!(config.port, 8773);
        assert_eq!(config.bind, IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert!(config.data_dir.ends_with("blanket") || config.data_dir.ends_with("blanket-data"));
        assert!(config.data_dir.is_absolute());
        assert_eq!(config.database, config.data_dir.join("blanket.db"));
        assert_eq!(config.results_dir, config.data_dir.join("results"));
        assert_eq!(config.types_dirs, vec![config.data_dir.join("types")]);
        assert_eq!(config.token, None);
        assert_eq!(config.local_workers, 2);
        assert_eq!(config.worker_tags, ["bash", "unix"]);
        assert_eq!(
            config.worker_logfile_template,
            path_text(&config.data_dir.join("workers").join("{{.Id}}.log"))
        );
        assert_eq!(config.log_level, "info");
        assert_eq!(config.lease_seconds, 30);
        assert_eq!(config.keepalive_seconds, 30);
        assert_eq!(config.header_timeout_seconds, 30);
        assert_eq!(config.max_upload_bytes, 1024 * 1024 * 1024);
        assert_eq!(config.max_json_bytes, 1024 * 1024);
        assert!(config.allowed_hosts.is_empty());
        assert_eq!(config.notify, NotifyConfig::default());
        assert_eq!(config.notify.mode, NotifyMode::All);
        assert_eq!(config.notify.min_seconds, 10);
        assert!(!config.notify.when_focused);
        assert!(config.is_loopback_bind());
        config.validate().unwrap();
    }

    #[test]
    fn default_config_path_is_blanket_config_toml() {
        if let Some(path) = default_config_path() {
            assert!(path.ends_with("blanket/config.toml"));
        }
    }

    #[test]
    fn toml_file_sets_every_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config.toml",
            r#"
port = 9000
bind = "0.0.0.0"
data_dir = "/srv/blanket"
database = "/srv/db/blanket.db"
results_dir = "/srv/results"
types_dirs = ["/srv/types", "/opt/types"]
token = "s3cret-token"
local_workers = 4
worker_tags = ["bash", "gpu"]
worker_logfile_template = "/var/log/blanket/{{.Id}}.log"
log_level = "debug"
lease_seconds = 60
keepalive_seconds = 15
header_timeout_seconds = 20
max_upload_bytes = 1000
max_json_bytes = 2000
allowed_hosts = ["Blanket.Lan"]

[notify]
mode = "failures-only"
min_seconds = 0
when_focused = true
"#,
        );
        let config = Settings::from_file(&path).unwrap().resolve().unwrap();
        assert_eq!(config.port, 9000);
        assert_eq!(config.bind, "0.0.0.0".parse::<IpAddr>().unwrap());
        assert_eq!(config.data_dir, PathBuf::from("/srv/blanket"));
        assert_eq!(config.database, PathBuf::from("/srv/db/blanket.db"));
        assert_eq!(config.results_dir, PathBuf::from("/srv/results"));
        assert_eq!(
            config.types_dirs,
            [PathBuf::from("/srv/types"), PathBuf::from("/opt/types")]
        );
        assert_eq!(config.token.as_deref(), Some("s3cret-token"));
        assert_eq!(config.local_workers, 4);
        assert_eq!(config.worker_tags, ["bash", "gpu"]);
        assert_eq!(
            config.worker_logfile_template,
            "/var/log/blanket/{{.Id}}.log"
        );
        assert_eq!(config.log_level, "debug");
        assert_eq!(config.lease_seconds, 60);
        assert_eq!(config.keepalive_seconds, 15);
        assert_eq!(config.header_timeout_seconds, 20);
        assert_eq!(config.max_upload_bytes, 1000);
        assert_eq!(config.max_json_bytes, 2000);
        assert_eq!(config.allowed_hosts, ["blanket.lan"]);
        assert_eq!(
            config.notify,
            NotifyConfig {
                mode: NotifyMode::FailuresOnly,
                min_seconds: 0,
                when_focused: true
            }
        );
        config.validate().unwrap();
    }

    #[test]
    fn toml_unknown_key_names_the_key_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config.toml", "port = 1\n\nprot = 2\n");
        let error = invalid(Settings::from_file(&path));
        assert!(error.contains("prot"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("line 3"), "{error}");

        let path = write(
            dir.path(),
            "nested.toml",
            "[notify]\nmode = \"all\"\nloud = true\n",
        );
        let error = invalid(Settings::from_file(&path));
        assert!(
            error.contains("loud") && error.contains("line 3"),
            "{error}"
        );
    }

    #[test]
    fn toml_bad_values_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config.toml", "port = 70000\n");
        let error = invalid(Settings::from_file(&path));
        assert!(error.contains("line 1 (port = 70000)"), "{error}");
        let path = write(dir.path(), "config.toml", "port = 1\ntoken = 12345678\n");
        let error = invalid(Settings::from_file(&path));
        assert!(error.contains("line 2 (token = ***)"), "{error}");
        assert!(!error.contains("12345678"), "{error}");
        let path = write(
            dir.path(),
            "config.toml",
            "port = 1\nbind = \"everywhere\"\n",
        );
        let error = invalid(Settings::from_file(&path));
        assert!(
            error.contains("line 2") && error.contains("everywhere"),
            "{error}"
        );
        assert!(error.contains("127.0.0.1"), "{error}");
        let path = write(dir.path(), "config.toml", "[notify]\nmode = \"loud\"\n");
        let error = invalid(Settings::from_file(&path));
        assert!(
            error.contains("line 2") && error.contains("failures-only"),
            "{error}"
        );
        let path = write(dir.path(), "config.toml", "port = \n");
        assert!(invalid(Settings::from_file(&path)).contains("line 1"));
    }

    #[test]
    fn relative_paths_in_a_file_are_relative_to_its_folder() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("etc");
        std::fs::create_dir(&folder).unwrap();
        let path = write(
            &folder,
            "config.toml",
            "data_dir = \"data\"\ntypes_dirs = [\"types\", \"../shared/types\"]\n\
             worker_logfile_template = \"logs/{{.Id}}.log\"\n",
        );
        let config = Settings::from_file(&path).unwrap().resolve().unwrap();
        let folder = std::path::absolute(&folder).unwrap();
        assert_eq!(config.data_dir, folder.join("data"));
        assert_eq!(
            config.types_dirs,
            [folder.join("types"), folder.join("../shared/types")]
        );
        assert_eq!(config.database, folder.join("data").join("blanket.db"));
        assert_eq!(
            config.worker_logfile_template,
            path_text(&folder.join("logs/{{.Id}}.log"))
        );
    }

    #[test]
    fn home_folder_is_expanded() {
        let Some(home) = dirs::home_dir() else {
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config.toml",
            "data_dir = \"~/blanket-test-data\"\n",
        );
        let settings = Settings::from_file(&path).unwrap();
        assert_eq!(settings.data_dir, Some(home.join("blanket-test-data")));
        let flags = Settings {
            results_dir: Some(PathBuf::from("~/r")),
            ..in_dir(dir.path())
        };
        assert_eq!(flags.resolve().unwrap().results_dir, home.join("r"));
    }

    #[test]
    fn old_json_nested_form_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config.json",
            r#"{
  "port": 8774,
  "database": "/var/lib/blanket/new.db",
  "tasks": {"typesPaths": ["./types", "/opt/types"], "resultsPath": "/tmp/results"},
  "workers": {"logfileNameTemplate": "/var/log/worker.{{.Id.Hex}}.log"},
  "logLevel": "warning",
  "bind": null,
  "tasks.resultsPath": null,
  "timeMultiplier": 1.0,
  "mcp": {"enabled": true}
}"#,
        );
        let config = Settings::from_file(&path).unwrap().resolve().unwrap();
        let folder = std::path::absolute(dir.path()).unwrap();
        assert_eq!(config.port, 8774);
        assert_eq!(config.database, PathBuf::from("/var/lib/blanket/new.db"));
        assert_eq!(
            config.types_dirs,
            [folder.join("./types"), PathBuf::from("/opt/types")]
        );
        assert_eq!(config.results_dir, PathBuf::from("/tmp/results"));
        assert_eq!(
            config.worker_logfile_template,
            "/var/log/worker.{{.Id}}.log"
        );
        assert_eq!(config.log_level, "warn");
    }

    #[test]
    fn old_json_flat_dotted_form_is_read_ignoring_case() {
        let dir = tempfile::tempdir().unwrap();
        // No .json extension: the leading brace marks it as JSON.
        let path = write(
            dir.path(),
            "blanket.conf",
            r#"  {"PORT": "8775", "tasks.typesPaths": "types", "tasks.resultsPath": ["results"],
                "workers.logfileNameTemplate": "worker.{{.Id.Hex}}.log", "loglevel": "fatal"}"#,
        );
        let config = Settings::from_file(&path).unwrap().resolve().unwrap();
        let folder = std::path::absolute(dir.path()).unwrap();
        assert_eq!(config.port, 8775);
        assert_eq!(config.types_dirs, [folder.join("types")]);
        assert_eq!(config.results_dir, folder.join("results"));
        assert_eq!(
            config.worker_logfile_template,
            path_text(&folder.join("worker.{{.Id}}.log"))
        );
        assert_eq!(config.log_level, "error");
        config.validate().unwrap();
    }

    #[test]
    fn old_json_errors_name_the_file_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config.json", "{\"port\": \"http\"}");
        let error = invalid(Settings::from_file(&path));
        assert!(error.contains("port") && error.contains("8773"), "{error}");
        assert!(error.contains(&path.display().to_string()), "{error}");
        let path = write(
            dir.path(),
            "config.json",
            "{\"tasks\": {\"resultsPath\": [\"a\", \"b\"]}}",
        );
        assert!(invalid(Settings::from_file(&path)).contains("tasks.resultsPath"));
        let path = write(dir.path(), "config.json", "{\n\"port\": 1,,\n}");
        assert!(invalid(Settings::from_file(&path)).contains("line 2"));
        let path = write(dir.path(), "config.json", "[1, 2]");
        assert!(invalid(Settings::from_file(&path)).contains("not an object"));
    }

    #[test]
    fn missing_named_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let error = invalid(Config::load(Some(&missing), no_env, Settings::default()));
        assert!(
            error.contains("does not exist") && error.contains("--config"),
            "{error}"
        );
    }

    #[test]
    fn env_variables_are_read() {
        let settings = Settings::from_env(env_of(&[
            ("BLANKET_PORT", " 9001 "),
            ("BLANKET_BIND", "localhost"),
            ("BLANKET_DATA_DIR", "/data/blanket"),
            ("BLANKET_TYPES_DIR", "/a/types::/b/types"),
            ("BLANKET_TOKEN", "tok"),
            ("BLANKET_WORKERS", "0"),
            ("BLANKET_LEASE_SECONDS", "45"),
            ("BLANKET_KEEPALIVE_SECONDS", "5"),
            ("BLANKET_HEADER_TIMEOUT_SECONDS", "2"),
            ("BLANKET_NOTIFY_MODE", "none"),
            ("BLANKET_NOTIFY_MIN_SECONDS", "3"),
            ("BLANKET_NOTIFY_WHEN_FOCUSED", "yes"),
            ("BLANKET_LOG", "blanket_core=debug,info"),
            ("BLANKET_UNRELATED", "x"),
        ]))
        .unwrap();
        assert_eq!(settings.port, Some(9001));
        assert_eq!(settings.bind, Some(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        assert_eq!(settings.data_dir, Some(PathBuf::from("/data/blanket")));
        if cfg!(unix) {
            assert_eq!(
                settings.types_dirs,
                Some(vec![PathBuf::from("/a/types"), PathBuf::from("/b/types")])
            );
        }
        assert_eq!(settings.token.as_deref(), Some("tok"));
        assert_eq!(settings.local_workers, Some(0));
        assert_eq!(settings.lease_seconds, Some(45));
        assert_eq!(settings.keepalive_seconds, Some(5));
        assert_eq!(settings.header_timeout_seconds, Some(2));
        assert_eq!(settings.notify_mode, Some(NotifyMode::None));
        assert_eq!(settings.notify_min_seconds, Some(3));
        assert_eq!(settings.notify_when_focused, Some(true));
        assert_eq!(
            settings.log_level.as_deref(),
            Some("blanket_core=debug,info")
        );
    }

    #[test]
    fn empty_env_variables_count_as_unset() {
        let settings =
            Settings::from_env(env_of(&[("BLANKET_PORT", ""), ("BLANKET_TOKEN", "  ")])).unwrap();
        assert_eq!(settings, Settings::default());
    }

    #[test]
    fn bad_env_values_name_the_variable_and_value() {
        for (name, value) in [
            ("BLANKET_PORT", "eighty"),
            ("BLANKET_PORT", "65536"),
            ("BLANKET_BIND", "0.0.0.0.0"),
            ("BLANKET_WORKERS", "-1"),
            ("BLANKET_LEASE_SECONDS", "1.5"),
            ("BLANKET_KEEPALIVE_SECONDS", "soon"),
            ("BLANKET_HEADER_TIMEOUT_SECONDS", "-3"),
            ("BLANKET_NOTIFY_MODE", "loud"),
            ("BLANKET_NOTIFY_MIN_SECONDS", "ten"),
            ("BLANKET_NOTIFY_WHEN_FOCUSED", "maybe"),
        ] {
            let error = invalid(Settings::from_env(env_of(&[(name, value)])));
            assert!(error.contains(name), "{error}");
            assert!(error.contains(&format!("{value:?}")), "{error}");
            assert!(error.contains("set e.g."), "{error}");
        }
    }

    #[test]
    fn precedence_is_file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config.toml",
            "port = 1111\nlog_level = \"debug\"\nlocal_workers = 5\nlease_seconds = 7\n",
        );
        let env = env_of(&[("BLANKET_PORT", "2222"), ("BLANKET_LOG", "warn")]);
        let flags = Settings {
            port: Some(3333),
            ..in_dir(dir.path())
        };
        let config = Config::load(Some(&path), env, flags).unwrap();
        assert_eq!(config.port, 3333);
        assert_eq!(config.log_level, "warn");
        assert_eq!(config.local_workers, 5);
        assert_eq!(config.lease_seconds, 7);
        assert_eq!(config.keepalive_seconds, DEFAULT_KEEPALIVE_SECONDS);
    }

    #[test]
    fn the_origin_names_the_file_read_and_the_notify_keys_set_above_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "config.toml", "[notify]\nmode = \"all\"\n");
        let env = env_of(&[("BLANKET_NOTIFY_MIN_SECONDS", "0")]);
        let flags = Settings {
            notify_when_focused: Some(true),
            ..in_dir(dir.path())
        };
        let config = Config::load(Some(&path), env, flags).unwrap();
        assert_eq!(config.origin.file.as_deref(), Some(path.as_path()));
        assert!(!config.origin.file_is_old_json);
        assert_eq!(config.origin.notify_locks.mode, None);
        assert_eq!(
            config.origin.notify_locks.min_seconds.as_deref(),
            Some("the environment variable BLANKET_NOTIFY_MIN_SECONDS")
        );
        assert_eq!(
            config.origin.notify_locks.when_focused.as_deref(),
            Some("a command-line flag")
        );
        let old = write(dir.path(), "config.json", "{\"port\": 1}");
        let config = Config::load(Some(&old), no_env, Settings::default()).unwrap();
        assert!(config.origin.file_is_old_json);
    }

    #[test]
    fn merge_keeps_lower_values_the_higher_layer_leaves_unset() {
        let lower = Settings {
            port: Some(1),
            token: Some("a".to_owned()),
            ..Settings::default()
        };
        let higher = Settings {
            port: Some(2),
            ..Settings::default()
        };
        let merged = lower.merge(higher);
        assert_eq!(merged.port, Some(2));
        assert_eq!(merged.token.as_deref(), Some("a"));
    }

    #[test]
    fn data_dir_override_moves_derived_paths_unless_set() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "config.toml",
            "data_dir = \"/from/file\"\nresults_dir = \"/explicit/results\"\n",
        );
        let env = env_of(&[("BLANKET_DATA_DIR", "/from/env")]);
        let config = Config::load(Some(&path), env, Settings::default()).unwrap();
        let data_dir = PathBuf::from("/from/env");
        assert_eq!(config.data_dir, data_dir);
        assert_eq!(config.database, data_dir.join("blanket.db"));
        assert_eq!(config.types_dirs, [data_dir.join("types")]);
        assert_eq!(
            config.worker_logfile_template,
            path_text(&data_dir.join("workers").join("{{.Id}}.log"))
        );
        assert_eq!(config.results_dir, PathBuf::from("/explicit/results"));
    }

    #[test]
    fn relative_flag_paths_become_absolute() {
        let config = Settings {
            data_dir: Some(PathBuf::from("some-data")),
            ..Settings::default()
        }
        .resolve()
        .unwrap();
        assert!(config.data_dir.is_absolute());
        assert!(config.data_dir.ends_with("some-data"));
        assert!(config.database.is_absolute());
    }

    #[test]
    fn token_is_redacted_in_public_view_and_debug() {
        let dir = tempfile::tempdir().unwrap();
        let config = Settings {
            token: Some("hunter2-secret".to_owned()),
            ..in_dir(dir.path())
        }
        .resolve()
        .unwrap();
        let view = config.public_view();
        assert_eq!(view["token"], "***");
        assert!(!view.to_string().contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
        assert!(
            !format!(
                "{:?}",
                Settings {
                    token: config.token.clone(),
                    ..Settings::default()
                }
            )
            .contains("hunter2")
        );
        assert_eq!(view["port"], 8773);
        assert_eq!(view["database"], path_text(&config.database));
        assert_eq!(view["types_dirs"][0], path_text(&config.types_dirs[0]));
        assert_eq!(view["notify"]["mode"], "all");

        let without = Settings::default()
            .merge(in_dir(dir.path()))
            .resolve()
            .unwrap();
        assert!(without.public_view()["token"].is_null());
    }

    #[test]
    fn bad_tokens_are_refused() {
        for token in ["", "has space", "tab\there", "caf\u{e9}"] {
            let settings = Settings {
                token: Some(token.to_owned()),
                ..Settings::default()
            };
            assert!(
                invalid(settings.resolve()).contains("printable ASCII"),
                "{token:?}"
            );
        }
    }

    #[test]
    fn non_loopback_bind_needs_a_token() {
        let dir = tempfile::tempdir().unwrap();
        let open = Settings {
            bind: Some("0.0.0.0".parse().unwrap()),
            ..in_dir(dir.path())
        };
        let config = open.clone().resolve().unwrap();
        assert!(!config.is_loopback_bind());
        let error = invalid(config.validate());
        assert!(
            error.contains("binding 0.0.0.0 exposes every task"),
            "{error}"
        );
        assert!(
            error.contains("--token") && error.contains("BLANKET_TOKEN"),
            "{error}"
        );

        let guarded = Settings {
            token: Some("t0ken".to_owned()),
            ..open
        };
        guarded.resolve().unwrap().validate().unwrap();

        let ipv6_loopback = Settings {
            bind: Some("::1".parse().unwrap()),
            ..in_dir(dir.path())
        };
        let config = ipv6_loopback.resolve().unwrap();
        assert!(config.is_loopback_bind());
        config.validate().unwrap();
    }

    #[test]
    fn zero_lease_keepalive_timeout_and_limits_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (settings, key) in [
            (
                Settings {
                    lease_seconds: Some(0),
                    ..in_dir(dir.path())
                },
                "lease_seconds",
            ),
            (
                Settings {
                    keepalive_seconds: Some(0),
                    ..in_dir(dir.path())
                },
                "keepalive_seconds",
            ),
            (
                Settings {
                    header_timeout_seconds: Some(0),
                    ..in_dir(dir.path())
                },
                "header_timeout_seconds",
            ),
            (
                Settings {
                    max_upload_bytes: Some(0),
                    ..in_dir(dir.path())
                },
                "max_upload_bytes",
            ),
            (
                Settings {
                    max_json_bytes: Some(0),
                    ..in_dir(dir.path())
                },
                "max_json_bytes",
            ),
            (
                Settings {
                    local_workers: Some(1000),
                    ..in_dir(dir.path())
                },
                "local_workers",
            ),
        ] {
            let error = invalid(settings.resolve().unwrap().validate());
            assert!(error.starts_with(key), "{error}");
        }
    }

    #[test]
    fn worker_log_template_needs_the_id() {
        let dir = tempfile::tempdir().unwrap();
        let config = Settings {
            worker_logfile_template: Some("/tmp/worker.log".to_owned()),
            ..in_dir(dir.path())
        }
        .resolve()
        .unwrap();
        let error = invalid(config.validate());
        assert!(error.contains("{{.Id}}"), "{error}");
    }

    #[test]
    fn tags_and_hosts_are_cleaned_or_refused() {
        let config = Settings {
            worker_tags: Some(vec![" bash ".to_owned(), "gpu".to_owned()]),
            ..Settings::default()
        }
        .resolve()
        .unwrap();
        assert_eq!(config.worker_tags, ["bash", "gpu"]);
        let settings = Settings {
            worker_tags: Some(vec!["a,b".to_owned()]),
            ..Settings::default()
        };
        assert!(invalid(settings.resolve()).contains("worker_tags"));
        let settings = Settings {
            allowed_hosts: Some(vec![String::new()]),
            ..Settings::default()
        };
        assert!(invalid(settings.resolve()).contains("allowed_hosts"));
    }

    #[test]
    fn notify_mode_spellings() {
        assert_eq!("ALL".parse::<NotifyMode>().unwrap(), NotifyMode::All);
        assert_eq!(
            "failures_only".parse::<NotifyMode>().unwrap(),
            NotifyMode::FailuresOnly
        );
        assert_eq!("off".parse::<NotifyMode>().unwrap(), NotifyMode::None);
        for mode in [NotifyMode::All, NotifyMode::FailuresOnly, NotifyMode::None] {
            assert_eq!(mode.as_str().parse::<NotifyMode>().unwrap(), mode);
        }
        assert!("sometimes".parse::<NotifyMode>().is_err());
    }

    #[test]
    fn bbolt_database_is_refused_and_left_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let mut bbolt = vec![0u8; 16];
        bbolt.extend_from_slice(&BBOLT_MAGIC_LITTLE);
        bbolt.extend_from_slice(&[0u8; 4076]);
        let path = dir.path().join("blanket.db");
        std::fs::write(&path, &bbolt).unwrap();
        let error = invalid(check_database_file(&path));
        assert!(error.contains("old Blanket (bbolt) database"), "{error}");
        assert!(error.contains("point database at a new path"), "{error}");
        assert_eq!(std::fs::read(&path).unwrap(), bbolt);

        let other = write(dir.path(), "notes.db", "just some text, not a database");
        let error = invalid(check_database_file(&other));
        assert!(
            error.contains("not a SQLite database") && error.contains("bbolt"),
            "{error}"
        );
    }

    #[test]
    fn sqlite_empty_and_missing_database_files_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        check_database_file(&dir.path().join("missing.db")).unwrap();
        check_database_file(&write(dir.path(), "empty.db", "")).unwrap();
        let mut sqlite = SQLITE_HEADER.to_vec();
        sqlite.extend_from_slice(&[0u8; 84]);
        let path = dir.path().join("real.db");
        std::fs::write(&path, sqlite).unwrap();
        check_database_file(&path).unwrap();
        assert!(invalid(check_database_file(dir.path())).contains("is a folder"));
    }

    const ENV_NAMES: [&str; 13] = [
        "BLANKET_PORT",
        "BLANKET_BIND",
        "BLANKET_DATA_DIR",
        "BLANKET_TYPES_DIR",
        "BLANKET_TOKEN",
        "BLANKET_WORKERS",
        "BLANKET_LEASE_SECONDS",
        "BLANKET_KEEPALIVE_SECONDS",
        "BLANKET_HEADER_TIMEOUT_SECONDS",
        "BLANKET_NOTIFY_MODE",
        "BLANKET_NOTIFY_MIN_SECONDS",
        "BLANKET_NOTIFY_WHEN_FOCUSED",
        "BLANKET_LOG",
    ];

    fn json_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u16>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            "\\PC{0,12}|~/[a-z]{0,4}|[0-9.:]{0,10}".prop_map(Value::from),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        prop::sample::select(vec![
                            "port",
                            "database",
                            "tasks",
                            "typesPaths",
                            "resultsPath",
                            "workers",
                            "logfileNameTemplate",
                            "logLevel"
                        ])
                        .prop_map(str::to_owned),
                        "\\PC{0,6}",
                    ],
                    inner,
                    0..4,
                )
                .prop_map(|map| Value::Object(map.into_iter().collect())),
            ]
        })
    }

    fn toml_value() -> impl Strategy<Value = toml::Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(toml::Value::Integer),
            any::<u16>().prop_map(|port| toml::Value::Integer(i64::from(port))),
            any::<bool>().prop_map(toml::Value::Boolean),
            "\\PC{0,12}|~/[a-z]{0,4}|[0-9.:]{0,10}".prop_map(toml::Value::String),
        ];
        leaf.prop_recursive(2, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(toml::Value::Array),
                prop::collection::btree_map(
                    "mode|min_seconds|when_focused|[a-z]{1,4}",
                    inner,
                    0..3
                )
                .prop_map(|map| toml::Value::Table(map.into_iter().collect())),
            ]
        })
    }

    fn toml_file() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            prop::sample::select(vec![
                "port",
                "bind",
                "data_dir",
                "database",
                "results_dir",
                "types_dirs",
                "token",
                "local_workers",
                "worker_tags",
                "worker_logfile_template",
                "log_level",
                "lease_seconds",
                "keepalive_seconds",
                "header_timeout_seconds",
                "max_upload_bytes",
                "max_json_bytes",
                "allowed_hosts",
                "notify",
            ])
            .prop_map(str::to_owned),
            "[a-z_]{1,8}",
        ];
        prop::collection::btree_map(key, toml_value(), 0..6)
            .prop_map(|map| toml::to_string(&map.into_iter().collect::<toml::Table>()).unwrap())
    }

    proptest! {
        #[test]
        fn any_toml_text_is_read_or_refused_naming_the_file(text in "\\PC{0,60}|[a-z_ =\"'\\[\\]{}.\n0-9#~/]{0,80}", shaped in toml_file()) {
            for text in [&text, &shaped] {
                if let Err(error) = settings_from_toml(text, Path::new("/etc/blanket/config.toml"), Path::new("/etc/blanket")) {
                    prop_assert!(error.to_string().contains("/etc/blanket/config.toml"), "{error}");
                }
            }
        }

        #[test]
        fn any_old_json_is_read_or_refused_naming_the_file(text in "\\PC{0,60}|[{}\\[\\]\":,0-9a-zA-Z. ]{0,80}", shaped in json_value()) {
            for text in [text, shaped.to_string()] {
                if let Err(error) = settings_from_old_json(&text, Path::new("/etc/blanket/config.json"), Path::new("/etc/blanket")) {
                    prop_assert!(error.to_string().contains("/etc/blanket/config.json"), "{error}");
                }
            }
        }

        #[test]
        fn a_port_reads_the_same_from_toml_and_old_json(port in any::<u16>()) {
            let folder = Path::new("/etc/blanket");
            let toml = settings_from_toml(&format!("port = {port}"), &folder.join("config.toml"), folder).unwrap();
            let json = settings_from_old_json(&format!("{{\"port\": {port}}}"), &folder.join("config.json"), folder).unwrap();
            prop_assert_eq!(toml.port, Some(port));
            prop_assert_eq!(json.port, Some(port));
        }

        #[test]
        fn any_environment_is_read_or_refused_naming_the_variable(
            values in prop::collection::btree_map(prop::sample::select(ENV_NAMES.to_vec()), "\\PC{0,16}|[0-9.:]{0,8}| *[a-z]{0,6} *", 0..6)
        ) {
            let lookup = |name: &str| values.get(name).cloned();
            if let Err(error) = Settings::from_env(lookup) {
                let message = error.to_string();
                prop_assert!(values.keys().any(|name| message.contains(name)), "{message}");
            }
        }
    }
}
