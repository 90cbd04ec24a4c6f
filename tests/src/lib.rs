//! Black-box harness: starts the real `blanket` binary on a temporary data dir and a free port,
//! waits until it answers, and talks to it over HTTP (reqwest, or raw bytes where headers and
//! SSE framing matter). It never uses `cargo run`, the user's own folders or a fixed port.

pub mod cli;
pub mod proof;
pub mod workers;

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a server may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a stopping server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often [`poll_until`] probes.
const POLL_INTERVAL: Duration = Duration::from_millis(10);
/// How many times a start is retried when another process took the chosen port meanwhile.
const START_ATTEMPTS: usize = 5;

/// The folder holding the `blanket` binary under test.
///
/// `BLANKET_TEST_BIN_DIR` when set (`cargo xtask test` sets it), else `debug` in the target
/// dir (`CARGO_TARGET_DIR`, relative to the workspace root when relative, or `target/`).
pub fn bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("BLANKET_TEST_BIN_DIR").filter(|dir| !dir.is_empty()) {
        return PathBuf::from(dir);
    }
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate lives inside the workspace root")
        .to_path_buf();
    let target = match std::env::var_os("CARGO_TARGET_DIR").filter(|dir| !dir.is_empty()) {
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    target.join("debug")
}

/// The `blanket` binary under test; panics with the build command when it is missing.
pub fn blanket_binary() -> PathBuf {
    let binary = bin_dir().join("blanket");
    assert!(
        binary.is_file(),
        "{} does not exist: build it first with `cargo build -p blanket-cli` (or set BLANKET_TEST_BIN_DIR)",
        binary.display()
    );
    binary
}

/// A port that was free a moment ago (bound on 127.0.0.1:0, read, released).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0 for a free port");
    listener
        .local_addr()
        .expect("reading the address of a bound listener")
        .port()
}

/// Calls `probe` every few milliseconds until it gives `Some`, or panics naming `what` once
/// `timeout` has passed.
pub fn poll_until<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A fresh worker id (24 hex characters) no other call in this process returns.
pub fn new_worker_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let count = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{:08x}{:016x}", std::process::id(), count)
}

/// The private folders of one test: home, XDG dirs and the data dir, all removed on drop.
pub struct Sandbox {
    root: tempfile::TempDir,
}

impl Sandbox {
    /// A new sandbox under the system's temp dir.
    pub fn new() -> Sandbox {
        let root = tempfile::Builder::new()
            .prefix("blanket-blackbox-")
            .tempdir()
            .expect("creating a temp dir for the test");
        for name in ["home", "config", "share", "state", "cache", "data"] {
            std::fs::create_dir_all(root.path().join(name)).expect("creating a sandbox folder");
        }
        Sandbox { root }
    }

    /// The sandbox's root folder.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// The data dir passed to the server.
    pub fn data_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The SQLite file in the data dir (the server's default `database`).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir().join("blanket.db")
    }

    /// Writes `files` (name, text) into a new folder `name` of the sandbox and returns it.
    pub fn write_folder(&self, name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = self.root.path().join(name);
        std::fs::create_dir_all(&dir).expect("creating a folder in the sandbox");
        for (file_name, text) in files {
            std::fs::write(dir.join(file_name), text).expect("writing a file in the sandbox");
        }
        dir
    }

    /// A `blanket` command whose environment points every user folder into the sandbox and
    /// carries no `BLANKET_*` variable of the caller.
    pub fn command(&self) -> Command {
        let mut command = Command::new(blanket_binary());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("BLANKET_") {
                command.env_remove(name);
            }
        }
        command
            .env("HOME", self.root.path().join("home"))
            .env("XDG_CONFIG_HOME", self.root.path().join("config"))
            .env("XDG_DATA_HOME", self.root.path().join("share"))
            .env("XDG_STATE_HOME", self.root.path().join("state"))
            .env("XDG_CACHE_HOME", self.root.path().join("cache"))
            .env_remove("RUST_LOG")
            .stdin(Stdio::null());
        command
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

/// How a [`Server`] is started; collect settings, then call [`ServerBuilder::start`].
pub struct ServerBuilder {
    sandbox: Sandbox,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    token: Option<String>,
    open_files: Option<u64>,
}

impl ServerBuilder {
    /// The sandbox the server will run in, to prepare before it starts.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// Adds `--types-dir` with a new sandbox folder holding `files` (name, TOML text).
    pub fn types(mut self, files: &[(&str, &str)]) -> ServerBuilder {
        let dir = self.sandbox.write_folder("types", files);
        self.args.push("--types-dir".into());
        self.args.push(dir.into_os_string());
        self
    }

    /// Starts with `--token TOKEN`; the server's own client then sends it.
    pub fn token(mut self, token: &str) -> ServerBuilder {
        self.args.push("--token".into());
        self.args.push(token.into());
        self.token = Some(token.to_string());
        self
    }

    /// Starts with `BLANKET_TOKEN=TOKEN` in the environment; the server's client sends it.
    pub fn token_from_env(mut self, token: &str) -> ServerBuilder {
        self.env.push(("BLANKET_TOKEN".into(), token.into()));
        self.token = Some(token.to_string());
        self
    }

    /// Sets an environment variable of the server process.
    pub fn env(mut self, name: &str, value: &str) -> ServerBuilder {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Starts the server with at most `limit` open files (its soft and hard `RLIMIT_NOFILE`).
    pub fn open_files_limit(mut self, limit: u64) -> ServerBuilder {
        self.open_files = Some(limit);
        self
    }

    /// Starts the server and waits until it answers.
    pub fn start(self) -> Server {
        let mut server = Server {
            sandbox: self.sandbox,
            args: self.args,
            env: self.env,
            token: self.token,
            open_files: self.open_files,
            process: None,
            port: 0,
            http: http_client(None),
        };
        server.http = http_client(server.token.as_deref());
        server.launch();
        server
    }
}

/// A running `blanket serve` on its own sandbox; stopped with SIGTERM (then SIGKILL) on drop.
pub struct Server {
    sandbox: Sandbox,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    token: Option<String>,
    open_files: Option<u64>,
    process: Option<Child>,
    port: u16,
    http: reqwest::blocking::Client,
}

impl Server {
    /// A server with default settings (bundled example types, no token).
    pub fn start() -> Server {
        Server::builder().start()
    }

    /// Settings for a server on a new sandbox.
    pub fn builder() -> ServerBuilder {
        ServerBuilder {
            sandbox: Sandbox::new(),
            args: Vec::new(),
            env: Vec::new(),
            token: None,
            open_files: None,
        }
    }

    /// The port the server listens on now (a restart may pick another).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.process.as_ref().expect("the server is running").id()
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The server's own origin, as a browser page it served would send it.
    pub fn origin(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The sandbox the server runs in.
    pub fn sandbox(&self) -> &Sandbox {
        &self.sandbox
    }

    /// The data dir.
    pub fn data_dir(&self) -> PathBuf {
        self.sandbox.data_dir()
    }

    /// Where task directories live.
    pub fn results_dir(&self) -> PathBuf {
        self.sandbox.data_dir().join("results")
    }

    /// The HTTP client, sending the token when the server has one; never follows redirects.
    pub fn http(&self) -> &reqwest::blocking::Client {
        &self.http
    }

    /// Sends `request` and reads the whole answer.
    pub fn send(&self, request: reqwest::blocking::RequestBuilder) -> Reply {
        Reply::read(request.send().expect("sending a request to the server"))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Reply {
        self.send(self.http.get(self.url(path)))
    }

    /// `POST path` with a JSON body given as text.
    pub fn post_json(&self, path: &str, body: &str) -> Reply {
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    /// `POST path` with a multipart body of `parts` (see [`multipart_body`]).
    pub fn post_multipart(&self, path: &str, parts: &[MultipartPart<'_>]) -> Reply {
        let (content_type, body) = multipart_body(parts);
        self.send(
            self.http
                .post(self.url(path))
                .header("content-type", content_type)
                .body(body),
        )
    }

    /// `POST path` with no body.
    pub fn post(&self, path: &str) -> Reply {
        self.send(self.http.post(self.url(path)))
    }

    /// `PUT path` with no body.
    pub fn put(&self, path: &str) -> Reply {
        self.send(self.http.put(self.url(path)))
    }

    /// `PUT path` with a JSON body given as text.
    pub fn put_json(&self, path: &str, body: &str) -> Reply {
        self.send(
            self.http
                .put(self.url(path))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Reply {
        self.send(self.http.delete(self.url(path)))
    }

    /// Submits `body` (the task JSON) and returns the task, asserting 201.
    pub fn submit(&self, body: &Value) -> Value {
        let reply = self.post_json("/task/", &body.to_string());
        reply.expect_status(201);
        reply.json()
    }

    /// Submits `body`, asserting 201, and returns the new task's id.
    pub fn submit_id(&self, body: &Value) -> String {
        self.submit(body)["id"]
            .as_str()
            .expect("a submitted task has an id")
            .to_string()
    }

    /// Submits `body` `count` times, asserting 201 each time, and returns the ids.
    pub fn submit_many(&self, body: &Value, count: usize) -> Vec<String> {
        (0..count).map(|_| self.submit_id(body)).collect()
    }

    /// Registers a new worker with `tags` and returns its id.
    pub fn register_worker(&self, tags: &[&str]) -> String {
        let id = new_worker_id();
        let body = serde_json::json!({ "tags": tags, "pid": 1 });
        self.put_json(&format!("/worker/{id}"), &body.to_string())
            .expect_status(200);
        id
    }

    /// Claims a task for `worker`: the claimed task, or `None` on 204.
    pub fn claim(&self, worker: &str) -> Option<Value> {
        let reply = self.post(&format!("/task/claim/{worker}"));
        match reply.status {
            200 => Some(reply.json()),
            204 => None,
            other => panic!("claim answered {other}: {}", reply.text()),
        }
    }

    /// Every route of the server's OpenAPI document (which a test keeps equal to the router),
    /// as (method, path template such as `/task/{id}`), pages and streams included.
    pub fn routes(&self) -> Vec<(String, String)> {
        let reply = self.get("/openapi.json");
        reply.expect_status(200);
        let document = reply.json();
        let paths = document["paths"]
            .as_object()
            .expect("the OpenAPI document lists paths");
        let mut routes = Vec::new();
        for (path, operations) in paths {
            let methods = operations.as_object().expect("a path's operations");
            for method in methods.keys().filter(|key| *key != "parameters") {
                routes.push((method.to_ascii_uppercase(), path.clone()));
            }
        }
        routes
    }

    /// `GET /ops/status/` as JSON.
    pub fn status(&self) -> Value {
        let reply = self.get("/ops/status/");
        reply.expect_status(200);
        reply.json()
    }

    /// Sends SIGTERM and waits for the exit; panics when it takes longer than `timeout`.
    pub fn terminate_within(&mut self, timeout: Duration) -> ExitStatus {
        let mut child = self.process.take().expect("the server is running");
        send_signal(child.id(), libc::SIGTERM);
        match wait_for_exit(&mut child, timeout) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not exit within {timeout:?} of SIGTERM\n{}",
                    self.log()
                );
            }
        }
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        self.terminate_within(STOP_TIMEOUT)
    }

    /// Kills the server at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) {
        let mut child = self.process.take().expect("the server is running");
        // An error only means it is dead already (see `sigkill`).
        let _ = child.kill();
        child.wait().expect("waiting for the killed server");
    }

    /// Sends SIGKILL from any thread, while others may still be talking to the server;
    /// call [`Server::kill`] afterwards to reap it.
    pub fn sigkill(&self) {
        send_signal(self.pid(), libc::SIGKILL);
    }

    /// Starts the server again on the same data dir and settings, once it was stopped.
    pub fn restart(&mut self) {
        if self.process.is_some() {
            self.terminate();
        }
        self.launch();
    }

    /// Everything the server printed so far (all runs).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn log_path(&self) -> PathBuf {
        self.sandbox.root().join("server.log")
    }

    fn launch(&mut self) {
        for _ in 0..START_ATTEMPTS {
            let port = free_port();
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .expect("opening the server log");
            let mut command = self.sandbox.command();
            command
                .arg("serve")
                .arg("--port")
                .arg(port.to_string())
                .arg("--data-dir")
                .arg(self.sandbox.data_dir())
                .arg("--workers")
                .arg("0")
                .args(&self.args)
                .envs(self.env.iter().map(|(name, value)| (name, value)))
                .stdout(Stdio::from(
                    log.try_clone().expect("sharing the server log file"),
                ))
                .stderr(Stdio::from(log));
            if let Some(limit) = self.open_files {
                limit_open_files(&mut command, limit);
            }
            let child = command.spawn().expect("starting the blanket binary");
            self.port = port;
            self.process = Some(child);
            if self.wait_until_ready() {
                return;
            }
        }
        panic!(
            "the server could not start on a free port in {START_ATTEMPTS} attempts\n{}",
            self.log()
        );
    }

    /// Polls `GET /version` until this server answers. `false` when the port was taken.
    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + START_TIMEOUT;
        let expected_data_dir = canonical(&self.sandbox.data_dir());
        loop {
            let child = self.process.as_mut().expect("the server was just started");
            if let Ok(Some(status)) = child.try_wait() {
                self.process = None;
                let log = self.log();
                if log.contains("already in use") {
                    return false;
                }
                panic!("the server exited with {status} while starting\n{log}");
            }
            let answered = self
                .http
                .get(self.url("/version"))
                .timeout(Duration::from_secs(2))
                .send()
                .is_ok_and(|response| response.status().is_success());
            if answered {
                // Another test's server may have taken the port: make sure it is ours.
                let ours = self
                    .http
                    .get(self.url("/config/"))
                    .send()
                    .ok()
                    .and_then(|response| response.json::<Value>().ok())
                    .and_then(|config| config["data_dir"].as_str().map(PathBuf::from))
                    .is_some_and(|dir| canonical(&dir) == expected_data_dir);
                if ours {
                    return true;
                }
            }
            if Instant::now() >= deadline {
                let mut child = self.process.take().expect("the server is running");
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not answer GET /version within {START_TIMEOUT:?}\n{}",
                    self.log()
                );
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.process.take() {
            send_signal(child.id(), libc::SIGTERM);
            if wait_for_exit(&mut child, STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// What a `blanket` run that is expected to end printed, and how it ended.
pub struct Exit {
    /// The exit status.
    pub status: ExitStatus,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// Runs `command` to its end; panics (after killing it) when it runs longer than `timeout`.
pub fn run_to_exit(mut command: Command, timeout: Duration) -> Exit {
    let dir = tempfile::tempdir().expect("creating a temp dir for the output");
    let stdout_path = dir.path().join("stdout");
    let stderr_path = dir.path().join("stderr");
    command
        .stdout(File::create(&stdout_path).expect("creating the stdout file"))
        .stderr(File::create(&stderr_path).expect("creating the stderr file"));
    let mut child = command.spawn().expect("starting the blanket binary");
    let status = wait_for_exit(&mut child, timeout);
    let stdout = std::fs::read_to_string(&stdout_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    match status {
        Some(status) => Exit {
            status,
            stdout,
            stderr,
        },
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("blanket was still running after {timeout:?}\nstderr: {stderr}");
        }
    }
}

/// A whole HTTP answer read through reqwest.
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Reply {
    fn read(response: reqwest::blocking::Response) -> Reply {
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

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics showing the body when it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|error| panic!("the body is not JSON ({error}): {}", self.text()))
    }

    /// A header's value, when present and text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// Panics, showing the body, unless the status is `status`.
    pub fn expect_status(&self, status: u16) -> &Reply {
        assert_eq!(
            self.status,
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self
    }

    /// Asserts the status and that the body is exactly `{"error": "<non-empty text>"}` in
    /// JSON; returns the text.
    pub fn error(&self, status: u16) -> String {
        self.expect_status(status);
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "an error must be JSON, got content-type {content_type:?}: {}",
            self.text()
        );
        error_message(&self.body)
    }
}

/// Checks that `body` is exactly `{"error": "<non-empty text>"}` and returns the text.
pub fn error_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let value: Value = serde_json::from_slice(body)
        .unwrap_or_else(|error| panic!("the error body is not valid JSON ({error}): {text}"));
    let object = value
        .as_object()
        .unwrap_or_else(|| panic!("the error body is not a JSON object: {text}"));
    assert_eq!(
        object.len(),
        1,
        "the error body has keys besides \"error\": {text}"
    );
    let message = object["error"]
        .as_str()
        .unwrap_or_else(|| panic!("\"error\" is not a string: {text}"));
    assert!(!message.is_empty(), "the error message is empty");
    message.to_string()
}

/// A whole HTTP answer read off a raw socket.
#[derive(Debug)]
pub struct RawReply {
    /// The status code.
    pub status: u16,
    /// The headers, names lower-cased, in the order received.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked.
    pub body: Vec<u8>,
}

impl RawReply {
    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `method path` with exactly `headers` (add `Host` yourself) and `body` on a new
/// connection to 127.0.0.1:`port`, and reads the answer to its end.
pub fn raw_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> RawReply {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("setting a read timeout");
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut bytes = request.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).expect("sending a raw request");
    let mut reader = BufReader::new(stream);
    let (status, headers) = read_head(&mut reader);
    let chunked = is_chunked(&headers);
    let body = if chunked {
        let mut body = Vec::new();
        let mut sink = |data: &[u8]| body.extend_from_slice(data);
        read_chunks(&mut reader, &mut sink);
        body
    } else {
        let mut body = Vec::new();
        let _ = reader.read_to_end(&mut body);
        body
    };
    RawReply {
        status,
        headers,
        body,
    }
}

/// A `GET path` with a loopback `Host` plus `headers`, on a raw socket.
pub fn raw_get(port: u16, path: &str, headers: &[(&str, &str)]) -> RawReply {
    let host = format!("127.0.0.1:{port}");
    let mut all = vec![("Host", host.as_str())];
    all.extend_from_slice(headers);
    raw_request(port, "GET", path, &all, b"")
}

/// One thing read from an SSE stream.
#[derive(Clone, Debug, PartialEq)]
pub enum SseItem {
    /// An event: its `event:` name (empty when none) and its `data:` lines joined by `\n`.
    Event {
        /// The `event:` field.
        name: String,
        /// The `data:` lines.
        data: String,
    },
    /// A comment line (`:text`), such as a keep-alive; the text after the colon.
    Comment(String),
    /// The server ended the stream.
    End,
}

/// A live SSE connection read by a background thread that time-stamps each item on arrival.
pub struct SseClient {
    /// The status code (200).
    pub status: u16,
    /// The response headers, names lower-cased.
    pub headers: Vec<(String, String)>,
    stream: TcpStream,
    items: mpsc::Receiver<(Instant, SseItem)>,
    reader: Option<JoinHandle<()>>,
}

impl SseClient {
    /// Opens `GET path` on 127.0.0.1:`port` with a loopback Host (unless `headers` has one)
    /// plus `headers`. A non-200 answer comes back whole as `Err`.
    pub fn connect(port: u16, path: &str, headers: &[(&str, &str)]) -> Result<SseClient, RawReply> {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the server");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("setting a read timeout");
        let mut request = format!("GET {path} HTTP/1.1\r\nAccept: text/event-stream\r\n");
        if !headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("host"))
        {
            request.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
        }
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        (&stream)
            .write_all(request.as_bytes())
            .expect("sending the SSE request");
        let mut reader = BufReader::new(stream.try_clone().expect("cloning the socket"));
        let (status, headers) = read_head(&mut reader);
        if status != 200 {
            let body = match headers
                .iter()
                .find(|(name, _)| name == "content-length")
                .and_then(|(_, value)| value.parse::<usize>().ok())
            {
                Some(length) => {
                    let mut body = vec![0; length];
                    reader.read_exact(&mut body).expect("reading an error body");
                    body
                }
                None if is_chunked(&headers) => {
                    let mut body = Vec::new();
                    read_chunks(&mut reader, &mut |data: &[u8]| body.extend_from_slice(data));
                    body
                }
                None => Vec::new(),
            };
            return Err(RawReply {
                status,
                headers,
                body,
            });
        }
        stream
            .set_read_timeout(None)
            .expect("clearing the read timeout");
        let chunked = is_chunked(&headers);
        let (sender, items) = mpsc::channel();
        let reader = std::thread::spawn(move || read_sse(reader, chunked, &sender));
        Ok(SseClient {
            status,
            headers,
            stream,
            items,
            reader: Some(reader),
        })
    }

    /// The first value of header `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The next item and when it arrived, or `None` when nothing came within `timeout`.
    pub fn next_item(&self, timeout: Duration) -> Option<(Instant, SseItem)> {
        self.items.recv_timeout(timeout).ok()
    }

    /// The next event (comments skipped) and when it arrived, or `None` when no event came
    /// within `timeout` (or the stream ended).
    pub fn next_event(&self, timeout: Duration) -> Option<(Instant, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.items.recv_timeout(left).ok()? {
                (at, SseItem::Event { name, .. }) => return Some((at, name)),
                (_, SseItem::Comment(_)) => {}
                (_, SseItem::End) => return None,
            }
        }
    }

    /// Every item that arrives until none has for `quiet`; panics after `timeout`.
    pub fn items_until_quiet(&self, quiet: Duration, timeout: Duration) -> Vec<(Instant, SseItem)> {
        let deadline = Instant::now() + timeout;
        let mut items = Vec::new();
        while let Ok(item) = self.items.recv_timeout(quiet) {
            let ended = item.1 == SseItem::End;
            items.push(item);
            assert!(
                Instant::now() < deadline,
                "the stream did not go quiet within {timeout:?}"
            );
            if ended {
                break;
            }
        }
        items
    }

    /// Waits for the server to end the stream; `true` when it did within `timeout`.
    pub fn ended_within(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.items.recv_timeout(left) {
                Ok((_, SseItem::End)) | Err(mpsc::RecvTimeoutError::Disconnected) => return true,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
    }
}

impl Drop for SseClient {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
    }
}

/// Writes a multipart/form-data body by hand, so field names reach the server byte for byte
/// (clients such as reqwest percent-encode them). Returns the content type and the body.
pub fn multipart_body(parts: &[MultipartPart<'_>]) -> (String, Vec<u8>) {
    let boundary = "blanket-blackbox-boundary-7d1f3a";
    let mut body = Vec::new();
    for part in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        body.extend_from_slice(b"Content-Disposition: form-data; name=\"");
        body.extend_from_slice(part.name);
        body.extend_from_slice(b"\"");
        if let Some(file_name) = part.file_name {
            body.extend_from_slice(format!("; filename=\"{file_name}\"").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        if let Some(content_type) = part.content_type {
            body.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(part.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// One part of [`multipart_body`].
pub struct MultipartPart<'a> {
    /// The field name, raw bytes.
    pub name: &'a [u8],
    /// The `filename` parameter, making the part a file.
    pub file_name: Option<&'a str>,
    /// The part's `Content-Type`.
    pub content_type: Option<&'a str>,
    /// The content.
    pub body: &'a [u8],
}

impl<'a> MultipartPart<'a> {
    /// A plain text field.
    pub fn field(name: &'a [u8], body: &'a [u8]) -> MultipartPart<'a> {
        MultipartPart {
            name,
            file_name: None,
            content_type: None,
            body,
        }
    }

    /// A file part.
    pub fn file(name: &'a [u8], file_name: &'a str, body: &'a [u8]) -> MultipartPart<'a> {
        MultipartPart {
            name,
            file_name: Some(file_name),
            content_type: Some("application/octet-stream"),
            body,
        }
    }
}

/// `template` (a path of [`Server::routes`]) with its parameters filled in: `{id}` with
/// `worker` on worker routes and `task` elsewhere, `{workerId}` with `worker`, `{name}` with
/// `type_name`, `{path}` with a file name.
pub fn route_path(template: &str, task: &str, worker: &str, type_name: &str) -> String {
    let id = if template.contains("worker") {
        worker
    } else {
        task
    };
    template
        .replace("{workerId}", worker)
        .replace("{id}", id)
        .replace("{name}", type_name)
        .replace("{path}", "blanket.stdout.log")
}

/// Every path below `dir`, relative to it, sorted; symlinks are listed, not followed.
pub fn tree(dir: &Path) -> Vec<PathBuf> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            found.push(
                path.strip_prefix(root)
                    .expect("entries of a folder are below it")
                    .to_path_buf(),
            );
            if entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                walk(root, &path, found);
            }
        }
    }
    let mut found = Vec::new();
    walk(dir, dir, &mut found);
    found.sort();
    found
}

/// The names directly inside `dir`, sorted.
pub fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn http_client(token: Option<&str>) -> reqwest::blocking::Client {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(token) = token {
        headers.insert(
            reqwest::header::AUTHORIZATION,
            reqwest::header::HeaderValue::from_str(&format!("Bearer {token}"))
                .expect("a test token is a valid header value"),
        );
    }
    reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .default_headers(headers)
        .build()
        .expect("building the HTTP client")
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[expect(
    unsafe_code,
    reason = "std can only SIGKILL a child; SIGTERM needs libc::kill, on our own child's pid"
)]
fn send_signal(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    unsafe {
        libc::kill(pid, signal);
    }
}

#[expect(
    unsafe_code,
    reason = "std sets no resource limit of a child; pre_exec runs one setrlimit call in it"
)]
fn limit_open_files(command: &mut Command, limit: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure only calls setrlimit(2), which is
    // async-signal-safe, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, limit, limit)
                .map_err(std::io::Error::from)
        });
    }
}

fn read_head(reader: &mut impl BufRead) -> (u16, Vec<(String, String)>) {
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("reading the status line");
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("reading a header line");
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    (status, headers)
}

fn is_chunked(headers: &[(String, String)]) -> bool {
    headers.iter().any(|(name, value)| {
        name == "transfer-encoding" && value.to_ascii_lowercase().contains("chunked")
    })
}

/// Reads a chunked body, handing each chunk's data to `sink`, until the last chunk or EOF.
fn read_chunks(reader: &mut impl BufRead, sink: &mut dyn FnMut(&[u8])) {
    loop {
        let mut size_line = String::new();
        match reader.read_line(&mut size_line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let size_text = size_line.trim().split(';').next().unwrap_or_default();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return;
        };
        if size == 0 {
            return;
        }
        let mut data = vec![0; size];
        if reader.read_exact(&mut data).is_err() {
            return;
        }
        sink(&data);
        let mut crlf = [0u8; 2];
        if reader.read_exact(&mut crlf).is_err() {
            return;
        }
    }
}

/// The background reader of an [`SseClient`]: frames lines into items as bytes arrive.
fn read_sse(
    mut reader: BufReader<TcpStream>,
    chunked: bool,
    sender: &mpsc::Sender<(Instant, SseItem)>,
) {
    let mut parser = SseParser::default();
    let mut feed = |data: &[u8]| {
        for item in parser.push(data) {
            let _ = sender.send((Instant::now(), item));
        }
    };
    if chunked {
        read_chunks(&mut reader, &mut feed);
    } else {
        let mut buffer = [0u8; 4096];
        loop {
            match reader.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => feed(&buffer[..count]),
            }
        }
    }
    let _ = sender.send((Instant::now(), SseItem::End));
}

/// Turns SSE bytes into items: comment lines at once, events at their blank line.
#[derive(Default)]
struct SseParser {
    pending: Vec<u8>,
    name: String,
    data: Vec<String>,
    has_field: bool,
}

impl SseParser {
    fn push(&mut self, bytes: &[u8]) -> Vec<SseItem> {
        self.pending.extend_from_slice(bytes);
        let mut items = Vec::new();
        while let Some(end) = self.pending.iter().position(|byte| *byte == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if self.has_field {
                    items.push(SseItem::Event {
                        name: std::mem::take(&mut self.name),
                        data: std::mem::take(&mut self.data).join("\n"),
                    });
                    self.has_field = false;
                }
            } else if let Some(comment) = line.strip_prefix(':') {
                items.push(SseItem::Comment(comment.to_string()));
            } else {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "event" => self.name = value.to_string(),
                    "data" => self.data.push(value.to_string()),
                    _ => {}
                }
                self.has_field = true;
            }
        }
        items
    }
}
