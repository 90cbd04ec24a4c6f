//! The guards, seen from outside: a foreign Host (DNS rebinding) and a foreign Origin
//! (cross-site requests) are 403, a token server wants its bearer token, and `serve` refuses
//! to start exposed without a token or on a busy port, with one clear line.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::time::Duration;

use blanket_blackbox::{
    RawReply, Sandbox, Server, SseClient, error_message, free_port, raw_get, raw_request,
    route_path, run_to_exit,
};

fn assert_json_error(reply: &RawReply, status: u16) -> String {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .is_some_and(|value| value.starts_with("application/json")),
        "{:?}",
        reply.headers
    );
    error_message(&reply.body)
}

#[test]
fn a_foreign_host_is_403_on_every_route() {
    let server = Server::start();
    let port = server.port();
    for host in ["evil.example", &format!("evil.example:{port}"), "10.0.0.1"] {
        for path in [
            "/version",
            "/task/",
            "/ui/",
            "/metrics",
            "/ops/status/",
            "/worker",
        ] {
            let reply = raw_request(port, "GET", path, &[("Host", host)], b"");
            let message = assert_json_error(&reply, 403);
            assert!(
                message.contains("evil.example") || message.contains("10.0.0.1"),
                "{message}"
            );
        }
        let reply = raw_request(
            port,
            "POST",
            "/task/",
            &[("Host", host), ("Content-Type", "application/json")],
            br#"{"type":"echo_task"}"#,
        );
        assert_json_error(&reply, 403);
        for path in ["/ui/sse/tasks", "/ui/sse/workers"] {
            match SseClient::connect(port, path, &[("Host", host)]) {
                Ok(_) => panic!("{path} streamed to Host {host}"),
                Err(reply) => {
                    assert_json_error(&reply, 403);
                }
            }
        }
    }
    assert_eq!(server.get("/task/?count=true").text(), "0");
}

#[test]
fn loopback_host_names_are_served() {
    let server = Server::start();
    let port = server.port();
    for host in [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        "localhost".to_string(),
        format!("[::1]:{port}"),
    ] {
        let reply = raw_request(port, "GET", "/version", &[("Host", &host)], b"");
        assert_eq!(reply.status, 200, "Host {host}: {}", reply.text());
    }
}

#[test]
fn a_foreign_origin_is_403_on_state_changing_requests_and_streams() {
    let server = Server::start();
    let port = server.port();
    let host = format!("127.0.0.1:{port}");
    let task = server.submit(&serde_json::json!({"type": "echo_task"}));
    let id = task["id"].as_str().expect("an id");
    let worker = blanket_blackbox::new_worker_id();
    let cancel = format!("/task/{id}/cancel");
    let delete = format!("/task/{id}");
    let register = format!("/worker/{worker}");
    for origin in [
        "http://evil.example",
        "null",
        &format!("http://localhost.evil.example:{port}"),
        &format!("https://127.0.0.1:{port}"),
    ] {
        for (method, path, body) in [
            ("POST", "/task/", br#"{"type":"echo_task"}"#.as_slice()),
            ("PUT", cancel.as_str(), b"".as_slice()),
            ("DELETE", delete.as_str(), b"".as_slice()),
            ("PUT", register.as_str(), br#"{"tags":[]}"#.as_slice()),
        ] {
            let reply = raw_request(
                port,
                method,
                path,
                &[
                    ("Host", &host),
                    ("Origin", origin),
                    ("Content-Type", "application/json"),
                ],
                body,
            );
            let message = assert_json_error(&reply, 403);
            assert!(message.contains("origin"), "{method} {path}: {message}");
        }
        match SseClient::connect(port, "/ui/sse/tasks", &[("Origin", origin)]) {
            Ok(_) => panic!("the stream was served to origin {origin}"),
            Err(reply) => {
                assert_json_error(&reply, 403);
            }
        }
    }
    assert_eq!(server.get("/task/?count=true").text(), "1");
    assert_eq!(
        server.get(&format!("/task/{id}")).json()["state"],
        "WAITING"
    );
    server.get(&format!("/worker/{worker}")).error(404);
}

#[test]
fn the_servers_own_origin_may_change_state_and_stream() {
    let server = Server::start();
    let port = server.port();
    let host = format!("127.0.0.1:{port}");
    let origin = server.origin();
    let reply = raw_request(
        port,
        "POST",
        "/task/",
        &[
            ("Host", &host),
            ("Origin", &origin),
            ("Content-Type", "application/json"),
        ],
        br#"{"type":"echo_task"}"#,
    );
    assert_eq!(reply.status, 201, "{}", reply.text());
    let stream = SseClient::connect(port, "/ui/sse/tasks", &[("Origin", &origin)])
        .unwrap_or_else(|reply| panic!("own origin refused: {}", reply.text()));
    assert!(stream.next_event(Duration::from_secs(5)).is_some());
    let localhost = format!("http://localhost:{port}");
    let reply = raw_request(
        port,
        "PUT",
        &format!("/worker/{}", blanket_blackbox::new_worker_id()),
        &[
            ("Host", &format!("localhost:{port}")),
            ("Origin", &localhost),
        ],
        b"{}",
    );
    assert_eq!(reply.status, 200, "{}", reply.text());
}

fn token_is_required(server: &Server) {
    let port = server.port();
    for path in ["/task/", "/version", "/ui/", "/metrics"] {
        let message = assert_json_error(&raw_get(port, path, &[]), 401);
        assert!(message.contains("Bearer"), "{message}");
        assert_json_error(
            &raw_get(port, path, &[("Authorization", "Bearer wrong-token")]),
            401,
        );
        assert_json_error(
            &raw_get(port, path, &[("Authorization", "s3cret-token")]),
            401,
        );
        let reply = raw_get(port, path, &[("Authorization", "Bearer s3cret-token")]);
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
    }
    let reply = raw_request(
        port,
        "POST",
        "/task/",
        &[
            ("Host", &format!("127.0.0.1:{port}")),
            ("Content-Type", "application/json"),
        ],
        br#"{"type":"echo_task"}"#,
    );
    assert_json_error(&reply, 401);
    assert!(SseClient::connect(port, "/ui/sse/tasks", &[]).is_err());
    let stream = SseClient::connect(
        port,
        "/ui/sse/tasks",
        &[("Authorization", "Bearer s3cret-token")],
    )
    .unwrap_or_else(|reply| panic!("token refused: {}", reply.text()));
    assert!(stream.next_event(Duration::from_secs(5)).is_some());
    // EventSource cannot send headers, so the UI passes the token in the query.
    assert!(SseClient::connect(port, "/ui/sse/tasks?token=s3cret-token", &[]).is_ok());
    assert!(SseClient::connect(port, "/ui/sse/tasks?token=wrong", &[]).is_err());
    server.submit(&serde_json::json!({"type": "echo_task"}));
    assert_eq!(server.get("/task/?count=true").text(), "1");
}

#[test]
fn a_token_flag_makes_every_request_need_the_bearer_token() {
    let server = Server::builder().token("s3cret-token").start();
    token_is_required(&server);
}

#[test]
fn a_token_from_the_environment_makes_every_request_need_it() {
    let server = Server::builder().token_from_env("s3cret-token").start();
    token_is_required(&server);
}

#[test]
fn binding_a_non_loopback_address_without_a_token_refuses_to_start() {
    for (bind, from_env) in [
        ("0.0.0.0", false),
        ("::", false),
        ("192.168.1.10", false),
        ("0.0.0.0", true),
    ] {
        let sandbox = Sandbox::new();
        let mut command = serve_without_workers(&sandbox, free_port());
        if from_env {
            command.env("BLANKET_BIND", bind);
        } else {
            command.arg("--bind").arg(bind);
        }
        let line = the_one_line_of_a_failed_start(command, &format!("on {bind}"));
        assert!(line.contains("token"), "{line}");
        assert!(line.contains(bind), "{line}");
    }
}

#[test]
fn a_busy_port_is_a_one_line_error_naming_it() {
    let sandbox = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding a port to occupy");
    let port = taken.local_addr().expect("its address").port();
    let command = serve_without_workers(&sandbox, port);
    let line = the_one_line_of_a_failed_start(command, &format!("on busy port {port}"));
    assert!(line.contains(&port.to_string()), "{line}");
    assert!(line.contains("in use"), "{line}");
    drop(taken);
}

/// `blanket serve --port PORT --data-dir DATA --workers 0` in `sandbox`, not started yet.
fn serve_without_workers(sandbox: &Sandbox, port: u16) -> Command {
    let mut command = sandbox.command();
    command
        .arg("serve")
        .arg("--port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(sandbox.data_dir())
        .arg("--workers")
        .arg("0");
    command
}

/// Runs a `serve` that must refuse to start (`what` says where, for the failure message) and
/// returns the one line it printed on stderr.
fn the_one_line_of_a_failed_start(command: Command, what: &str) -> String {
    let exit = run_to_exit(command, Duration::from_secs(20));
    assert!(!exit.status.success(), "it started {what}: {}", exit.stderr);
    let lines: Vec<&str> = exit
        .stderr
        .lines()
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "not one line: {:?}", exit.stderr);
    lines[0].to_owned()
}

#[test]
fn the_port_can_come_from_the_environment() {
    let sandbox = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding a port to occupy");
    let port = taken.local_addr().expect("its address").port();
    let mut command = sandbox.command();
    command
        .arg("serve")
        .env("BLANKET_PORT", port.to_string())
        .env("BLANKET_DATA_DIR", sandbox.data_dir())
        .arg("--workers")
        .arg("0");
    // The port is busy, so the error shows which port the variable chose.
    let exit = run_to_exit(command, Duration::from_secs(20));
    assert!(!exit.status.success());
    assert!(exit.stderr.contains(&port.to_string()), "{}", exit.stderr);
    drop(taken);
}

/// The open-file limit the flooded server starts with.
const SERVER_OPEN_FILES: u64 = 1024;
/// How many clients flood it.
const FLOOD: usize = 10_000;

/// Raises this test process's own open-file limit so it can hold `needed` sockets.
fn allow_open_files(needed: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("reading the open-file limit");
    if soft >= needed {
        return;
    }
    // Only root may raise the hard limit; anyone may raise the soft one up to it.
    let raised = setrlimit(Resource::RLIMIT_NOFILE, needed, needed.max(hard));
    assert!(
        raised.is_ok(),
        "this test holds {needed} sockets, more than the hard open-file limit {hard}: raise it (ulimit -Hn)"
    );
}

/// Opens `GET path` and reads the answer's head, and its body unless it is a stream; the
/// connection stays open as long as the returned socket lives.
fn open_stream(port: u16, path: &str) -> (TcpStream, u16, Vec<u8>) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the server");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("setting a read timeout");
    (&stream)
        .write_all(
            format!(
                "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
            )
            .as_bytes(),
        )
        .expect("sending the request");
    let mut reader = BufReader::new(&stream);
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .expect("reading the status line");
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"));
    let mut length = 0;
    loop {
        line.clear();
        reader.read_line(&mut line).expect("reading a header");
        let header = line.trim_end().to_ascii_lowercase();
        if header.is_empty() {
            break;
        }
        if let Some(value) = header.strip_prefix("content-length:") {
            length = value.trim().parse().expect("a numeric content-length");
        }
    }
    let mut body = vec![0; if status == 200 { 0 } else { length }];
    reader.read_exact(&mut body).expect("reading the body");
    (stream, status, body)
}

#[test]
fn ten_thousand_streams_are_capped_with_a_clear_503_and_the_server_recovers() {
    allow_open_files(FLOOD as u64 + 1000);
    let server = Server::builder()
        .open_files_limit(SERVER_OPEN_FILES)
        .start();
    let port = server.port();
    let mut clients = Vec::with_capacity(FLOOD);
    let mut streaming = 0;
    for _ in 0..FLOOD {
        let (stream, status, body) = open_stream(port, "/ui/sse/tasks");
        match status {
            200 => streaming += 1,
            503 => {
                let message = error_message(&body);
                assert!(message.contains("too many open live streams"), "{message}");
            }
            other => panic!(
                "a stream was answered {other}: {}",
                String::from_utf8_lossy(&body)
            ),
        }
        // Refused clients keep their end open: the server must not keep its own.
        clients.push(stream);
    }
    assert!(
        streaming > 0 && streaming < SERVER_OPEN_FILES as usize,
        "{streaming} streams were opened with {SERVER_OPEN_FILES} files"
    );
    // With every stream slot taken, the server still has files to serve requests with.
    server.get("/version").expect_status(200);
    server.submit(&serde_json::json!({"type": "echo_task"}));
    let log = server.log();
    assert!(
        !log.contains("Too many open files") && !log.contains("panicked"),
        "{log}"
    );
    drop(clients);
    // The next change is written to every stream, which ends those whose client went away.
    server.submit(&serde_json::json!({"type": "echo_task"}));
    let stream = blanket_blackbox::poll_until(
        Duration::from_secs(60),
        "a stream slot to come free",
        || SseClient::connect(port, "/ui/sse/tasks", &[]).ok(),
    );
    assert!(stream.next_event(Duration::from_secs(10)).is_some());
    assert_eq!(server.get("/task/?count=true").text(), "2");
}

/// CPU seconds the process `pid` has used so far (user and system).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("reading /proc stat");
    // Fields after the command name, which ends with the last ')': utime and stime are the
    // 12th and 13th of them, in clock ticks (100 a second on Linux).
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11..13]
        .iter()
        .map(|field| field.parse::<f64>().expect("a tick count"))
        .sum();
    ticks / 100.0
}

#[test]
fn running_out_of_files_neither_spins_nor_stops_the_accept_loop() {
    const OPEN_FILES: u64 = 128;
    let server = Server::builder().open_files_limit(OPEN_FILES).start();
    let port = server.port();
    // Connections that never send a request each take one of the server's files.
    let idle: Vec<TcpStream> = (0..OPEN_FILES + 16)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).expect("connecting"))
        .collect();
    blanket_blackbox::poll_until(
        Duration::from_secs(60),
        "the server to run out of files",
        || server.log().contains("Too many open files").then_some(()),
    );
    let before = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_secs(3));
    let used = cpu_seconds(server.pid()) - before;
    assert!(
        used < 1.0,
        "the server used {used:.2} s of CPU in 3 s while out of files: its accept loop spins"
    );
    drop(idle);
    blanket_blackbox::poll_until(
        Duration::from_secs(60),
        "the server to answer again",
        || {
            server
                .http()
                .get(server.url("/version"))
                .timeout(Duration::from_secs(5))
                .send()
                .ok()
                .filter(|response| response.status().is_success())
        },
    );
    server.submit(&serde_json::json!({"type": "echo_task"}));
}

/// Every route the server lists, as (method, path) with a real task, worker and type.
fn every_route(server: &Server) -> Vec<(String, String)> {
    let task = server.submit(&serde_json::json!({"type": "echo_task"}));
    let task = task["id"].as_str().expect("an id").to_string();
    let worker = server.register_worker(&[]);
    let routes: Vec<(String, String)> = server
        .routes()
        .into_iter()
        .map(|(method, template)| (method, route_path(&template, &task, &worker, "echo_task")))
        .collect();
    assert!(routes.len() > 50, "only {} routes listed", routes.len());
    routes
}

#[test]
fn a_foreign_host_is_403_on_every_listed_route() {
    let server = Server::start();
    let port = server.port();
    for (method, path) in every_route(&server) {
        let reply = raw_request(
            port,
            &method,
            &path,
            &[
                ("Host", "evil.example"),
                ("Content-Type", "application/json"),
            ],
            br#"{"type":"echo_task"}"#,
        );
        let message = assert_json_error(&reply, 403);
        assert!(
            message.contains("evil.example"),
            "{method} {path}: {message}"
        );
    }
    assert_eq!(server.get("/task/?count=true").text(), "1");
}

#[test]
fn a_foreign_origin_is_403_on_every_state_changing_route() {
    let server = Server::start();
    let port = server.port();
    let host = format!("127.0.0.1:{port}");
    let changing: Vec<(String, String)> = every_route(&server)
        .into_iter()
        .filter(|(method, _)| method != "GET")
        .collect();
    assert!(
        changing.len() > 20,
        "only {} routes change state",
        changing.len()
    );
    for (method, path) in changing {
        let reply = raw_request(
            port,
            &method,
            &path,
            &[
                ("Host", &host),
                ("Origin", "http://evil.example"),
                ("Content-Type", "application/json"),
            ],
            br#"{"type":"echo_task"}"#,
        );
        let message = assert_json_error(&reply, 403);
        assert!(message.contains("origin"), "{method} {path}: {message}");
    }
    assert_eq!(server.get("/task/?count=true").text(), "1");
    assert_eq!(server.get("/queue/").json()["paused"], false);
}

#[test]
fn a_token_server_answers_401_on_every_listed_route_without_it() {
    let server = Server::builder().token("s3cret-token").start();
    let port = server.port();
    let host = format!("127.0.0.1:{port}");
    for (method, path) in every_route(&server) {
        for authorization in [None, Some("Bearer wrong-token")] {
            let mut headers = vec![
                ("Host", host.as_str()),
                ("Content-Type", "application/json"),
            ];
            headers.extend(authorization.map(|value| ("Authorization", value)));
            let reply = raw_request(port, &method, &path, &headers, br#"{"type":"echo_task"}"#);
            let message = assert_json_error(&reply, 401);
            assert!(message.contains("Bearer"), "{method} {path}: {message}");
        }
    }
    assert_eq!(server.get("/task/?count=true").text(), "1");
}
