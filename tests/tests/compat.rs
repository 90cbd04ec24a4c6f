//! The old server's clients keep working: the calls an old script makes on a fresh data dir,
//! with the exact statuses and compact JSON it greps for, on paths with and without the slash.

use blanket_blackbox::Server;

#[test]
fn version_answers_json_with_the_server_name() {
    let server = Server::start();
    for path in ["/version", "/version/"] {
        let reply = server.get(path);
        reply.expect_status(200);
        assert!(
            reply.text().contains(r#""name":"blanket""#),
            "{path}: {}",
            reply.text()
        );
        let version = reply.json();
        assert!(version["version"].is_string(), "{version}");
        assert!(version["author"].is_string(), "{version}");
    }
}

#[test]
fn root_redirects_with_exactly_301_to_the_ui_page_titled_blanket() {
    let server = Server::start();
    let reply = server.get("/");
    assert_eq!(reply.status, 301, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("/ui/"));

    for path in ["/ui/", "/ui"] {
        let page = server.get(path);
        page.expect_status(200);
        assert!(
            page.header("content-type")
                .is_some_and(|value| value.starts_with("text/html")),
            "{path}: {:?}",
            page.header("content-type")
        );
        let text = page.text();
        let title = text
            .split_once("<title>")
            .and_then(|(_, rest)| rest.split_once("</title>"))
            .map(|(title, _)| title.to_string());
        assert!(
            title
                .as_deref()
                .is_some_and(|title| title.contains("Blanket")),
            "{path}: the page title must name Blanket: {title:?}"
        );
    }
}

#[test]
fn fresh_task_list_is_exactly_an_empty_json_array() {
    let server = Server::start();
    for path in ["/task/", "/task"] {
        let reply = server.get(path);
        reply.expect_status(200);
        assert_eq!(reply.text(), "[]", "{path}");
        assert!(
            reply
                .header("content-type")
                .is_some_and(|value| value.starts_with("application/json")),
            "{path}"
        );
    }
}

#[test]
fn json_submit_answers_201_waiting_in_compact_json_and_is_listed() {
    let server = Server::start();
    for (path, list_path) in [("/task/", "/task"), ("/task", "/task/")] {
        let reply = server.post_json(path, r#"{"type":"echo_task"}"#);
        reply.expect_status(201);
        let text = reply.text();
        assert!(text.contains(r#""state":"WAITING""#), "{path}: {text}");
        assert!(text.contains(r#""type":"echo_task""#), "{path}: {text}");
        let task = reply.json();
        let id = task["id"].as_str().expect("the task has an id");
        assert_eq!(
            reply.header("location"),
            Some(format!("/task/{id}").as_str())
        );

        let list = server.get(list_path);
        list.expect_status(200);
        assert!(
            list.text().contains(r#""type":"echo_task""#),
            "{}",
            list.text()
        );
        assert!(list.text().contains(id), "{}", list.text());
    }
    assert_eq!(server.get("/task/?count=true").text(), "2");
}

#[test]
fn submit_with_curls_default_form_content_type_is_read_as_json() {
    let server = Server::start();
    for path in ["/task/", "/task"] {
        // What `curl -d '{"type":"echo_task"}' URL` sends.
        let reply = server.send(
            server
                .http()
                .post(server.url(path))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(r#"{"type":"echo_task"}"#),
        );
        reply.expect_status(201);
        assert!(
            reply.text().contains(r#""state":"WAITING""#),
            "{path}: {}",
            reply.text()
        );
    }
    let list = server.get("/task/");
    assert_eq!(list.json().as_array().map(Vec::len), Some(2));
    assert!(list.text().contains(r#""type":"echo_task""#));
}

#[test]
fn submitted_task_carries_every_field_old_clients_read() {
    let server = Server::start();
    let task = server.submit(&serde_json::json!({"type": "echo_task"}));
    for field in [
        "id",
        "type",
        "state",
        "tags",
        "defaultEnv",
        "createdTs",
        "startedTs",
        "lastUpdatedTs",
        "timeout",
        "progress",
        "workerId",
        "pid",
        "resultDir",
        "typeDigest",
    ] {
        assert!(task.get(field).is_some(), "missing {field}: {task}");
    }
    assert_eq!(task["workerId"], "000000000000000000000000");
    assert_eq!(task["startedTs"], 0);
    assert_eq!(task["pid"], 0);
    assert_eq!(task["defaultEnv"]["NAME"], "world");
    assert_eq!(task["tags"], serde_json::json!(["bash", "unix"]));
    let id = task["id"].as_str().expect("the task has an id");
    assert_eq!(id.len(), 24);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
    );
    let one = server.get(&format!("/task/{id}"));
    one.expect_status(200);
    assert_eq!(one.json(), task);
}
