//! Operating the server: `/metrics` in Prometheus text, `/ops/status/` and `/config/` in JSON
//! (secrets hidden), and task type files that are broken: listed with their error and line,
//! refused at submit with a message naming the problem.

use blanket_blackbox::Server;
use serde_json::{Value, json};

#[test]
fn metrics_are_prometheus_text_counting_tasks_by_state() {
    let server = Server::start();
    server.submit(&json!({"type": "echo_task"}));
    server.submit(&json!({"type": "echo_task"}));
    let worker = server.register_worker(&[]);
    server.claim(&worker).expect("a task waits");
    for path in ["/metrics", "/metrics/"] {
        let reply = server.get(path);
        reply.expect_status(200);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|value| value.starts_with("text/plain")),
            "{:?}",
            reply.header("content-type")
        );
        let text = reply.text();
        assert!(text.contains("# TYPE blanket_tasks gauge"), "{text}");
        assert!(
            text.contains("blanket_tasks{state=\"WAITING\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("blanket_tasks{state=\"CLAIMED\"} 1\n"),
            "{text}"
        );
        for line in text.lines().filter(|line| !line.starts_with('#')) {
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("not a sample line: {line:?}"));
            assert!(
                name.starts_with("blanket_"),
                "sample without the blanket_ prefix: {line:?}"
            );
            assert!(value.parse::<f64>().is_ok(), "value not a number: {line:?}");
        }
    }
}

#[test]
fn ops_status_answers_json_with_counts_and_subscribers() {
    let server = Server::start();
    server.submit(&json!({"type": "echo_task"}));
    for path in ["/ops/status/", "/ops/status"] {
        let reply = server.get(path);
        reply.expect_status(200);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|value| value == "application/json")
        );
        let status = reply.json();
        assert!(status["version"].is_string(), "{status}");
        assert!(status["uptimeSeconds"].is_u64(), "{status}");
        assert_eq!(status["tasks"]["WAITING"], 1, "{status}");
        assert_eq!(status["subscribers"]["tasks"], 0, "{status}");
        assert_eq!(status["subscribers"]["workers"], 0, "{status}");
        assert_eq!(status["taskTypes"], 5, "{status}");
        assert_eq!(status["brokenTaskTypes"], 0, "{status}");
    }
}

#[test]
fn config_answers_json_with_the_effective_settings() {
    let server = Server::start();
    for path in ["/config/", "/config"] {
        let reply = server.get(path);
        reply.expect_status(200);
        let config = reply.json();
        assert_eq!(config["port"], server.port(), "{config}");
        assert_eq!(config["bind"], "127.0.0.1", "{config}");
        assert_eq!(config["token"], Value::Null, "{config}");
        assert_eq!(config["local_workers"], 0, "{config}");
    }
}

#[test]
fn config_shows_a_token_as_stars_and_never_its_value() {
    let server = Server::builder().token("very-secret-token-42").start();
    let reply = server.get("/config/");
    reply.expect_status(200);
    assert_eq!(reply.json()["token"], "***");
    assert!(!reply.text().contains("very-secret-token-42"));
    let status = server.get("/ops/status/");
    assert!(!status.text().contains("very-secret-token-42"));
    assert!(
        !server
            .get("/metrics")
            .text()
            .contains("very-secret-token-42")
    );
    assert!(
        !server.log().contains("very-secret-token-42"),
        "the log shows the token"
    );
}

const BROKEN: &str =
    "description = \"oops\"\ntags = [\"bash\"]\ncommand = \"echo hi\ntimeout = 5\n";

fn broken_types_server() -> Server {
    Server::builder()
        .types(&[
            ("good.toml", "tags = [\"bash\"]\ncommand = \"echo good\"\n"),
            ("broken.toml", BROKEN),
            ("nocommand.toml", "description = \"forgot the command\"\n"),
        ])
        .start()
}

fn listed_type(server: &Server, name: &str) -> Value {
    server
        .get("/task_type/")
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .find(|task_type| task_type["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("type {name} not listed"))
}

#[test]
fn a_broken_type_file_is_listed_with_its_error_and_line() {
    let server = broken_types_server();
    let names: Vec<Value> = server
        .get("/task_type")
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|task_type| task_type["name"].clone())
        .collect();
    assert_eq!(names, [json!("broken"), json!("good"), json!("nocommand")]);

    let broken = listed_type(&server, "broken");
    assert!(
        broken["error"]
            .as_str()
            .is_some_and(|error| !error.is_empty()),
        "{broken}"
    );
    assert_eq!(broken["line"], 3, "{broken}");
    assert_eq!(broken["command"], "", "{broken}");

    let missing = listed_type(&server, "nocommand");
    assert!(
        missing["error"]
            .as_str()
            .is_some_and(|error| error.contains("command")),
        "{missing}"
    );

    let good = listed_type(&server, "good");
    assert!(good.get("error").is_none(), "{good}");
    assert!(good.get("line").is_none(), "{good}");
    assert_eq!(good["command"], "echo good");
    assert_eq!(good["timeout"], 3600);
    assert_eq!(good["executor"], "bash");

    let one = server.get("/task_type/broken");
    one.expect_status(200);
    assert_eq!(one.json(), broken);
    let status = server.status();
    assert_eq!(status["brokenTaskTypes"], 2, "{status}");
    assert_eq!(status["taskTypes"], 1, "{status}");
}

#[test]
fn submitting_a_broken_type_is_400_naming_the_problem() {
    let server = broken_types_server();
    let broken = listed_type(&server, "broken");
    let error = broken["error"].as_str().expect("an error");
    let message = server
        .post_json("/task/", r#"{"type": "broken"}"#)
        .error(400);
    assert!(message.contains("broken"), "{message}");
    assert!(message.contains(error), "{message} does not carry {error}");
    let message = server
        .post_json("/task/", r#"{"type": "nocommand"}"#)
        .error(400);
    assert!(message.contains("command"), "{message}");
    // A broken file does not stop the others from loading.
    server.submit(&json!({"type": "good"}));
    assert_eq!(server.get("/task/?count=true").text(), "1");
}
