//! Keeps `openapi.json` and the router in step: the document is well formed, every operation
//! it lists reaches a handler, every `.route(...)` of `src/lib.rs` is documented, and what the
//! server answers matches the documented schemas. A new route without its entry fails here.

mod support;

use std::collections::BTreeSet;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use blanket_core::config::Settings;
use serde_json::{Value, json};
use support::{Answer, HOST};
use tower_http::normalize_path::NormalizePath;

/// The document as shipped (the server serves this very text at `/openapi.json`).
const DOCUMENT: &str = include_str!("../openapi.json");
/// The operation keys of an OpenAPI path item.
const OPERATION_KEYS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
/// The method functions of `axum::routing` the source parser understands.
const ROUTING_FUNCTIONS: [&str; 7] = ["get", "post", "put", "delete", "patch", "head", "options"];
/// Router calls that add routes under paths this test cannot read from the source. (`.merge`
/// is fine: the merged router's `.route` calls are read wherever they are in `src/`.)
const UNREADABLE_ROUTER_CALLS: [&str; 4] = [
    ".nest(",
    ".route_service(",
    ".nest_service(",
    ".fallback_service(",
];
/// The records of `core::wire` the document must describe.
const WIRE_SCHEMAS: [&str; 10] = [
    "Task",
    "TaskEvent",
    "NewTask",
    "TaskType",
    "Worker",
    "WorkerUpdate",
    "HeartbeatReply",
    "ClaimedTask",
    "VersionInfo",
    "ErrorBody",
];
/// A well-formed id that names nothing.
const SOME_ID: &str = "66a1b2c3d4e5f60718293a4b";

#[test]
fn document_parses_and_every_operation_has_a_summary_and_responses() {
    let document = document();
    let version = document["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3.1."), "openapi is {version:?}");
    assert!(document["info"]["title"].is_string());
    assert_eq!(document["info"]["version"], env!("CARGO_PKG_VERSION"));
    let mut problems = Vec::new();
    let mut operation_ids = BTreeSet::new();
    for (method, path, operation) in operations(&document) {
        let at = format!("{} {path}", method.to_uppercase());
        if !path.starts_with('/') {
            problems.push(format!("{at}: the path does not start with /"));
        }
        if operation["summary"]
            .as_str()
            .is_none_or(|summary| summary.trim().is_empty())
        {
            problems.push(format!("{at}: no summary"));
        }
        match operation["operationId"].as_str() {
            Some(id) if operation_ids.insert(id.to_string()) => {}
            Some(id) => problems.push(format!("{at}: operationId {id} is used twice")),
            None => problems.push(format!("{at}: no operationId")),
        }
        let responses = operation["responses"].as_object();
        if responses.is_none_or(serde_json::Map::is_empty) {
            problems.push(format!("{at}: no responses"));
        }
        for (code, response) in responses.into_iter().flatten() {
            let valid_code = code == "default"
                || (code.len() == 3 && code.bytes().all(|byte| byte.is_ascii_digit()))
                || ["1XX", "2XX", "3XX", "4XX", "5XX"].contains(&code.as_str());
            if !valid_code {
                problems.push(format!("{at}: response code {code:?} is not a status"));
            }
            if !resolve(&document, response)["description"].is_string() {
                problems.push(format!("{at}: response {code} has no description"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_reference_in_the_document_resolves() {
    let document = document();
    let mut problems = Vec::new();
    check_references(&document, &document, "#", &mut problems);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_path_parameter_is_declared_exactly_where_it_is_used() {
    let document = document();
    let mut problems = Vec::new();
    for (method, path, operation) in operations(&document) {
        let in_template: BTreeSet<String> = template_names(path).into_iter().collect();
        let path_item = &document["paths"][path];
        let declared: BTreeSet<String> = [&path_item["parameters"], &operation["parameters"]]
            .into_iter()
            .filter_map(Value::as_array)
            .flatten()
            .map(|parameter| resolve(&document, parameter))
            .filter(|parameter| parameter["in"] == "path")
            .inspect(|parameter| {
                if parameter["required"] != true {
                    problems.push(format!(
                        "{method} {path}: path parameter {} is not required: true",
                        parameter["name"]
                    ));
                }
            })
            .filter_map(|parameter| parameter["name"].as_str().map(str::to_string))
            .collect();
        if in_template != declared {
            problems.push(format!(
                "{method} {path}: the template names {in_template:?} but the parameters declare {declared:?}"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_error_response_is_documented_as_an_error_body() {
    let document = document();
    let mut problems = Vec::new();
    for (method, path, operation) in operations(&document) {
        for (code, response) in operation["responses"].as_object().into_iter().flatten() {
            if !(code.starts_with('4') || code.starts_with('5')) {
                continue;
            }
            let content = &resolve(&document, response)["content"];
            // HTML form posts and pages answer their own errors in HTML (API.md); a JSON
            // error is an ErrorBody everywhere.
            if path.starts_with("/ui/") && content.get("application/json").is_none() {
                continue;
            }
            if content["application/json"]["schema"]["$ref"] != "#/components/schemas/ErrorBody" {
                problems.push(format!(
                    "{method} {path}: response {code} is not an ErrorBody"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let error_body = &document["components"]["schemas"]["ErrorBody"];
    assert_eq!(error_body["required"], json!(["error"]));
    assert_eq!(error_body["additionalProperties"], json!(false));
}

#[test]
fn the_document_describes_every_wire_record() {
    let document = document();
    let schemas = &document["components"]["schemas"];
    let missing: Vec<&str> = WIRE_SCHEMAS
        .into_iter()
        .filter(|name| !schemas[name].is_object())
        .collect();
    assert!(missing.is_empty(), "no component schema for {missing:?}");
}

#[test]
fn requests_the_wire_types_serialise_use_the_documented_field_names() {
    let document = document();
    let new_task = serde_json::to_value(blanket_core::wire::NewTask::default()).unwrap();
    let update = serde_json::to_value(blanket_core::wire::WorkerUpdate::default()).unwrap();
    for (schema, value) in [("NewTask", &new_task), ("WorkerUpdate", &update)] {
        let documented: BTreeSet<&String> = document["components"]["schemas"][schema]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .collect();
        let sent: BTreeSet<&String> = value.as_object().unwrap().keys().collect();
        assert_eq!(documented, sent, "fields of {schema}");
    }
}

#[tokio::test]
async fn every_documented_operation_reaches_a_handler() {
    let server = Server::start(Settings::default()).await;
    let document = document();
    let mut problems = Vec::new();
    for (method, path, _operation) in operations(&document) {
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let filled = fill_template(path);
        let trimmed = match filled.trim_end_matches('/') {
            "" => "/".to_string(),
            trimmed => trimmed.to_string(),
        };
        for uri in BTreeSet::from([filled.clone(), trimmed]) {
            let answer = server.send(method.clone(), &uri, Body::empty()).await;
            if let Some(refusal) = router_refusal(&method, &answer) {
                problems.push(format!("{method} {uri} (documented as {path}): {refusal}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_route_in_the_router_is_documented() {
    let mut routes = Vec::new();
    for (file, code) in server_sources() {
        for call in UNREADABLE_ROUTER_CALLS {
            assert!(
                !code.contains(call),
                "{file} calls {call}...): this test reads routes only from \
                 .route(\"...\", ...) calls in src/, so teach routes_in_source about it first"
            );
        }
        routes.extend(routes_in_source(&code));
    }
    assert!(
        routes.len() >= 20,
        "only {} routes read from src/: the parser no longer understands the router",
        routes.len()
    );
    let documented: BTreeSet<(String, String)> = operations(&document())
        .into_iter()
        .map(|(method, path, _)| (method.to_uppercase(), normalise_path(path)))
        .collect();
    let undocumented: Vec<String> = routes
        .iter()
        .filter(|(method, path)| !documented.contains(&(method.clone(), normalise_path(path))))
        .map(|(method, path)| format!("{method} {path}"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "routes missing from crates/server/openapi.json:\n{}",
        undocumented.join("\n")
    );
}

#[test]
fn route_parser_reads_every_method_chained_on_a_route() {
    let source = r#"
        Router::new()
            .route("/a", get(handlers::a_get)) // .route("/commented", get(x))
            .route(
                "/b/{id}",
                axum::routing::get(b::get).post(b::post).layer(DefaultBodyLimit::max(limit(3)))
                    .delete(b::delete),
            )
            .route("/c/{*path}", put(c).patch(c_patch))
    "#;
    let routes = routes_in_source(&without_comments(source));
    let expected: Vec<(String, String)> = [
        ("GET", "/a"),
        ("GET", "/b/{id}"),
        ("POST", "/b/{id}"),
        ("DELETE", "/b/{id}"),
        ("PUT", "/c/{*path}"),
        ("PATCH", "/c/{*path}"),
    ]
    .into_iter()
    .map(|(method, path)| (method.to_string(), path.to_string()))
    .collect();
    assert_eq!(routes, expected);
    assert_eq!(normalise_path("/c/{*path}"), normalise_path("/c/{file}/"));
}

#[tokio::test]
async fn the_served_document_is_the_file() {
    let server = Server::start(Settings::default()).await;
    let answer = server
        .send(Method::GET, "/openapi.json", Body::empty())
        .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(answer.body, DOCUMENT.as_bytes());
}

#[tokio::test]
async fn server_answers_match_the_documented_schemas() {
    let server = Server::start(Settings::default()).await;
    let document = document();
    let worker = "66a1b2c3d4e5f60718293a4c";
    let before_submit = [
        ("get", "/version", "/version".to_string(), None, 200),
        ("get", "/config/", "/config/".into(), None, 200),
        ("get", "/config/notify", "/config/notify".into(), None, 200),
        (
            "put",
            "/config/notify",
            "/config/notify".into(),
            Some(json!({ "minSeconds": -1 })),
            400,
        ),
        ("get", "/ops/status/", "/ops/status/".into(), None, 200),
        ("get", "/task_type/", "/task_type/".into(), None, 200),
        (
            "get",
            "/task_type/{name}",
            "/task_type/wordcount_task".into(),
            None,
            200,
        ),
        (
            "get",
            "/task_type/{name}",
            "/task_type/no_such_type".into(),
            None,
            404,
        ),
        (
            "put",
            "/worker/{id}",
            format!("/worker/{worker}"),
            Some(json!({
                "tags": ["bash", "unix"],
                "pid": 321,
                "checkInterval": 2,
                "logfile": "/nonexistent/blanket-worker.log",
            })),
            200,
        ),
        ("get", "/worker/", "/worker/".into(), None, 200),
        (
            "get",
            "/worker/{id}",
            format!("/worker/{worker}"),
            None,
            200,
        ),
        (
            "get",
            "/worker/{id}",
            format!("/worker/{SOME_ID}"),
            None,
            404,
        ),
        ("get", "/task/{id}", "/task/not-an-id".into(), None, 400),
        ("get", "/task/{id}", format!("/task/{SOME_ID}"), None, 404),
        (
            "post",
            "/task/{id}/retry",
            "/task/not-an-id/retry".into(),
            None,
            400,
        ),
        (
            "post",
            "/task/{id}/retry",
            format!("/task/{SOME_ID}/retry"),
            None,
            404,
        ),
    ];
    for (method, path, uri, body, status) in before_submit {
        server
            .check_step(&document, method, path, &uri, body, status)
            .await;
    }
    let submitted = server
        .check_step(
            &document,
            "post",
            "/task/",
            "/task/",
            Some(json!({"type": "echo_task", "environment": {"NAME": "doc"}})),
            201,
        )
        .await;
    let task = submitted.json()["id"].as_str().unwrap().to_string();
    let after_submit = [
        ("get", "/task/", "/task/?states=WAITING".to_string(), 200),
        ("get", "/task/", "/task/?count=true".into(), 200),
        ("get", "/task/", "/task/?states=BOGUS".into(), 400),
        ("get", "/task/{id}", format!("/task/{task}"), 200),
        (
            "post",
            "/task/{id}/retry",
            format!("/task/{task}/retry"),
            409,
        ),
        (
            "put",
            "/task/{id}/run",
            format!("/task/{task}/run?pid=1"),
            409,
        ),
        (
            "post",
            "/task/claim/{workerId}",
            format!("/task/claim/{worker}"),
            200,
        ),
        (
            "post",
            "/task/claim/{workerId}",
            format!("/task/claim/{worker}"),
            204,
        ),
        (
            "post",
            "/task/claim/{workerId}",
            format!("/task/claim/{SOME_ID}"),
            404,
        ),
        (
            "put",
            "/task/{id}/run",
            format!("/task/{task}/run?pid=99&workerId={worker}"),
            200,
        ),
        (
            "put",
            "/task/{id}/progress",
            format!("/task/{task}/progress?progress=50"),
            200,
        ),
        (
            "put",
            "/task/{id}/progress",
            format!("/task/{task}/progress"),
            400,
        ),
        (
            "put",
            "/worker/{id}/heartbeat",
            format!("/worker/{worker}/heartbeat?running={task}"),
            200,
        ),
        (
            "put",
            "/task/{id}/finish",
            format!("/task/{task}/finish?state=SUCCESS&exitCode=0"),
            200,
        ),
        (
            "put",
            "/task/{id}/finish",
            format!("/task/{task}/finish?state=ERROR"),
            409,
        ),
        (
            "put",
            "/task/{id}/cancel",
            format!("/task/{task}/cancel"),
            409,
        ),
        (
            "post",
            "/task/{id}/retry",
            format!("/task/{task}/retry"),
            201,
        ),
        (
            "get",
            "/task/{id}/events",
            format!("/task/{task}/events"),
            200,
        ),
        ("get", "/results/{id}/", format!("/results/{task}/"), 200),
        (
            "get",
            "/results/{id}/{path}",
            format!("/results/{task}/missing.txt"),
            404,
        ),
        (
            "put",
            "/worker/{id}/stop",
            format!("/worker/{worker}/stop"),
            200,
        ),
        ("delete", "/worker/{id}", format!("/worker/{worker}"), 409),
        (
            "get",
            "/task/{id}/log/tail",
            format!("/task/{task}/log/tail?n=5"),
            200,
        ),
        (
            "get",
            "/task/{id}/log/tail",
            format!("/task/{task}/log/tail?stream=x"),
            400,
        ),
        ("get", "/task/{id}/log", format!("/task/{task}/log"), 200),
        ("get", "/task/{id}/log", format!("/task/{SOME_ID}/log"), 404),
        (
            "get",
            "/worker/{id}/log/tail",
            format!("/worker/{worker}/log/tail"),
            200,
        ),
        (
            "get",
            "/worker/{id}/logs",
            format!("/worker/{worker}/logs"),
            404,
        ),
        (
            "get",
            "/worker/{id}/log",
            format!("/worker/{SOME_ID}/log"),
            404,
        ),
        (
            "put",
            "/worker/{id}/restart",
            format!("/worker/{worker}/restart"),
            409,
        ),
        (
            "put",
            "/worker/{id}/restart",
            format!("/worker/{SOME_ID}/restart"),
            404,
        ),
        ("put", "/queue/pause", "/queue/pause".into(), 200),
        ("get", "/queue/", "/queue/".into(), 200),
        ("put", "/queue/resume", "/queue/resume".into(), 200),
        ("get", "/metrics", "/metrics".into(), 200),
        ("get", "/", "/".into(), 301),
        ("get", "/ui/", "/ui/".into(), 200),
        ("get", "/ui/sse/tasks", "/ui/sse/tasks".into(), 200),
        ("get", "/ui/tasks/{id}", format!("/ui/tasks/{task}"), 200),
        ("get", "/ui/tasks/{id}", format!("/ui/tasks/{SOME_ID}"), 404),
        (
            "get",
            "/ui/partials/task-summary/{id}",
            format!("/ui/partials/task-summary/{task}"),
            200,
        ),
        (
            "get",
            "/ui/workers/{id}",
            format!("/ui/workers/{worker}"),
            200,
        ),
        (
            "get",
            "/ui/task-types/{name}",
            "/ui/task-types/echo_task".into(),
            200,
        ),
        (
            "get",
            "/ui/static/{path}",
            "/ui/static/no-such-file.css".into(),
            404,
        ),
        ("get", "/ui/about", "/ui/about".into(), 200),
        (
            "post",
            "/ui/tasks/{id}/retry",
            format!("/ui/tasks/{task}/retry"),
            303,
        ),
        (
            "post",
            "/ui/tasks/{id}/cancel",
            format!("/ui/tasks/{task}/cancel"),
            409,
        ),
        ("delete", "/task/{id}", format!("/task/{task}"), 200),
    ];
    for (body, status) in [
        (json!({"checkInterval": 0.1}), 400),
        (json!({"tags": ["bash"]}), 503),
    ] {
        server
            .check_step(
                &document,
                "post",
                "/worker/",
                "/worker/",
                Some(body),
                status,
            )
            .await;
    }
    for (method, path, uri, status) in after_submit {
        server
            .check_step(&document, method, path, &uri, None, status)
            .await;
    }
}

/// A server on a temporary data folder, answering through `blanket_server::app`.
struct Server {
    _data: tempfile::TempDir,
    app: NormalizePath<axum::Router>,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|error| {
            panic!(
                "body of a {} answer is not JSON ({error}): {}",
                self.status,
                self.text()
            )
        })
    }
}

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("crates/server/openapi.json is not valid JSON")
}

/// Every `(method, path, operation)` of the document, in document order.
fn operations(document: &Value) -> Vec<(&str, &str, &Value)> {
    let paths = document["paths"]
        .as_object()
        .expect("the document has no paths object");
    paths
        .iter()
        .flat_map(|(path, item)| {
            OPERATION_KEYS.into_iter().filter_map(move |method| {
                item.get(method)
                    .map(|operation| (method, path.as_str(), operation))
            })
        })
        .collect()
}

/// `value` itself, or what its `$ref` points at.
fn resolve<'a>(document: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => resolve(
            document,
            pointer(document, reference).unwrap_or(&Value::Null),
        ),
        None => value,
    }
}

fn pointer<'a>(document: &'a Value, reference: &str) -> Option<&'a Value> {
    document.pointer(reference.strip_prefix('#')?)
}

fn check_references(document: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            if let Some(reference) = map.get("$ref").and_then(Value::as_str)
                && pointer(document, reference).is_none()
            {
                problems.push(format!("{at}: $ref {reference} points at nothing"));
            }
            for (key, child) in map {
                check_references(document, child, &format!("{at}/{key}"), problems);
            }
        }
        Value::Array(items) => {
            for (index, child) in items.iter().enumerate() {
                check_references(document, child, &format!("{at}/{index}"), problems);
            }
        }
        _ => {}
    }
}

/// The `{name}` parameters of a path template, in order.
fn template_names(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| name.trim_start_matches('*').to_string())
        .collect()
}

/// A template with its parameters filled with values a handler accepts as well formed.
fn fill_template(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            match segment
                .strip_prefix('{')
                .and_then(|rest| rest.strip_suffix('}'))
            {
                Some("name") => "echo_task",
                Some("path") => "blanket.stdout.log",
                Some(_) => SOME_ID,
                None => segment,
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A path with parameter names erased and no trailing slash, so `/task/{id}/` (document) and
/// `/task/{task_id}` (router) compare equal.
fn normalise_path(path: &str) -> String {
    let segments: Vec<&str> = path
        .split('/')
        .filter(|segment| !segment.is_empty())
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                "{}"
            } else {
                segment
            }
        })
        .collect();
    format!("/{}", segments.join("/"))
}

/// Why the router itself (not a handler) answered, when it did: its fallback for unknown
/// paths or for methods a path does not take.
fn router_refusal(method: &Method, answer: &Answer) -> Option<String> {
    if answer.status != StatusCode::NOT_FOUND && answer.status != StatusCode::METHOD_NOT_ALLOWED {
        return None;
    }
    let message = serde_json::from_slice::<Value>(&answer.body)
        .ok()
        .and_then(|body| body["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| answer.text());
    let refused = answer.status == StatusCode::METHOD_NOT_ALLOWED
        || message.starts_with("no such endpoint")
        || message.starts_with(&format!("{method} is not allowed on"));
    refused.then(|| format!("{}: {message}", answer.status))
}

/// `(path, code)` of every `.rs` file of `src/`, comments removed and unit tests (from the
/// first `#[cfg(test)]` on) cut off, so only the routes the server really has are read.
fn server_sources() -> Vec<(String, String)> {
    let source_root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut pending = vec![source_root];
    let mut sources = Vec::new();
    while let Some(dir) = pending.pop() {
        let listing = std::fs::read_dir(&dir)
            .unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()));
        for entry in listing {
            let path = entry
                .unwrap_or_else(|error| panic!("listing {}: {error}", dir.display()))
                .path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|extension| extension == "rs") {
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
                let code = without_comments(&text);
                let code = code.split("#[cfg(test)]").next().unwrap_or_default();
                sources.push((path.display().to_string(), code.to_string()));
            }
        }
    }
    sources.sort();
    sources
}

/// The source with `//` comments removed and string literals kept, so commented-out routes
/// do not count.
fn without_comments(source: &str) -> String {
    let mut code = String::with_capacity(source.len());
    let mut characters = source.chars().peekable();
    let mut in_string = false;
    while let Some(character) = characters.next() {
        if in_string {
            code.push(character);
            match character {
                '\\' => code.extend(characters.next()),
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match character {
            '"' => {
                in_string = true;
                code.push(character);
            }
            '/' if characters.peek() == Some(&'/') => {
                for skipped in characters.by_ref() {
                    if skipped == '\n' {
                        code.push('\n');
                        break;
                    }
                }
            }
            _ => code.push(character),
        }
    }
    code
}

/// `(METHOD, path)` of every `.route("path", get(..).post(..)...)` call in `code`.
fn routes_in_source(code: &str) -> Vec<(String, String)> {
    let mut routes = Vec::new();
    let mut rest = code;
    while let Some(start) = rest.find(".route(") {
        rest = &rest[start + ".route(".len()..];
        let literal = rest.trim_start();
        let Some(literal) = literal.strip_prefix('"') else {
            panic!(
                "a .route( call in src/lib.rs does not start with a string literal path: {}",
                &rest[..rest.len().min(80)]
            );
        };
        let end = literal.find('"').expect("unterminated route path");
        let path = &literal[..end];
        let after_path = literal[end + 1..].trim_start();
        let method_router = after_path
            .strip_prefix(',')
            .expect("a route path not followed by a comma");
        let methods = methods_at_top_level(method_router);
        assert!(
            !methods.is_empty(),
            "no get/post/put/delete found for route {path:?}"
        );
        routes.extend(
            methods
                .into_iter()
                .map(|method| (method.to_uppercase(), path.to_string())),
        );
        rest = method_router;
    }
    routes
}

/// The routing functions called at nesting depth 0 of `arguments`, up to the `)` that closes
/// the `.route(` call: `get(a).post(b).layer(c)` gives `get`, `post`.
fn methods_at_top_level(arguments: &str) -> Vec<String> {
    let mut methods = Vec::new();
    let mut depth = 0usize;
    let mut in_string = false;
    let mut identifier = String::new();
    let mut escaped = false;
    for character in arguments.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if character == '\\' {
                escaped = true;
            } else if character == '"' {
                in_string = false;
            }
            continue;
        }
        if character.is_alphanumeric() || character == '_' {
            identifier.push(character);
            continue;
        }
        if character == '(' && depth == 0 && ROUTING_FUNCTIONS.contains(&identifier.as_str()) {
            methods.push(identifier.clone());
        }
        assert!(
            !(character == '(' && depth == 0 && identifier == "any"),
            "a route uses any(...): list its methods so the document can describe them"
        );
        identifier.clear();
        match character {
            '"' => in_string = true,
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => break,
            ')' | ']' | '}' => depth -= 1,
            _ => {}
        }
    }
    methods
}

/// Problems with `answer` as the response of `method path` in the document: an undocumented
/// status, or a body that does not match the documented schema.
fn check_against_document(
    document: &Value,
    method: &str,
    path: &str,
    answer: &Answer,
) -> Vec<String> {
    let operation = &document["paths"][path][method];
    assert!(
        operation.is_object(),
        "{method} {path} is not in the document"
    );
    let code = answer.status.as_u16().to_string();
    let range = format!("{}XX", &code[..1]);
    let responses = &operation["responses"];
    let Some(response) = responses.get(&code).or_else(|| responses.get(&range)) else {
        return vec![format!(
            "status {code} is not documented (body {})",
            answer.text()
        )];
    };
    let response = resolve(document, response);
    let Some(content) = response["content"].as_object() else {
        return if answer.body.is_empty() {
            Vec::new()
        } else {
            vec![format!(
                "status {code} is documented without a body but has one"
            )]
        };
    };
    let content_type = answer
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let Some((_, media)) = content
        .iter()
        .find(|(media_type, _)| content_type.starts_with(media_type.as_str()))
    else {
        return vec![format!(
            "content type {content_type:?} of status {code} is not documented"
        )];
    };
    if !content_type.starts_with("application/json") {
        return Vec::new();
    }
    let mut problems = Vec::new();
    conform(
        document,
        &media["schema"],
        &answer.json(),
        "body",
        &mut problems,
    );
    problems
}

/// Checks `value` against a JSON schema of the document, the subset the document uses. It is
/// stricter than JSON Schema on one point: an object schema that lists `properties` and says
/// nothing of `additionalProperties` must list every field the server sends.
fn conform(document: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(document, schema);
    if let Some(branches) = schema["oneOf"].as_array() {
        let matching = branches.iter().any(|branch| {
            let mut branch_problems = Vec::new();
            conform(document, branch, value, at, &mut branch_problems);
            branch_problems.is_empty()
        });
        if !matching {
            problems.push(format!("{at}: {value} matches no branch of {schema}"));
        }
    }
    if let Some(branches) = schema["allOf"].as_array() {
        let mut properties = serde_json::Map::new();
        let mut required = Vec::new();
        for branch in branches {
            let branch = resolve(document, branch);
            properties.extend(
                branch["properties"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            );
            required.extend(branch["required"].as_array().cloned().unwrap_or_default());
        }
        let merged = json!({"type": "object", "properties": properties, "required": required});
        conform(document, &merged, value, at, problems);
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(name) => vec![name.as_str()],
            Value::Array(names) => names.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !types.iter().any(|name| has_type(value, name)) {
            problems.push(format!("{at}: {value} is not of type {types:?}"));
            return;
        }
    }
    if let Some(expected) = schema.get("const")
        && expected != value
    {
        problems.push(format!("{at}: {value} is not {expected}"));
    }
    if let Some(allowed) = schema["enum"].as_array()
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(number) = value.as_f64() {
        if let Some(minimum) = schema["minimum"].as_f64()
            && number < minimum
        {
            problems.push(format!("{at}: {number} is below the minimum {minimum}"));
        }
        if let Some(maximum) = schema["maximum"].as_f64()
            && number > maximum
        {
            problems.push(format!("{at}: {number} is above the maximum {maximum}"));
        }
    }
    if let Some(text) = value.as_str()
        && let Some(pattern) = schema["pattern"].as_str()
        && pattern == "^[0-9a-f]{24}$"
        && !(text.len() == 24
            && text
                .bytes()
                .all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f')))
    {
        problems.push(format!("{at}: {text:?} is not an id"));
    }
    if let Some(items) = value.as_array()
        && let Some(item_schema) = schema.get("items")
    {
        for (index, item) in items.iter().enumerate() {
            conform(
                document,
                item_schema,
                item,
                &format!("{at}[{index}]"),
                problems,
            );
        }
    }
    if let Some(fields) = value.as_object() {
        conform_object(document, schema, fields, at, problems);
    }
}

fn conform_object(
    document: &Value,
    schema: &Value,
    fields: &serde_json::Map<String, Value>,
    at: &str,
    problems: &mut Vec<String>,
) {
    let properties = schema["properties"].as_object();
    let additional = schema.get("additionalProperties");
    for (name, field) in fields {
        let field_at = format!("{at}.{name}");
        match (
            properties.and_then(|properties| properties.get(name)),
            additional,
        ) {
            (Some(field_schema), _) => conform(document, field_schema, field, &field_at, problems),
            (None, Some(Value::Bool(true))) => {}
            (None, Some(Value::Bool(false))) => {
                problems.push(format!("{field_at}: the schema allows no other fields"));
            }
            (None, Some(field_schema)) => {
                conform(document, field_schema, field, &field_at, problems);
            }
            (None, None) if properties.is_some() => {
                problems.push(format!(
                    "{field_at}: the server sends it, the document does not list it"
                ));
            }
            (None, None) => {}
        }
    }
    for name in schema["required"].as_array().into_iter().flatten() {
        if let Some(name) = name.as_str()
            && !fields.contains_key(name)
        {
            problems.push(format!("{at}: required field {name} is missing"));
        }
    }
}

fn has_type(value: &Value, name: &str) -> bool {
    match name {
        "null" => value.is_null(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "string" => value.is_string(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

impl Server {
    async fn start(settings: Settings) -> Server {
        let (data, _, app) = support::open_app(settings).await;
        Server { _data: data, app }
    }

    async fn send(&self, method: Method, uri: &str, body: Body) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static(HOST));
        self.answer(support::request(method, uri, headers, body))
            .await
    }

    async fn send_json(&self, method: Method, uri: &str, body: &Value) -> Answer {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static(HOST));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let request = support::request(method, uri, headers, Body::from(body.to_string()));
        self.answer(request).await
    }

    /// Sends one request and checks its status and that the answer is as documented.
    async fn check_step(
        &self,
        document: &Value,
        method: &str,
        path: &str,
        uri: &str,
        body: Option<Value>,
        status: u16,
    ) -> Answer {
        let http_method =
            Method::from_bytes(method.to_uppercase().as_bytes()).expect("a method name");
        let answer = match body {
            Some(body) => self.send_json(http_method, uri, &body).await,
            None => self.send(http_method, uri, Body::empty()).await,
        };
        assert_eq!(
            answer.status.as_u16(),
            status,
            "{method} {uri}: {}",
            answer.text()
        );
        let problems = check_against_document(document, method, path, &answer);
        assert!(
            problems.is_empty(),
            "{method} {uri} (documented as {path}):\n{}",
            problems.join("\n")
        );
        answer
    }

    async fn answer(&self, request: Request<Body>) -> Answer {
        let response = support::respond(&self.app, request).await;
        // A live stream never ends: only its status and headers matter here.
        let is_stream = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|value| value.as_bytes().starts_with(b"text/event-stream"));
        if is_stream {
            return Answer {
                status: response.status(),
                headers: response.headers().clone(),
                body: Bytes::new(),
            };
        }
        Answer::read(response).await
    }
}
