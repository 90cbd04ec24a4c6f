//! Restarts and shutdown: after SIGTERM the next start on the same data dir has every task,
//! state, audit event and worker; SIGTERM ends the process with 0 within 5 s even while an SSE
//! client is connected. SIGKILL in the middle of work is the crash loop of reliability.rs.

use std::time::Duration;

use blanket_blackbox::{Server, SseClient};
use serde_json::{Value, json};

#[test]
fn a_restart_after_sigterm_keeps_tasks_states_events_and_workers() {
    let mut server = Server::start();
    let worker = server.register_worker(&["bash", "unix"]);
    let ids: Vec<String> = (0..5)
        .map(|index| server.submit_id(&json!({"type": "echo_task", "priority": index % 2})))
        .collect();
    let running = server.claim(&worker).expect("a task waits");
    let running_id = running["id"].as_str().expect("an id").to_string();
    server
        .put(&format!("/task/{running_id}/run?pid=77&workerId={worker}"))
        .expect_status(200);
    server
        .put(&format!("/task/{running_id}/progress?progress=30"))
        .expect_status(200);
    let finished = server.claim(&worker).expect("a task waits");
    let finished_id = finished["id"].as_str().expect("an id").to_string();
    server
        .put(&format!("/task/{finished_id}/run?pid=78"))
        .expect_status(200);
    server
        .put(&format!(
            "/task/{finished_id}/finish?state=ERROR&exitCode=3&reason=broken"
        ))
        .expect_status(200);
    server
        .put(&format!("/task/{}/cancel", ids[4]))
        .expect_status(200);
    let stopped_worker = blanket_blackbox::new_worker_id();
    server
        .put_json(
            &format!("/worker/{stopped_worker}"),
            r#"{"tags": ["gpu"], "stopped": true, "checkInterval": 1.5, "logfile": "/tmp/w.log"}"#,
        )
        .expect_status(200);

    let tasks_before = server.get("/task/?limit=100").json();
    let events_before: Vec<Value> = ids
        .iter()
        .map(|id| server.get(&format!("/task/{id}/events")).json())
        .collect();
    let workers_before = server.get("/worker/").json();

    let status = server.terminate();
    assert!(status.success(), "SIGTERM exit: {status}\n{}", server.log());
    server.restart();

    assert_eq!(server.get("/task/?limit=100").json(), tasks_before);
    for (id, events) in ids.iter().zip(&events_before) {
        assert_eq!(
            &server.get(&format!("/task/{id}/events")).json(),
            events,
            "task {id}"
        );
    }
    let states: Vec<Value> = server
        .get("/task/")
        .json()
        .as_array()
        .expect("a list")
        .iter()
        .map(|task| task["state"].clone())
        .collect();
    assert_eq!(
        states.iter().filter(|state| **state == "RUNNING").count(),
        1,
        "{states:?}"
    );
    let workers_after = server.get("/worker/").json();
    let workers_after = workers_after.as_array().expect("a list");
    assert_eq!(workers_after.len(), 2);
    for before in workers_before.as_array().expect("a list") {
        let after = workers_after
            .iter()
            .find(|worker| worker["id"] == before["id"])
            .unwrap_or_else(|| panic!("worker {} is gone", before["id"]));
        for field in [
            "tags",
            "pid",
            "stopped",
            "checkInterval",
            "startedTs",
            "logfile",
            "daemon",
        ] {
            assert_eq!(
                after[field], before[field],
                "worker {} field {field}",
                before["id"]
            );
        }
    }
    let kept = server.get(&format!("/worker/{stopped_worker}")).json();
    assert_eq!(kept["tags"], json!(["gpu"]));
    assert_eq!(kept["status"], "stopped");
    // The restarted server goes on where it left off.
    let next = server.claim(&worker).expect("tasks still wait");
    assert!(ids.contains(&next["id"].as_str().expect("an id").to_string()));
}

#[test]
fn sigterm_exits_0_within_5_s_with_an_sse_client_connected() {
    let mut server = Server::start();
    let tasks = SseClient::connect(server.port(), "/ui/sse/tasks", &[])
        .unwrap_or_else(|reply| panic!("{}", reply.text()));
    let workers = SseClient::connect(server.port(), "/ui/sse/workers", &[])
        .unwrap_or_else(|reply| panic!("{}", reply.text()));
    for stream in [&tasks, &workers] {
        stream
            .next_event(Duration::from_secs(5))
            .expect("the event on connect");
    }
    let status = server.terminate_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", server.log());
    assert!(tasks.ended_within(Duration::from_secs(1)));
    assert!(workers.ended_within(Duration::from_secs(1)));
}

#[test]
fn sigterm_while_idle_exits_0_and_a_restart_serves_again() {
    let mut server = Server::start();
    let task = server.submit(&json!({"type": "echo_task"}));
    let status = server.terminate_within(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "{}", server.log());
    server.restart();
    let again = server.get(&format!("/task/{}", task["id"].as_str().expect("an id")));
    again.expect_status(200);
    assert_eq!(again.json(), task);
}
