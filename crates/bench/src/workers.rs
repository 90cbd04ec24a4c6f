//! The worker runtime's figures, on a release `blanket serve` with local workers and task
//! types of its own: submit -> the task's process running, cancel -> its process group gone,
//! a log line written -> an SSE client reading it, and trivial tasks per second end to end.
//! The task processes stamp the wall clock themselves, so each latency ends inside the task.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use hyper::Method;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::client::Connection;
use crate::server::Server;
use crate::stats::Latencies;

/// The task types the figures run; each records the wall clock where it matters.
pub const TYPES: [(&str, &str); 4] = [
    // Its first act is to record when its process started, in nanoseconds.
    (
        "stamp_task",
        "command = \"date +%s%N > started\"\ntags = [\"bash\"]\n",
    ),
    ("true_task", "command = \"true\"\ntags = [\"bash\"]\n"),
    ("sleep_task", "command = \"sleep 30\"\ntags = [\"bash\"]\n"),
    // A line holding the time it was written, every 20 ms.
    (
        "ticker_task",
        "command = \"for i in $(seq 1 120); do date +%s%N; sleep 0.02; done\"\ntags = [\"bash\"]\n",
    ),
];

/// How long any one wait in here may take before the figure fails.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// How many samples each figure takes.
#[derive(Clone, Copy, Debug)]
pub struct WorkerPlan {
    pub starts: usize,
    pub cancels: usize,
    pub log_lines: usize,
    pub trivial_tasks: usize,
}

/// What the worker figures measured.
pub struct WorkerRun {
    pub submit_to_running: Latencies,
    pub cancel_to_gone: Latencies,
    pub log_line_to_client: Latencies,
    pub trivial_tasks: usize,
    pub trivial_elapsed: Duration,
}

impl WorkerRun {
    /// Trivial tasks finished per second, from the first submit to the last one ending.
    pub fn tasks_per_second(&self) -> f64 {
        self.trivial_tasks as f64 / self.trivial_elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Runs every worker figure: three on a server with one local worker, the rate with four.
///
/// # Errors
/// When a server cannot start, a request fails, or a task does not reach the state a figure
/// waits for within a minute.
pub async fn measure(blanket: &Path, plan: WorkerPlan) -> Result<WorkerRun> {
    let server = Server::start_with_workers(blanket, 1, &TYPES).await?;
    let mut connection = Connection::open(server.address).await?;
    let submit_to_running = submit_to_running(&mut connection, plan.starts).await?;
    let cancel_to_gone = cancel_to_gone(&mut connection, plan.cancels).await?;
    let log_line_to_client = log_line_to_client(&server, &mut connection, plan.log_lines).await?;
    drop(server);

    let server = Server::start_with_workers(blanket, 4, &TYPES).await?;
    let mut connection = Connection::open(server.address).await?;
    let started = Instant::now();
    for _ in 0..plan.trivial_tasks {
        submit(&mut connection, "true_task").await?;
    }
    let finished_path = "/task/?states=SUCCESS,ERROR&count=true";
    loop {
        let finished = connection.json(Method::GET, finished_path, None).await?;
        if finished.as_u64().unwrap_or_default() >= plan.trivial_tasks as u64 {
            break;
        }
        if started.elapsed() > WAIT_LIMIT {
            bail!(
                "only {finished} of {} trivial tasks ended within {WAIT_LIMIT:?}",
                plan.trivial_tasks
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(WorkerRun {
        submit_to_running,
        cancel_to_gone,
        log_line_to_client,
        trivial_tasks: plan.trivial_tasks,
        trivial_elapsed: started.elapsed(),
    })
}

/// From just before each submit to the `date` its task runs first.
async fn submit_to_running(connection: &mut Connection, samples: usize) -> Result<Latencies> {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let before = wall_clock_nanos();
        let id = submit(connection, "stamp_task").await?;
        let task = wait_for_state(connection, &id, &["SUCCESS", "ERROR"]).await?;
        let stamp = result_dir(&task)?.join("started");
        let text = std::fs::read_to_string(&stamp)
            .with_context(|| format!("reading {}", stamp.display()))?;
        let started: u128 = text
            .trim()
            .parse()
            .with_context(|| format!("{} holds {text:?}, not a time", stamp.display()))?;
        latencies.push(nanos_between(before, started));
    }
    Ok(Latencies::new(latencies))
}

/// From just before `PUT /task/:id/cancel` to the task's whole process group being gone.
async fn cancel_to_gone(connection: &mut Connection, samples: usize) -> Result<Latencies> {
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let id = submit(connection, "sleep_task").await?;
        let task = wait_for_state(connection, &id, &["RUNNING"]).await?;
        let group = task["pid"]
            .as_i64()
            .and_then(|pid| libc::pid_t::try_from(pid).ok())
            .with_context(|| format!("the running task {id} has no pid: {task}"))?;
        let before = Instant::now();
        connection
            .json(Method::PUT, &format!("/task/{id}/cancel"), None)
            .await?;
        while group_alive(group) {
            if before.elapsed() > WAIT_LIMIT {
                bail!("process group {group} of task {id} outlived its cancel by {WAIT_LIMIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(before.elapsed());
    }
    Ok(Latencies::new(latencies))
}

/// From a line's own timestamp, written by the task, to the moment a client of
/// `GET /task/:id/log` (SSE) receives it.
async fn log_line_to_client(
    server: &Server,
    connection: &mut Connection,
    lines: usize,
) -> Result<Latencies> {
    let id = submit(connection, "ticker_task").await?;
    let mut stream = TcpStream::connect(server.address)
        .await
        .context("connecting for the log stream")?;
    let request = format!(
        "GET /task/{id}/log HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n\r\n",
        server.address
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("asking for the log stream")?;
    let mut latencies = Vec::with_capacity(lines);
    let mut pending = Vec::new();
    let mut chunk = vec![0; 64 * 1024];
    let deadline = Instant::now() + WAIT_LIMIT;
    while latencies.len() < lines {
        let read = tokio::time::timeout_at(deadline.into(), stream.read(&mut chunk))
            .await
            .with_context(|| {
                format!(
                    "only {} of {lines} log lines arrived within {WAIT_LIMIT:?}",
                    latencies.len()
                )
            })?
            .context("reading the log stream")?;
        if read == 0 {
            bail!(
                "the log stream ended after {} of {lines} lines",
                latencies.len()
            );
        }
        let received = wall_clock_nanos();
        pending.extend_from_slice(&chunk[..read]);
        while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line);
            if let Some(written) = text
                .trim()
                .strip_prefix("data:")
                .and_then(|data| data.trim().parse::<u128>().ok())
            {
                latencies.push(nanos_between(written, received));
            }
        }
    }
    latencies.truncate(lines);
    Ok(Latencies::new(latencies))
}

async fn submit(connection: &mut Connection, task_type: &str) -> Result<String> {
    let task = connection
        .json(Method::POST, "/task/", Some(&json!({ "type": task_type })))
        .await?;
    task["id"]
        .as_str()
        .map(str::to_owned)
        .with_context(|| format!("the submit's answer has no id: {task}"))
}

pub async fn wait_for_state(
    connection: &mut Connection,
    id: &str,
    states: &[&str],
) -> Result<Value> {
    let started = Instant::now();
    loop {
        let task = connection
            .json(Method::GET, &format!("/task/{id}"), None)
            .await?;
        if task["state"]
            .as_str()
            .is_some_and(|state| states.contains(&state))
        {
            return Ok(task);
        }
        if started.elapsed() > WAIT_LIMIT {
            bail!(
                "task {id} stayed {} for {WAIT_LIMIT:?}, never {}",
                task["state"],
                states.join(" or ")
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

pub fn result_dir(task: &Value) -> Result<PathBuf> {
    task["resultDir"]
        .as_str()
        .map(PathBuf::from)
        .with_context(|| format!("the task has no resultDir: {task}"))
}

#[expect(
    unsafe_code,
    reason = "std cannot signal a process group; signal 0 only asks whether it exists"
)]
fn group_alive(group: libc::pid_t) -> bool {
    // SAFETY: kill(2) with signal 0 sends nothing and touches no memory of ours.
    let answer = unsafe { libc::kill(-group, 0) };
    answer == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Nanoseconds since the Unix epoch, the clock `date +%s%N` prints.
pub fn wall_clock_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_nanos())
}

/// The time from `earlier` to `later`, both wall-clock nanoseconds; zero if the clock stepped
/// back in between.
pub fn nanos_between(earlier: u128, later: u128) -> Duration {
    Duration::from_nanos(u64::try_from(later.saturating_sub(earlier)).unwrap_or(u64::MAX))
}
