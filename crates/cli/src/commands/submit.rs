//! `blanket submit` builds the task JSON from flags (the old CLI's JSON `-e` included) and
//! uploads `-f` files as multipart parts streamed from disk; `blanket retry` asks the
//! coordinator to run a finished task again. Both hand over to `wait::watch` for
//! `--wait`/`--follow`. Type checks, and what a retry carries over, are the coordinator's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use blanket_core::wire::{NewTask, Task};
use clap::Args;
use reqwest::Method;
use reqwest::multipart::{Form, Part};

use super::wait::{self, WatchArgs};
use crate::client::{Client, ClientArgs, HttpError};

// `blanket submit`.
#[derive(Args, Debug)]
pub struct SubmitArgs {
    /// The task type to run (`blanket types` lists them)
    #[arg(short = 't', long = "type", value_name = "TYPE")]
    task_type: String,
    /// A variable: NAME=VALUE, NAME alone (its value in this shell), or a JSON object
    /// '{"NAME":"value"}' as the old CLI took (repeat for more)
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    env: Vec<String>,
    /// Upload a file into the task's folder and set NAME to its file name: NAME=PATH, or PATH
    /// alone to upload without a variable (repeat for more)
    #[arg(short = 'f', long = "file", value_name = "NAME=PATH")]
    files: Vec<String>,
    /// Priority: higher runs first, equal ones oldest first
    #[arg(short, long, default_value_t = 0, allow_negative_numbers = true)]
    priority: i64,
    /// A tag on top of the type's own; a worker needs all of a task's tags (CSV or repeat)
    #[arg(long = "tag", value_name = "TAG", value_delimiter = ',')]
    tags: Vec<String>,
    /// Seconds the task may run, instead of its type's timeout
    #[arg(long, value_name = "SECONDS")]
    timeout: Option<u64>,
    #[command(flatten)]
    watch: WatchArgs,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket retry`.
#[derive(Args, Debug)]
pub struct RetryArgs {
    /// The task to run again (id, or a unique prefix of at least 6 characters)
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    watch: WatchArgs,
    #[command(flatten)]
    client: ClientArgs,
}

/// A file to upload: the part (and file) name in the task's folder, and where it is here.
#[derive(Debug, PartialEq)]
struct Upload {
    variable: Option<String>,
    name: String,
    path: PathBuf,
}

/// Runs `blanket submit`.
///
/// # Errors
/// A malformed `-e` or `-f`, a file that cannot be read, or the coordinator refusing the task
/// (an unknown type lists the known ones; a missing variable is named with its description).
pub async fn run(args: SubmitArgs) -> anyhow::Result<ExitCode> {
    let mut environment = parse_environment(&args.env)?;
    let uploads = parse_uploads(&args.files)?;
    for upload in &uploads {
        if let Some(variable) = &upload.variable {
            if environment.contains_key(variable) {
                anyhow::bail!(
                    "variable {variable} is set by both -e and -f: keep one (-f {variable}=PATH \
                     sets it to the uploaded file's name)"
                );
            }
            environment.insert(variable.clone(), upload.name.clone());
        }
    }
    let new_task = NewTask {
        task_type: args.task_type.clone(),
        environment,
        priority: args.priority,
        tags: args.tags,
        timeout: args.timeout,
    };
    let client = Client::new(&args.client)?;
    let task = submit(&client, &new_task, &uploads).await?;
    wait::watch(&client, task, &args.watch).await
}

/// Runs `blanket retry`: the coordinator submits the finished task again, its uploaded files
/// included (`POST /task/:id/retry`).
///
/// # Errors
/// An id that names no task, a task that has not finished, or the coordinator refusing the
/// new task (its type gone, or needing another variable now).
pub async fn retry(args: RetryArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let id = crate::ids::resolve_task(&client, &args.id).await?;
    let request = client.request(Method::POST, &format!("/task/{id}/retry"));
    let response = client
        .send(request)
        .await
        .with_context(|| format!("retrying task {id}"))?;
    let task: Task = client.read_json(response).await?;
    wait::watch(&client, task, &args.watch).await
}

/// Posts the task: JSON alone, or multipart with a `data` part and one part per file.
async fn submit(client: &Client, new_task: &NewTask, uploads: &[Upload]) -> anyhow::Result<Task> {
    let mut request = client.request(Method::POST, "/task/");
    if uploads.is_empty() {
        request = request.json(new_task);
    } else {
        let data = serde_json::to_string(new_task).context("writing the task JSON")?;
        // Names go out as they are (checked in `parse_uploads`): the coordinator saves each
        // part under its field name, so percent-encoding would rename the file.
        let mut form = Form::new().percent_encode_noop().text("data", data);
        for upload in uploads {
            let file = tokio::fs::File::open(&upload.path)
                .await
                .with_context(|| format!("opening {} to upload it", upload.path.display()))?;
            let length = file
                .metadata()
                .await
                .with_context(|| format!("reading the size of {}", upload.path.display()))?
                .len();
            let part = Part::stream_with_length(reqwest::Body::from(file), length)
                .file_name(upload.name.clone())
                .mime_str("application/octet-stream")
                .context("setting the type of an upload")?;
            form = form.part(upload.name.clone(), part);
        }
        request = request.multipart(form);
    }
    let response = match client.send(request).await {
        Ok(response) => response,
        Err(error) => {
            let error = match submit_hint(&error) {
                Some(hint) => anyhow::anyhow!("{error}; {hint}"),
                None => error,
            };
            return Err(error.context(format!("submitting a {} task", new_task.task_type)));
        }
    };
    client.read_json(response).await
}

/// A hint to add to the coordinator's message, for a refusal a CLI user fixes with a flag.
fn submit_hint(error: &anyhow::Error) -> Option<&'static str> {
    let message = &error.downcast_ref::<HttpError>()?.message;
    message
        .contains("needs variable")
        .then_some("give each variable with -e NAME=VALUE (or -f NAME=PATH for a file)")
}

/// Reads `-e` values: `NAME=VALUE`, `NAME` (taken from this shell), or a JSON object.
fn parse_environment(values: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut environment = BTreeMap::new();
    for value in values {
        let trimmed = value.trim_start();
        if trimmed.starts_with('{') {
            let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(trimmed)
                .with_context(|| {
                    format!(
                        "-e {value:?} is not a JSON object: give NAME=VALUE, or an object like \
                         '{{\"NAME\":\"value\"}}'"
                    )
                })?;
            for (name, json) in object {
                let text = match json {
                    serde_json::Value::String(text) => text,
                    serde_json::Value::Null => String::new(),
                    other @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_)) => {
                        other.to_string()
                    }
                    other => anyhow::bail!(
                        "-e {value:?}: the value of {name} is {other}, not text: variables are \
                         strings, numbers or true/false"
                    ),
                };
                environment.insert(name, text);
            }
            continue;
        }
        match value.split_once('=') {
            Some((name, text)) if !name.is_empty() => {
                environment.insert(name.to_owned(), text.to_owned());
            }
            Some(_) => {
                anyhow::bail!("-e {value:?} has no variable name before '=': give NAME=VALUE")
            }
            None => {
                let text = std::env::var(value).map_err(|_| {
                    anyhow::anyhow!(
                        "-e {value} names no variable set in this shell: give -e {value}=VALUE"
                    )
                })?;
                environment.insert(value.clone(), text);
            }
        }
    }
    Ok(environment)
}

/// Reads `-f` values: `NAME=PATH` (NAME a variable name) or `PATH`. Each file goes up under
/// its base name, which must be unique and printable.
fn parse_uploads(values: &[String]) -> anyhow::Result<Vec<Upload>> {
    let mut uploads: Vec<Upload> = Vec::new();
    for value in values {
        let (variable, path) = match value.split_once('=') {
            Some((name, path)) if is_variable_name(name) => (Some(name.to_owned()), path),
            _ => (None, value.as_str()),
        };
        if path.is_empty() {
            anyhow::bail!("-f {value:?} names no file: give -f NAME=PATH");
        }
        let path = PathBuf::from(path);
        let metadata = std::fs::metadata(&path).with_context(|| {
            format!("cannot read {} given to -f: check the path", path.display())
        })?;
        if !metadata.is_file() {
            anyhow::bail!(
                "{} given to -f is not a file: upload files one by one",
                path.display()
            );
        }
        let name = base_name(&path)?;
        if let Some(other) = uploads.iter().find(|upload| upload.name == name) {
            anyhow::bail!(
                "{} and {} would both be saved as {name} in the task's folder: rename one",
                other.path.display(),
                path.display()
            );
        }
        uploads.push(Upload {
            variable,
            name,
            path,
        });
    }
    Ok(uploads)
}

/// The file name `path` is uploaded under.
fn base_name(path: &Path) -> anyhow::Result<String> {
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name to upload it under", path.display()))?;
    let name = name.to_str().with_context(|| {
        format!(
            "the name of {} is not UTF-8: rename it to upload it",
            path.display()
        )
    })?;
    if name
        .chars()
        .any(|character| character.is_control() || character == '"')
    {
        anyhow::bail!(
            "the name of {} holds quotes or control characters: rename it to upload it",
            path.display()
        );
    }
    Ok(name.to_owned())
}

/// `[A-Za-z_][A-Za-z0-9_]*`, as the coordinator requires.
fn is_variable_name(name: &str) -> bool {
    blanket_core::template::is_variable_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|value| (*value).to_owned()).collect()
    }

    #[test]
    fn env_takes_pairs_and_the_old_json_object() {
        let environment = parse_environment(&strings(&[
            "NAME=world",
            "EMPTY=",
            "EQUALS=a=b",
            r#"{"OLD": "json", "COUNT": 3}"#,
        ]))
        .unwrap();
        assert_eq!(environment["NAME"], "world");
        assert_eq!(environment["EMPTY"], "");
        assert_eq!(environment["EQUALS"], "a=b");
        assert_eq!(environment["OLD"], "json");
        assert_eq!(environment["COUNT"], "3");
    }

    #[test]
    fn env_without_a_name_or_with_broken_json_says_how_to_write_it() {
        let error = parse_environment(&strings(&["=x"]))
            .unwrap_err()
            .to_string();
        assert!(error.contains("NAME=VALUE"), "{error}");
        let error = format!("{:#}", parse_environment(&strings(&["{bad"])).unwrap_err());
        assert!(error.contains("not a JSON object"), "{error}");
    }

    #[test]
    fn files_go_up_under_their_base_name_and_set_their_variable() {
        let dir = tempfile_dir();
        let path = dir.join("in.txt");
        std::fs::write(&path, "a b c").unwrap();
        let uploads = parse_uploads(&[format!("INPUT_FILE={}", path.display())]).unwrap();
        assert_eq!(
            uploads,
            vec![Upload {
                variable: Some("INPUT_FILE".into()),
                name: "in.txt".into(),
                path: path.clone(),
            }]
        );
        let uploads = parse_uploads(&[path.display().to_string()]).unwrap();
        assert_eq!(uploads[0].variable, None);
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_file_is_named() {
        let error = format!(
            "{:#}",
            parse_uploads(&strings(&["X=/no/such/file.txt"])).unwrap_err()
        );
        assert!(error.contains("/no/such/file.txt"), "{error}");
    }

    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "blanket-cli-test-{}-{}",
            std::process::id(),
            blanket_core::TaskId::generate()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
