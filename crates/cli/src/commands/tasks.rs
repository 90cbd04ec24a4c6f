//! Commands on tasks the user names by id: `show`, `logs`, `cancel` and `rm`. Each takes a
//! whole id or a unique prefix; `cancel` and `rm` also read ids from a pipe, and go on past
//! a task that fails, reporting it and exiting 1 at the end.

use std::collections::VecDeque;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use blanket_core::TaskId;
use blanket_core::wire::{Task, TaskEvent, now};
use clap::Args;
use reqwest::{Method, StatusCode};

use super::wait::follow_log;
use crate::client::{Client, ClientArgs, http_status};
use crate::output::{
    Colour, age, colour_on_stdout, labelled, paint, short_duration, state_colour, utc,
};

// `blanket show`.
#[derive(Args, Debug)]
pub struct ShowArgs {
    /// The task (id, or a unique prefix of at least 6 characters)
    #[arg(value_name = "ID")]
    id: String,
    /// Print the task as the coordinator's JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket logs`.
#[derive(Args, Debug)]
pub struct LogsArgs {
    /// The task (id, or a unique prefix of at least 6 characters)
    #[arg(value_name = "ID")]
    id: String,
    /// Keep printing new output until the task ends
    #[arg(short, long)]
    follow: bool,
    /// The task's stderr instead of its stdout
    #[arg(long)]
    stderr: bool,
    /// Only the last N lines
    #[arg(short = 'n', long = "lines", value_name = "N")]
    lines: Option<usize>,
    #[command(flatten)]
    client: ClientArgs,
}

// `blanket cancel` and `blanket rm`.
#[derive(Args, Debug)]
pub struct IdsArgs {
    /// Task ids (or unique prefixes of at least 6 characters); read from stdin when none
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Print nothing for the tasks that worked
    #[arg(short, long)]
    quiet: bool,
    #[command(flatten)]
    client: ClientArgs,
}

/// Runs `blanket show`.
///
/// # Errors
/// An id that names no task, or a failed request.
pub async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let id = crate::ids::resolve_task(&client, &args.id).await?;
    if args.json {
        let request = client.request(Method::GET, &format!("/task/{id}"));
        let body = client
            .get_bytes(request)
            .await
            .with_context(|| format!("reading task {id}"))?;
        let mut stdout = std::io::stdout().lock();
        stdout
            .write_all(&body)
            .and_then(|()| writeln!(stdout))
            .context("writing to standard output")?;
        return Ok(ExitCode::SUCCESS);
    }
    let task: Task = client
        .get_json(&format!("/task/{id}"))
        .await
        .with_context(|| format!("reading task {id}"))?;
    let events: Vec<TaskEvent> = client
        .get_json(&format!("/task/{id}/events"))
        .await
        .unwrap_or_default();
    print!("{}", describe(&task, &events, now(), colour_on_stdout()));
    Ok(ExitCode::SUCCESS)
}

/// Runs `blanket logs`.
///
/// # Errors
/// An id that names no task, or a failed request.
pub async fn logs(args: LogsArgs) -> anyhow::Result<ExitCode> {
    let client = Client::new(&args.client)?;
    let id = crate::ids::resolve_task(&client, &args.id).await?;
    let (file, stream) = if args.stderr {
        ("blanket.stderr.log", "stderr")
    } else {
        ("blanket.stdout.log", "stdout")
    };
    let mut stdout = std::io::stdout().lock();
    if args.follow {
        // Print the lines there are (all, or the last N), then follow after the last one.
        let (lines, complete) = read_log(&client, id, file, args.lines).await?;
        for line in &lines {
            stdout
                .write_all(line)
                .context("writing to standard output")?;
        }
        stdout.flush().context("writing to standard output")?;
        drop(stdout);
        follow_log(&client, id, args.stderr, complete).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let request = match args.lines {
        Some(lines) => client
            .request(Method::GET, &format!("/task/{id}/log/tail"))
            .query(&[("n", lines.to_string()), ("stream", stream.to_owned())]),
        None => client.request(Method::GET, &format!("/results/{id}/{file}")),
    };
    let mut response = match client.send(request).await {
        Ok(response) => response,
        // No log file yet: the task has not started.
        Err(error) if http_status(&error) == Some(StatusCode::NOT_FOUND) => {
            let task: Task = client
                .get_json(&format!("/task/{id}"))
                .await
                .with_context(|| format!("reading task {id}"))?;
            eprintln!(
                "task {id} has no {stream} output yet (it is {}): `blanket logs -f {id}` waits for it",
                task.state
            );
            return Ok(ExitCode::SUCCESS);
        }
        Err(error) => return Err(error).with_context(|| format!("reading the log of task {id}")),
    };
    // Streamed: a log may be far larger than memory.
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| client.transport_error(error))?
    {
        stdout
            .write_all(&chunk)
            .context("writing to standard output")?;
    }
    stdout.flush().context("writing to standard output")?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `blanket cancel`.
///
/// # Errors
/// No id given on a terminal; a failed task is reported and makes the exit code 1.
pub async fn cancel(args: IdsArgs) -> anyhow::Result<ExitCode> {
    for_each_task(args, Action::Cancel).await
}

/// Runs `blanket rm`.
///
/// # Errors
/// No id given on a terminal; a failed task is reported and makes the exit code 1.
pub async fn remove(args: IdsArgs) -> anyhow::Result<ExitCode> {
    for_each_task(args, Action::Remove).await
}

/// What `cancel` and `rm` do to each task.
#[derive(Clone, Copy)]
enum Action {
    Cancel,
    Remove,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Cancel => "cancel",
            Action::Remove => "remove",
        }
    }

    fn past(self) -> &'static str {
        match self {
            Action::Cancel => "cancelled",
            Action::Remove => "removed",
        }
    }

    async fn apply(self, client: &Client, id: TaskId) -> anyhow::Result<()> {
        let request = match self {
            Action::Cancel => client.request(Method::PUT, &format!("/task/{id}/cancel")),
            Action::Remove => client.request(Method::DELETE, &format!("/task/{id}")),
        };
        client.send(request).await.map(drop)
    }
}

/// Resolves each id and applies `action`, reporting each outcome; 1 when any failed.
async fn for_each_task(args: IdsArgs, action: Action) -> anyhow::Result<ExitCode> {
    let verb = action.verb();
    let texts = crate::ids::ids_or_stdin(args.ids, verb)?;
    if texts.is_empty() {
        eprintln!("no task ids on standard input: nothing to {verb}");
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client::new(&args.client)?;
    let mut failed = 0usize;
    for text in &texts {
        let outcome = match crate::ids::resolve_task(&client, text).await {
            Ok(id) => action
                .apply(&client, id)
                .await
                .map(|()| id)
                .with_context(|| format!("{verb} task {id}")),
            Err(error) => Err(error),
        };
        match outcome {
            Ok(id) => {
                if !args.quiet {
                    println!("{} {id}", action.past());
                }
            }
            Err(error) => {
                failed += 1;
                eprintln!("blanket: {error:#}");
            }
        }
    }
    if failed > 0 {
        if texts.len() > 1 {
            eprintln!(
                "blanket: could not {verb} {failed} of {} tasks",
                texts.len()
            );
        }
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The complete lines of a log file (the last `keep` of them when given) and how many
/// complete lines it has: the line number a follow resumes after. Streams the file, so a
/// huge log costs memory for `keep` lines only. A missing file has no lines.
async fn read_log(
    client: &Client,
    id: TaskId,
    file: &str,
    keep: Option<usize>,
) -> anyhow::Result<(VecDeque<Vec<u8>>, u64)> {
    let request = client.request(Method::GET, &format!("/results/{id}/{file}"));
    let mut response = match client.send(request).await {
        Ok(response) => response,
        Err(error) if http_status(&error) == Some(StatusCode::NOT_FOUND) => {
            return Ok((VecDeque::new(), 0));
        }
        Err(error) => return Err(error).with_context(|| format!("reading the log of task {id}")),
    };
    let mut lines: VecDeque<Vec<u8>> = VecDeque::new();
    let mut partial: Vec<u8> = Vec::new();
    let mut complete = 0u64;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|error| client.transport_error(error))?
    {
        for &byte in chunk.iter() {
            partial.push(byte);
            if byte == b'\n' {
                complete += 1;
                lines.push_back(std::mem::take(&mut partial));
                if keep.is_some_and(|keep| lines.len() > keep) {
                    lines.pop_front();
                }
            }
        }
    }
    // A partial last line is still being written: the follow sends it whole.
    Ok((lines, complete))
}

/// What `blanket show` prints: one `label  value` line per field, then the history.
fn describe(task: &Task, events: &[TaskEvent], now: i64, colour: bool) -> String {
    let mut lines: Vec<(&str, String)> = Vec::new();
    let state = match (task.state, task.exit_code) {
        (state, Some(code)) => format!("{state} (exit code {code})"),
        (state, None) => state.to_string(),
    };
    lines.push(("id", task.id.to_string()));
    lines.push(("type", task.task_type.clone()));
    lines.push(("state", paint(&state, state_colour(task.state), colour)));
    if let Some(reason) = task.reason.as_deref().filter(|reason| !reason.is_empty()) {
        lines.push(("reason", reason.to_owned()));
    }
    lines.push(("progress", format!("{}%", task.progress)));
    lines.push(("tags", task.tags.join(", ")));
    lines.push(("priority", task.priority.to_string()));
    lines.push((
        "created",
        format!("{} ({})", utc(task.created_ts), age(now, task.created_ts)),
    ));
    if task.started_ts > 0 {
        lines.push((
            "started",
            format!("{} ({})", utc(task.started_ts), age(now, task.started_ts)),
        ));
    }
    if task.finished_ts > 0 && task.state.is_terminal() {
        lines.push((
            "finished",
            format!(
                "{} (took {})",
                utc(task.finished_ts),
                short_duration(task.finished_ts - task.started_ts.max(task.created_ts))
            ),
        ));
    }
    lines.push(("timeout", format!("{}s", task.timeout)));
    lines.push(("attempts", task.attempts.to_string()));
    if !task.worker_id.is_none() {
        lines.push(("worker", task.worker_id.to_string()));
    }
    if task.pid > 0 {
        lines.push(("pid", task.pid.to_string()));
    }
    lines.push(("folder", task.result_dir.clone()));
    let mut out = String::new();
    for (label, value) in lines {
        out.push_str(&labelled(label, &value, 10, colour));
    }
    out.push_str(&paint("environment", Colour::Bold, colour));
    out.push('\n');
    if task.default_env.is_empty() {
        out.push_str("  (none)\n");
    }
    for (name, value) in &task.default_env {
        out.push_str(&format!("  {name}={value}\n"));
    }
    if !events.is_empty() {
        out.push_str(&paint("history", Colour::Bold, colour));
        out.push('\n');
        for event in events {
            let from = event
                .from
                .map_or_else(|| "submitted".to_owned(), |from| format!("{from} ->"));
            let reason = event
                .reason
                .as_deref()
                .map(|reason| format!(": {reason}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {}  {from} {} by {}{reason}\n",
                utc(event.ts),
                event.to,
                event.actor
            ));
        }
    }
    out
}
