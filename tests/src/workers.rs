//! Worker-runtime helpers on top of the harness: hand-started `blanket worker` processes, a
//! `blanket serve` that keeps its port across a crash and may run a local pool, and a look at
//! `/proc` for the processes a task or a data dir left behind. Linux only, like `/proc`.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::blocking::Client;
use serde_json::Value;

use crate::{Reply, Sandbox, Server, canonical, free_port, new_worker_id, wait_for_exit};

/// How often the helpers here probe; slower than the harness's, since many tests poll at once
/// on two cores and each probe is an HTTP request.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(25);
/// How long a worker or a server may take to start and register.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping process may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// The example types shipped with Blanket, for a `--types-dir` that also holds test types.
pub const EXAMPLE_TYPES: [(&str, &str); 5] = [
    (
        "echo_task.toml",
        include_str!("../../examples/types/echo_task.toml"),
    ),
    (
        "fail_task.toml",
        include_str!("../../examples/types/fail_task.toml"),
    ),
    (
        "sleep_task.toml",
        include_str!("../../examples/types/sleep_task.toml"),
    ),
    (
        "timeout_task.toml",
        include_str!("../../examples/types/timeout_task.toml"),
    ),
    (
        "wordcount_task.toml",
        include_str!("../../examples/types/wordcount_task.toml"),
    ),
];

/// Calls `probe` every [`PROBE_INTERVAL`] until it gives `Some`, or panics naming `what`
/// once `timeout` has passed.
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(PROBE_INTERVAL);
    }
}

/// A running coordinator the tests talk to over HTTP: the harness's [`Server`] or a [`Serve`].
pub trait Blanket {
    /// `http://127.0.0.1:PORT` followed by `path`.
    fn endpoint(&self, path: &str) -> String;

    /// The HTTP client.
    fn client(&self) -> &Client;

    /// Sends `method path` with no body and reads the whole answer.
    fn call(&self, method: Method, path: &str) -> Reply {
        read_reply(self.client().request(method, self.endpoint(path)))
    }

    /// Sends `method path` with a JSON body and reads the whole answer.
    fn call_json(&self, method: Method, path: &str, body: &Value) -> Reply {
        read_reply(
            self.client()
                .request(method, self.endpoint(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    /// Submits a task (the JSON body of `POST /task/`) and returns it, asserting 201.
    fn enqueue(&self, body: &Value) -> Value {
        let reply = self.call_json(Method::POST, "/task/", body);
        reply.expect_status(201);
        reply.json()
    }

    /// `GET /task/:id`, asserting 200.
    fn task(&self, id: &str) -> Value {
        let reply = self.call(Method::GET, &format!("/task/{id}"));
        reply.expect_status(200);
        reply.json()
    }

    /// `GET /worker/:id`, asserting 200.
    fn worker(&self, id: &str) -> Value {
        let reply = self.call(Method::GET, &format!("/worker/{id}"));
        reply.expect_status(200);
        reply.json()
    }

    /// `GET /task/:id/events`: the task's audit trail, asserting 200.
    fn task_events(&self, id: &str) -> Vec<Value> {
        let reply = self.call(Method::GET, &format!("/task/{id}/events"));
        reply.expect_status(200);
        match reply.json() {
            Value::Array(events) => events,
            other => panic!("the audit trail is not a list: {other}"),
        }
    }

    /// Polls the task until `accept` takes it; panics with the last record after `timeout`.
    fn wait_for_task(
        &self,
        id: &str,
        timeout: Duration,
        what: &str,
        mut accept: impl FnMut(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.task(id);
            if accept(&last) {
                return last;
            }
            assert!(
                Instant::now() < deadline,
                "gave up after {timeout:?} waiting for task {id} to be {what}; it is {last}"
            );
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    /// Polls the task until it is in `state`; panics with the last record after `timeout`.
    fn wait_for_state(&self, id: &str, state: &str, timeout: Duration) -> Value {
        self.wait_for_task(id, timeout, state, |task| task["state"] == state)
    }

    /// Polls the task until it is in a terminal state and returns it.
    fn wait_until_finished(&self, id: &str, timeout: Duration) -> Value {
        self.wait_for_task(id, timeout, "finished", |task| {
            matches!(
                task["state"].as_str(),
                Some("SUCCESS" | "ERROR" | "STOPPED" | "TIMEDOUT")
            )
        })
    }

    /// Polls the worker until its `status` is `status`; panics with the last record.
    fn wait_for_worker_status(&self, id: &str, status: &str, timeout: Duration) -> Value {
        let mut last = Value::Null;
        let deadline = Instant::now() + timeout;
        loop {
            let reply = self.call(Method::GET, &format!("/worker/{id}"));
            if reply.status == 200 {
                last = reply.json();
                if last["status"] == status {
                    return last;
                }
            }
            assert!(
                Instant::now() < deadline,
                "gave up after {timeout:?} waiting for worker {id} to be {status}; it is {last}"
            );
            std::thread::sleep(PROBE_INTERVAL);
        }
    }
}

impl Blanket for Server {
    fn endpoint(&self, path: &str) -> String {
        self.url(path)
    }

    fn client(&self) -> &Client {
        self.http()
    }
}

/// How a [`Serve`] is started; collect settings, then call [`ServeBuilder::start`].
pub struct ServeBuilder {
    sandbox: Sandbox,
    workers: usize,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
}

impl ServeBuilder {
    /// Runs a local pool of `count` workers (`--workers COUNT`); 0 by default.
    pub fn workers(mut self, count: usize) -> ServeBuilder {
        self.workers = count;
        self
    }

    /// Adds `--types-dir` with a new sandbox folder holding `files` (name, text).
    pub fn types(mut self, files: &[(&str, &str)]) -> ServeBuilder {
        let dir = self.sandbox.write_folder("types", files);
        self.args.push("--types-dir".into());
        self.args.push(dir.into_os_string());
        self
    }

    /// Sets an environment variable of the server process (and so of its launched workers).
    pub fn env(mut self, name: &str, value: &str) -> ServeBuilder {
        self.env.push((name.to_string(), value.to_string()));
        self
    }

    /// Starts the server on a free port and waits until it answers.
    pub fn start(self) -> Serve {
        let mut serve = Serve {
            sandbox: self.sandbox,
            workers: self.workers,
            args: self.args,
            env: self.env,
            port: 0,
            process: None,
            http: Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(60))
                .build()
                .expect("building the HTTP client"),
        };
        for _ in 0..5 {
            serve.port = free_port();
            if serve.launch() {
                return serve;
            }
        }
        panic!(
            "blanket serve could not start on a free port in 5 attempts\n{}",
            serve.log()
        );
    }
}

/// A `blanket serve` that, unlike the harness's [`Server`], keeps its port when started again
/// (a worker must find a crashed coordinator at the same address) and may run a local pool.
/// Stopped with SIGTERM (then SIGKILL) on drop.
pub struct Serve {
    sandbox: Sandbox,
    workers: usize,
    args: Vec<OsString>,
    env: Vec<(String, String)>,
    port: u16,
    process: Option<Child>,
    http: Client,
}

impl Serve {
    /// Settings for a server on a new sandbox.
    pub fn builder() -> ServeBuilder {
        ServeBuilder {
            sandbox: Sandbox::new(),
            workers: 0,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// The port, the same across restarts.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The sandbox the server runs in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.sandbox.data_dir()
    }

    /// The pid of the running server.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("the server is running").id()
    }

    /// Everything the server printed so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// Changes the pool size for the next start.
    pub fn set_workers(&mut self, count: usize) {
        self.workers = count;
    }

    /// Kills the server at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.process.take().expect("the server is running");
        // An error only means it is dead already.
        let _ = child.kill();
        child.wait().expect("waiting for the killed server");
    }

    /// Sends SIGTERM and waits up to `timeout` for the exit; `None` (after killing it) when
    /// it took longer.
    pub fn terminate_within(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.process.take().expect("the server is running");
        signal(child.id(), libc::SIGTERM);
        let status = wait_for_exit(&mut child, timeout);
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        status
    }

    /// Starts the server again on the same port, data dir and settings, once it was stopped.
    pub fn start_again(&mut self) {
        assert!(self.process.is_none(), "the server is still running");
        // The old listener is closed, but give a port another process grabbed a moment.
        let deadline = Instant::now() + START_TIMEOUT;
        while !self.launch() {
            assert!(
                Instant::now() < deadline,
                "port {} stayed taken\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(PROBE_INTERVAL);
        }
    }

    fn log_path(&self) -> PathBuf {
        self.sandbox.root().join("serve.log")
    }

    /// Starts `blanket serve` on `self.port`; `false` when the port was taken.
    fn launch(&mut self) -> bool {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("opening the server log");
        let mut command = self.sandbox.command();
        command
            .arg("serve")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--data-dir")
            .arg(self.sandbox.data_dir())
            .arg("--workers")
            .arg(self.workers.to_string())
            .args(&self.args)
            .envs(self.env.iter().map(|(name, value)| (name, value)))
            .stdout(Stdio::from(
                log.try_clone().expect("sharing the server log file"),
            ))
            .stderr(Stdio::from(log));
        let child = command.spawn().expect("starting blanket serve");
        self.process = Some(child);
        let expected = canonical(&self.sandbox.data_dir());
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let child = self.process.as_mut().expect("the server was just started");
            if let Ok(Some(status)) = child.try_wait() {
                self.process = None;
                let log = self.log();
                if log.contains("already in use") {
                    return false;
                }
                panic!("blanket serve exited with {status} while starting\n{log}");
            }
            let data_dir = self
                .http
                .get(self.endpoint("/config/"))
                .timeout(Duration::from_secs(2))
                .send()
                .ok()
                .and_then(|response| response.json::<Value>().ok())
                .and_then(|config| config["data_dir"].as_str().map(PathBuf::from));
            // Another test's server may have taken the port: make sure it is ours.
            if data_dir.is_some_and(|dir| canonical(&dir) == expected) {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "blanket serve did not answer within {START_TIMEOUT:?}\n{}",
                self.log()
            );
            std::thread::sleep(PROBE_INTERVAL);
        }
    }
}

impl Blanket for Serve {
    fn endpoint(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn client(&self) -> &Client {
        &self.http
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            signal(child.id(), libc::SIGTERM);
            if wait_for_exit(&mut child, STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        // Whatever a crashed run left behind (launched workers, tasks) goes with the test.
        kill_processes_of(&self.sandbox.data_dir());
    }
}

/// A hand-started `blanket worker --server URL --tags TAGS --id ID --logfile PATH`.
/// On drop it and the process groups of its tasks are killed.
pub struct WorkerProcess {
    id: String,
    logfile: PathBuf,
    child: Option<Child>,
}

impl WorkerProcess {
    /// Starts a worker for the coordinator at `server_url` with `tags` (none: no `--tags`),
    /// its log in `sandbox`, and returns at once.
    pub fn spawn(sandbox: &Sandbox, server_url: &str, tags: &[&str]) -> WorkerProcess {
        let id = new_worker_id();
        let logfile = sandbox.root().join(format!("worker-{id}.log"));
        let mut command = sandbox.command();
        command
            .arg("worker")
            .arg("--server")
            .arg(server_url)
            .arg("--id")
            .arg(&id)
            .arg("--logfile")
            .arg(&logfile)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if !tags.is_empty() {
            command.arg("--tags").arg(tags.join(","));
        }
        let child = command.spawn().expect("starting blanket worker");
        WorkerProcess {
            id,
            logfile,
            child: Some(child),
        }
    }

    /// Starts a worker for `blanket` and waits until it has registered and runs.
    pub fn start(blanket: &impl Blanket, sandbox: &Sandbox, tags: &[&str]) -> WorkerProcess {
        let worker = WorkerProcess::spawn(sandbox, &blanket.endpoint(""), tags);
        blanket.wait_for_worker_status(&worker.id, "running", START_TIMEOUT);
        worker
    }

    /// The worker's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The worker's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the worker is running").id()
    }

    /// The worker's own log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.logfile).unwrap_or_default()
    }

    /// Sends SIGTERM (a first one means "stop after the current task").
    pub fn terminate(&self) {
        signal(self.pid(), libc::SIGTERM);
    }

    /// Kills the worker at once (SIGKILL), as a crash would, and reaps it. Its tasks keep
    /// running in their own process groups.
    pub fn kill(&mut self) {
        let mut child = self.child.take().expect("the worker is running");
        let _ = child.kill();
        child.wait().expect("waiting for the killed worker");
    }

    /// Waits for the worker to exit on its own; panics (showing its log) after `timeout`.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.child.take().expect("the worker is running");
        match wait_for_exit(&mut child, timeout) {
            Some(status) => status,
            None => {
                self.child = Some(child);
                panic!(
                    "worker {} did not exit within {timeout:?}\n{}",
                    self.id,
                    self.log()
                );
            }
        }
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let tasks = children_of(child.id());
            let _ = child.kill();
            let _ = child.wait();
            for task in tasks {
                kill_group(task);
            }
        }
    }
}

/// One process seen in `/proc`.
#[derive(Clone, Debug)]
pub struct ProcessInfo {
    /// Its pid.
    pub pid: u32,
    /// Its parent's pid.
    pub parent: u32,
    /// Its process group.
    pub group: u32,
    /// Its state letter (`R`, `S`, `Z`...).
    pub state: char,
    /// Its command line, arguments joined by spaces.
    pub command: String,
    /// Its working directory, when readable.
    pub cwd: Option<PathBuf>,
}

/// Every process visible in `/proc`, zombies excluded (they are dead, just not yet reaped by
/// whoever inherited them).
pub fn live_processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(process_info)
        .filter(|process| process.state != 'Z' && process.state != 'X')
        .collect()
}

/// The live processes of process group `group` (what `kill(-group, 0)` probes, minus zombies).
pub fn group_members(group: u32) -> Vec<ProcessInfo> {
    live_processes()
        .into_iter()
        .filter(|process| process.group == group)
        .collect()
}

/// The live processes that belong to a data dir: launched workers (their command line names
/// it, through their log file) and tasks (they run inside it).
pub fn processes_of(data_dir: &Path) -> Vec<ProcessInfo> {
    let real = canonical(data_dir);
    let spellings = [data_dir.display().to_string(), real.display().to_string()];
    live_processes()
        .into_iter()
        .filter(|process| {
            spellings
                .iter()
                .any(|spelling| process.command.contains(spelling.as_str()))
                || process
                    .cwd
                    .as_ref()
                    .is_some_and(|cwd| cwd.starts_with(&real) || cwd.starts_with(data_dir))
        })
        .collect()
}

/// SIGKILLs every process [`processes_of`] finds for `data_dir`, with its process group
/// unless that is the test's own.
pub fn kill_processes_of(data_dir: &Path) {
    let own_group = process_info(std::process::id()).map(|process| process.group);
    for process in processes_of(data_dir) {
        if Some(process.group) != own_group {
            kill_group(process.group);
        }
        signal(process.pid, libc::SIGKILL);
    }
}

/// SIGKILLs process group `group` (0 and 1 are ignored).
pub fn kill_group(group: u32) {
    if group > 1 {
        let Ok(group) = libc::pid_t::try_from(group) else {
            return;
        };
        send(-group, libc::SIGKILL);
    }
}

/// Sends `signal` to process `pid`.
pub fn signal(pid: u32, signal: libc::c_int) {
    if let Ok(pid) = libc::pid_t::try_from(pid) {
        send(pid, signal);
    }
}

/// The live children of process `parent`.
pub fn children_of(parent: u32) -> Vec<u32> {
    live_processes()
        .into_iter()
        .filter(|process| process.parent == parent)
        .map(|process| process.pid)
        .collect()
}

/// The user plus system CPU time process `pid` has used so far, from `/proc/PID/stat`
/// (counted in USER_HZ ticks, which Linux fixes at 100 a second for user space).
pub fn cpu_time(pid: u32) -> Duration {
    let ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields start after the command's closing parenthesis: the state, then utime is
            // the 12th and stime the 13th.
            let (_, rest) = stat.rsplit_once(')')?;
            let mut fields = rest.split_whitespace().skip(11);
            let user: u64 = fields.next()?.parse().ok()?;
            let system: u64 = fields.next()?.parse().ok()?;
            Some(user + system)
        })
        .expect("reading the CPU time of a live process from /proc");
    Duration::from_millis(ticks * 10)
}

/// A task's `pid` as a process group id, asserting it was set.
pub fn task_group(task: &Value) -> u32 {
    let pid = task["pid"]
        .as_u64()
        .and_then(|pid| u32::try_from(pid).ok())
        .unwrap_or(0);
    assert!(pid > 1, "the task has no pid: {task}");
    pid
}

/// The task's `resultDir`.
pub fn result_dir(task: &Value) -> PathBuf {
    PathBuf::from(task["resultDir"].as_str().expect("a task has a resultDir"))
}

/// Reads a file of the task's directory (empty when missing).
pub fn read_result(task: &Value, name: &str) -> String {
    std::fs::read_to_string(result_dir(task).join(name)).unwrap_or_default()
}

/// The events an SSE body holds, framed per the SSE rules: (`event`, `id`, `data` lines).
pub fn sse_events(body: &str) -> Vec<(String, String, Vec<String>)> {
    let mut events = Vec::new();
    let (mut name, mut id, mut data, mut any) = (String::new(), String::new(), Vec::new(), false);
    for line in body.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() {
            if any {
                events.push((
                    std::mem::take(&mut name),
                    std::mem::take(&mut id),
                    std::mem::take(&mut data),
                ));
                any = false;
            }
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_string();
        match field {
            "event" => name = value,
            "id" => id = value,
            "data" => data.push(value),
            _ => {}
        }
        any = true;
    }
    events
}

fn process_info(pid: u32) -> Option<ProcessInfo> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the fields start after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let parent = fields.next()?.parse().ok()?;
    let group = fields.next()?.parse().ok()?;
    let command = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| {
            String::from_utf8_lossy(&bytes)
                .split('\0')
                .filter(|part| !part.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok();
    Some(ProcessInfo {
        pid,
        parent,
        group,
        state,
        command,
        cwd,
    })
}

fn read_reply(request: reqwest::blocking::RequestBuilder) -> Reply {
    let response = request.send().expect("sending a request to the server");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .expect("reading the body of an answer")
        .to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

#[expect(
    unsafe_code,
    reason = "std can only SIGKILL its own children; other signals and process groups need libc::kill"
)]
fn send(target: libc::pid_t, signal: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(target, signal);
    }
}
