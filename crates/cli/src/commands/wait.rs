//! Waiting for tasks to end and following their output: `blanket wait`, and what `submit`
//! and `retry` do with `--wait` and `--follow`. Waits on the coordinator's live change stream
//! (no polling loop), shows indicatif bars on a terminal, and turns the outcome into the exit
//! code documented in `blanket --help`. Writes to stdout directly: the runtime serves only this
//! command, so a blocked terminal write holds up nothing else.

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use blanket_core::wire::Task;
use blanket_core::{TaskId, TaskState};
use clap::Args;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::Method;

use crate::client::{Client, ClientArgs, HttpError};
use crate::output::short_duration;
use crate::sse::SseReader;

/// Exit code when the task ended TIMEDOUT (as `timeout(1)`).
pub const EXIT_TIMED_OUT: u8 = 124;
/// Exit code when the task ended ERROR without an exit code of its own (it could not start,
/// or its worker was lost).
pub const EXIT_ERROR_WITHOUT_CODE: u8 = 125;
/// Exit code when Ctrl-C stopped the waiting (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;
/// Exit code when the task ended STOPPED: cancelled (128 + SIGTERM).
pub const EXIT_STOPPED: u8 = 143;

/// How long a wait keeps trying while the coordinator cannot be reached (say, it restarts).
const RECONNECT_BUDGET: Duration = Duration::from_secs(30);
/// How often a waiting client re-reads its tasks when no change was announced, in case the
/// change stream was cut without the connection noticing.
const SAFETY_RELOAD: Duration = Duration::from_secs(15);

// `blanket wait`: wait until tasks end.
#[derive(Args, Debug)]
pub struct WaitArgs {
    /// Task ids (or unique prefixes of at least 6 characters); read from stdin when none
    #[arg(value_name = "ID")]
    ids: Vec<String>,
    /// Cancel the tasks on Ctrl-C instead of leaving them running
    #[arg(long)]
    cancel_on_interrupt: bool,
    /// Print nothing; only the exit code tells
    #[arg(short, long)]
    quiet: bool,
    /// Print the ended tasks as a JSON array
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

// What to do once a task was submitted: flags shared by `submit` and `retry`.
#[derive(Args, Debug, Default, Clone)]
pub struct WatchArgs {
    /// Wait until the task ends, showing its state and progress; exit with its exit code
    #[arg(short, long)]
    pub wait: bool,
    /// Stream the task's output while it runs, then exit with its exit code (implies --wait)
    #[arg(long)]
    pub follow: bool,
    /// With --wait or --follow: cancel the task on Ctrl-C instead of leaving it running
    #[arg(long)]
    pub cancel_on_interrupt: bool,
    /// Print only the task id
    #[arg(short, long)]
    pub quiet: bool,
    /// Print the task as JSON (the ended task, with --wait)
    #[arg(long, conflicts_with = "quiet")]
    pub json: bool,
}

/// Runs `blanket wait`.
///
/// # Errors
/// An id that names no task, or a coordinator that cannot be reached.
pub async fn run(args: WaitArgs) -> anyhow::Result<ExitCode> {
    let texts = crate::ids::ids_or_stdin(args.ids, "wait for")?;
    if texts.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client::new(&args.client)?;
    let ids = crate::ids::resolve_tasks(&client, &texts).await?;
    let progress = Progress::new(&ids, !args.quiet && !args.json);
    let outcome = tokio::select! {
        outcome = wait_for(&client, &ids, &progress) => Some(outcome?),
        () = interrupted() => None,
    };
    progress.clear();
    let Some(tasks) = outcome else {
        return on_interrupt(&client, &ids, args.cancel_on_interrupt, args.quiet).await;
    };
    if args.json {
        print_json(&tasks)?;
    } else if !args.quiet {
        for task in &tasks {
            eprintln!("{}", summary(task));
        }
    }
    let code = tasks
        .iter()
        .map(exit_code)
        .find(|code| *code != 0)
        .unwrap_or(0);
    Ok(ExitCode::from(code))
}

/// Prints the submitted `task` as `watch` asks, waits or follows when told, and gives the
/// exit code: 0 without waiting, else the task's (see [`exit_code`]).
///
/// # Errors
/// The coordinator cannot be reached while waiting.
pub async fn watch(client: &Client, task: Task, watch: &WatchArgs) -> anyhow::Result<ExitCode> {
    let waits = watch.wait || watch.follow;
    if watch.quiet {
        println!("{}", task.id);
    } else if watch.json && !waits {
        print_json(&task)?;
    } else if !watch.json {
        let line = format!("submitted {} task {}", task.task_type, task.id);
        if watch.follow {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    }
    if !waits {
        return Ok(ExitCode::SUCCESS);
    }
    // Make sure the id is on the terminal before a long wait starts.
    std::io::stdout()
        .flush()
        .context("writing to standard output")?;
    let ids = [task.id];
    let progress = Progress::new(&ids, !watch.quiet && !watch.json && !watch.follow);
    let work = async {
        if watch.follow {
            follow_log(client, task.id, false, 0).await?;
        }
        wait_for(client, &ids, &progress).await
    };
    let outcome = tokio::select! {
        outcome = work => Some(outcome?),
        () = interrupted() => None,
    };
    progress.clear();
    let Some(tasks) = outcome else {
        return on_interrupt(client, &ids, watch.cancel_on_interrupt, watch.quiet).await;
    };
    let Some(ended) = tasks.first() else {
        return Ok(ExitCode::SUCCESS);
    };
    if watch.json {
        print_json(ended)?;
    } else if !watch.quiet {
        eprintln!("{}", summary(ended));
    }
    Ok(ExitCode::from(exit_code(ended)))
}

/// The exit code a waiting command gives for an ended task: 0 for SUCCESS, the task's own
/// exit code for ERROR (or [`EXIT_ERROR_WITHOUT_CODE`]), [`EXIT_TIMED_OUT`] for TIMEDOUT and
/// [`EXIT_STOPPED`] for STOPPED.
pub fn exit_code(task: &Task) -> u8 {
    match task.state {
        TaskState::Success => 0,
        TaskState::Error => task
            .exit_code
            .and_then(|code| u8::try_from(code).ok())
            .filter(|code| *code != 0)
            .unwrap_or(EXIT_ERROR_WITHOUT_CODE),
        TaskState::TimedOut => EXIT_TIMED_OUT,
        TaskState::Stopped => EXIT_STOPPED,
        TaskState::Waiting | TaskState::Claimed | TaskState::Running => 1,
    }
}

/// One line on how `task` ended, with a hint where to look when it failed.
pub fn summary(task: &Task) -> String {
    let took = if task.started_ts > 0 && task.finished_ts >= task.started_ts {
        format!(
            " after {}",
            short_duration(task.finished_ts - task.started_ts)
        )
    } else {
        String::new()
    };
    let reason = task
        .reason
        .as_deref()
        // The exit code is said anyway.
        .filter(|reason| !reason.is_empty() && !reason.starts_with("exited with code"))
        .map(|reason| format!(" ({reason})"))
        .unwrap_or_default();
    let head = format!("task {} ({}) ended {}", task.id, task.task_type, task.state);
    match task.state {
        TaskState::Success => format!("{head}{took}"),
        TaskState::Error => {
            let code = task
                .exit_code
                .map(|code| format!(" with exit code {code}"))
                .unwrap_or_default();
            format!(
                "{head}{code}{took}{reason}: `blanket logs --stderr {}` shows its errors",
                task.id
            )
        }
        TaskState::TimedOut => format!(
            "{head}: it ran longer than its {}s timeout{reason}",
            task.timeout
        ),
        _ => format!("{head}{took}{reason}"),
    }
}

/// Waits until every task of `ids` is in a terminal state and returns them in that order.
/// Each announced change re-reads the tasks still running; `progress` shows them.
///
/// # Errors
/// A task that no longer exists, or a coordinator unreachable for longer than
/// [`RECONNECT_BUDGET`].
pub async fn wait_for(
    client: &Client,
    ids: &[TaskId],
    progress: &Progress,
) -> anyhow::Result<Vec<Task>> {
    let mut ended: Vec<Option<Task>> = vec![None; ids.len()];
    let mut changes = Changes::connect(client).await?;
    loop {
        for (index, id) in ids.iter().enumerate() {
            if ended.get(index).is_some_and(Option::is_some) {
                continue;
            }
            let task = read_task(client, *id).await?;
            progress.show(index, &task);
            if task.state.is_terminal()
                && let Some(slot) = ended.get_mut(index)
            {
                *slot = Some(task);
            }
        }
        if ended.iter().all(Option::is_some) {
            return Ok(ended.into_iter().flatten().collect());
        }
        changes.next(client).await;
    }
}

/// Streams the task's stdout (or stderr) to our stdout until the task has ended and its log
/// is drained, resuming after line `skip_through` (and after a cut connection).
///
/// # Errors
/// The task does not exist, or the coordinator stays unreachable.
pub async fn follow_log(
    client: &Client,
    id: TaskId,
    stderr: bool,
    skip_through: u64,
) -> anyhow::Result<()> {
    let mut last_line = skip_through;
    let mut unreachable_since: Option<Instant> = None;
    loop {
        let mut request = client
            .request(Method::GET, &format!("/task/{id}/log"))
            .header("accept", "text/event-stream");
        if stderr {
            request = request.query(&[("stream", "stderr")]);
        }
        if last_line > 0 {
            request = request.header("last-event-id", last_line.to_string());
        }
        let ended_cleanly = match client.send(request).await {
            Ok(response) => {
                unreachable_since = None;
                let mut reader = SseReader::new(response);
                let mut stdout = std::io::stdout();
                loop {
                    match reader.next().await {
                        Ok(Some(event)) => {
                            if event.event.is_empty() || event.event == "message" {
                                stdout
                                    .write_all(event.data.as_bytes())
                                    .and_then(|()| stdout.flush())
                                    .context("writing the task's output to standard output")?;
                            }
                            if let Some(line) = event.id.and_then(|id| id.parse().ok()) {
                                last_line = line;
                            }
                        }
                        Ok(None) => break true,
                        Err(_) => break false,
                    }
                }
            }
            Err(error) if error.downcast_ref::<HttpError>().is_some() => {
                return Err(error).with_context(|| format!("following the output of task {id}"));
            }
            Err(error) => {
                give_up_after_budget(&mut unreachable_since, error)?;
                false
            }
        };
        // The stream ends when the task has ended and its log is drained, or when the
        // coordinator shuts down; only the first means we are done.
        if ended_cleanly {
            match client.get_json::<Task>(&format!("/task/{id}")).await {
                Ok(task) if task.state.is_terminal() => return Ok(()),
                Ok(_) => {}
                Err(error) if error.downcast_ref::<HttpError>().is_some() => {
                    return Err(error).with_context(|| format!("reading task {id}"));
                }
                Err(error) => give_up_after_budget(&mut unreachable_since, error)?,
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Bars showing each waited task's state and progress on a terminal; hidden elsewhere.
pub struct Progress {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
}

impl Progress {
    /// One bar per id, drawn on stderr when `visible` and stderr is a terminal.
    pub fn new(ids: &[TaskId], visible: bool) -> Progress {
        let target = if visible {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let multi = MultiProgress::with_draw_target(target);
        let style = ProgressStyle::with_template("{prefix} [{bar:20}] {pos:>3}% {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bars = ids
            .iter()
            .map(|id| {
                let bar = multi.add(ProgressBar::new(100));
                bar.set_style(style.clone());
                // The whole id: ids of one second differ only in their last characters.
                bar.set_prefix(id.to_string());
                bar.set_message("connecting");
                if visible {
                    bar.enable_steady_tick(Duration::from_millis(250));
                }
                bar
            })
            .collect();
        Progress { multi, bars }
    }

    /// Shows `task`'s type, state and progress on bar `index`.
    pub fn show(&self, index: usize, task: &Task) {
        if let Some(bar) = self.bars.get(index) {
            bar.set_position(u64::from(task.progress));
            bar.set_message(format!("{} {}", task.task_type, task.state));
            if task.state.is_terminal() {
                // Not `finish`, which would fill the bar whatever the task reached.
                bar.abandon();
            }
        }
    }

    /// Takes the bars off the terminal.
    pub fn clear(&self) {
        for bar in &self.bars {
            bar.finish_and_clear();
        }
        let _ = self.multi.clear();
    }
}

/// The live `tasks-changed` stream, reconnected when cut; a slow re-read when it is refused.
struct Changes {
    reader: Option<SseReader>,
    unreachable_since: Option<Instant>,
}

impl Changes {
    /// Subscribes before the first read of the tasks, so no change falls in between.
    async fn connect(client: &Client) -> anyhow::Result<Changes> {
        let mut changes = Changes {
            reader: None,
            unreachable_since: None,
        };
        match changes.subscribe(client).await {
            Ok(()) => Ok(changes),
            // An error answer (say, too many open streams) leaves the slow re-read.
            Err(error) if error.downcast_ref::<HttpError>().is_some() => Ok(changes),
            Err(error) => Err(error),
        }
    }

    async fn subscribe(&mut self, client: &Client) -> anyhow::Result<()> {
        let request = client
            .request(Method::GET, "/ui/sse/tasks")
            .header("accept", "text/event-stream");
        let response = client.send(request).await?;
        self.reader = Some(SseReader::new(response));
        self.unreachable_since = None;
        Ok(())
    }

    /// Returns after the next announced change, or after a while without one.
    async fn next(&mut self, client: &Client) {
        if let Some(reader) = &mut self.reader {
            tokio::select! {
                event = reader.next() => {
                    if !matches!(event, Ok(Some(_))) {
                        self.reader = None;
                    }
                }
                () = tokio::time::sleep(SAFETY_RELOAD) => {}
            }
            return;
        }
        // Without a stream, wait a little and try to get one back; the tasks are re-read
        // either way, and an unreachable coordinator shows up there.
        let pause = if self.unreachable_since.is_some() {
            Duration::from_secs(1)
        } else {
            Duration::from_millis(500)
        };
        tokio::time::sleep(pause).await;
        if self.subscribe(client).await.is_err() {
            self.unreachable_since.get_or_insert_with(Instant::now);
        }
    }
}

/// Reads one task, riding out a coordinator that is briefly unreachable (a restart).
async fn read_task(client: &Client, id: TaskId) -> anyhow::Result<Task> {
    let mut unreachable_since: Option<Instant> = None;
    loop {
        match client.get_json::<Task>(&format!("/task/{id}")).await {
            Ok(task) => return Ok(task),
            Err(error) if error.downcast_ref::<HttpError>().is_some() => {
                return Err(error).with_context(|| format!("waiting for task {id}"));
            }
            Err(error) => {
                give_up_after_budget(&mut unreachable_since, error).with_context(|| {
                    format!(
                        "waiting for task {id}: it keeps running; `blanket wait {id}` waits \
                         again once the coordinator is back"
                    )
                })?;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// Starts the clock on the first failure and returns `error` once the budget is spent.
fn give_up_after_budget(
    unreachable_since: &mut Option<Instant>,
    error: anyhow::Error,
) -> anyhow::Result<()> {
    let since = *unreachable_since.get_or_insert_with(Instant::now);
    if since.elapsed() >= RECONNECT_BUDGET {
        return Err(error);
    }
    Ok(())
}

/// Resolves on Ctrl-C; never, when the signal cannot be watched.
async fn interrupted() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// After Ctrl-C: cancel the tasks when asked, else say they go on and how to cancel them.
async fn on_interrupt(
    client: &Client,
    ids: &[TaskId],
    cancel: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let listed: Vec<String> = ids.iter().map(ToString::to_string).collect();
    let listed = listed.join(" ");
    if cancel {
        for id in ids {
            let request = client.request(Method::PUT, &format!("/task/{id}/cancel"));
            match client.send(request).await {
                Ok(_) => eprintln!("cancelled task {id}"),
                Err(error) => eprintln!("blanket: cancelling task {id}: {error:#}"),
            }
        }
    } else if !quiet {
        eprintln!(
            "stopped waiting; the task goes on: `blanket cancel {listed}` cancels it, \
             `blanket wait {listed}` waits again"
        );
    }
    Ok(ExitCode::from(EXIT_INTERRUPTED))
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string(value).context("writing JSON")?;
    println!("{text}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(state: TaskState, exit_code: Option<i32>) -> Task {
        Task {
            id: TaskId::generate(),
            task_type: "echo_task".into(),
            state,
            tags: Vec::new(),
            default_env: Default::default(),
            created_ts: 1,
            started_ts: 2,
            last_updated_ts: 3,
            finished_ts: 3,
            timeout: 60,
            progress: 0,
            worker_id: blanket_core::WorkerId::NONE,
            pid: 0,
            result_dir: String::new(),
            type_digest: String::new(),
            exit_code,
            priority: 0,
            attempts: 1,
            reason: None,
        }
    }

    #[test]
    fn exit_codes_follow_the_documented_table() {
        assert_eq!(exit_code(&task(TaskState::Success, Some(0))), 0);
        assert_eq!(exit_code(&task(TaskState::Error, Some(3))), 3);
        assert_eq!(
            exit_code(&task(TaskState::Error, None)),
            EXIT_ERROR_WITHOUT_CODE
        );
        assert_eq!(
            exit_code(&task(TaskState::Error, Some(-9))),
            EXIT_ERROR_WITHOUT_CODE
        );
        assert_eq!(exit_code(&task(TaskState::TimedOut, None)), EXIT_TIMED_OUT);
        assert_eq!(exit_code(&task(TaskState::Stopped, None)), EXIT_STOPPED);
    }

    #[test]
    fn a_failed_task_summary_says_where_its_errors_are() {
        let failed = task(TaskState::Error, Some(3));
        let line = summary(&failed);
        assert!(line.contains("exit code 3"), "{line}");
        assert!(line.contains("blanket logs --stderr"), "{line}");
    }
}
