//! Worker processes this coordinator launches and supervises: the default pool, `POST
//! /worker/`, restarts. Each is a real `blanket worker` child in its own process group that
//! talks to the coordinator over HTTP like any other; this module only starts and reaps them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Mutex;

use tokio::process::Child;

use crate::error::{Error, Result};
use crate::id::WorkerId;

/// How to start a worker process: the program and the arguments before the worker's own.
#[derive(Clone, Debug)]
pub struct WorkerLauncher {
    /// The executable, e.g. the running `blanket` binary.
    pub program: PathBuf,
    /// Arguments that select its worker mode, e.g. `["worker"]`.
    pub leading_args: Vec<String>,
    /// The URL the worker reaches this coordinator at.
    pub server_url: String,
    /// The token the worker must send, passed through its environment, never its arguments.
    pub token: Option<String>,
}

/// What a launched worker is asked to be.
#[derive(Clone, Debug)]
pub struct LaunchSpec {
    pub id: WorkerId,
    pub tags: Vec<String>,
    pub check_interval: f64,
    pub logfile: PathBuf,
}

/// The running children, by worker id.
#[derive(Default)]
pub(crate) struct Children {
    // std Mutex: held only to insert or remove a pid, never across `.await`.
    pids: Mutex<HashMap<WorkerId, u32>>,
}

impl WorkerLauncher {
    /// Starts the worker process; the child is returned so the caller can reap it.
    pub(crate) fn spawn(&self, spec: &LaunchSpec) -> Result<Child> {
        if let Some(parent) = spec.logfile.parent() {
            std::fs::create_dir_all(parent).map_err(|source| {
                Error::io(
                    format!("creating the worker log folder {}", parent.display()),
                    source,
                )
            })?;
        }
        let mut command = tokio::process::Command::new(&self.program);
        command
            .args(&self.leading_args)
            .arg("--id")
            .arg(spec.id.to_string())
            .arg("--server")
            .arg(&self.server_url)
            .arg("--tags")
            .arg(spec.tags.join(","))
            .arg("--check-interval")
            .arg(spec.check_interval.to_string())
            .arg("--logfile")
            .arg(&spec.logfile)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: a Ctrl-C meant for the coordinator's terminal must not reach it;
            // the coordinator stops its workers itself, in order.
            .process_group(0)
            .kill_on_drop(false);
        match &self.token {
            Some(token) => command.env("BLANKET_TOKEN", token),
            None => command.env_remove("BLANKET_TOKEN"),
        };
        command.spawn().map_err(|source| {
            Error::io(
                format!("starting a worker with {}", self.program.display()),
                source,
            )
        })
    }
}

impl Children {
    pub(crate) fn insert(&self, id: WorkerId, pid: u32) {
        lock(&self.pids).insert(id, pid);
    }

    /// Forgets the child `pid` of worker `id`; `false` when a newer child (a restart) has
    /// taken the id since, which is then left alone.
    pub(crate) fn remove(&self, id: WorkerId, pid: u32) -> bool {
        let mut pids = lock(&self.pids);
        if pids.get(&id) == Some(&pid) {
            pids.remove(&id);
            true
        } else {
            false
        }
    }

    pub(crate) fn contains(&self, id: WorkerId) -> bool {
        lock(&self.pids).contains_key(&id)
    }

    pub(crate) fn all(&self) -> Vec<(WorkerId, u32)> {
        lock(&self.pids)
            .iter()
            .map(|(id, pid)| (*id, *pid))
            .collect()
    }
}

/// Kills a process group with SIGKILL: a launched worker's (it leads its own group), or a
/// task's (each task leads its own group too, so killing the worker alone would orphan it).
pub(crate) fn kill_group(pid: u32) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if raw <= 1 {
        return;
    }
    match nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(raw),
        nix::sys::signal::Signal::SIGKILL,
    ) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
        Err(error) => tracing::warn!(pid, error = %error, "could not kill a process group"),
    }
}

/// The log file of a worker from the configured template (`{{.Id}}` is the worker's id).
pub fn logfile_for(template: &str, id: WorkerId) -> PathBuf {
    PathBuf::from(template.replace(crate::config::WORKER_ID_PLACEHOLDER, &id.to_string()))
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The map is changed by whole inserts and removes, so a poisoned lock holds nothing torn.
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
