//! Helpers of the reliability proof (tests/tests/reliability.rs): how many rounds to run (small
//! in CI, full with `BLANKET_PROOF_FULL=1`), a read-only look at the SQLite file that checks
//! every task's state against its audit trail, and a guard that makes a folder unwritable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use blanket_core::TaskState;
use rusqlite::{Connection, OpenFlags};

/// The worker id of a task nobody holds.
const NO_WORKER: &str = "000000000000000000000000";

/// Whether the full counts were asked for (`BLANKET_PROOF_FULL=1`, as `cargo xtask proof
/// --full` sets it).
pub fn full() -> bool {
    std::env::var("BLANKET_PROOF_FULL").is_ok_and(|value| value == "1")
}

/// `ci` normally, `full` with the full counts.
pub fn scale(ci: usize, full_count: usize) -> usize {
    if full() { full_count } else { ci }
}

/// Prints one figure of the proof on its own line, for `cargo xtask proof` to show.
pub fn report(figure: &str) {
    eprintln!("proof: {figure}");
}

/// The `percent`-th percentile of `samples` (nearest rank), which must not be empty.
pub fn percentile(samples: &[Duration], percent: usize) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let last = sorted.len() - 1;
    sorted[((last * percent + 50) / 100).min(last)]
}

/// The resident memory of process `pid` in KiB, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("VmRSS:"))
                .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .expect("reading VmRSS of a live process from /proc")
}

/// One task row as stored, with its audit trail oldest first.
#[derive(Clone, Debug)]
pub struct StoredTask {
    /// The task id.
    pub id: String,
    /// Its state.
    pub state: TaskState,
    /// The worker holding it, or zeros.
    pub worker_id: String,
    /// The pid of its process, 0 before it ran.
    pub pid: i64,
    /// When it started, 0 before.
    pub started_ts: i64,
    /// When it ended, 0 before.
    pub finished_ts: i64,
    /// Its audit trail: (from, to, actor), oldest first.
    pub events: Vec<(Option<TaskState>, TaskState, String)>,
}

impl StoredTask {
    /// How many times the audit trail moved it into `state`.
    pub fn entries_into(&self, state: TaskState) -> usize {
        self.events.iter().filter(|(_, to, _)| *to == state).count()
    }

    /// What is wrong with this task: an impossible state, or an audit trail that does not
    /// lead to it by allowed transitions. Empty when nothing is.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let mut previous: Option<TaskState> = None;
        for (index, (from, to, actor)) in self.events.iter().enumerate() {
            if *from != previous {
                problems.push(format!(
                    "event {index} ({actor}) starts from {from:?}, but the one before ended at {previous:?}"
                ));
            }
            match from {
                None if *to != TaskState::Waiting => {
                    problems.push(format!("the first event goes to {to}, not WAITING"));
                }
                Some(from) => {
                    if let Err(error) = from.check_transition(*to) {
                        problems.push(format!("event {index} ({actor}): {error}"));
                    }
                }
                None => {}
            }
            previous = Some(*to);
        }
        if previous != Some(self.state) {
            problems.push(format!(
                "the task is {} but its audit trail ends at {previous:?}",
                self.state
            ));
        }
        let held = self.worker_id != NO_WORKER;
        match self.state {
            TaskState::Waiting if held || self.finished_ts != 0 => problems.push(format!(
                "WAITING but held by worker {} or finished at {}",
                self.worker_id, self.finished_ts
            )),
            TaskState::Claimed if !held => problems.push("CLAIMED by no worker".into()),
            TaskState::Running if !held || self.pid <= 0 || self.started_ts == 0 => {
                problems.push(format!(
                    "RUNNING with worker {}, pid {}, started at {}",
                    self.worker_id, self.pid, self.started_ts
                ));
            }
            state if state.is_terminal() && self.finished_ts == 0 => {
                problems.push(format!("{state} without a finish time"));
            }
            TaskState::Success | TaskState::TimedOut if self.started_ts == 0 => {
                problems.push(format!("{} without a start time", self.state));
            }
            _ => {}
        }
        problems
            .into_iter()
            .map(|problem| format!("task {}: {problem}", self.id))
            .collect()
    }
}

/// Opens the database read-only (beside a running server: WAL lets it), checks that
/// `PRAGMA integrity_check` says ok, and reads every task with its audit trail in one read
/// transaction, so the rows and events agree.
pub fn read_tasks(database: &Path) -> BTreeMap<String, StoredTask> {
    let connection = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap_or_else(|error| panic!("opening {} read-only: {error}", database.display()));
    connection
        .busy_timeout(Duration::from_secs(30))
        .expect("setting a busy timeout");
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .expect("running PRAGMA integrity_check");
    assert_eq!(integrity, "ok", "PRAGMA integrity_check failed");
    connection
        .execute_batch("BEGIN")
        .expect("starting a read transaction");
    let mut tasks: BTreeMap<i64, StoredTask> = BTreeMap::new();
    let mut rows = connection
        .prepare("SELECT seq, id, state, worker_id, pid, started_ts, finished_ts FROM tasks")
        .expect("preparing the task query");
    let task_rows = rows
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
                row.get::<_, i64>(4)?,
                row.get::<_, i64>(5)?,
                row.get::<_, i64>(6)?,
            ))
        })
        .expect("reading tasks");
    for row in task_rows {
        let (seq, id, state, worker_id, pid, started_ts, finished_ts) = row.expect("a task row");
        tasks.insert(
            seq,
            StoredTask {
                id,
                state: parse_state(&state),
                worker_id,
                pid,
                started_ts,
                finished_ts,
                events: Vec::new(),
            },
        );
    }
    let mut events = connection
        .prepare("SELECT task_seq, from_state, to_state, actor FROM task_events ORDER BY rowid")
        .expect("preparing the event query");
    let event_rows = events
        .query_map([], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, Option<String>>(1)?,
                row.get::<_, String>(2)?,
                row.get::<_, String>(3)?,
            ))
        })
        .expect("reading audit events");
    for row in event_rows {
        let (seq, from, to, actor) = row.expect("an event row");
        let task = tasks
            .get_mut(&seq)
            .unwrap_or_else(|| panic!("an audit event of task seq {seq}, which does not exist"));
        task.events
            .push((from.as_deref().map(parse_state), parse_state(&to), actor));
    }
    tasks
        .into_values()
        .map(|task| (task.id.clone(), task))
        .collect()
}

/// Every problem [`StoredTask::problems`] finds in `tasks`.
pub fn problems(tasks: &BTreeMap<String, StoredTask>) -> Vec<String> {
    tasks.values().flat_map(StoredTask::problems).collect()
}

fn parse_state(text: &str) -> TaskState {
    text.parse()
        .unwrap_or_else(|error| panic!("the database holds state {text:?}: {error}"))
}

/// Makes files and folders unwritable even for root, with the immutable attribute
/// (`chattr +i`): writes through descriptors already open fail too, as on a disk gone
/// read-only. Drop makes them writable again.
pub struct Unwritable {
    paths: Vec<PathBuf>,
}

impl Unwritable {
    /// Sets the attribute on each of `paths`; panics saying what is needed when it cannot.
    pub fn new(paths: &[PathBuf]) -> Unwritable {
        let mut chattr = Command::new("chattr");
        chattr.arg("+i").args(paths);
        run_privileged(
            chattr,
            "this test needs root (CAP_LINUX_IMMUTABLE) and a temp dir on a file system with \
             the immutable attribute (ext4, xfs, btrfs)",
        );
        Unwritable {
            paths: paths.to_vec(),
        }
    }
}

impl Drop for Unwritable {
    fn drop(&mut self) {
        let mut chattr = Command::new("chattr");
        chattr.arg("-i").args(&self.paths);
        undo(chattr);
    }
}

/// A small tmpfs mounted on a temp folder, to fill up as a disk would; unmounted (lazily, in
/// case a killed server still holds a file) and removed on drop. Needs root.
pub struct SmallDisk {
    mount_point: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `size` (`mount`'s spelling, e.g. `8m`); panics saying what is
    /// needed when it cannot.
    pub fn mount(size: &str) -> SmallDisk {
        let mount_point = tempfile::Builder::new()
            .prefix("blanket-small-disk-")
            .tempdir()
            .expect("creating a mount point");
        let mut mount = Command::new("mount");
        mount
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(mount_point.path());
        run_privileged(mount, "this test needs root with CAP_SYS_ADMIN");
        SmallDisk { mount_point }
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.mount_point.path()
    }

    /// Writes a ballast file until the disk is full; returns its path.
    pub fn fill(&self) -> PathBuf {
        let ballast = self.path().join("ballast");
        let mut file = std::fs::File::create(&ballast).expect("creating the ballast file");
        let block = vec![0xA5u8; 64 * 1024];
        loop {
            match std::io::Write::write(&mut file, &block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(error) if error.raw_os_error() == Some(libc::ENOSPC) => break,
                Err(error) => panic!("filling the disk: {error}"),
            }
        }
        // Small writes may still fit in the last partial block: take those too.
        while std::io::Write::write(&mut file, &[0u8]).is_ok_and(|written| written == 1) {}
        ballast
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let mut umount = Command::new("umount");
        umount.arg("-l").arg(self.mount_point.path());
        undo(umount);
    }
}

/// Runs `command`; panics with its error output and `needs` (what the test needs of the
/// machine) when it fails.
fn run_privileged(mut command: Command, needs: &str) {
    let output = command
        .output()
        .unwrap_or_else(|error| panic!("running {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {needs}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Runs `command` from a drop guard: a failure is printed with the command to run by hand,
/// never a panic during unwinding.
fn undo(mut command: Command) {
    if !command.status().is_ok_and(|status| status.success()) {
        eprintln!("cleaning up failed: run {command:?} by hand");
    }
}
