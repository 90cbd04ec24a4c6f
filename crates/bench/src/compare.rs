//! Blanket beside pueue, its closest Rust peer, in one run on one machine: submits per second
//! through each one's CLI (a whole client process per task, one after another) at 0, 2,000 and
//! 100,000 queued tasks, submit -> the task's process running, and the daemon's memory.
//! Blanket's side is always measured; pueue's only when asked for, with `pueue`/`pueued` on
//! PATH. pueue is driven only through its CLI, so both sides pay a client process per submit.
//! On the empty queue, the one rate judged against pueue's, the two CLIs are timed in
//! alternating blocks, so a shared machine's slow and quick moments fall on both alike.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use crate::client::Connection;
use crate::load;
use crate::server::Server;
use crate::stats::Latencies;
use crate::system;
use crate::workers::{self, nanos_between, wall_clock_nanos};

/// How many tasks are queued at each step of the comparison.
pub const QUEUE_LEVELS: [u64; 3] = [0, 2_000, 100_000];

/// How many alternating blocks each CLI's empty-queue submits are timed in.
pub const EMPTY_QUEUE_BLOCKS: usize = 6;

/// How long a daemon may take to answer, or a started task to stamp its file.
const WAIT_LIMIT: Duration = Duration::from_secs(60);

/// How much each side is measured.
#[derive(Clone, Copy, Debug)]
pub struct ComparePlan {
    /// CLI submits timed at each level but the last.
    pub cli_submits: usize,
    /// CLI submits timed at the last, largest level, where pueue's are slow.
    pub cli_submits_full: usize,
    /// Submit -> running samples per side.
    pub starts: usize,
    /// Length of Blanket's HTTP rate run at each level above zero.
    pub http_time: Duration,
}

/// One side's figures at one queue level.
#[derive(Clone, Debug)]
pub struct LevelRate {
    /// Tasks queued (pueue) or stored (Blanket) when the timed submits began.
    pub queued: u64,
    /// CLI submits per second.
    pub cli_rate: f64,
    /// How many CLI submits were timed.
    pub cli_submits: usize,
}

/// What one side measured.
#[derive(Clone, Debug)]
pub struct Side {
    pub levels: Vec<LevelRate>,
    pub submit_to_running: Latencies,
    /// Memory of the daemon with the largest queue: (RSS, PSS) in KiB.
    pub memory_kib: (u64, u64),
}

/// Blanket's side, plus its HTTP submit rate at each level above zero.
pub struct BlanketSide {
    pub side: Side,
    /// The HTTP rate run at each level, in the order of `side.levels`; none at zero, where
    /// the main empty-store figure stands instead.
    pub http: Vec<Option<load::SubmitRun>>,
}

/// Blanket's side: a fresh server filled level by level, and a server with one worker for the
/// start latency. `empty` is the empty-queue rate when [`empty_queue_side_by_side`] timed it.
///
/// # Errors
/// When a server cannot start or a submit fails.
pub async fn blanket(
    blanket: &Path,
    plan: ComparePlan,
    empty: Option<LevelRate>,
) -> Result<BlanketSide> {
    let server = Server::start(blanket, None).await?;
    let mut levels = Vec::new();
    let mut http = Vec::new();
    let last = QUEUE_LEVELS.len() - 1;
    for (index, &level) in QUEUE_LEVELS.iter().enumerate() {
        load::fill(&server, level, 8).await?;
        let queued = Connection::open(server.address)
            .await?
            .count_tasks()
            .await?;
        let rate = match (&empty, level) {
            (Some(empty), 0) => empty.clone(),
            _ => {
                let count = if index == last {
                    plan.cli_submits_full
                } else {
                    plan.cli_submits
                };
                LevelRate {
                    queued,
                    cli_rate: timed_rate(count, || run_ok(&mut blanket_submit(blanket, &server)))?,
                    cli_submits: count,
                }
            }
        };
        levels.push(rate);
        http.push(if level > 0 {
            Some(load::submit_rate(&server, 2, 100, plan.http_time).await?)
        } else {
            None
        });
    }
    let memory_kib = resident_and_proportional(server.pid())?;
    drop(server);

    let server = Server::start_with_workers(blanket, 1, &workers::TYPES).await?;
    let url = format!("http://{}", server.address);
    let mut connection = Connection::open(server.address).await?;
    let mut latencies = Vec::with_capacity(plan.starts);
    for _ in 0..plan.starts {
        let before = wall_clock_nanos();
        let output = run_ok(blanket_client(blanket, &server, &url).args([
            "submit",
            "-q",
            "-t",
            "stamp_task",
        ]))?;
        let id = String::from_utf8_lossy(&output.stdout).trim().to_owned();
        let task = workers::wait_for_state(&mut connection, &id, &["SUCCESS", "ERROR"]).await?;
        let stamp = workers::result_dir(&task)?.join("started");
        latencies.push(nanos_between(before, read_stamp(&stamp)?));
    }
    Ok(BlanketSide {
        side: Side {
            levels,
            submit_to_running: Latencies::new(latencies),
            memory_kib,
        },
        http,
    })
}

/// pueue's side, on a daemon of its own in a temporary folder; its empty-queue rate is the one
/// [`empty_queue_side_by_side`] timed.
///
/// # Errors
/// When `pueue`/`pueued` are not on PATH, the daemon does not answer, or a command fails.
pub fn pueue(plan: ComparePlan, empty: LevelRate) -> Result<Side> {
    let root = pueue_folder()?;
    let mut pueue = Pueue::start(root.path())?;

    // Submit -> running on an idle, running queue.
    let mut latencies = Vec::with_capacity(plan.starts);
    for sample in 0..plan.starts {
        let stamp = root.path().join(format!("started-{sample}"));
        let before = wall_clock_nanos();
        pueue.command(&[
            "add",
            "--",
            &format!("date +%s%N > {}.part && mv {0}.part {0}", stamp.display()),
        ])?;
        let waited = Instant::now();
        while !stamp.exists() {
            if waited.elapsed() > WAIT_LIMIT {
                bail!("pueue did not start its task within {WAIT_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        latencies.push(nanos_between(before, read_stamp(&stamp)?));
    }
    pueue.command(&["clean"])?;
    pueue.command(&["pause"])?;

    let mut levels = Vec::new();
    let last = QUEUE_LEVELS.len() - 1;
    for (index, &level) in QUEUE_LEVELS.iter().enumerate() {
        if level == 0 {
            levels.push(empty.clone());
            continue;
        }
        let queued = pueue.queue_to(level)?;
        let count = if index == last {
            plan.cli_submits_full
        } else {
            plan.cli_submits
        };
        let cli_rate = timed_rate(count, || pueue.add_true())?;
        levels.push(LevelRate {
            queued,
            cli_rate,
            cli_submits: count,
        });
    }
    let memory_kib = resident_and_proportional(pueue.daemon.id())?;
    pueue.stop();
    Ok(Side {
        levels,
        submit_to_running: Latencies::new(latencies),
        memory_kib,
    })
}

/// Both CLIs on an empty queue, a fresh `blanket serve --workers 0` and a fresh paused pueued,
/// timed in [`EMPTY_QUEUE_BLOCKS`] alternating blocks after a warm-up of each; each side's rate
/// is the median of its blocks'. Returns Blanket's rate, then pueue's.
///
/// # Errors
/// When `pueue`/`pueued` are not on PATH, a daemon does not start, or a submit fails.
pub async fn empty_queue_side_by_side(
    blanket: &Path,
    plan: ComparePlan,
) -> Result<(LevelRate, LevelRate)> {
    let root = pueue_folder()?;
    let pueue = Pueue::start(root.path())?;
    pueue.command(&["pause"])?;
    let server = Server::start(blanket, None).await?;
    let per_block = plan.cli_submits.div_ceil(EMPTY_QUEUE_BLOCKS);
    let mut blanket_rates = Vec::with_capacity(EMPTY_QUEUE_BLOCKS);
    let mut pueue_rates = Vec::with_capacity(EMPTY_QUEUE_BLOCKS);
    for _ in 0..EMPTY_QUEUE_BLOCKS {
        blanket_rates.push(timed_rate(per_block, || {
            run_ok(&mut blanket_submit(blanket, &server))
        })?);
        pueue_rates.push(timed_rate(per_block, || pueue.add_true())?);
    }
    pueue.stop();
    let side = |rates: Vec<f64>| LevelRate {
        queued: 0,
        cli_rate: median(rates),
        cli_submits: per_block * EMPTY_QUEUE_BLOCKS,
    };
    Ok((side(blanket_rates), side(pueue_rates)))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len().is_multiple_of(2) {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// A temporary folder for a pueued of its own: its config, state and socket.
fn pueue_folder() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("blanket-bench-pueue-")
        .tempdir()
        .context("creating a temporary folder for pueued")
}

/// A pueued on its own folder, config and socket, and a way to run its client against it.
struct Pueue {
    client: PathBuf,
    /// HOME of the daemon and every client.
    home: PathBuf,
    daemon_binary: PathBuf,
    config: PathBuf,
    state: PathBuf,
    daemon: Child,
}

impl Pueue {
    fn start(root: &Path) -> Result<Pueue> {
        let (Some(client), Some(daemon_binary)) = (on_path("pueue"), on_path("pueued")) else {
            bail!("pueue and pueued are not on PATH (cargo install pueue --locked)");
        };
        let config = root.join("pueue.yml");
        std::fs::write(
            &config,
            format!(
                "shared:\n  pueue_directory: {0}\n  runtime_directory: {0}\n  \
                 use_unix_socket: true\n  unix_socket_path: {0}/pueue.socket\n",
                root.display()
            ),
        )
        .with_context(|| format!("writing {}", config.display()))?;
        let daemon = spawn_daemon(&daemon_binary, &config, root)?;
        let mut pueue = Pueue {
            client,
            home: root.to_owned(),
            daemon_binary,
            config,
            state: root.join("state.json"),
            daemon,
        };
        pueue.wait_until_ready()?;
        Ok(pueue)
    }

    fn command(&self, args: &[&str]) -> Result<Output> {
        run_ok(
            lean_environment(&mut Command::new(&self.client), &self.home)
                .arg("-c")
                .arg(&self.config)
                .args(args),
        )
    }

    /// What each timed submit is: a task that does nothing, on the paused queue.
    fn add_true(&self) -> Result<Output> {
        self.command(&["add", "--", "true"])
    }

    fn wait_until_ready(&mut self) -> Result<()> {
        let started = Instant::now();
        while self.command(&["status"]).is_err() {
            if let Some(status) = self.daemon.try_wait().context("checking on pueued")? {
                bail!("pueued exited ({status})");
            }
            if started.elapsed() > WAIT_LIMIT {
                bail!("pueued did not answer within {WAIT_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Puts `level` queued copies of a `true` task in pueue's saved state (its group paused)
    /// and restarts the daemon on it: adding them one by one through the CLI would take hours
    /// at 100,000, which is the cost this comparison measures. Returns `level`.
    fn queue_to(&mut self, level: u64) -> Result<u64> {
        if level > 0 {
            self.add_true()?;
            self.command(&["shutdown"])?;
            self.daemon.wait().context("waiting for pueued to stop")?;
            let text = std::fs::read_to_string(&self.state)
                .with_context(|| format!("reading {}", self.state.display()))?;
            let mut state: Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not JSON", self.state.display()))?;
            let tasks = state["tasks"]
                .as_object_mut()
                .with_context(|| format!("{} has no tasks map", self.state.display()))?;
            let template = tasks
                .values()
                .next_back()
                .cloned()
                .context("pueue saved no task to copy")?;
            tasks.clear();
            for id in 0..level {
                let mut task = template.clone();
                task["id"] = Value::from(id);
                tasks.insert(id.to_string(), task);
            }
            std::fs::write(&self.state, state.to_string())
                .with_context(|| format!("writing {}", self.state.display()))?;
            self.daemon = spawn_daemon(&self.daemon_binary, &self.config, &self.home)?;
            self.wait_until_ready()?;
            self.command(&["pause"])?;
        }
        Ok(level)
    }

    fn stop(mut self) {
        let _ = self.command(&["shutdown"]);
        let _ = self.daemon.wait();
    }
}

impl Drop for Pueue {
    fn drop(&mut self) {
        if let Ok(None) = self.daemon.try_wait() {
            let _ = self.daemon.kill();
            let _ = self.daemon.wait();
        }
    }
}

fn spawn_daemon(binary: &Path, config: &Path, home: &Path) -> Result<Child> {
    lean_environment(&mut Command::new(binary), home)
        .arg("-c")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))
}

/// The timed submit: `blanket submit -q -t echo_task` against `server`.
fn blanket_submit(blanket: &Path, server: &Server) -> Command {
    let mut command = blanket_client(blanket, server, &format!("http://{}", server.address));
    command.args(["submit", "-q", "-t", "echo_task"]);
    command
}

/// A `blanket` client command aimed at `server`.
fn blanket_client(blanket: &Path, server: &Server, url: &str) -> Command {
    let mut command = Command::new(blanket);
    lean_environment(&mut command, &server.data_dir)
        .env("XDG_CONFIG_HOME", server.data_dir.join("client-config"))
        .env("BLANKET_SERVER_URL", url);
    command
}

/// Only PATH, and HOME set to `home`: nothing of the caller's environment can point a client
/// elsewhere, and both sides carry the same small environment (pueue stores each task's whole
/// environment in its state, so a large one would make it slower still).
fn lean_environment<'a>(command: &'a mut Command, home: &Path) -> &'a mut Command {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
}

/// Runs `command` to its end; fails unless it exits successfully.
fn run_ok(command: &mut Command) -> Result<Output> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(output)
}

/// Runs `submit` a few times to warm up, then `count` times in a row; returns runs per second.
fn timed_rate(count: usize, mut submit: impl FnMut() -> Result<Output>) -> Result<f64> {
    for _ in 0..5 {
        submit()?;
    }
    let started = Instant::now();
    for _ in 0..count {
        submit()?;
    }
    Ok(count as f64 / started.elapsed().as_secs_f64().max(f64::EPSILON))
}

fn read_stamp(path: &Path) -> Result<u128> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("{} holds {text:?}, not a time", path.display()))
}

fn resident_and_proportional(pid: u32) -> Result<(u64, u64)> {
    let (rss, _) = system::resident_kib(pid)?;
    Ok((rss, system::proportional_kib(pid)?))
}

fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|folder| folder.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::median;

    #[test]
    fn the_median_of_block_rates_ignores_one_disturbed_block() {
        assert_eq!(median(vec![340.0, 90.0, 350.0]), 340.0);
        assert_eq!(median(vec![300.0, 90.0, 350.0, 310.0]), 305.0);
    }
}
