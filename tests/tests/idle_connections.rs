//! Connections that send no complete request head are closed after `header_timeout_seconds`:
//! ones that send nothing, stop mid-headers, or sit idle after an answer. A request whose body
//! stops arriving for as long is answered 408 and closed, keeping nothing of it. Answers under
//! way, a live stream and a long-poll claim, outlast that timeout, and normal requests still
//! work.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use blanket_blackbox::{Server, SseClient};
use serde_json::json;

/// The short header timeout these tests run the server with.
const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// How much earlier than the timeout a close may be seen: the server's timer starts at accept,
/// a moment after the client's connect returns.
const EARLY_SLACK: Duration = Duration::from_millis(200);
/// How long after the timeout a close may come on a busy machine.
const LATE_SLACK: Duration = Duration::from_secs(10);

fn start() -> Server {
    Server::builder()
        .env(
            "BLANKET_HEADER_TIMEOUT_SECONDS",
            &HEADER_TIMEOUT.as_secs().to_string(),
        )
        .start()
}

fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(("127.0.0.1", server.port())).expect("connecting to the server")
}

/// Reads `stream` until the server closes it and returns how long after `since` that was, and
/// what came before the close; panics when it stays open past the timeout and [`LATE_SLACK`].
fn closed_after(stream: &mut TcpStream, since: Instant) -> (Duration, Vec<u8>) {
    let deadline = since + HEADER_TIMEOUT + LATE_SLACK;
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the connection was still open {:?} after it went quiet",
            HEADER_TIMEOUT + LATE_SLACK
        );
        stream
            .set_read_timeout(Some(left))
            .expect("setting a read timeout");
        match stream.read(&mut buffer) {
            Ok(0) => return (since.elapsed(), received),
            Ok(count) => received.extend_from_slice(&buffer[..count]),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => {
                return (since.elapsed(), received);
            }
            Err(error) if matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(error) => panic!("reading from the connection: {error}"),
        }
    }
}

fn assert_closed_at_the_timeout(what: &str, stream: &mut TcpStream, since: Instant) {
    let (after, received) = closed_after(stream, since);
    assert!(
        after >= HEADER_TIMEOUT - EARLY_SLACK,
        "{what}: closed after {after:?}, before the {HEADER_TIMEOUT:?} timeout"
    );
    assert!(
        !String::from_utf8_lossy(&received).contains(" 200 "),
        "{what}: answered a request it never completed: {}",
        String::from_utf8_lossy(&received)
    );
}

/// Sends a keep-alive `GET /version` on `reader`'s stream and reads its whole answer,
/// returning the status line.
fn keep_alive_version(reader: &mut BufReader<TcpStream>, port: u16) -> String {
    let request = format!("GET /version HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    reader
        .get_mut()
        .write_all(request.as_bytes())
        .expect("sending a request");
    let mut status_line = String::new();
    reader
        .read_line(&mut status_line)
        .expect("reading the status line");
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("reading a header line");
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().expect("a numeric content-length");
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("reading the body");
    status_line.trim_end().to_string()
}

#[test]
fn silent_and_half_sent_connections_are_closed_while_a_stream_keeps_going() {
    let server = start();
    let stream = SseClient::connect(server.port(), "/ui/sse/tasks", &[])
        .unwrap_or_else(|reply| panic!("the stream answered {}", reply.status));
    stream
        .next_event(Duration::from_secs(5))
        .expect("the event on connect");

    let mut silent = connect(&server);
    let silent_since = Instant::now();
    let mut half = connect(&server);
    half.write_all(
        format!(
            "GET /version HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nAccept: */*\r\n",
            server.port()
        )
        .as_bytes(),
    )
    .expect("sending half a request head");
    let half_since = Instant::now();

    assert_closed_at_the_timeout("a connection that sent nothing", &mut silent, silent_since);
    assert_closed_at_the_timeout("a connection that stopped mid-head", &mut half, half_since);

    server.get("/version").expect_status(200);
    server.submit(&json!({"type": "echo_task"}));
    let (_, event) = stream
        .next_event(Duration::from_secs(5))
        .expect("the stream, open longer than the timeout, still gets events");
    assert_eq!(event, "tasks-changed");
}

#[test]
fn a_kept_alive_connection_serves_again_then_closes_once_idle() {
    let server = start();
    let mut reader = BufReader::new(connect(&server));
    for round in 0..2 {
        let status = keep_alive_version(&mut reader, server.port());
        assert_eq!(
            status, "HTTP/1.1 200 OK",
            "request {round} on one connection"
        );
    }
    let idle_since = Instant::now();
    assert_closed_at_the_timeout(
        "a connection idle after its answers",
        reader.get_mut(),
        idle_since,
    );
}

#[test]
fn a_long_poll_claim_outlasts_the_timeout() {
    let server = start();
    let worker = server.register_worker(&["bash", "unix"]);
    let wait = HEADER_TIMEOUT * 3;
    let asked_at = Instant::now();
    let reply = server.post(&format!("/task/claim/{worker}?wait={}", wait.as_secs_f64()));
    reply.expect_status(204);
    let waited = asked_at.elapsed();
    assert!(
        waited >= wait - EARLY_SLACK,
        "the claim ended after {waited:?}, before its {wait:?} wait"
    );
}

/// Sends a whole request head for a `POST /task/` whose body is `promised` bytes long, then
/// only `body_start` of that body, and goes quiet; returns the stream and when it went quiet.
fn stall_mid_body(
    server: &Server,
    content_type: &str,
    body_start: &str,
    promised: usize,
) -> (TcpStream, Instant) {
    assert!(
        promised > body_start.len(),
        "the body must promise more than it sends"
    );
    let mut stream = connect(server);
    let head = format!(
        "POST /task/ HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Type: {content_type}\r\nContent-Length: {promised}\r\n\r\n",
        server.port()
    );
    stream
        .write_all(head.as_bytes())
        .expect("sending the request head");
    stream
        .write_all(body_start.as_bytes())
        .expect("sending the start of the body");
    (stream, Instant::now())
}

#[test]
fn a_request_whose_body_stalls_is_answered_408_and_closed_with_nothing_kept() {
    let server = start();
    let boundary = "stall-boundary";
    let upload_start = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"data\"\r\n\r\n{{\"type\":\"echo_task\"}}\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"input.txt\"; filename=\"input.txt\"\r\n\r\n\
         the first half of a file"
    );
    let (mut json, json_since) =
        stall_mid_body(&server, "application/json", r#"{"type": "echo"#, 200);
    let (mut upload, upload_since) = stall_mid_body(
        &server,
        &format!("multipart/form-data; boundary={boundary}"),
        &upload_start,
        100_000,
    );

    for (what, stream, since) in [
        ("a JSON submit", &mut json, json_since),
        ("an upload", &mut upload, upload_since),
    ] {
        let (after, received) = closed_after(stream, since);
        let answer = String::from_utf8_lossy(&received);
        assert!(
            after >= HEADER_TIMEOUT - EARLY_SLACK,
            "{what}: answered after {after:?}, before the {HEADER_TIMEOUT:?} timeout: {answer}"
        );
        assert!(
            answer.starts_with("HTTP/1.1 408 "),
            "{what}: answered {answer}"
        );
        assert!(
            answer.contains("the request body stopped arriving"),
            "{what}: the answer does not say what happened: {answer}"
        );
    }

    assert_eq!(
        server.get("/task/").text(),
        "[]",
        "a stalled submit stored a task"
    );
    let incoming = server.results_dir().join(".incoming");
    let left: Vec<_> = std::fs::read_dir(&incoming)
        .map(|entries| {
            entries
                .map(|entry| entry.expect("a folder entry").path())
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "the stalled upload left {left:?} behind");
    server.submit(&json!({"type": "echo_task"}));
}
