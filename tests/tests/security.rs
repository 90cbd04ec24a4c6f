//! The guards, seen from outside: a foreign Host (DNS rebinding) and a foreign Origin
//! (cross-site requests) are 403, a token server wants its bearer token, and `serve` refuses
//! to start exposed without a token or on a busy port, with one clear line.

use std::net::TcpListener;
use std::time::Duration;

use blanket_blackbox::{
    RawReply, Sandbox, Server, SseClient, error_message, free_port, raw_get, raw_request,
    run_to_exit,
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
fn binding_every_interface_without_a_token_refuses_to_start() {
    let sandbox = Sandbox::new();
    let port = free_port();
    let mut command = sandbox.command();
    command
        .arg("serve")
        .arg("--bind")
        .arg("0.0.0.0")
        .arg("--port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(sandbox.data_dir())
        .arg("--workers")
        .arg("0");
    let exit = run_to_exit(command, Duration::from_secs(20));
    assert!(!exit.status.success(), "it started: {}", exit.stderr);
    let lines: Vec<&str> = exit
        .stderr
        .lines()
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "not one line: {:?}", exit.stderr);
    assert!(lines[0].contains("token"), "{}", lines[0]);
    assert!(lines[0].contains("0.0.0.0"), "{}", lines[0]);
}

#[test]
fn a_busy_port_is_a_one_line_error_naming_it() {
    let sandbox = Sandbox::new();
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding a port to occupy");
    let port = taken.local_addr().expect("its address").port();
    let mut command = sandbox.command();
    command
        .arg("serve")
        .arg("--port")
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(sandbox.data_dir())
        .arg("--workers")
        .arg("0");
    let exit = run_to_exit(command, Duration::from_secs(20));
    assert!(!exit.status.success(), "it started: {}", exit.stderr);
    let lines: Vec<&str> = exit
        .stderr
        .lines()
        .filter(|line| !line.is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "not one line: {:?}", exit.stderr);
    assert!(lines[0].contains(&port.to_string()), "{}", lines[0]);
    assert!(lines[0].contains("in use"), "{}", lines[0]);
    drop(taken);
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
