//! Everything done before a task's process starts: the command line from the executor and
//! the rendered template, the environment, and the type's `files_to_include` copied into the
//! task's directory. A failure here ends the task ERROR with a reason naming what is missing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use blanket_core::template;
use blanket_core::wire::{Task, TaskType};

/// A task ready to start: what to execute, where, with which environment.
#[derive(Debug)]
pub struct Prepared {
    pub program: String,
    pub args: Vec<String>,
    pub directory: PathBuf,
    pub environment: BTreeMap<String, String>,
}

/// What the worker knows of itself and its coordinator, for the task's environment.
pub struct Context<'a> {
    pub server_url: &'a str,
    pub worker_pid: u32,
}

/// Renders the command, builds the environment and copies the type's files.
///
/// # Errors
/// A message for the task's `reason`: a bad template, a missing file to include, an I/O error.
pub async fn prepare(
    task: &Task,
    task_type: &TaskType,
    context: &Context<'_>,
) -> Result<Prepared, String> {
    let command = template::render(&task_type.command, &task.default_env)
        .map_err(|error| format!("the command template cannot be rendered: {error}"))?;
    let directory = PathBuf::from(&task.result_dir);
    tokio::fs::create_dir_all(&directory)
        .await
        .map_err(|error| {
            format!(
                "cannot create the task directory {}: {error}",
                directory.display()
            )
        })?;
    let includes = task_type.files_to_include.clone();
    let type_folder = Path::new(&task_type.config_file)
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let target = directory.clone();
    tokio::task::spawn_blocking(move || copy_includes(&includes, &type_folder, &target))
        .await
        .map_err(|error| format!("copying files_to_include failed: {error}"))??;
    let (program, mut args) = executor_command(&task_type.executor);
    args.push(command);
    let mut environment = task.default_env.clone();
    let results_root = directory
        .parent()
        .map(|parent| parent.display().to_string())
        .unwrap_or_default();
    environment.insert("BLANKET_APP_TASK_ID".into(), task.id.to_string());
    environment.insert("BLANKET_APP_RESULTS_DIRECTORY".into(), results_root);
    environment.insert(
        "BLANKET_APP_TASK_RESULTS_DIRECTORY".into(),
        directory.display().to_string(),
    );
    environment.insert(
        "BLANKET_APP_WORKER_PID".into(),
        context.worker_pid.to_string(),
    );
    environment.insert(
        "BLANKET_APP_SERVER_PORT".into(),
        server_port(context.server_url),
    );
    environment.insert("BLANKET_SERVER_URL".into(), context.server_url.to_string());
    Ok(Prepared {
        program,
        args,
        directory,
        environment,
    })
}

/// The program and leading arguments for an executor: `bash -c`, `cmd /c`,
/// `powershell -Command`, anything else `X -c`.
pub fn executor_command(executor: &str) -> (String, Vec<String>) {
    let executor = if executor.trim().is_empty() {
        "bash"
    } else {
        executor.trim()
    };
    let flag = match executor {
        "cmd" => "/c",
        "powershell" | "pwsh" => "-Command",
        _ => "-c",
    };
    (executor.to_string(), vec![flag.to_string()])
}

fn server_port(url: &str) -> String {
    let authority = url.split("://").nth(1).unwrap_or(url);
    let host_port = authority.split('/').next().unwrap_or(authority);
    match host_port.rsplit_once(':') {
        Some((_, port)) if port.chars().all(|character| character.is_ascii_digit()) => {
            port.to_string()
        }
        _ if url.starts_with("https://") => "443".into(),
        _ => "80".into(),
    }
}

/// Copies every `[glob]` or `[glob, subdir]` entry into `target`; a glob that matches
/// nothing is an error naming it, so a task never runs without its inputs.
fn copy_includes(
    includes: &[Vec<String>],
    type_folder: &Path,
    target: &Path,
) -> Result<(), String> {
    for entry in includes {
        let Some(pattern) = entry.first() else {
            continue;
        };
        let subdir = entry.get(1).map(String::as_str).unwrap_or("");
        let expanded = expand_home(pattern);
        let absolute = if Path::new(&expanded).is_absolute() {
            PathBuf::from(expanded)
        } else {
            type_folder.join(expanded)
        };
        let pattern_text = absolute.display().to_string();
        let matches = glob::glob(&pattern_text)
            .map_err(|error| format!("files_to_include pattern {pattern:?} is invalid: {error}"))?;
        let destination = target.join(subdir);
        std::fs::create_dir_all(&destination)
            .map_err(|error| format!("cannot create {}: {error}", destination.display()))?;
        let mut copied = 0;
        for source in matches {
            let source =
                source.map_err(|error| format!("cannot read a file of {pattern:?}: {error}"))?;
            let Some(name) = source.file_name() else {
                continue;
            };
            copy_recursively(&source, &destination.join(name)).map_err(|error| {
                format!(
                    "cannot copy {} into the task directory: {error}",
                    source.display()
                )
            })?;
            copied += 1;
        }
        if copied == 0 {
            return Err(format!(
                "files_to_include entry {pattern:?} matches no file (looked for {pattern_text}): add the file or fix the task type"
            ));
        }
    }
    Ok(())
}

fn copy_recursively(source: &Path, destination: &Path) -> std::io::Result<()> {
    if source.is_dir() {
        std::fs::create_dir_all(destination)?;
        for entry in std::fs::read_dir(source)? {
            let entry = entry?;
            copy_recursively(&entry.path(), &destination.join(entry.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(source, destination).map(drop)
    }
}

fn expand_home(pattern: &str) -> String {
    match (pattern.strip_prefix("~/"), std::env::var("HOME")) {
        (Some(rest), Ok(home)) => format!("{home}/{rest}"),
        _ => pattern.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executors_get_their_flag() {
        assert_eq!(executor_command("bash"), ("bash".into(), vec!["-c".into()]));
        assert_eq!(executor_command(""), ("bash".into(), vec!["-c".into()]));
        assert_eq!(executor_command("cmd"), ("cmd".into(), vec!["/c".into()]));
        assert_eq!(
            executor_command("powershell"),
            ("powershell".into(), vec!["-Command".into()])
        );
        assert_eq!(
            executor_command("python3"),
            ("python3".into(), vec!["-c".into()])
        );
    }

    #[test]
    fn server_port_comes_from_the_url() {
        assert_eq!(server_port("http://127.0.0.1:8773"), "8773");
        assert_eq!(server_port("http://localhost/"), "80");
        assert_eq!(server_port("https://blanket.example"), "443");
    }

    #[test]
    fn includes_are_copied_and_missing_ones_named() {
        let types = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        std::fs::write(types.path().join("input.csv"), "a,b").unwrap();
        std::fs::create_dir(types.path().join("assets")).unwrap();
        std::fs::write(types.path().join("assets/logo.txt"), "logo").unwrap();
        let includes = vec![
            vec!["*.csv".to_string()],
            vec!["assets".to_string(), "static".to_string()],
        ];
        copy_includes(&includes, types.path(), target.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(target.path().join("input.csv")).unwrap(),
            "a,b"
        );
        assert_eq!(
            std::fs::read_to_string(target.path().join("static/assets/logo.txt")).unwrap(),
            "logo"
        );
        let error = copy_includes(
            &[vec!["missing.txt".to_string()]],
            types.path(),
            target.path(),
        )
        .unwrap_err();
        assert!(error.contains("missing.txt"), "{error}");
    }
}
