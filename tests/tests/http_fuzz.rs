//! An HTTP fuzzer against the real server: 10,000 random or malformed requests over raw TCP
//! (methods, paths from the server's own route list with random segments, queries, headers,
//! bodies and framing) must get no 5xx, no panic, and a JSON `{"error": ...}` on every 4xx
//! of an API route; then the server must still submit and list. Seeded: a failure prints the
//! seed, and `BLANKET_FUZZ_SEED=<seed>` replays the same requests.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use blanket_blackbox::{Server, error_message};
use serde_json::{Value, json};

/// How many requests one run sends.
const REQUESTS: usize = 10_000;
/// How many connections are open at once; the server must cope with concurrency too.
const CLIENTS: usize = 4;
/// How long one answer may take; long polls are only ever asked to wait a few milliseconds.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(30);
/// The JSON body limit of a default server, so some bodies cross it.
const JSON_LIMIT: usize = 1024 * 1024;

const METHODS: &[&str] = &[
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "CONNECT", "FOO",
];
const QUERY_KEYS: &[&str] = &[
    "states",
    "types",
    "requiredTags",
    "maxTags",
    "createdAfter",
    "createdBefore",
    "limit",
    "offset",
    "reverseSort",
    "count",
    "wait",
    "pid",
    "timeout",
    "typeDigest",
    "progress",
    "state",
    "exitCode",
    "reason",
    "workerId",
    "force",
    "running",
    "n",
    "stream",
    "token",
    "type",
    "v",
];
const JSON_KEYS: &[&str] = &[
    "type",
    "environment",
    "tags",
    "checkInterval",
    "pid",
    "priority",
    "timeout",
    "logfile",
    "daemon",
    "stopped",
    "id",
    "NAME",
    "INPUT_FILE",
    "mode",
    "min_seconds",
];
const TYPES: &[&str] = &["echo_task", "wordcount_task", "sleep_task", "no_such_task"];
const CONTENT_TYPES: &[&str] = &[
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=fuzz-boundary",
    "multipart/form-data; boundary=\"fuzz-boundary\"",
    "application/octet-stream",
    "text/event-stream",
    "*/*",
    ";;;",
];

#[test]
fn ten_thousand_random_requests_get_no_5xx_and_json_errors() {
    let seed = std::env::var("BLANKET_FUZZ_SEED")
        .ok()
        .and_then(|text| text.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    let server = Server::start();
    let targets = Targets::new(&server);
    let started = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let targets = &targets;
                scope.spawn(move || {
                    (client..REQUESTS)
                        .step_by(CLIENTS)
                        .filter_map(|index| {
                            let mut rng = fastrand::Rng::with_seed(
                                seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                            );
                            let request = targets.request(&mut rng);
                            check(&request, &send(targets.port, &request))
                                .err()
                                .map(|problem| {
                                    format!("request #{index}: {problem}\n{}", request.shown())
                                })
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|client| client.join().expect("a fuzzing client panicked"))
            .collect()
    });
    let log = server.log();
    assert!(
        failures.is_empty(),
        "{} of {REQUESTS} requests failed (seed {seed}; rerun with BLANKET_FUZZ_SEED={seed}); the first:\n{}\nserver log:\n{}",
        failures.len(),
        failures
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n\n"),
        tail(&log),
    );
    assert!(
        !log.contains("panicked"),
        "the server panicked (seed {seed}):\n{}",
        tail(&log)
    );
    eprintln!(
        "{REQUESTS} fuzzed requests in {:?} (seed {seed})",
        started.elapsed()
    );
    let task = server.submit(&json!({"type": "echo_task", "environment": {"NAME": "after"}}));
    let id = task["id"].as_str().expect("a submitted task has an id");
    let listed = server.get("/task/?limit=100000");
    listed.expect_status(200);
    assert!(
        listed
            .json()
            .as_array()
            .expect("a list")
            .iter()
            .any(|task| task["id"] == id),
        "the task submitted after fuzzing is not listed"
    );
}

/// One request as bytes, with what a correct server owes it.
struct Request {
    bytes: Vec<u8>,
    /// Whether the bytes are a complete, well-framed HTTP/1.1 request, so the router sees it
    /// and must answer; otherwise the HTTP layer may refuse it in its own words or hang up.
    well_framed: bool,
    /// Whether a 4xx must be `{"error": ...}` JSON: API routes; pages may answer HTML.
    json_errors: bool,
    /// Whether the answer has no body (HEAD).
    bodiless: bool,
}

impl Request {
    fn shown(&self) -> String {
        let text = String::from_utf8_lossy(&self.bytes);
        match text.char_indices().nth(1500) {
            Some((cut, _)) => format!("{}... ({} bytes)", &text[..cut], self.bytes.len()),
            None => text.into_owned(),
        }
    }
}

/// What the server answered.
enum Answer {
    Reply {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// The connection closed without a status line.
    HungUp,
    /// Nothing came within [`ANSWER_TIMEOUT`].
    Silent,
}

fn check(request: &Request, answer: &Answer) -> Result<(), String> {
    let (status, headers, body) = match answer {
        Answer::Reply {
            status,
            headers,
            body,
        } => (*status, headers, body),
        Answer::HungUp if !request.well_framed => return Ok(()),
        Answer::HungUp => return Err("the server hung up without answering".into()),
        Answer::Silent => return Err(format!("no answer within {ANSWER_TIMEOUT:?}")),
    };
    if status >= 500 {
        return Err(format!(
            "answered {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    if !(400..500).contains(&status) || !request.well_framed || !request.json_errors {
        return Ok(());
    }
    let content_type = headers
        .iter()
        .find(|(name, _)| name == "content-type")
        .map_or("", |(_, value)| value.as_str());
    if !content_type.starts_with("application/json") {
        return Err(format!(
            "answered {status} with content-type {content_type:?}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    if request.bodiless {
        return Ok(());
    }
    std::panic::catch_unwind(|| error_message(body))
        .map(drop)
        .map_err(|_| {
            format!(
                "answered {status} without a JSON error: {}",
                String::from_utf8_lossy(body)
            )
        })
}

/// Sends `request` on a new connection and reads the answer; a stream's answer is read up
/// to its head only.
fn send(port: u16, request: &Request) -> Answer {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return Answer::HungUp;
    };
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .expect("setting a read timeout");
    // The server may answer (and close) before reading a whole oversized body.
    let _ = stream.write_all(&request.bytes);
    if !request.well_framed {
        // A body shorter than announced must not leave the server waiting for the rest. The
        // server hangs up on a half-closed request (hyper's default), so only these do it.
        let _ = stream.shutdown(Shutdown::Write);
    }
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    match read_line(&mut reader, &mut status_line) {
        Ok(0) => return Answer::HungUp,
        Ok(_) => {}
        Err(error) if is_timeout(&error) => return Answer::Silent,
        Err(_) => return Answer::HungUp,
    }
    let Some(status) = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
    else {
        return Answer::HungUp;
    };
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        match read_line(&mut reader, &mut line) {
            Ok(0) => break,
            Ok(_) => {}
            Err(error) if is_timeout(&error) => return Answer::Silent,
            Err(_) => break,
        }
        let line = line.trim_end_matches(['\r', '\n']);
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.to_ascii_lowercase())
    };
    let streaming = header("content-type").is_some_and(|value| value.contains("event-stream"));
    let mut body = Vec::new();
    if !request.bodiless && !streaming {
        let result = match header("content-length").and_then(|value| value.parse().ok()) {
            Some(length) => {
                body.resize(length, 0);
                reader.read_exact(&mut body)
            }
            None if header("transfer-encoding").is_some_and(|value| value.contains("chunked")) => {
                read_chunks(&mut reader, &mut body)
            }
            None => reader.read_to_end(&mut body).map(drop),
        };
        if let Err(error) = result
            && is_timeout(&error)
        {
            return Answer::Silent;
        }
    }
    Answer::Reply {
        status,
        headers,
        body,
    }
}

/// Reads one line as text, with invalid UTF-8 replaced.
fn read_line(reader: &mut impl BufRead, line: &mut String) -> std::io::Result<usize> {
    let mut bytes = Vec::new();
    let count = reader.read_until(b'\n', &mut bytes)?;
    line.push_str(&String::from_utf8_lossy(&bytes));
    Ok(count)
}

fn read_chunks(reader: &mut impl BufRead, body: &mut Vec<u8>) -> std::io::Result<()> {
    loop {
        let mut size_line = String::new();
        if read_line(reader, &mut size_line)? == 0 {
            return Ok(());
        }
        let size_text = size_line.trim().split(';').next().unwrap_or_default();
        let Ok(size) = usize::from_str_radix(size_text, 16) else {
            return Ok(());
        };
        if size == 0 {
            return Ok(());
        }
        let start = body.len();
        body.resize(start + size + 2, 0);
        reader.read_exact(&mut body[start..])?;
        body.truncate(start + size);
    }
}

fn is_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

fn tail(log: &str) -> &str {
    let start = log.len().saturating_sub(6000);
    let start = (start..log.len())
        .find(|index| log.is_char_boundary(*index))
        .unwrap_or(log.len());
    &log[start..]
}

/// What requests can aim at: the server's own route list and ids that exist.
struct Targets {
    port: u16,
    /// Each route's path template and the methods it takes.
    routes: Vec<(String, Vec<String>)>,
    task_ids: Vec<String>,
    worker_ids: Vec<String>,
}

impl Targets {
    fn new(server: &Server) -> Targets {
        let mut by_path: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (method, path) in server.routes() {
            by_path.entry(path).or_default().push(method);
        }
        let routes: Vec<(String, Vec<String>)> = by_path.into_iter().collect();
        assert!(routes.len() > 40, "only {} routes listed", routes.len());
        let task_ids = (0..3)
            .map(|_| server.submit_id(&json!({"type": "echo_task"})))
            .collect();
        let worker_ids = vec![server.register_worker(&["bash"])];
        Targets {
            port: server.port(),
            routes,
            task_ids,
            worker_ids,
        }
    }

    fn request(&self, rng: &mut fastrand::Rng) -> Request {
        // The submit route parses the most (JSON, multipart, uploads): it gets a fifth.
        let (template, methods) = match self.routes.iter().find(|(path, _)| path == "/task/") {
            Some(submit) if rng.u8(..5) == 0 => submit,
            _ => &self.routes[rng.usize(..self.routes.len())],
        };
        let mut method = if rng.u8(..10) < 8 {
            methods[rng.usize(..methods.len())].clone()
        } else {
            METHODS[rng.usize(..METHODS.len())].to_string()
        };
        // Launching real worker processes would only load the machine: those routes get
        // bodies that can never be valid, and the page's form (where any form body, even one
        // without its fields, launches with the defaults) is only read.
        if template == "/ui/workers" && method == "POST" {
            method = "GET".into();
        }
        let launches =
            template.ends_with("/restart") || (method == "POST" && template == "/worker/");
        let mut well_framed = true;
        let mut path = self.path(rng, template, launches);
        if rng.u8(..3) == 0 {
            path.push('?');
            path.push_str(&query(rng));
        }
        if rng.u8(..100) == 0 {
            // Raw bytes a request line may not hold.
            path.push_str(["\u{7f}", " x", "\u{e9}", "\t"][rng.usize(..4)]);
            well_framed = false;
        }
        let json_errors = !(path.starts_with("/ui/") || path == "/ui");
        let (content_type, mut body) = body(rng, launches);
        let mut head: Vec<u8> = Vec::new();
        let method_bytes: Vec<u8> = if rng.u8(..100) == 0 {
            well_framed = false;
            random_bytes(rng, 1..8)
        } else {
            method.clone().into_bytes()
        };
        head.extend_from_slice(&method_bytes);
        head.extend_from_slice(format!(" {path} HTTP/1.1\r\nConnection: close\r\n").as_bytes());
        let host = format!("127.0.0.1:{}", self.port);
        match rng.u8(..50) {
            0 => head.extend_from_slice(b"Host: evil.example\r\n"),
            1 => {}
            2 => head.extend_from_slice(b"Host: \xff\xfe:1\r\n"),
            3 => head.extend_from_slice(format!("Host: localhost:{}\r\n", self.port).as_bytes()),
            _ => head.extend_from_slice(format!("Host: {host}\r\n").as_bytes()),
        }
        if let Some(content_type) = content_type {
            head.extend_from_slice(format!("Content-Type: {content_type}\r\n").as_bytes());
        }
        for _ in 0..rng.usize(..4) {
            let (header, framing_ok) = random_header(rng, &host);
            well_framed &= framing_ok;
            head.extend_from_slice(&header);
        }
        match rng.u8(..20) {
            // A body shorter than announced: the client gives up half way.
            0 => {
                head.extend_from_slice(
                    format!("Content-Length: {}\r\n", body.len() + 1 + rng.usize(..1000))
                        .as_bytes(),
                );
                well_framed = false;
            }
            // Far more than will come: the JSON routes refuse it at once, others stop waiting
            // when the client closes.
            1 => {
                head.extend_from_slice(b"Content-Length: 99999999999999999\r\n");
                well_framed = false;
            }
            2 => {
                head.extend_from_slice(
                    [
                        "Content-Length: abc\r\n",
                        "Content-Length: -1\r\n",
                        "Content-Length: 1\r\nContent-Length: 2\r\n",
                    ][rng.usize(..3)]
                    .as_bytes(),
                );
                well_framed = false;
            }
            3 => {
                head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                // The raw body is no valid chunked framing: hyper's to refuse.
                well_framed = false;
            }
            4 => {
                head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
                body = chunked(rng, &body);
            }
            _ if body.is_empty() && rng.bool() => {}
            _ => head.extend_from_slice(format!("Content-Length: {}\r\n", body.len()).as_bytes()),
        }
        head.extend_from_slice(b"\r\n");
        head.extend_from_slice(&body);
        Request {
            bytes: head,
            well_framed,
            json_errors,
            bodiless: method_bytes == b"HEAD",
        }
    }

    /// `template` with its `{...}` segments filled, sometimes with a segment too many.
    fn path(&self, rng: &mut fastrand::Rng, template: &str, launches: bool) -> String {
        let mut path = String::new();
        for segment in template.split('/').skip(1) {
            path.push('/');
            if segment.starts_with('{') {
                let is_worker = template.contains("worker") || segment == "{workerId}";
                let known = if is_worker {
                    &self.worker_ids
                } else {
                    &self.task_ids
                };
                match rng.u8(..10) {
                    0..=3 if !launches => path.push_str(&known[rng.usize(..known.len())]),
                    4 => path.push_str(&format!("{:024x}", rng.u128(..) >> 32)),
                    5 => path.push_str(&"a".repeat(rng.usize(..5000))),
                    6 => path.push_str(&"../".repeat(rng.usize(1..4))),
                    _ => path.push_str(&random_segment(rng)),
                }
            } else {
                path.push_str(segment);
            }
        }
        if rng.u8(..10) == 0 {
            path.push('/');
            path.push_str(&random_segment(rng));
        }
        if path.is_empty() {
            path.push('/');
        }
        path
    }
}

/// A path segment or query value: percent-encoded random bytes, so the request line stays
/// valid while the decoded text is anything, invalid UTF-8 included.
fn random_segment(rng: &mut fastrand::Rng) -> String {
    match rng.u8(..6) {
        0 => "%ff%fe".to_string(),
        1 => "%2e%2e%2f%2e%2e%2fetc%2fpasswd".to_string(),
        2 => rng.i64(..).to_string(),
        3 => (0..rng.usize(..12)).map(|_| rng.alphanumeric()).collect(),
        _ => random_bytes(rng, 0..40)
            .iter()
            .map(|byte| format!("%{byte:02x}"))
            .collect(),
    }
}

fn query(rng: &mut fastrand::Rng) -> String {
    (0..rng.usize(1..6))
        .map(|_| {
            let key = if rng.u8(..5) == 0 {
                random_segment(rng)
            } else {
                QUERY_KEYS[rng.usize(..QUERY_KEYS.len())].to_string()
            };
            let value = match rng.u8(..8) {
                // A long poll must not hold the fuzzer up.
                _ if key == "wait" => {
                    ["0", "0.01", "-1", "nan", "inf", "soon", ""][rng.usize(..7)].to_string()
                }
                0 => ["true", "false", "1", "yes", "maybe", ""][rng.usize(..6)].to_string(),
                1 => [
                    "WAITING,RUNNING",
                    "waiting",
                    "SUCCESS%2CERROR",
                    ",,,",
                    "BOGUS",
                ][rng.usize(..5)]
                .to_string(),
                2 => [
                    "2024-05-01",
                    "2024/05/01 12:30",
                    "2024-05-01T12:30:00Z",
                    "1700000000",
                    "99999999999999999999",
                    "-9223372036854775808",
                    "2024-13-45",
                ][rng.usize(..7)]
                .to_string(),
                3 => rng.u64(..).to_string(),
                4 => "x".repeat(rng.usize(..3000)),
                _ => random_segment(rng),
            };
            if rng.u8(..10) == 0 {
                key
            } else {
                format!("{key}={}", value.replace(' ', "+"))
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// A random header; `false` when its bytes are not a valid header line.
fn random_header(rng: &mut fastrand::Rng, host: &str) -> (Vec<u8>, bool) {
    let valid_name = [
        "Origin",
        "Authorization",
        "Accept",
        "Last-Event-ID",
        "HX-Request",
        "Cookie",
        "X-Fuzz",
        "Expect",
        "Range",
        "If-None-Match",
        "Accept-Encoding",
    ];
    match rng.u8(..10) {
        0 => (format!("Origin: http://{host}\r\n").into_bytes(), true),
        1 => (b"Origin: http://evil.example\r\n".to_vec(), true),
        2 => (
            format!("X-Big: {}\r\n", "b".repeat(rng.usize(..20_000))).into_bytes(),
            true,
        ),
        3 => {
            // Control characters are not allowed in a header line.
            let mut line = b"X-Control: a".to_vec();
            line.push(rng.u8(..9));
            line.extend_from_slice(b"b\r\n");
            (line, false)
        }
        4 => (b"Bad Header Name: x\r\n".to_vec(), false),
        _ => {
            let mut line = valid_name[rng.usize(..valid_name.len())]
                .as_bytes()
                .to_vec();
            line.extend_from_slice(b": ");
            // Visible ASCII and obs-text (bytes 0x80-0xff, invalid UTF-8) are allowed.
            line.extend(random_bytes(rng, 0..60).into_iter().map(|byte| {
                if byte < 0x20 || byte == 0x7f {
                    b'x'
                } else {
                    byte
                }
            }));
            line.extend_from_slice(b"\r\n");
            (line, true)
        }
    }
}

/// `body` in valid chunked framing, cut into chunks of random sizes.
fn chunked(rng: &mut fastrand::Rng, body: &[u8]) -> Vec<u8> {
    let mut framed = Vec::with_capacity(body.len() + 64);
    let mut rest = body;
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(rng.usize(1..=rest.len().min(4096)));
        framed.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        framed.extend_from_slice(chunk);
        framed.extend_from_slice(b"\r\n");
        rest = after;
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    framed
}

fn random_bytes(rng: &mut fastrand::Rng, length: std::ops::Range<usize>) -> Vec<u8> {
    let mut bytes = vec![0; rng.usize(length)];
    rng.fill(&mut bytes);
    bytes
}

/// A content type (or none) and a body: JSON of any shape, broken JSON, random bytes,
/// multipart bodies intact or garbled, or a body over the JSON limit. `never_valid` bodies
/// are broken JSON whatever else is drawn.
fn body(rng: &mut fastrand::Rng, never_valid: bool) -> (Option<String>, Vec<u8>) {
    let content_type = match rng.u8(..4) {
        0 => None,
        _ => Some(CONTENT_TYPES[rng.usize(..CONTENT_TYPES.len())].to_string()),
    };
    if never_valid {
        // Neither JSON nor a form a launch would accept.
        let text = format!("checkInterval=-1&[{}", random_json(rng, 3));
        return (content_type, text.into_bytes());
    }
    match rng.u8(..12) {
        0 => (content_type, Vec::new()),
        1 => (content_type, random_bytes(rng, 0..2000)),
        2 => {
            let text = random_json(rng, 3).to_string();
            let cut = rng.usize(..=text.len());
            (Some("application/json".into()), text.as_bytes()[..cut].to_vec())
        }
        3 | 4 => {
            let (content_type, body) = multipart(rng);
            (Some(content_type), body)
        }
        5 if rng.u8(..20) == 0 => (
            Some("application/json".into()),
            format!("{{\"type\":\"echo_task\",\"x\":\"{}\"}}", "a".repeat(JSON_LIMIT)).into_bytes(),
        ),
        6 => (
            Some("application/json".into()),
            json!({"type": TYPES[rng.usize(..TYPES.len())], "environment": {"NAME": random_text(rng)}})
                .to_string()
                .into_bytes(),
        ),
        _ => (
            Some(content_type.unwrap_or_else(|| "application/json".into())),
            random_json(rng, 3).to_string().into_bytes(),
        ),
    }
}

fn random_text(rng: &mut fastrand::Rng) -> String {
    (0..rng.usize(..20))
        .map(|_| match rng.u8(..4) {
            0 => rng.char(..),
            1 => ['{', '}', '.', '"', '\\', '\0', '/'][rng.usize(..7)],
            _ => rng.alphanumeric(),
        })
        .collect()
}

fn random_json(rng: &mut fastrand::Rng, depth: u8) -> Value {
    match rng.u8(..if depth == 0 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!([1e308, -0.5, 0.1, 3.0, u64::MAX as f64][rng.usize(..5)]),
        4 => Value::String(random_text(rng)),
        5 => Value::String(TYPES[rng.usize(..TYPES.len())].to_string()),
        6 => Value::Array(
            (0..rng.usize(..4))
                .map(|_| random_json(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(
            (0..rng.usize(..5))
                .map(|_| {
                    let key = if rng.u8(..4) == 0 {
                        random_text(rng)
                    } else {
                        JSON_KEYS[rng.usize(..JSON_KEYS.len())].to_string()
                    };
                    (key, random_json(rng, depth - 1))
                })
                .collect(),
        ),
    }
}

/// A multipart body with random parts, sometimes garbled after it was written.
fn multipart(rng: &mut fastrand::Rng) -> (String, Vec<u8>) {
    let boundary = "fuzz-boundary";
    let mut body = Vec::new();
    for _ in 0..rng.usize(..5) {
        let name = match rng.u8(..10) {
            0 | 1 => "data".to_string(),
            // Names that are a file and a folder at once.
            2 | 3 => ["x", "x/y", "x/y/z"][rng.usize(..3)].to_string(),
            4 => [
                "../x",
                "/etc/x",
                "a/../../b",
                "a\0b",
                "blanket.stdout.log",
                "C:x",
                "~/x",
            ][rng.usize(..7)]
            .to_string(),
            5 => "n".repeat(rng.usize(..5000)),
            6 => random_text(rng),
            _ => (0..rng.usize(1..12)).map(|_| rng.alphanumeric()).collect(),
        };
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if rng.bool() {
            body.extend_from_slice(format!("; filename=\"{}\"", random_text(rng)).as_bytes());
        }
        body.extend_from_slice(b"\r\n\r\n");
        if name == "data" && rng.bool() {
            body.extend_from_slice(br#"{"type": "echo_task"}"#);
        } else if name == "data" {
            body.extend_from_slice(random_json(rng, 2).to_string().as_bytes());
        } else {
            body.extend_from_slice(&random_bytes(rng, 0..300));
        }
        body.extend_from_slice(b"\r\n");
    }
    if rng.bool() {
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    }
    match rng.u8(..6) {
        0 if !body.is_empty() => body.truncate(rng.usize(..body.len())),
        1 if !body.is_empty() => {
            for _ in 0..rng.usize(1..10) {
                let index = rng.usize(..body.len());
                body[index] = rng.u8(..);
            }
        }
        _ => {}
    }
    (format!("multipart/form-data; boundary={boundary}"), body)
}
