//! `/ui/sse/events`, the one stream the desktop app attached to another coordinator follows,
//! and `/config/notify`, the notification settings it follows through that stream: what comes
//! on connect, a task's end with its JSON, a settings change live and saved to the config file.

use std::time::Duration;

use blanket_blackbox::{Server, SseClient, SseItem, poll_until};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(20);

fn connect(server: &Server) -> SseClient {
    SseClient::connect(server.port(), "/ui/sse/events", &[]).unwrap_or_else(|reply| {
        panic!("/ui/sse/events answered {}: {}", reply.status, reply.text())
    })
}

/// Reads events until one named `wanted` comes, returning its JSON data.
fn until_event(stream: &SseClient, wanted: &str) -> Value {
    poll_until(WAIT, wanted, || match stream.next_item(WAIT) {
        Some((_, SseItem::Event { name, data })) if name == wanted => {
            Some(serde_json::from_str(&data).unwrap_or(Value::String(data)))
        }
        Some((_, SseItem::End)) | None => panic!("the stream ended before {wanted}"),
        Some(_) => None,
    })
}

#[test]
fn on_connect_the_stream_says_both_lists_changed_and_the_settings_in_effect() {
    let server = Server::builder()
        .env("BLANKET_NOTIFY_MIN_SECONDS", "0")
        .start();
    let stream = connect(&server);
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let mut names = Vec::new();
    while names.len() < 3 {
        match stream.next_item(WAIT) {
            Some((_, SseItem::Event { name, data })) => names.push((name, data)),
            Some((_, SseItem::Comment(_))) => {}
            other => panic!("the stream ended early: {other:?}"),
        }
    }
    assert_eq!(names[0].0, "tasks-changed");
    assert_eq!(names[1].0, "workers-changed");
    assert_eq!(names[2].0, "notify-settings-changed");
    let settings: Value = serde_json::from_str(&names[2].1).unwrap();
    assert_eq!(settings["minSeconds"], 0);
    assert_eq!(
        settings["locked"]["minSeconds"],
        "the environment variable BLANKET_NOTIFY_MIN_SECONDS"
    );
}

#[test]
fn a_finished_task_comes_with_its_outcome_and_the_stream_takes_a_slot() {
    let server = Server::start();
    let before = server.status()["subscribers"]["events"].as_u64().unwrap();
    let stream = connect(&server);
    until_event(&stream, "notify-settings-changed");
    assert_eq!(server.status()["subscribers"]["events"], before + 1);
    let task = server.submit(&json!({"type": "echo_task"}));
    let worker = server.register_worker(&["bash", "unix"]);
    let claimed = server.claim(&worker).expect("the task is claimed");
    assert_eq!(claimed["id"], task["id"]);
    let id = task["id"].as_str().unwrap();
    server
        .put(&format!("/task/{id}/run?pid=1"))
        .expect_status(200);
    server
        .put(&format!("/task/{id}/progress?progress=40"))
        .expect_status(200);
    let progress = until_event(&stream, "task-progress");
    assert_eq!(progress, json!({"id": id, "progress": 40}));
    server
        .put(&format!("/task/{id}/finish?state=ERROR&exitCode=3"))
        .expect_status(200);
    let finished = until_event(&stream, "task-finished");
    assert_eq!(finished["id"], id);
    assert_eq!(finished["type"], "echo_task");
    assert_eq!(finished["state"], "ERROR");
    assert_eq!(finished["exitCode"], 3);
    assert_eq!(finished["byUser"], false);
    drop(stream);
    poll_until(WAIT, "the stream's subscription given back", || {
        (server.status()["subscribers"]["events"] == before).then_some(())
    });
}

#[test]
fn a_settings_change_is_saved_to_the_config_file_and_announced_live() {
    let server = Server::start();
    let stream = connect(&server);
    until_event(&stream, "notify-settings-changed");
    let config_file = server.sandbox().root().join("config/blanket/config.toml");
    let settings = server.get("/config/notify").expect_status(200).json();
    assert_eq!(settings["mode"], "all");
    assert_eq!(settings["file"], config_file.display().to_string());
    let changed = server
        .put_json(
            "/config/notify",
            r#"{"mode": "failures-only", "minSeconds": 0}"#,
        )
        .expect_status(200)
        .json();
    assert_eq!(changed["mode"], "failures-only");
    let announced = until_event(&stream, "notify-settings-changed");
    assert_eq!(announced["mode"], "failures-only");
    assert_eq!(announced["minSeconds"], 0);
    let saved = std::fs::read_to_string(&config_file).unwrap();
    assert!(saved.contains("mode = \"failures-only\""), "{saved}");
    assert_eq!(
        server.get("/config/").expect_status(200).json()["notify"]["min_seconds"],
        0
    );
}

#[test]
fn bad_or_locked_settings_are_refused_saying_what_to_fix() {
    let server = Server::builder().env("BLANKET_NOTIFY_MODE", "none").start();
    let error = server
        .put_json("/config/notify", r#"{"minSeconds": -3}"#)
        .error(400);
    assert!(error.contains("minSeconds is -3"), "{error}");
    let error = server
        .put_json("/config/notify", r#"{"mode": "all"}"#)
        .error(409);
    assert!(error.contains("BLANKET_NOTIFY_MODE"), "{error}");
    let error = server
        .put_json("/config/notify", r#"{"loud": true}"#)
        .error(400);
    assert!(error.contains("loud"), "{error}");
}
