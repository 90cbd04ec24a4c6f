//! Task type files: parsing the TOML format (old files work unchanged), loading folders of
//! them into a `Catalog` where a broken file is listed with its error instead of stopping the
//! others, and merging a submitter's environment with a type's variables.
//! Parsing is pure; only `Catalog::load` and `seed_examples` touch the disk.

use std::collections::{BTreeMap, btree_map};
use std::fmt::{self, Write as _};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use crate::wire::{self, DefaultVariable, OptionalVariable, RequiredVariable};
use crate::{Error, Result, template};

/// Seconds a task may run when its type file sets no `timeout`.
pub const DEFAULT_TIMEOUT: u64 = 3600;

/// The executor used when a type file sets none: the command runs as `bash -c <command>`.
pub const DEFAULT_EXECUTOR: &str = "bash";

/// The example task types shipped inside the binary, as (file name, TOML text), so a new user
/// has types to run before writing any; [`seed_examples`] writes them out.
pub const BUNDLED_EXAMPLES: &[(&str, &str)] = &[
    (
        "echo_task.toml",
        include_str!("../../../examples/types/echo_task.toml"),
    ),
    (
        "fail_task.toml",
        include_str!("../../../examples/types/fail_task.toml"),
    ),
    (
        "sleep_task.toml",
        include_str!("../../../examples/types/sleep_task.toml"),
    ),
    (
        "timeout_task.toml",
        include_str!("../../../examples/types/timeout_task.toml"),
    ),
    (
        "wordcount_task.toml",
        include_str!("../../../examples/types/wordcount_task.toml"),
    ),
];

/// A task type file that parsed and passed validation.
///
/// `spec.version_hash` equals `digest`, the hex SHA-256 of `source`; tasks freeze both at
/// submit time, so editing the file later does not change queued work.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadedType {
    /// The type as the API shows it, with defaults filled in.
    pub spec: wire::TaskType,
    /// The file's text, exactly as read.
    pub source: String,
    /// Hex SHA-256 of `source`.
    pub digest: String,
}

/// Why a task type file could not be loaded, located like a compiler error.
///
/// Displays as `path:line:column: message`, leaving out the parts that are unknown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TypeFileError {
    /// The file, as given to [`parse_type`] or found by [`Catalog::load`].
    pub path: PathBuf,
    /// What is wrong and, where possible, how to fix it.
    pub message: String,
    /// 1-based line of the problem.
    pub line: Option<usize>,
    /// 1-based column of the problem, counted in characters.
    pub column: Option<usize>,
}

/// The task types found in a list of folders, good and broken.
///
/// Names are file stems; when two folders hold the same name the earlier folder wins, so a
/// user's own folder listed first can override a bundled type.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    dirs: Vec<PathBuf>,
    entries: BTreeMap<String, Entry>,
}

/// Parses and validates the text of the task type file at `path`; the type's name is the
/// file stem. Reads nothing from disk: `path` only names the type and goes into messages.
///
/// # Errors
/// A [`TypeFileError`] for TOML syntax errors, a missing `command`, a command template using
/// more than `{{.NAME}}`, a `timeout` of 0, a bad `files_to_include` entry, or a variable
/// without a name, with a bad name or defined twice.
pub fn parse_type(
    path: &Path,
    source: &str,
    loaded_ts: i64,
) -> std::result::Result<LoadedType, TypeFileError> {
    let file: TypeFile = toml::from_str(source).map_err(|error| {
        TypeFileError::at(path, source, error.span(), error.message().trim_end())
    })?;
    let digest = hex_sha256(source);
    let spec = file
        .into_spec(source)
        .map_err(|problem| TypeFileError::at(path, source, problem.span, &problem.message))?;
    Ok(LoadedType {
        spec: wire::TaskType {
            name: type_name(path),
            loaded_ts,
            config_file: absolute_display(path),
            version_hash: digest.clone(),
            ..spec
        },
        source: source.to_owned(),
        digest,
    })
}

/// Writes every [`BUNDLED_EXAMPLES`] file into `dir` when `dir` does not exist yet, creating
/// it, so a new user gets examples to run and edit. An existing `dir` is left alone: a user
/// who deleted an example must not get it back.
///
/// # Errors
/// `Error::Io` when `dir` cannot be inspected or created, or an example cannot be written.
pub fn seed_examples(dir: &Path) -> Result<()> {
    let exists = dir.try_exists().map_err(|source| {
        Error::io(
            format!("checking task type folder {}", dir.display()),
            source,
        )
    })?;
    if exists {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| {
        Error::io(
            format!("creating task type folder {}", dir.display()),
            source,
        )
    })?;
    for (file_name, text) in BUNDLED_EXAMPLES {
        let path = dir.join(file_name);
        std::fs::write(&path, text).map_err(|source| {
            Error::io(
                format!("writing example task type {}", path.display()),
                source,
            )
        })?;
    }
    tracing::info!(
        dir = %dir.display(),
        count = BUNDLED_EXAMPLES.len(),
        "example task types written"
    );
    Ok(())
}

impl LoadedType {
    /// The environment a task of this type runs with: the type's defaults, overridden and
    /// extended by `submitted` (variables the type does not declare are allowed).
    ///
    /// # Errors
    /// `Error::Invalid` when a submitted name is not `[A-Za-z_][A-Za-z0-9_]*`, a value holds a
    /// NUL byte (no process can receive it), or a required variable is missing or empty; the
    /// message names the variables and their descriptions.
    pub fn resolve_environment(
        &self,
        submitted: &BTreeMap<String, String>,
    ) -> Result<BTreeMap<String, String>> {
        let bad_names: Vec<String> = submitted
            .keys()
            .filter(|name| !template::is_variable_name(name))
            .map(|name| format!("{name:?}"))
            .collect();
        if !bad_names.is_empty() {
            return Err(Error::Invalid(format!(
                "variable name {} is not valid: {}",
                bad_names.join(", "),
                template::NAME_RULE
            )));
        }
        if let Some(name) = submitted
            .iter()
            .find_map(|(name, value)| value.contains('\0').then_some(name))
        {
            return Err(Error::Invalid(format!(
                "the value of variable {name} contains a NUL byte, \
                 which cannot be passed to a process"
            )));
        }

        let mut environment: BTreeMap<String, String> = self
            .spec
            .environment
            .default
            .iter()
            .map(|variable| (variable.name.clone(), variable.value.clone()))
            .collect();
        environment.extend(submitted.iter().map(|(n, v)| (n.clone(), v.clone())));

        let missing: Vec<String> = self
            .spec
            .environment
            .required
            .iter()
            .filter(|variable| environment.get(&variable.name).is_none_or(String::is_empty))
            .map(|variable| match variable.description.as_str() {
                "" => variable.name.clone(),
                description => format!("{} ({description})", variable.name),
            })
            .collect();
        match missing.as_slice() {
            [] => Ok(environment),
            [one] => Err(Error::Invalid(format!(
                "task type {:?} needs variable {one}: add it to \"environment\"",
                self.spec.name
            ))),
            several => Err(Error::Invalid(format!(
                "task type {:?} needs variables {}: add them to \"environment\"",
                self.spec.name,
                several.join(", ")
            ))),
        }
    }
}

impl TypeFileError {
    /// An error at the start of `span` in `source`, or without a location when there is none.
    fn at(path: &Path, source: &str, span: Option<Range<usize>>, message: &str) -> Self {
        let (line, column) = span.map(|span| line_column(source, span.start)).unzip();
        TypeFileError {
            path: path.to_path_buf(),
            message: message.to_owned(),
            line,
            column,
        }
    }
}

impl fmt::Display for TypeFileError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(formatter, ":{line}")?;
            if let Some(column) = self.column {
                write!(formatter, ":{column}")?;
            }
        }
        write!(formatter, ": {}", self.message)
    }
}

impl std::error::Error for TypeFileError {}

impl Catalog {
    /// Loads every `*.toml` file directly inside each of `dirs`, in file name order. A missing
    /// or unreadable folder is logged and skipped; a file that cannot be read or parsed
    /// becomes a broken entry that [`Catalog::listing`] shows with its error. Blocking: call it
    /// from `spawn_blocking` in async code.
    pub fn load(dirs: &[PathBuf]) -> Catalog {
        let loaded_ts = wire::now();
        let mut entries: BTreeMap<String, Entry> = BTreeMap::new();
        for dir in dirs {
            for path in type_files(dir) {
                let entry = load_entry(&path, loaded_ts);
                match entries.entry(type_name(&path)) {
                    btree_map::Entry::Vacant(vacant) => {
                        vacant.insert(entry);
                    }
                    btree_map::Entry::Occupied(occupied) => tracing::warn!(
                        name = %occupied.key(),
                        used = %occupied.get().spec().config_file,
                        ignored = %path.display(),
                        "task type defined twice, the first folder wins"
                    ),
                }
            }
        }
        let catalog = Catalog {
            dirs: dirs.to_vec(),
            entries,
        };
        tracing::info!(
            types = catalog.len(),
            broken = catalog.broken_count(),
            "task types loaded"
        );
        catalog
    }

    /// The usable type called `name`; `None` when it is unknown or its file is broken.
    pub fn get(&self, name: &str) -> Option<&LoadedType> {
        match self.entries.get(name) {
            Some(Entry::Loaded(loaded)) => Some(loaded),
            _ => None,
        }
    }

    /// The usable type called `name`, for a submit.
    ///
    /// # Errors
    /// `Error::Invalid` naming the known types when `name` is unknown, or carrying the file's
    /// error when the type's file is broken.
    pub fn require(&self, name: &str) -> Result<&LoadedType> {
        match self.entries.get(name) {
            Some(Entry::Loaded(loaded)) => Ok(loaded),
            Some(Entry::Broken { error, .. }) => Err(Error::Invalid(format!(
                "task type {name:?} cannot be used because its file is broken: {error}"
            ))),
            None => {
                let known: Vec<&str> = self
                    .entries
                    .iter()
                    .filter(|(_, entry)| matches!(entry, Entry::Loaded(_)))
                    .map(|(known, _)| known.as_str())
                    .collect();
                let known = match known.as_slice() {
                    [] => "no task types are loaded".to_owned(),
                    names => format!("known types are {}", names.join(", ")),
                };
                Err(Error::Invalid(format!(
                    "unknown task type {name:?}: {known} (GET /task_type/ lists them)"
                )))
            }
        }
    }

    /// Every type, good and broken, sorted by name. A broken one has `error` and, when known,
    /// `line` set, and an empty `command`.
    pub fn listing(&self) -> Vec<wire::TaskType> {
        self.entries
            .values()
            .map(|entry| entry.spec().clone())
            .collect()
    }

    /// How many usable types there are (broken files not counted).
    pub fn len(&self) -> usize {
        self.entries.len() - self.broken_count()
    }

    /// Whether there is no usable type.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many type files could not be loaded.
    pub fn broken_count(&self) -> usize {
        self.entries
            .values()
            .filter(|entry| matches!(entry, Entry::Broken { .. }))
            .count()
    }

    /// The folders this catalog was loaded from, in priority order.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

/// A catalog entry: a type that loaded, or a file that did not, kept for the listing.
#[derive(Clone, Debug)]
enum Entry {
    Loaded(LoadedType),
    Broken {
        spec: wire::TaskType,
        error: TypeFileError,
    },
}

impl Entry {
    fn spec(&self) -> &wire::TaskType {
        match self {
            Entry::Loaded(loaded) => &loaded.spec,
            Entry::Broken { spec, .. } => spec,
        }
    }
}

/// The TOML file as written. Keys are optional here so that a missing `command` gets our own
/// message; unknown keys land in `extra` instead of failing, as old files may carry them.
#[derive(Deserialize)]
struct TypeFile {
    #[serde(default)]
    description: String,
    #[serde(default)]
    tags: Vec<String>,
    timeout: Option<Spanned<u64>>,
    command: Option<Spanned<String>>,
    executor: Option<Spanned<String>>,
    #[serde(default)]
    environment: EnvironmentFile,
    #[serde(default)]
    files_to_include: Vec<Spanned<Vec<String>>>,
    #[serde(default)]
    requeue_on_lost: bool,
    #[serde(flatten)]
    extra: BTreeMap<String, toml::Value>,
}

/// The `[environment]` table. Each variable keeps its span so errors can point at it.
#[derive(Default, Deserialize)]
struct EnvironmentFile {
    #[serde(default)]
    default: Vec<Spanned<VariableFile>>,
    #[serde(default)]
    required: Vec<Spanned<VariableFile>>,
    #[serde(default)]
    optional: Vec<Spanned<VariableFile>>,
}

/// One `[[environment.*]]` table; each list uses the fields it needs.
#[derive(Deserialize)]
struct VariableFile {
    name: Option<Spanned<String>>,
    #[serde(default)]
    value: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "type")]
    kind: String,
}

/// A validation problem at a byte range of the file, before it becomes a [`TypeFileError`].
struct Problem {
    span: Option<Range<usize>>,
    message: String,
}

impl Problem {
    fn at(span: Range<usize>, message: String) -> Self {
        Problem {
            span: Some(span),
            message,
        }
    }
}

impl TypeFile {
    /// Validates the file and builds the API view, leaving name, path, time and hash for the
    /// caller to fill in.
    fn into_spec(self, source: &str) -> std::result::Result<wire::TaskType, Problem> {
        let Some(command) = self.command else {
            return Err(Problem::at(
                0..0,
                "missing key \"command\": every task type needs the command to run, \
                 e.g. command = \"echo hello\""
                    .to_owned(),
            ));
        };
        check_command(&command, source)?;

        let timeout = match self.timeout {
            None => DEFAULT_TIMEOUT,
            Some(timeout) if *timeout.get_ref() == 0 => {
                return Err(Problem::at(
                    timeout.span(),
                    format!(
                        "timeout must be at least 1 second (leave it out for the default of \
                         {DEFAULT_TIMEOUT})"
                    ),
                ));
            }
            Some(timeout) => timeout.into_inner(),
        };
        let executor = match self.executor {
            None => DEFAULT_EXECUTOR.to_owned(),
            Some(executor) if executor.get_ref().trim().is_empty() => {
                return Err(Problem::at(
                    executor.span(),
                    format!(
                        "executor must not be empty (leave it out for the default, \
                         {DEFAULT_EXECUTOR:?})"
                    ),
                ));
            }
            Some(executor) => executor.into_inner(),
        };

        let files_to_include = self
            .files_to_include
            .into_iter()
            .map(check_file_to_include)
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let environment = self.environment.into_wire(source)?;
        let extra = self
            .extra
            .into_iter()
            .map(|(key, value)| (key, toml_to_json(value)))
            .collect();

        Ok(wire::TaskType {
            description: self.description,
            tags: self.tags,
            timeout,
            command: command.into_inner(),
            executor,
            environment,
            files_to_include,
            requeue_on_lost: self.requeue_on_lost,
            extra,
            ..wire::TaskType::default()
        })
    }
}

impl EnvironmentFile {
    /// Checks every variable has a valid name used once across the three lists.
    fn into_wire(self, source: &str) -> std::result::Result<wire::Environment, Problem> {
        let mut first_lines: BTreeMap<String, usize> = BTreeMap::new();
        let mut name_of = |list: &str, variable: &Spanned<VariableFile>| {
            checked_name(list, variable, source, &mut first_lines)
        };
        let mut environment = wire::Environment::default();
        for variable in &self.default {
            let name = name_of("default", variable)?;
            let variable = variable.get_ref();
            environment.default.push(DefaultVariable {
                name,
                value: variable.value.clone(),
                description: variable.description.clone(),
            });
        }
        for variable in &self.required {
            let name = name_of("required", variable)?;
            let variable = variable.get_ref();
            environment.required.push(RequiredVariable {
                name,
                description: variable.description.clone(),
                kind: variable.kind.clone(),
            });
        }
        for variable in &self.optional {
            let name = name_of("optional", variable)?;
            let variable = variable.get_ref();
            environment.optional.push(OptionalVariable {
                name,
                description: variable.description.clone(),
                value: variable.value.clone(),
            });
        }
        Ok(environment)
    }
}

/// The name of a variable in `environment.<list>`, checked for presence, form and uniqueness;
/// `first_lines` remembers where each name was first defined.
fn checked_name(
    list: &str,
    variable: &Spanned<VariableFile>,
    source: &str,
    first_lines: &mut BTreeMap<String, usize>,
) -> std::result::Result<String, Problem> {
    let Some(name) = &variable.get_ref().name else {
        return Err(Problem::at(
            variable.span(),
            format!("a variable in environment.{list} has no name: add name = \"...\""),
        ));
    };
    let text = name.get_ref();
    if !template::is_variable_name(text) {
        return Err(Problem::at(
            name.span(),
            format!(
                "variable name {text:?} in environment.{list} is not valid: {}",
                template::NAME_RULE
            ),
        ));
    }
    let (line, _) = line_column(source, name.span().start);
    if let Some(first_line) = first_lines.insert(text.clone(), line) {
        return Err(Problem::at(
            name.span(),
            format!(
                "variable {text} is defined twice (first at line {first_line}): a name may \
                 appear once across environment.default, .required and .optional"
            ),
        ));
    }
    Ok(text.clone())
}

/// Checks the command template, pointing at the bad action itself when it can be found.
fn check_command(command: &Spanned<String>, source: &str) -> std::result::Result<(), Problem> {
    let Err(error) = template::check(command.get_ref()) else {
        return Ok(());
    };
    // The raw TOML text of the value has the same braces as the value (escapes never produce
    // `{` or `}` in practice), so scanning it finds the same first bad action, in file bytes.
    let span = command.span();
    let offset = source
        .get(span.clone())
        .and_then(template::error_offset)
        .map_or(span.start, |offset| span.start + offset);
    Err(Problem::at(offset..offset, format!("command: {error}")))
}

/// Checks one `files_to_include` entry: `[glob]` or `[glob, subdir]`, where `subdir` stays
/// inside the task's folder.
fn check_file_to_include(entry: Spanned<Vec<String>>) -> std::result::Result<Vec<String>, Problem> {
    let span = entry.span();
    let entry = entry.into_inner();
    let problem = match entry.as_slice() {
        [glob] | [glob, _] if glob.trim().is_empty() => Some("its glob is empty".to_owned()),
        [_] => None,
        [_, subdir] => {
            let escapes = Path::new(subdir)
                .components()
                .any(|part| !matches!(part, Component::Normal(_) | Component::CurDir));
            escapes.then(|| {
                format!("subdir {subdir:?} must be a relative path inside the task's folder")
            })
        }
        other => Some(format!("it has {} strings", other.len())),
    };
    match problem {
        None => Ok(entry),
        Some(problem) => Err(Problem::at(
            span,
            format!(
                "bad files_to_include entry: {problem}; each entry is [\"glob\"] or \
                 [\"glob\", \"subdir\"]"
            ),
        )),
    }
}

/// The `*.toml` files directly inside `dir`, sorted by file name; problems are logged.
fn type_files(dir: &Path) -> Vec<PathBuf> {
    let read_dir = match std::fs::read_dir(dir) {
        Ok(read_dir) => read_dir,
        Err(error) => {
            tracing::warn!(dir = %dir.display(), %error, "task type folder skipped");
            return Vec::new();
        }
    };
    let mut paths: Vec<PathBuf> = read_dir
        .filter_map(|entry| match entry {
            Ok(entry) => Some(entry.path()),
            Err(error) => {
                tracing::warn!(dir = %dir.display(), %error, "task type folder entry skipped");
                None
            }
        })
        // Directories are skipped but other non-files are kept, so a dangling symlink shows up
        // as a broken entry instead of silently vanishing.
        .filter(|path| path.extension().is_some_and(|ext| ext == "toml") && !path.is_dir())
        .collect();
    paths.sort_by(|left, right| left.file_name().cmp(&right.file_name()));
    paths
}

/// Reads and parses one file; failures become a broken entry and a log line.
fn load_entry(path: &Path, loaded_ts: i64) -> Entry {
    let parsed = std::fs::read_to_string(path)
        .map_err(|error| TypeFileError {
            path: path.to_path_buf(),
            message: format!("cannot read the file: {error}"),
            line: None,
            column: None,
        })
        .and_then(|source| parse_type(path, &source, loaded_ts));
    match parsed {
        Ok(loaded) => Entry::Loaded(loaded),
        Err(error) => {
            tracing::warn!(%error, "task type file is broken");
            Entry::Broken {
                spec: wire::TaskType {
                    name: type_name(path),
                    config_file: absolute_display(path),
                    loaded_ts,
                    error: Some(error.message.clone()),
                    line: error.line,
                    ..wire::TaskType::default()
                },
                error,
            }
        }
    }
}

/// The type's name: the file stem.
fn type_name(path: &Path) -> String {
    path.file_stem()
        .map(|stem| stem.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// `path` made absolute for display; it is left as given if the working directory is gone.
fn absolute_display(path: &Path) -> String {
    std::path::absolute(path)
        .unwrap_or_else(|_| path.to_path_buf())
        .display()
        .to_string()
}

/// 1-based line and character column of byte `offset` in `source`.
fn line_column(source: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(source.len());
    while !source.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = source.get(..offset).unwrap_or_default();
    let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
    let line = before.matches('\n').count() + 1;
    let column = before.get(line_start..).unwrap_or_default().chars().count() + 1;
    (line, column)
}

/// Lower-case hex SHA-256 of `text`: the digest a task freezes at submit time.
fn hex_sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .fold(String::with_capacity(64), |mut hex, byte| {
            // Writing to a String cannot fail.
            let _ = write!(hex, "{byte:02x}");
            hex
        })
}

/// Converts a TOML value for the JSON listing; dates become their TOML text.
fn toml_to_json(value: toml::Value) -> serde_json::Value {
    match value {
        toml::Value::String(text) => serde_json::Value::String(text),
        toml::Value::Integer(number) => serde_json::Value::from(number),
        toml::Value::Float(number) => serde_json::Number::from_f64(number).map_or_else(
            || serde_json::Value::String(number.to_string()),
            serde_json::Value::Number,
        ),
        toml::Value::Boolean(flag) => serde_json::Value::Bool(flag),
        toml::Value::Datetime(datetime) => serde_json::Value::String(datetime.to_string()),
        toml::Value::Array(items) => items.into_iter().map(toml_to_json).collect(),
        toml::Value::Table(table) => serde_json::Value::Object(
            table
                .into_iter()
                .map(|(key, value)| (key, toml_to_json(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The example of API.md's "Task type file" section, verbatim.
    const API_EXAMPLE: &str = r#"description = "Say hello"
tags = ["bash", "unix"]
executor = "bash"          # bash -c; cmd /c; powershell -Command; else X -c
timeout = 300              # seconds; default 3600; exceeded -> TIMEDOUT
command = "echo 'hello {{.NAME}}'"

  [[environment.default]]
  name = "NAME"
  value = "world"

  [[environment.required]]
  name = "INPUT_FILE"
  description = "Path to the input data"

  [[environment.optional]]
  name = "VERBOSE"
  description = "Set to 1 for more output"
"#;

    fn parse(source: &str) -> std::result::Result<LoadedType, TypeFileError> {
        parse_type(Path::new("/types/hello.toml"), source, 42)
    }

    fn parse_error(source: &str) -> TypeFileError {
        match parse(source) {
            Ok(loaded) => panic!("expected an error, got {:?}", loaded.spec),
            Err(error) => error,
        }
    }

    fn environment(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    fn bundled(name: &str) -> LoadedType {
        let file_name = format!("{name}.toml");
        let (_, text) = BUNDLED_EXAMPLES
            .iter()
            .find(|(bundled_name, _)| *bundled_name == file_name)
            .unwrap();
        parse_type(Path::new(&file_name), text, 0).unwrap()
    }

    fn write(dir: &Path, file_name: &str, text: &str) {
        std::fs::create_dir_all(dir).unwrap();
        std::fs::write(dir.join(file_name), text).unwrap();
    }

    #[test]
    fn api_example_parses() {
        let loaded = parse(API_EXAMPLE).unwrap();
        let spec = &loaded.spec;
        assert_eq!(spec.name, "hello");
        assert_eq!(spec.description, "Say hello");
        assert_eq!(spec.tags, ["bash", "unix"]);
        assert_eq!(spec.executor, "bash");
        assert_eq!(spec.timeout, 300);
        assert_eq!(spec.command, "echo 'hello {{.NAME}}'");
        assert_eq!(spec.loaded_ts, 42);
        assert_eq!(spec.config_file, "/types/hello.toml");
        assert_eq!(
            spec.environment.default,
            [DefaultVariable {
                name: "NAME".into(),
                value: "world".into(),
                description: String::new(),
            }]
        );
        assert_eq!(spec.environment.required[0].name, "INPUT_FILE");
        assert_eq!(
            spec.environment.required[0].description,
            "Path to the input data"
        );
        assert_eq!(spec.environment.optional[0].name, "VERBOSE");
        assert!(spec.extra.is_empty());
        assert_eq!(loaded.source, API_EXAMPLE);
    }

    #[test]
    fn digest_is_hex_sha256_of_the_source() {
        let loaded = parse("command = \"true\"").unwrap();
        assert_eq!(loaded.digest.len(), 64);
        assert_eq!(loaded.digest, hex_sha256("command = \"true\""));
        assert_eq!(loaded.spec.version_hash, loaded.digest);
        // The well-known digest of the empty string pins the hex encoding.
        assert_eq!(
            hex_sha256(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn defaults_fill_timeout_and_executor() {
        let spec = parse("command = \"true\"").unwrap().spec;
        assert_eq!(spec.timeout, DEFAULT_TIMEOUT);
        assert_eq!(spec.executor, DEFAULT_EXECUTOR);
        assert!(!spec.requeue_on_lost);
    }

    #[test]
    fn old_keys_are_read() {
        let source = r#"
command = "cp data/* ."
requeue_on_lost = true
files_to_include = [["*.csv"], ["lib/*.py", "lib"]]
"#;
        let spec = parse(source).unwrap().spec;
        assert!(spec.requeue_on_lost);
        assert_eq!(
            spec.files_to_include,
            [vec!["*.csv"], vec!["lib/*.py", "lib"]]
        );
    }

    #[test]
    fn unknown_keys_are_kept() {
        let source = r#"
command = "true"
owner = "data team"
retries = 3
released = 1979-05-27
[notify]
email = ["a@example.com"]
"#;
        let extra = parse(source).unwrap().spec.extra;
        assert_eq!(extra["owner"], serde_json::json!("data team"));
        assert_eq!(extra["retries"], serde_json::json!(3));
        assert_eq!(extra["released"], serde_json::json!("1979-05-27"));
        assert_eq!(
            extra["notify"],
            serde_json::json!({"email": ["a@example.com"]})
        );
    }

    #[test]
    fn missing_command_is_an_error_with_a_line() {
        let error = parse_error("description = \"no command\"\n");
        assert!(error.message.contains("missing key \"command\""), "{error}");
        assert_eq!(error.line, Some(1));
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let error = parse_error("command = \"true\"\ntags = [\"a\",\n  oops]\n");
        assert_eq!((error.line, error.column), (Some(3), Some(3)), "{error}");
        assert!(
            error.to_string().starts_with("/types/hello.toml:3:3: "),
            "{error}"
        );
    }

    #[test]
    fn wrong_value_type_points_at_the_value() {
        let error = parse_error("command = \"true\"\ntimeout = \"soon\"\n");
        assert_eq!((error.line, error.column), (Some(2), Some(11)), "{error}");
    }

    #[test]
    fn zero_timeout_is_an_error() {
        let error = parse_error("command = \"true\"\ntimeout = 0\n");
        assert!(
            error.message.contains("timeout must be at least 1"),
            "{error}"
        );
        assert_eq!(error.line, Some(2));
    }

    #[test]
    fn bad_template_points_at_the_action() {
        let error = parse_error("timeout = 5\ncommand = '''\necho ok\necho {{if .X}}y{{end}}'''\n");
        assert!(error.message.starts_with("command: unsupported"), "{error}");
        assert_eq!((error.line, error.column), (Some(4), Some(6)), "{error}");
    }

    #[test]
    fn variable_without_name_is_an_error() {
        let error =
            parse_error("command = \"true\"\n\n[[environment.required]]\ndescription = \"who\"\n");
        assert!(
            error.message.contains("environment.required has no name"),
            "{error}"
        );
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn bad_variable_name_is_an_error() {
        let error = parse_error("command = \"true\"\n[[environment.default]]\nname = \"MY-VAR\"\n");
        assert!(error.message.contains("\"MY-VAR\""), "{error}");
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn duplicate_variable_names_are_an_error() {
        let source = "command = \"true\"
[[environment.default]]
name = \"NAME\"
value = \"x\"
[[environment.required]]
name = \"NAME\"
";
        let error = parse_error(source);
        assert!(
            error.message.contains("defined twice (first at line 3)"),
            "{error}"
        );
        assert_eq!(error.line, Some(6));
    }

    #[test]
    fn bad_files_to_include_entries_are_errors() {
        for entry in [
            "[]",
            "[\"a\", \"b\", \"c\"]",
            "[\"\"]",
            "[\"a\", \"../up\"]",
            "[\"a\", \"/abs\"]",
        ] {
            let error = parse_error(&format!(
                "command = \"true\"\nfiles_to_include = [{entry}]\n"
            ));
            assert!(
                error.message.starts_with("bad files_to_include entry"),
                "{entry}: {error}"
            );
            assert_eq!(error.line, Some(2), "{entry}");
        }
        let error = parse_error("command = \"true\"\nfiles_to_include = [[1]]\n");
        assert_eq!(error.line, Some(2), "{error}");
    }

    #[test]
    fn display_leaves_out_unknown_parts() {
        let mut error = TypeFileError {
            path: PathBuf::from("/t/x.toml"),
            message: "boom".into(),
            line: Some(4),
            column: None,
        };
        assert_eq!(error.to_string(), "/t/x.toml:4: boom");
        error.line = None;
        assert_eq!(error.to_string(), "/t/x.toml: boom");
    }

    #[test]
    fn line_column_counts_characters() {
        let source = "a\nüb\n";
        assert_eq!(line_column(source, 0), (1, 1));
        assert_eq!(line_column(source, 2), (2, 1));
        assert_eq!(line_column(source, 4), (2, 2));
        assert_eq!(line_column(source, 3), (2, 1));
        assert_eq!(line_column(source, 999), (3, 1));
    }

    #[test]
    fn resolve_merges_defaults_submitted_and_custom_values() {
        let loaded = parse(API_EXAMPLE).unwrap();
        let resolved = loaded
            .resolve_environment(&environment(&[("INPUT_FILE", "in.txt"), ("EXTRA", "1")]))
            .unwrap();
        assert_eq!(
            resolved,
            environment(&[("EXTRA", "1"), ("INPUT_FILE", "in.txt"), ("NAME", "world")])
        );
        let resolved = loaded
            .resolve_environment(&environment(&[("INPUT_FILE", "in.txt"), ("NAME", "you")]))
            .unwrap();
        assert_eq!(resolved["NAME"], "you");
    }

    #[test]
    fn resolve_names_a_missing_required_variable() {
        let loaded = parse_type(Path::new("wordcount_task.toml"), API_EXAMPLE, 0).unwrap();
        for submitted in [environment(&[]), environment(&[("INPUT_FILE", "")])] {
            match loaded.resolve_environment(&submitted) {
                Err(Error::Invalid(message)) => assert_eq!(
                    message,
                    "task type \"wordcount_task\" needs variable INPUT_FILE \
                     (Path to the input data): add it to \"environment\""
                ),
                other => panic!("expected Invalid, got {other:?}"),
            }
        }
    }

    #[test]
    fn resolve_names_all_missing_variables() {
        let source = "command = \"true\"
[[environment.required]]
name = \"A\"
description = \"first\"
[[environment.required]]
name = \"B\"
";
        let loaded = parse(source).unwrap();
        match loaded.resolve_environment(&BTreeMap::new()) {
            Err(Error::Invalid(message)) => assert_eq!(
                message,
                "task type \"hello\" needs variables A (first), B: add them to \"environment\""
            ),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn resolve_refuses_bad_names_and_nul_values() {
        let loaded = parse("command = \"true\"").unwrap();
        match loaded.resolve_environment(&environment(&[("BAD-NAME", "x")])) {
            Err(Error::Invalid(message)) => {
                assert!(message.contains("\"BAD-NAME\" is not valid"), "{message}");
                assert!(message.contains("[A-Za-z_][A-Za-z0-9_]*"), "{message}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        let nul = loaded.resolve_environment(&environment(&[("A", "x\0y")]));
        assert!(matches!(nul, Err(Error::Invalid(_))), "{nul:?}");
    }

    #[test]
    fn catalog_lists_good_and_broken_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "good.toml", "command = \"true\"\n");
        write(dir.path(), "bad.toml", "description = \"x\"\ncommand = \n");
        write(dir.path(), "notes.txt", "not a type");
        std::fs::create_dir(dir.path().join("folder.toml")).unwrap();
        let catalog = Catalog::load(&[dir.path().to_path_buf()]);

        assert_eq!((catalog.len(), catalog.broken_count()), (1, 1));
        assert!(!catalog.is_empty());
        let listing = catalog.listing();
        let names: Vec<&str> = listing.iter().map(|spec| spec.name.as_str()).collect();
        assert_eq!(names, ["bad", "good"]);
        let broken = &listing[0];
        assert!(broken.error.is_some());
        assert_eq!(broken.line, Some(2));
        assert!(broken.command.is_empty());
        assert!(broken.config_file.ends_with("bad.toml"));
        assert_eq!(listing[1].error, None);

        assert!(catalog.get("good").is_some());
        assert!(catalog.get("bad").is_none());
        match catalog.require("bad") {
            Err(Error::Invalid(message)) => {
                assert!(message.contains("its file is broken"), "{message}");
                assert!(message.contains("bad.toml:2:"), "{message}");
            }
            other => panic!("expected Invalid, got {other:?}"),
        }
        assert_eq!(catalog.dirs(), [dir.path().to_path_buf()]);
    }

    #[test]
    fn require_unknown_names_the_known_types() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["c", "a", "b"] {
            write(dir.path(), &format!("{name}.toml"), "command = \"true\"\n");
        }
        let catalog = Catalog::load(&[dir.path().to_path_buf()]);
        assert_eq!(catalog.require("a").unwrap().spec.name, "a");
        match catalog.require("x") {
            Err(Error::Invalid(message)) => assert_eq!(
                message,
                "unknown task type \"x\": known types are a, b, c (GET /task_type/ lists them)"
            ),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn first_dir_wins_and_missing_dirs_are_skipped() {
        let root = tempfile::tempdir().unwrap();
        let first = root.path().join("first");
        let second = root.path().join("second");
        write(&first, "same.toml", "command = \"echo first\"\n");
        write(&second, "same.toml", "command = \"echo second\"\n");
        write(&second, "other.toml", "command = \"true\"\n");
        let dirs = [root.path().join("missing"), first, second];
        let catalog = Catalog::load(&dirs);
        assert_eq!(catalog.len(), 2);
        assert_eq!(catalog.get("same").unwrap().spec.command, "echo first");
    }

    #[test]
    fn empty_catalog_says_so() {
        let catalog = Catalog::load(&[]);
        assert!(catalog.is_empty());
        assert!(catalog.listing().is_empty());
        let error = catalog.require("x").err().unwrap();
        assert!(
            error.to_string().contains("no task types are loaded"),
            "{error}"
        );
    }

    #[test]
    fn catalog_is_shareable() {
        fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
        assert_shareable::<Catalog>();
    }

    #[test]
    fn bundled_examples_parse_and_run_on_default_workers() {
        assert_eq!(BUNDLED_EXAMPLES.len(), 5);
        for (file_name, text) in BUNDLED_EXAMPLES {
            let loaded =
                parse_type(Path::new(file_name), text, 0).unwrap_or_else(|error| panic!("{error}"));
            assert_eq!(loaded.spec.tags, ["bash", "unix"], "{file_name}");
            assert!(!loaded.spec.description.is_empty(), "{file_name}");
        }
        assert_eq!(bundled("timeout_task").spec.timeout, 2);
        let wordcount = bundled("wordcount_task");
        assert_eq!(wordcount.spec.environment.required[0].name, "INPUT_FILE");
        assert_eq!(wordcount.spec.environment.required[0].kind, "file");
    }

    #[test]
    fn bundled_echo_renders_with_its_default() {
        let loaded = bundled("echo_task");
        let environment = loaded.resolve_environment(&BTreeMap::new()).unwrap();
        let command = template::render(&loaded.spec.command, &environment).unwrap();
        assert_eq!(command, "echo \"hello world\"");
    }

    #[test]
    fn seed_examples_writes_files_only_once() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("config").join("types");
        seed_examples(&dir).unwrap();
        for (file_name, text) in BUNDLED_EXAMPLES {
            assert_eq!(std::fs::read_to_string(dir.join(file_name)).unwrap(), *text);
        }
        std::fs::remove_file(dir.join("echo_task.toml")).unwrap();
        seed_examples(&dir).unwrap();
        assert!(!dir.join("echo_task.toml").exists());
        assert_eq!(Catalog::load(&[dir]).len(), BUNDLED_EXAMPLES.len() - 1);
    }

    fn toml_value() -> impl Strategy<Value = toml::Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(toml::Value::Integer),
            prop_oneof![Just(0_i64), Just(-1), Just(1), Just(i64::MAX)]
                .prop_map(toml::Value::Integer),
            any::<bool>().prop_map(toml::Value::Boolean),
            any::<f64>().prop_map(toml::Value::Float),
            "\\PC{0,12}|[A-Z_]{0,4}|\\{\\{[. A-Z]{0,5}\\}?\\}?|~/[a-z*]{0,4}"
                .prop_map(toml::Value::String),
        ];
        leaf.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(toml::Value::Array),
                prop::collection::btree_map(
                    prop_oneof![
                        Just("name".to_owned()),
                        Just("value".to_owned()),
                        Just("description".to_owned()),
                        Just("type".to_owned()),
                        "[a-z_]{1,6}"
                    ],
                    inner,
                    0..4,
                )
                .prop_map(|map| toml::Value::Table(map.into_iter().collect())),
            ]
        })
    }

    /// A type file with the known keys (and some unknown ones) holding values of any shape.
    fn type_file() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            prop::sample::select(vec![
                "description",
                "tags",
                "executor",
                "timeout",
                "command",
                "environment",
                "files_to_include",
                "requeue_on_lost"
            ])
            .prop_map(str::to_owned),
            "[a-z_]{1,8}",
        ];
        let environment = prop::collection::btree_map(
            prop::sample::select(vec!["default", "required", "optional"]).prop_map(str::to_owned),
            prop::collection::vec(
                prop::collection::btree_map(
                    prop::sample::select(vec!["name", "value", "description", "type"])
                        .prop_map(str::to_owned),
                    toml_value(),
                    0..4,
                )
                .prop_map(|map| toml::Value::Table(map.into_iter().collect())),
                0..4,
            )
            .prop_map(toml::Value::Array),
            0..3,
        )
        .prop_map(|map| toml::Value::Table(map.into_iter().collect()));
        (
            prop::collection::btree_map(key, toml_value(), 0..8),
            prop::option::of(environment),
        )
            .prop_map(|(mut table, environment)| {
                if let Some(environment) = environment {
                    table.insert("environment".to_owned(), environment);
                }
                toml::to_string(&table.into_iter().collect::<toml::Table>()).unwrap()
            })
    }

    proptest! {
        #[test]
        fn any_text_loads_or_is_refused_with_a_message(source in "\\PC{0,60}|[a-z_ =\"'\\[\\]{}.\n0-9#]{0,80}") {
            if let Err(error) = parse_type(Path::new("/types/fuzz.toml"), &source, 0) {
                prop_assert!(!error.to_string().is_empty());
            }
        }

        #[test]
        fn any_shaped_type_file_loads_or_is_refused_with_a_message(source in type_file()) {
            match parse_type(Path::new("/types/fuzz.toml"), &source, 0) {
                Ok(loaded) => prop_assert!(loaded.spec.timeout > 0, "{source}"),
                Err(error) => prop_assert!(!error.to_string().is_empty()),
            }
        }

        #[test]
        fn a_well_formed_type_file_keeps_its_values(
            description in "\\PC{0,30}",
            tags in prop::collection::vec("\\PC{1,8}", 0..4),
            timeout in 1..=u64::from(u32::MAX),
            text in "[^{}]{0,20}",
            names in prop::collection::btree_set("[A-Za-z_][A-Za-z0-9_]{0,8}", 0..4),
        ) {
            let command = names.iter().fold(text, |command, name| format!("{command} {{{{.{name}}}}}"));
            let defaults: Vec<toml::Value> = names
                .iter()
                .map(|name| toml::Value::Table([("name".to_owned(), toml::Value::String(name.clone()))].into_iter().collect()))
                .collect();
            let mut table = toml::Table::new();
            table.insert("description".to_owned(), toml::Value::String(description.clone()));
            table.insert("tags".to_owned(), toml::Value::Array(tags.iter().cloned().map(toml::Value::String).collect()));
            table.insert("timeout".to_owned(), toml::Value::Integer(i64::try_from(timeout).unwrap()));
            table.insert("command".to_owned(), toml::Value::String(command.clone()));
            table.insert(
                "environment".to_owned(),
                toml::Value::Table([("default".to_owned(), toml::Value::Array(defaults))].into_iter().collect()),
            );
            let source = toml::to_string(&table).unwrap();
            let loaded = parse_type(Path::new("/types/fuzz.toml"), &source, 0).unwrap();
            prop_assert_eq!(loaded.spec.description, description);
            prop_assert_eq!(loaded.spec.tags, tags);
            prop_assert_eq!(loaded.spec.timeout, timeout);
            prop_assert_eq!(loaded.spec.command, command);
            prop_assert_eq!(loaded.spec.name, "fuzz");
        }
    }
}
