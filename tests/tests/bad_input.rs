//! Bad input everywhere answers a clear 4xx with a valid JSON body `{"error": "..."}`:
//! malformed JSON (with line and column), malformed ids, unknown ids, oversized bodies,
//! bad query parameters, unknown routes and methods.

use blanket_blackbox::{Server, new_worker_id};

const UNKNOWN_ID: &str = "5f2b3c4d5e6f708192a3b4c5";
const MALFORMED_IDS: &[&str] = &[
    "xyz",
    "5f2b3c4d5e6f708192a3b4c",
    "5f2b3c4d5e6f708192a3b4c5a",
    "zz2b3c4d5e6f708192a3b4c5",
    "5F2B3C4D5E6F708192A3B4C%",
];

#[test]
fn malformed_task_json_is_400_naming_line_and_column() {
    let server = Server::start();
    for path in ["/task/", "/task"] {
        let message = server
            .post_json(
                path,
                "{\"type\": \"echo_task\",\n  \"environment\": {\"NAME\": }\n}",
            )
            .error(400);
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("column"), "{message}");
    }
    let message = server.post_json("/task/", r#"{"type": 5}"#).error(400);
    assert!(message.contains("line 1"), "{message}");
    assert!(message.contains("column"), "{message}");
    let message = server.post_json("/task/", "").error(400);
    assert!(message.contains("empty"), "{message}");
    assert_eq!(server.get("/task/?count=true").text(), "0");
}

#[test]
fn malformed_worker_json_is_400_naming_line_and_column() {
    let server = Server::start();
    let worker = new_worker_id();
    let message = server
        .put_json(
            &format!("/worker/{worker}"),
            "{\"tags\": [\"bash\",\n\"unix\"",
        )
        .error(400);
    assert!(message.contains("line 2"), "{message}");
    assert!(message.contains("column"), "{message}");
    server.get(&format!("/worker/{worker}")).error(404);
}

#[test]
fn malformed_ids_are_400_on_every_route() {
    let server = Server::start();
    for bad in MALFORMED_IDS {
        let replies = [
            server.get(&format!("/task/{bad}")),
            server.delete(&format!("/task/{bad}")),
            server.put(&format!("/task/{bad}/cancel")),
            server.get(&format!("/task/{bad}/events")),
            server.put(&format!("/task/{bad}/run?pid=1")),
            server.put(&format!("/task/{bad}/progress?progress=5")),
            server.put(&format!("/task/{bad}/finish?state=SUCCESS")),
            server.post(&format!("/task/claim/{bad}")),
            server.get(&format!("/worker/{bad}")),
            server.put_json(&format!("/worker/{bad}"), "{}"),
            server.delete(&format!("/worker/{bad}")),
            server.put(&format!("/worker/{bad}/heartbeat")),
            server.put(&format!("/worker/{bad}/stop")),
            server.get(&format!("/results/{bad}/file.txt")),
        ];
        for reply in replies {
            let message = reply.error(400);
            assert!(message.contains("24"), "{bad}: {message}");
        }
    }
}

#[test]
fn unknown_ids_are_404_on_every_route() {
    let server = Server::start();
    let worker = server.register_worker(&[]);
    let replies = [
        server.get(&format!("/task/{UNKNOWN_ID}")),
        server.delete(&format!("/task/{UNKNOWN_ID}")),
        server.put(&format!("/task/{UNKNOWN_ID}/cancel")),
        server.get(&format!("/task/{UNKNOWN_ID}/events")),
        server.put(&format!("/task/{UNKNOWN_ID}/run?pid=1&workerId={worker}")),
        server.put(&format!("/task/{UNKNOWN_ID}/progress?progress=5")),
        server.put(&format!("/task/{UNKNOWN_ID}/finish?state=SUCCESS")),
        server.post(&format!("/task/claim/{UNKNOWN_ID}")),
        server.get(&format!("/worker/{UNKNOWN_ID}")),
        server.delete(&format!("/worker/{UNKNOWN_ID}")),
        server.put(&format!("/worker/{UNKNOWN_ID}/stop")),
        server.get(&format!("/results/{UNKNOWN_ID}/file.txt")),
        server.get("/task_type/no_such_type"),
    ];
    for reply in replies {
        let message = reply.error(404);
        assert!(!message.is_empty());
    }
}

#[test]
fn task_json_over_one_mebibyte_is_413() {
    let server = Server::start();
    let big = format!(
        r#"{{"type": "echo_task", "environment": {{"NAME": "{}"}}}}"#,
        "a".repeat(1024 * 1024 + 16)
    );
    for path in ["/task/", "/task"] {
        let message = server.post_json(path, &big).error(413);
        assert!(message.contains("limit"), "{message}");
    }
    assert_eq!(server.get("/task/?count=true").text(), "0");
}

#[test]
fn worker_json_over_one_mebibyte_is_413_with_a_json_error() {
    let server = Server::start();
    let big = format!(r#"{{"tags": ["{}"]}}"#, "t".repeat(1024 * 1024 + 16));
    let worker = new_worker_id();
    server
        .put_json(&format!("/worker/{worker}"), &big)
        .error(413);
    server.get(&format!("/worker/{worker}")).error(404);
}

#[test]
fn bad_query_parameters_are_400_naming_the_parameter() {
    let server = Server::start();
    let worker = server.register_worker(&[]);
    let task = server.submit(&serde_json::json!({"type": "echo_task"}));
    let id = task["id"].as_str().expect("an id");
    server.claim(&worker).expect("the task is waiting");
    for (path, parameter) in [
        (format!("/task/{id}/run?pid=abc"), "pid"),
        (format!("/task/{id}/run?pid=1&timeout=-5"), "timeout"),
        (format!("/task/{id}/progress?progress=abc"), "progress"),
        (format!("/task/{id}/progress?progress=300"), "progress"),
        (format!("/task/{id}/progress"), "progress"),
        (format!("/task/{id}/finish?state=BOGUS"), "state"),
        (format!("/task/{id}/finish"), "state"),
        (
            format!("/task/{id}/finish?state=ERROR&exitCode=x"),
            "exitCode",
        ),
        (
            format!("/task/{id}/finish?state=ERROR&workerId=nope"),
            "nope",
        ),
        (format!("/worker/{worker}/stop?force=maybe"), "force"),
    ] {
        let message = server.put(&path).error(400);
        assert!(message.contains(parameter), "{path}: {message}");
    }
    let message = server
        .post(&format!("/task/claim/{worker}?wait=soon"))
        .error(400);
    assert!(message.contains("wait"), "{message}");
    let message = server.get("/task/?count=perhaps").error(400);
    assert!(message.contains("count"), "{message}");
    assert_eq!(
        server.get(&format!("/task/{id}")).json()["state"],
        "CLAIMED"
    );
}

#[test]
fn too_small_check_interval_is_400() {
    let server = Server::start();
    let worker = new_worker_id();
    let message = server
        .put_json(&format!("/worker/{worker}"), r#"{"checkInterval": 0.1}"#)
        .error(400);
    assert!(message.contains("checkInterval"), "{message}");
}

#[test]
fn path_segments_that_are_not_utf8_are_400_with_a_json_error() {
    let server = Server::start();
    for path in [
        "/task/%ff",
        "/task/%ff/events",
        "/worker/%ff",
        "/task_type/%ff",
        "/results/%ff",
        "/results/5f2b3c4d5e6f708192a3b4c5/%ff",
    ] {
        let message = server.get(path).error(400);
        assert!(message.contains("UTF-8"), "{path}: {message}");
    }
    server.put_json("/worker/%ff", "{}").error(400);
    server.post("/task/claim/%ff").error(400);
}

#[test]
fn log_routes_answer_non_utf8_ids_with_a_json_error() {
    let server = Server::start();
    for path in [
        "/task/%ff/log/tail",
        "/task/%ff/log",
        "/worker/%ff/log/tail",
        "/worker/%ff/logs",
    ] {
        let message = server.get(path).error(400);
        assert!(message.contains("UTF-8"), "{path}: {message}");
    }
}

#[test]
fn unknown_routes_and_methods_answer_json_errors() {
    let server = Server::start();
    server.get("/no/such/route").error(404);
    server
        .get("/task/5f2b3c4d5e6f708192a3b4c5/no-such-part")
        .error(404);
    let message = server.delete("/version").error(405);
    assert!(message.contains("DELETE"), "{message}");
    server.put("/task/").error(405);
}
