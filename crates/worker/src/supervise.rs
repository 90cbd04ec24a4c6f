//! Runs one task's process in its own process group and watches it: output streamed to the
//! log files as it comes (never held in memory), `BLANKET_PROGRESS=N` lines turned into
//! progress reports, the timeout counted from the start, and cancel or timeout ending the
//! whole group (SIGTERM, then SIGKILL after a grace period) so no process survives.

use std::process::Stdio;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::prepare::Prepared;

/// The log file names in a task's directory (the old server's names).
pub const STDOUT_LOG: &str = "blanket.stdout.log";
/// See [`STDOUT_LOG`].
pub const STDERR_LOG: &str = "blanket.stderr.log";
/// How long a process group gets between SIGTERM and SIGKILL.
const GRACE_PERIOD: Duration = Duration::from_secs(3);
/// How long to wait for a killed group's processes to be gone.
const GROUP_EXIT_DEADLINE: Duration = Duration::from_secs(2);
/// The stdout line prefix a task prints to report progress.
const PROGRESS_PREFIX: &[u8] = b"BLANKET_PROGRESS=";
/// The longest partial line kept to look for the progress prefix.
const MAX_LINE_SCAN: usize = 4096;

/// How a task's process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this code.
    Exited(i32),
    /// A signal it did not ask for ended it.
    Signaled(i32),
    /// Its time ran out; the group was killed.
    TimedOut,
    /// It was stopped on request (cancel, force stop); the group was killed.
    Stopped,
}

/// A started task process.
pub struct Running {
    child: Child,
    pid: u32,
    progress: watch::Receiver<Option<u8>>,
    output: tokio::task::JoinHandle<()>,
}

/// Starts the prepared command in a new process group with its output going to the logs.
///
/// # Errors
/// A message for the task's `reason` when the process cannot start.
pub async fn start(prepared: &Prepared) -> Result<Running, String> {
    let stderr_path = prepared.directory.join(STDERR_LOG);
    let stderr = std::fs::File::create(&stderr_path)
        .map_err(|error| format!("cannot create {}: {error}", stderr_path.display()))?;
    let stdout_path = prepared.directory.join(STDOUT_LOG);
    let stdout_file = tokio::fs::File::create(&stdout_path)
        .await
        .map_err(|error| format!("cannot create {}: {error}", stdout_path.display()))?;
    let mut command = tokio::process::Command::new(&prepared.program);
    command
        .args(&prepared.args)
        .current_dir(&prepared.directory)
        .envs(&prepared.environment)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        // Its own group, so cancel and timeout reach every process the task started.
        .process_group(0);
    let mut child = command
        .spawn()
        .map_err(|error| format!("cannot start {}: {error}", prepared.program))?;
    let pid = child.id().unwrap_or(0);
    let (progress_sender, progress) = watch::channel(None);
    let output = match child.stdout.take() {
        Some(stdout) => tokio::spawn(copy_stdout(stdout, stdout_file, progress_sender)),
        None => tokio::spawn(async {}),
    };
    Ok(Running {
        child,
        pid,
        progress,
        output,
    })
}

impl Running {
    /// The process id, which is also its process group id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Progress the task printed, newest first; only the latest value is kept.
    pub fn progress(&self) -> watch::Receiver<Option<u8>> {
        self.progress.clone()
    }

    /// Waits for the process to end, or for `timeout` (from now) or `stop` to end it.
    /// The whole group is gone and the logs are flushed when this returns.
    pub async fn wait(mut self, timeout: Duration, stop: &CancellationToken) -> Outcome {
        let outcome = tokio::select! {
            status = self.child.wait() => match status {
                Ok(status) => exit_outcome(status),
                Err(error) => {
                    tracing::warn!(pid = self.pid, error = %error, "waiting for a task failed");
                    Outcome::Signaled(0)
                }
            },
            () = tokio::time::sleep(timeout) => {
                terminate(&mut self.child, self.pid).await;
                Outcome::TimedOut
            }
            () = stop.cancelled() => {
                terminate(&mut self.child, self.pid).await;
                Outcome::Stopped
            }
        };
        // Whatever the leader did, nothing it started outlives the task.
        kill_group(self.pid, Signal::SIGKILL);
        wait_group_gone(self.pid).await;
        let _ = self.output.await;
        outcome
    }
}

fn exit_outcome(status: std::process::ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited(code),
        (None, Some(signal)) => Outcome::Signaled(signal),
        (None, None) => Outcome::Signaled(0),
    }
}

/// SIGTERM to the group, then SIGKILL if the leader has not exited within the grace period.
async fn terminate(child: &mut Child, pid: u32) {
    kill_group(pid, Signal::SIGTERM);
    if tokio::time::timeout(GRACE_PERIOD, child.wait())
        .await
        .is_err()
    {
        kill_group(pid, Signal::SIGKILL);
        let _ = child.wait().await;
    }
}

fn kill_group(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 1 {
        return;
    }
    match killpg(Pid::from_raw(raw), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(error) => {
            tracing::warn!(pid, error = %error, "could not signal a task's process group")
        }
    }
}

/// Waits, with a deadline, until no process of the group is left.
async fn wait_group_gone(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    let deadline = tokio::time::Instant::now() + GROUP_EXIT_DEADLINE;
    // The kernel offers no notification for "group empty"; probing with signal 0 for a
    // bounded time after SIGKILL is the portable way, and it ends within milliseconds.
    while killpg(Pid::from_raw(raw), None).is_ok() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Copies stdout to its log as it comes and publishes the last `BLANKET_PROGRESS=N` seen.
async fn copy_stdout(
    mut stdout: tokio::process::ChildStdout,
    mut file: tokio::fs::File,
    progress: watch::Sender<Option<u8>>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut line = Vec::new();
    loop {
        let read = match stdout.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = &buffer[..read];
        if let Err(error) = file.write_all(chunk).await {
            tracing::warn!(error = %error, "cannot write a task's stdout log");
        }
        for &byte in chunk {
            if byte == b'\n' {
                if let Some(value) = parse_progress(&line) {
                    progress.send_replace(Some(value));
                }
                line.clear();
            } else if line.len() < MAX_LINE_SCAN {
                line.push(byte);
            }
        }
    }
    if let Some(value) = parse_progress(&line) {
        progress.send_replace(Some(value));
    }
    let _ = file.flush().await;
}

fn parse_progress(line: &[u8]) -> Option<u8> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let value = line.strip_prefix(PROGRESS_PREFIX)?;
    let text = std::str::from_utf8(value).ok()?.trim();
    let number: f64 = text.parse().ok()?;
    (0.0..=100.0)
        .contains(&number)
        .then(|| number.round() as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines_are_recognised() {
        assert_eq!(parse_progress(b"BLANKET_PROGRESS=42"), Some(42));
        assert_eq!(parse_progress(b"BLANKET_PROGRESS= 7.6\r"), Some(8));
        assert_eq!(parse_progress(b"BLANKET_PROGRESS=101"), None);
        assert_eq!(parse_progress(b"progress 42"), None);
        assert_eq!(parse_progress(b"BLANKET_PROGRESS=abc"), None);
    }

    fn prepared(directory: &std::path::Path, script: &str) -> Prepared {
        Prepared {
            program: "bash".into(),
            args: vec!["-c".into(), script.into()],
            directory: directory.to_path_buf(),
            environment: std::collections::BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn output_goes_to_the_logs_and_the_exit_code_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(&prepared(
            dir.path(),
            "echo out; echo err >&2; echo BLANKET_PROGRESS=50; exit 3",
        ))
        .await
        .unwrap();
        let progress = running.progress();
        let outcome = running
            .wait(Duration::from_secs(10), &CancellationToken::new())
            .await;
        assert_eq!(outcome, Outcome::Exited(3));
        assert_eq!(
            std::fs::read_to_string(dir.path().join(STDOUT_LOG)).unwrap(),
            "out\nBLANKET_PROGRESS=50\n"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(STDERR_LOG)).unwrap(),
            "err\n"
        );
        assert_eq!(*progress.borrow(), Some(50));
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(&prepared(dir.path(), "sleep 30 & sleep 30; wait"))
            .await
            .unwrap();
        let group = running.pid();
        let outcome = running
            .wait(Duration::from_millis(200), &CancellationToken::new())
            .await;
        assert_eq!(outcome, Outcome::TimedOut);
        let group_alive = killpg(Pid::from_raw(i32::try_from(group).unwrap()), None).is_ok();
        assert!(!group_alive, "a process of the task's group survived");
    }

    #[tokio::test]
    async fn stop_ends_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let running = start(&prepared(dir.path(), "trap '' TERM; sleep 30"))
            .await
            .unwrap();
        let stop = CancellationToken::new();
        stop.cancel();
        assert_eq!(
            running.wait(Duration::from_secs(30), &stop).await,
            Outcome::Stopped
        );
    }
}
