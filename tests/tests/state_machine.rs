//! The task state machine seen from outside: every transition it refuses answers 409 and
//! leaves the task as it was, and `GET /task/:id/events` records every transition it allows
//! (from, to, actor, time, reason) in order.

use blanket_blackbox::Server;
use serde_json::{Value, json};

/// A server with one registered untagged worker and one submitted task.
struct Fixture {
    server: Server,
    worker: String,
    id: String,
}

impl Fixture {
    fn new() -> Fixture {
        let server = Server::start();
        let worker = server.register_worker(&[]);
        let task = server.submit(&json!({"type": "echo_task"}));
        let id = task["id"].as_str().expect("an id").to_string();
        Fixture { server, worker, id }
    }

    fn task(&self) -> Value {
        let reply = self.server.get(&format!("/task/{}", self.id));
        reply.expect_status(200);
        reply.json()
    }

    fn claim(&self) {
        let claimed = self.server.claim(&self.worker).expect("the task waits");
        assert_eq!(claimed["id"], self.id.as_str());
    }

    fn run(&self) -> Value {
        let reply = self.server.put(&format!(
            "/task/{}/run?pid=4242&workerId={}",
            self.id, self.worker
        ));
        reply.expect_status(200);
        reply.json()
    }

    fn put(&self, action: &str) -> blanket_blackbox::Reply {
        self.server.put(&format!("/task/{}/{action}", self.id))
    }
}

#[test]
fn run_of_a_waiting_task_is_409_and_changes_nothing() {
    let fixture = Fixture::new();
    let before = fixture.task();
    let message = fixture.put("run?pid=1").error(409);
    assert!(message.contains("WAITING"), "{message}");
    assert_eq!(fixture.task(), before);
}

#[test]
fn run_moves_a_claimed_task_to_running_once() {
    let fixture = Fixture::new();
    fixture.claim();
    let running = fixture.run();
    assert_eq!(running["state"], "RUNNING");
    assert_eq!(running["pid"], 4242);
    assert!(running["startedTs"].as_i64().is_some_and(|ts| ts > 0));
    let message = fixture.put("run?pid=1").error(409);
    assert!(message.contains("RUNNING"), "{message}");
    assert_eq!(fixture.task()["pid"], 4242);
}

#[test]
fn progress_is_409_unless_running() {
    let fixture = Fixture::new();
    fixture.put("progress?progress=10").error(409);
    fixture.claim();
    fixture.put("progress?progress=10").error(409);
    fixture.run();
    let reply = fixture.put("progress?progress=55");
    reply.expect_status(200);
    assert_eq!(reply.json()["progress"], 55);
    assert_eq!(fixture.task()["progress"], 55);
    fixture
        .put("finish?state=ERROR&exitCode=1")
        .expect_status(200);
    fixture.put("progress?progress=60").error(409);
    assert_eq!(fixture.task()["progress"], 55);
}

#[test]
fn first_terminal_state_wins_and_a_second_finish_is_409() {
    let fixture = Fixture::new();
    fixture.claim();
    fixture.run();
    let reply = fixture.put("finish?state=ERROR&exitCode=3&reason=boom");
    reply.expect_status(200);
    let finished = reply.json();
    assert_eq!(finished["state"], "ERROR");
    assert_eq!(finished["exitCode"], 3);
    assert!(finished["finishedTs"].as_i64().is_some_and(|ts| ts > 0));
    for later in [
        "finish?state=SUCCESS&exitCode=0",
        "finish?state=ERROR&exitCode=9",
        "finish?state=TIMEDOUT",
        "finish?state=STOPPED",
    ] {
        let message = fixture.put(later).error(409);
        assert!(message.contains("ERROR"), "{later}: {message}");
    }
    let task = fixture.task();
    assert_eq!(task["state"], "ERROR");
    assert_eq!(task["exitCode"], 3);
}

#[test]
fn success_sets_progress_to_100() {
    let fixture = Fixture::new();
    fixture.claim();
    fixture.run();
    let reply = fixture.put("finish?state=SUCCESS&exitCode=0");
    reply.expect_status(200);
    assert_eq!(reply.json()["progress"], 100);
    assert_eq!(fixture.task()["state"], "SUCCESS");
}

#[test]
fn finish_from_claimed_is_allowed_when_the_process_could_not_start() {
    let fixture = Fixture::new();
    fixture.claim();
    let reply = fixture.put("finish?state=ERROR&reason=bash%20not%20found");
    reply.expect_status(200);
    let task = reply.json();
    assert_eq!(task["state"], "ERROR");
    assert_eq!(task["reason"], "bash not found");
}

#[test]
fn finish_of_a_waiting_task_is_409() {
    let fixture = Fixture::new();
    fixture.put("finish?state=SUCCESS").error(409);
    assert_eq!(fixture.task()["state"], "WAITING");
}

#[test]
fn cancel_of_a_terminal_task_is_409() {
    let fixture = Fixture::new();
    let reply = fixture.put("cancel");
    reply.expect_status(200);
    assert_eq!(reply.json()["state"], "STOPPED");
    let message = fixture.put("cancel").error(409);
    assert!(message.contains("STOPPED"), "{message}");

    let finished = Fixture::new();
    finished.claim();
    finished.run();
    finished
        .put("finish?state=SUCCESS&exitCode=0")
        .expect_status(200);
    finished.put("cancel").error(409);
    assert_eq!(finished.task()["state"], "SUCCESS");
}

#[test]
fn cancel_stops_claimed_and_running_tasks() {
    let claimed = Fixture::new();
    claimed.claim();
    let reply = claimed.put("cancel");
    reply.expect_status(200);
    assert_eq!(reply.json()["state"], "STOPPED");

    let running = Fixture::new();
    running.claim();
    running.run();
    let reply = running.put("cancel");
    reply.expect_status(200);
    assert_eq!(reply.json()["state"], "STOPPED");
    // The worker's late report does not overwrite the cancel.
    running
        .put(&format!("finish?state=SUCCESS&workerId={}", running.worker))
        .error(409);
    assert_eq!(running.task()["state"], "STOPPED");
}

#[test]
fn claim_with_nothing_waiting_is_204_with_no_body() {
    let server = Server::start();
    let worker = server.register_worker(&[]);
    let reply = server.post(&format!("/task/claim/{worker}"));
    reply.expect_status(204);
    assert!(reply.body.is_empty());
}

#[test]
fn delete_of_a_running_worker_is_409_and_keeps_it() {
    let server = Server::start();
    let worker = server.register_worker(&["bash"]);
    let message = server.delete(&format!("/worker/{worker}")).error(409);
    assert!(message.contains(worker.as_str()), "{message}");
    let kept = server.get(&format!("/worker/{worker}"));
    kept.expect_status(200);
    assert_eq!(kept.json()["status"], "running");
}

#[test]
fn delete_of_a_stopped_worker_forgets_it() {
    let server = Server::start();
    let worker = blanket_blackbox::new_worker_id();
    server
        .put_json(
            &format!("/worker/{worker}"),
            r#"{"tags": [], "stopped": true}"#,
        )
        .expect_status(200);
    server
        .delete(&format!("/worker/{worker}"))
        .expect_status(200);
    server.get(&format!("/worker/{worker}")).error(404);
}

#[test]
fn a_stale_workers_reports_are_409() {
    let fixture = Fixture::new();
    let other = fixture.server.register_worker(&[]);
    fixture.claim();
    fixture
        .put(&format!("run?pid=1&workerId={other}"))
        .error(409);
    assert_eq!(fixture.task()["state"], "CLAIMED");
    fixture.run();
    fixture
        .put(&format!("progress?progress=5&workerId={other}"))
        .error(409);
    let message = fixture
        .put(&format!("finish?state=SUCCESS&exitCode=0&workerId={other}"))
        .error(409);
    assert!(
        message.contains(other.as_str()) || message.contains(fixture.worker.as_str()),
        "{message}"
    );
    assert_eq!(fixture.task()["state"], "RUNNING");
    fixture
        .put(&format!(
            "finish?state=SUCCESS&exitCode=0&workerId={}",
            fixture.worker
        ))
        .expect_status(200);
    assert_eq!(fixture.task()["state"], "SUCCESS");
}

#[test]
fn events_list_every_transition_in_order_with_actor_time_and_reason() {
    let before = now();
    let fixture = Fixture::new();
    fixture.claim();
    fixture.run();
    fixture
        .put(&format!("progress?progress=40&workerId={}", fixture.worker))
        .expect_status(200);
    fixture
        .put(&format!(
            "finish?state=ERROR&exitCode=3&reason=disk%20full&workerId={}",
            fixture.worker
        ))
        .expect_status(200);
    let after = now();

    for path in [
        format!("/task/{}/events", fixture.id),
        format!("/task/{}/events/", fixture.id),
    ] {
        let reply = fixture.server.get(&path);
        reply.expect_status(200);
        let events = reply.json();
        let events = events.as_array().expect("a list");
        let actor = format!("worker:{}", fixture.worker);
        let expected = [
            (Value::Null, "WAITING", "api", Value::Null),
            (json!("WAITING"), "CLAIMED", actor.as_str(), Value::Null),
            (json!("CLAIMED"), "RUNNING", actor.as_str(), Value::Null),
            (
                json!("RUNNING"),
                "ERROR",
                actor.as_str(),
                json!("disk full"),
            ),
        ];
        assert_eq!(events.len(), expected.len(), "{events:?}");
        let mut last_ts = before;
        for (event, (from, to, actor, reason)) in events.iter().zip(expected) {
            let keys: Vec<&String> = event.as_object().expect("an object").keys().collect();
            assert_eq!(keys.len(), 5, "{event}");
            assert_eq!(event["from"], from, "{event}");
            assert_eq!(event["to"], to, "{event}");
            assert_eq!(event["actor"], actor, "{event}");
            assert_eq!(event["reason"], reason, "{event}");
            let ts = event["ts"].as_i64().expect("ts is unix seconds");
            assert!(
                ts >= last_ts && ts <= after,
                "{event}: not in order or not now"
            );
            last_ts = ts;
        }
    }
}

#[test]
fn events_record_a_cancel_by_the_api() {
    let fixture = Fixture::new();
    fixture.put("cancel").expect_status(200);
    let events = fixture
        .server
        .get(&format!("/task/{}/events", fixture.id))
        .json();
    let transitions: Vec<(Value, Value, Value)> = events
        .as_array()
        .expect("a list")
        .iter()
        .map(|event| {
            (
                event["from"].clone(),
                event["to"].clone(),
                event["actor"].clone(),
            )
        })
        .collect();
    assert_eq!(
        transitions,
        [
            (Value::Null, json!("WAITING"), json!("api")),
            (json!("WAITING"), json!("STOPPED"), json!("api")),
        ]
    );
}

#[test]
fn refused_transitions_leave_no_event() {
    let fixture = Fixture::new();
    fixture.put("run?pid=1").error(409);
    fixture.put("progress?progress=1").error(409);
    fixture.put("finish?state=SUCCESS").error(409);
    let events = fixture
        .server
        .get(&format!("/task/{}/events", fixture.id))
        .json();
    assert_eq!(events.as_array().map(Vec::len), Some(1), "{events}");
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| i64::try_from(elapsed.as_secs()).expect("a sane clock"))
        .expect("a clock after 1970")
}
