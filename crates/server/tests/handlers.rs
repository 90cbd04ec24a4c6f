//! Handler tests: the whole app (`blanket_server::app`) on a store in a temp dir, one `oneshot`
//! request at a time, asserting the status, the JSON body, and the row or hub event it left.
//! No socket and no worker process: these pin the REST contract of API.md, guards included.

mod support;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, header};
use blanket_core::config::Settings;
use blanket_core::filter::TaskFilter;
use blanket_core::hub::{HubEvent, Topic};
use blanket_core::{Coordinator, TaskId, TaskState};
use futures_util::FutureExt;
use proptest::prelude::*;
use serde_json::{Value, json};
use support::{Answer, HOST};
use tower_http::normalize_path::NormalizePath;

const WORKER: &str = "66a1b2c3d4e5f60718293a4c";
/// A well-formed id that names nothing.
const UNKNOWN_ID: &str = "66a1b2c3d4e5f60718293a4b";
const BOUNDARY: &str = "blanket-test-boundary";

#[tokio::test]
async fn submit_answers_201_with_location_stores_the_task_and_announces_it_once() {
    let server = Server::start(Settings::default()).await;
    let mut nudges = server.coordinator.hub().subscribe(Topic::Tasks);
    let mut events = server.coordinator.hub().events();

    let answer = server
        .post_json(
            "/task/",
            &json!({"type": "echo_task", "environment": {"NAME": "tests"}}),
        )
        .await;

    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    assert!(
        answer.text().contains(r#""state":"WAITING""#),
        "not compact"
    );
    let task = answer.json();
    let id = task["id"].as_str().unwrap();
    assert_eq!(answer.headers[header::LOCATION], format!("/task/{id}"));
    assert_eq!(task["state"], "WAITING");
    assert_eq!(task["type"], "echo_task");
    assert_eq!(task["defaultEnv"]["NAME"], "tests");
    assert_eq!(task["progress"], 0);
    assert_eq!(task["workerId"], "000000000000000000000000");
    let stored = server.get(format!("/task/{id}")).await;
    assert_eq!(stored.status, StatusCode::OK);
    assert_eq!(stored.json(), task);
    let task_id: TaskId = id.parse().unwrap();
    assert_eq!(nudges.changed().now_or_never(), Some(true));
    assert_eq!(nudges.changed().now_or_never(), None, "one nudge, not more");
    assert_eq!(
        events.next().now_or_never(),
        Some(Some(HubEvent::TaskChanged {
            id: task_id,
            state: TaskState::Waiting
        }))
    );
    assert_eq!(events.next().now_or_never(), None, "no other event");
}

#[tokio::test]
async fn submit_of_an_unknown_type_is_400_naming_the_known_types() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .post_json("/task/", &json!({"type": "no_such_type"}))
        .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let message = answer.error();
    assert!(message.contains("\"no_such_type\""), "{message}");
    for known in ["echo_task", "sleep_task", "wordcount_task"] {
        assert!(message.contains(known), "{message} does not name {known}");
    }
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn submit_without_a_required_variable_is_400_naming_it() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .post_json("/task/", &json!({"type": "wordcount_task"}))
        .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error().contains("INPUT_FILE"), "{}", answer.error());
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn malformed_submit_json_is_400_with_line_and_column() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .send(
            Method::POST,
            "/task/",
            json_headers(),
            Body::from("{\"type\": \"echo_task\",\n  \"environment\": {\"NAME\" 1}}"),
        )
        .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let message = answer.error();
    assert!(message.contains("line 2 column"), "{message}");
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn submit_with_an_unknown_field_is_400_naming_it() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .post_json("/task/", &json!({"type": "echo_task", "enviroment": {}}))
        .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert!(answer.error().contains("enviroment"), "{}", answer.error());
}

#[tokio::test]
async fn oversized_submit_json_is_413() {
    let server = Server::start(Settings::default()).await;
    let limit = server.coordinator.config().max_json_bytes;
    let body = json!({"type": "echo_task", "environment": {"NAME": "x".repeat(limit)}});

    let answer = server.post_json("/task/", &body).await;

    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(answer.error().contains("multipart"), "{}", answer.error());
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn multipart_submit_saves_each_file_part_into_the_task_directory() {
    let server = Server::start(Settings::default()).await;

    let answer = server.submit_words().await;

    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let task = answer.json();
    assert_holds_the_words(&task).await;
    assert_eq!(task["defaultEnv"]["INPUT_FILE"], "words.txt");
}

#[tokio::test]
async fn a_multipart_file_name_leaving_the_task_directory_is_400_and_stores_nothing() {
    let server = Server::start(Settings::default()).await;
    let body = multipart(&[
        (
            "data",
            None,
            r#"{"type": "wordcount_task", "environment": {"INPUT_FILE": "x"}}"#,
        ),
        ("../escaped.txt", Some("escaped.txt"), "gotcha"),
    ]);

    let answer = server
        .send(
            Method::POST,
            "/task/",
            multipart_headers(),
            Body::from(body),
        )
        .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert_eq!(server.task_count().await, 0);
    let results = &server.coordinator.config().results_dir;
    assert!(!results.join("..").join("escaped.txt").exists());
    assert!(!results.join("escaped.txt").exists());
}

#[tokio::test]
async fn retry_of_a_finished_task_copies_its_uploads_not_its_outputs_and_names_the_original() {
    let server = Server::start(Settings::default()).await;
    let original = server.finished_words().await;
    let original_dir = std::path::PathBuf::from(original["resultDir"].as_str().unwrap());
    let id = original["id"].as_str().unwrap();
    tokio::fs::write(original_dir.join("count.txt"), "4")
        .await
        .unwrap();
    let mut tasks = server.coordinator.hub().subscribe(Topic::Tasks);

    let answer = server.post(format!("/task/{id}/retry")).await;

    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let retried = answer.json();
    let new_id = retried["id"].as_str().unwrap();
    assert_ne!(new_id, id);
    assert_eq!(answer.headers[header::LOCATION], format!("/task/{new_id}"));
    assert_eq!(retried["type"], "wordcount_task");
    assert_eq!(retried["state"], "WAITING");
    assert_eq!(retried["defaultEnv"], original["defaultEnv"]);
    assert_holds_the_words(&retried).await;
    let new_dir = std::path::PathBuf::from(retried["resultDir"].as_str().unwrap());
    assert!(!new_dir.join("count.txt").exists());
    let events = server.get(format!("/task/{new_id}/events")).await.json();
    assert_eq!(events[0]["to"], "WAITING");
    assert_eq!(events[0]["reason"], format!("retry of {id}"));
    assert_eq!(tasks.changed().now_or_never(), Some(true));
    assert_eq!(server.task_count().await, 2);
}

#[tokio::test]
async fn retry_of_a_task_that_has_not_finished_is_409_and_submits_nothing() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit_echo().await;

    let answer = server.post(format!("/task/{id}/retry")).await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    let message = answer.error();
    assert!(message.contains("WAITING"), "{message}");
    assert!(message.contains("cancel"), "{message}");
    assert_eq!(server.task_count().await, 1);
}

#[tokio::test]
async fn retry_when_an_uploaded_file_is_gone_is_409_and_leaves_nothing_staged() {
    let server = Server::start(Settings::default()).await;
    let original = server.finished_words().await;
    let original_dir = std::path::PathBuf::from(original["resultDir"].as_str().unwrap());
    tokio::fs::remove_file(original_dir.join("words.txt"))
        .await
        .unwrap();

    let answer = server
        .post(format!("/task/{}/retry", original["id"].as_str().unwrap()))
        .await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert!(answer.error().contains("words.txt"));
    assert_eq!(server.task_count().await, 1);
    let incoming = server.coordinator.config().results_dir.join(".incoming");
    assert_eq!(std::fs::read_dir(incoming).unwrap().count(), 0);
}

#[tokio::test]
async fn retry_takes_the_type_as_it_is_now_with_the_originals_own_choices() {
    let types = tempfile::tempdir().unwrap();
    let type_file = types.path().join("greet.toml");
    std::fs::write(
        &type_file,
        "command = \"echo $NAME\"\ntimeout = 60\n[[environment.default]]\nname = \"NAME\"\nvalue = \"world\"\n",
    )
    .unwrap();
    let server = Server::start(Settings {
        types_dirs: Some(vec![types.path().to_path_buf()]),
        ..Settings::default()
    })
    .await;
    let submitted = server
        .post_json(
            "/task/",
            &json!({"type": "greet", "environment": {"NAME": "again"}, "priority": 3, "tags": ["extra"]}),
        )
        .await
        .json();
    let id: TaskId = submitted["id"].as_str().unwrap().parse().unwrap();
    server.coordinator.cancel_task(id).await.unwrap();
    std::fs::write(
        &type_file,
        "command = \"echo $GREETING $NAME\"\ntimeout = 120\ntags = [\"bash\"]\n\
         [[environment.default]]\nname = \"NAME\"\nvalue = \"earth\"\n\
         [[environment.default]]\nname = \"GREETING\"\nvalue = \"hi\"\n",
    )
    .unwrap();
    server.coordinator.reload_types().await.unwrap();

    let answer = server.post(format!("/task/{id}/retry")).await;

    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
    let retried = answer.json();
    assert_eq!(
        retried["defaultEnv"],
        json!({"GREETING": "hi", "NAME": "again"})
    );
    assert_eq!(retried["tags"], json!(["bash", "extra"]));
    assert_eq!(retried["priority"], 3);
    assert_eq!(retried["timeout"], 120);
    assert_ne!(retried["typeDigest"], submitted["typeDigest"]);
}

#[tokio::test]
async fn retry_when_the_type_is_gone_or_needs_more_is_400_saying_why() {
    let types = tempfile::tempdir().unwrap();
    let type_file = types.path().join("greet.toml");
    std::fs::write(&type_file, "command = \"echo hi\"\n").unwrap();
    let server = Server::start(Settings {
        types_dirs: Some(vec![types.path().to_path_buf()]),
        ..Settings::default()
    })
    .await;
    let submitted = server
        .post_json("/task/", &json!({"type": "greet"}))
        .await
        .json();
    let id: TaskId = submitted["id"].as_str().unwrap().parse().unwrap();
    server.coordinator.cancel_task(id).await.unwrap();
    std::fs::write(
        &type_file,
        "command = \"echo $WHO\"\n[[environment.required]]\nname = \"WHO\"\n",
    )
    .unwrap();
    server.coordinator.reload_types().await.unwrap();

    let needs_more = server.post(format!("/task/{id}/retry")).await;
    std::fs::remove_file(&type_file).unwrap();
    server.coordinator.reload_types().await.unwrap();
    let gone = server.post(format!("/task/{id}/retry")).await;

    for (answer, expected) in [
        (needs_more, "needs variable WHO"),
        (gone, "unknown task type"),
    ] {
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
        let message = answer.error();
        assert!(
            message.contains(&format!("task {id} cannot be retried")),
            "{message}"
        );
        assert!(message.contains(expected), "{message}");
    }
    assert_eq!(server.task_count().await, 1);
}

#[tokio::test]
async fn claim_answers_the_task_with_its_frozen_type_then_204_when_empty() {
    let server = Server::start(Settings::default()).await;
    server
        .register_worker(json!({"tags": ["bash", "unix"]}))
        .await;
    let task_id = server.submit_echo().await;
    let type_file = server.coordinator.config().types_dirs[0].join("echo_task.toml");
    tokio::fs::write(&type_file, "command = \"echo edited\"\n")
        .await
        .unwrap();
    server.coordinator.reload_types().await.unwrap();
    let reloaded = server.get("/task_type/echo_task").await;
    assert_eq!(reloaded.json()["command"], "echo edited");

    let claimed = server.post(format!("/task/claim/{WORKER}")).await;

    assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.text());
    let body = claimed.json();
    assert_eq!(body["id"], task_id);
    assert_eq!(body["state"], "CLAIMED");
    assert_eq!(body["workerId"], WORKER);
    assert_eq!(body["taskType"]["name"], "echo_task");
    assert_eq!(body["taskType"]["command"], "echo \"hello {{.NAME}}\"");
    assert_eq!(
        server.get(format!("/task/{task_id}")).await.json()["state"],
        "CLAIMED"
    );
    let empty = server.post(format!("/task/claim/{WORKER}")).await;
    assert_eq!(empty.status, StatusCode::NO_CONTENT);
    assert!(empty.body.is_empty());
}

#[tokio::test]
async fn claim_by_an_unknown_worker_is_404_and_leaves_the_task_waiting() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;

    let answer = server.post(format!("/task/claim/{UNKNOWN_ID}")).await;

    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        server.get(format!("/task/{task_id}")).await.json()["state"],
        "WAITING"
    );
}

#[tokio::test]
async fn claim_takes_the_highest_priority_then_the_oldest_task() {
    let server = Server::start(Settings::default()).await;
    server
        .register_worker(json!({"tags": ["bash", "unix"]}))
        .await;
    let mut submitted = Vec::new();
    for priority in [0, 0, 5] {
        let answer = server
            .post_json(
                "/task/",
                &json!({"type": "echo_task", "priority": priority}),
            )
            .await;
        assert_eq!(answer.status, StatusCode::CREATED);
        submitted.push(answer.json()["id"].as_str().unwrap().to_string());
    }

    let mut claimed = Vec::new();
    for _ in 0..3 {
        let answer = server.post(format!("/task/claim/{WORKER}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        claimed.push(answer.json()["id"].as_str().unwrap().to_string());
    }

    assert_eq!(
        claimed,
        [
            submitted[2].clone(),
            submitted[0].clone(),
            submitted[1].clone()
        ]
    );
}

#[tokio::test]
async fn claim_matches_tasks_whose_tags_the_worker_has_and_an_untagged_worker_takes_any() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;
    let untagged = "66a1b2c3d4e5f60718293a4d";
    server.register_worker(json!({"tags": ["gpu"]})).await;
    let registered = server
        .put_json(format!("/worker/{untagged}"), &json!({}))
        .await;
    assert_eq!(registered.status, StatusCode::OK);

    let lacking_tags = server.post(format!("/task/claim/{WORKER}")).await;
    let any = server.post(format!("/task/claim/{untagged}")).await;

    assert_eq!(lacking_tags.status, StatusCode::NO_CONTENT);
    assert_eq!(any.status, StatusCode::OK, "{}", any.text());
    assert_eq!(any.json()["id"], task_id);
}

#[tokio::test]
async fn a_worker_asked_to_stop_gets_204_from_claim() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;
    server
        .register_worker(json!({"tags": ["bash", "unix"]}))
        .await;
    assert_eq!(
        server.put(format!("/worker/{WORKER}/stop")).await.status,
        StatusCode::OK
    );

    let answer = server.post(format!("/task/claim/{WORKER}")).await;

    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text());
    assert_eq!(
        server.get(format!("/task/{task_id}")).await.json()["state"],
        "WAITING"
    );
}

#[tokio::test]
async fn a_long_poll_claim_returns_the_task_submitted_while_it_waits() {
    let server = Server::start(Settings::default()).await;
    server
        .register_worker(json!({"tags": ["bash", "unix"]}))
        .await;
    let hub = server.coordinator.hub().clone();
    let claim = server.post(format!("/task/claim/{WORKER}?wait=30"));
    let submit = async {
        // Submit only once the claim is waiting on the queue, so the wake-up path is the one
        // under test; the deadline keeps a broken claim from hanging the suite.
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while hub.subscriber_count(Topic::Queue) == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the claim never waited"
            );
            tokio::task::yield_now().await;
        }
        server.submit_echo().await
    };

    let (claimed, task_id) = tokio::join!(claim, submit);

    assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.text());
    assert_eq!(claimed.json()["id"], task_id);
}

#[tokio::test]
async fn deleting_a_running_task_tells_its_worker_over_the_heartbeat() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.running_task().await;

    let answer = server.delete(format!("/task/{task_id}")).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let reply = server
        .put(format!("/worker/{WORKER}/heartbeat?running={task_id}"))
        .await;
    assert_eq!(reply.json()["cancelledTasks"], json!([task_id]));
}

#[tokio::test]
async fn run_progress_and_finish_take_a_claimed_task_to_success() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.claimed_task().await;

    let run = server
        .put(format!("/task/{task_id}/run?pid=4242&workerId={WORKER}"))
        .await;
    assert_eq!(run.status, StatusCode::OK, "{}", run.text());
    assert_eq!(run.json()["state"], "RUNNING");
    assert_eq!(run.json()["pid"], 4242);
    let mut events = server.coordinator.hub().events();
    let progress = server
        .put(format!("/task/{task_id}/progress?progress=40"))
        .await;
    assert_eq!(progress.status, StatusCode::OK);
    assert_eq!(progress.json()["progress"], 40);
    assert!(matches!(
        events.next().now_or_never(),
        Some(Some(HubEvent::TaskProgress(report))) if report.progress == 40
    ));
    let finish = server
        .put(format!("/task/{task_id}/finish?state=SUCCESS&exitCode=0"))
        .await;

    assert_eq!(finish.status, StatusCode::OK, "{}", finish.text());
    let stored = server.get(format!("/task/{task_id}")).await.json();
    assert_eq!(stored["state"], "SUCCESS");
    assert_eq!(stored["progress"], 100);
    assert_eq!(stored["exitCode"], 0);
    assert!(stored["finishedTs"].as_i64().unwrap() > 0);
    let trail: Vec<Value> = server
        .get(format!("/task/{task_id}/events"))
        .await
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|event| json!([event["from"], event["to"]]))
        .collect();
    assert_eq!(
        trail,
        [
            json!([null, "WAITING"]),
            json!(["WAITING", "CLAIMED"]),
            json!(["CLAIMED", "RUNNING"]),
            json!(["RUNNING", "SUCCESS"]),
        ]
    );
}

#[tokio::test]
async fn run_of_a_task_that_is_not_claimed_is_409() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;

    let answer = server.put(format!("/task/{task_id}/run?pid=1")).await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert_eq!(
        server.get(format!("/task/{task_id}")).await.json()["state"],
        "WAITING"
    );
}

#[tokio::test]
async fn progress_of_a_task_that_is_not_running_is_409() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.claimed_task().await;

    let answer = server
        .put(format!("/task/{task_id}/progress?progress=10"))
        .await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert_eq!(
        server.get(format!("/task/{task_id}")).await.json()["progress"],
        0
    );
}

#[tokio::test]
async fn progress_outside_0_to_100_is_400() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.running_task().await;

    for value in ["101", "300", "-1", "half"] {
        let answer = server
            .put(format!("/task/{task_id}/progress?progress={value}"))
            .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "progress={value}");
    }
}

#[tokio::test]
async fn a_second_finish_is_409_and_the_first_state_stays() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.running_task().await;
    let first = server
        .put(format!("/task/{task_id}/finish?state=SUCCESS"))
        .await;
    assert_eq!(first.status, StatusCode::OK);

    let second = server
        .put(format!("/task/{task_id}/finish?state=ERROR&exitCode=1"))
        .await;

    assert_eq!(second.status, StatusCode::CONFLICT, "{}", second.text());
    let stored = server.get(format!("/task/{task_id}")).await.json();
    assert_eq!(stored["state"], "SUCCESS");
}

#[tokio::test]
async fn finish_from_claimed_records_error_with_the_reason() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.claimed_task().await;

    let answer = server
        .put(format!(
            "/task/{task_id}/finish?state=ERROR&reason=bash%20not%20found"
        ))
        .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let stored = server.get(format!("/task/{task_id}")).await.json();
    assert_eq!(stored["state"], "ERROR");
    assert_eq!(stored["reason"], "bash not found");
}

#[tokio::test]
async fn finish_with_a_non_terminal_state_is_400() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.running_task().await;

    for query in ["state=RUNNING", "state=DONE", ""] {
        let answer = server.put(format!("/task/{task_id}/finish?{query}")).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{query}");
    }
    assert_eq!(
        server.get(format!("/task/{task_id}")).await.json()["state"],
        "RUNNING"
    );
}

#[tokio::test]
async fn cancel_stops_the_task_and_emits_task_finished_by_user() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;
    let mut events = server.coordinator.hub().events();

    let answer = server.put(format!("/task/{task_id}/cancel")).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(answer.json()["state"], "STOPPED");
    let id: TaskId = task_id.parse().unwrap();
    assert_eq!(
        events.next().now_or_never(),
        Some(Some(HubEvent::TaskChanged {
            id,
            state: TaskState::Stopped
        }))
    );
    match events.next().now_or_never() {
        Some(Some(HubEvent::TaskFinished(finished))) => {
            assert_eq!(finished.id, id);
            assert_eq!(finished.state, TaskState::Stopped);
            assert!(finished.by_user);
        }
        other => panic!("expected TaskFinished, got {other:?}"),
    }
    assert_eq!(
        server.get(format!("/task/{task_id}")).await.json()["state"],
        "STOPPED"
    );
}

#[tokio::test]
async fn cancel_of_a_finished_task_is_409() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;
    assert_eq!(
        server.put(format!("/task/{task_id}/cancel")).await.status,
        StatusCode::OK
    );

    let again = server.put(format!("/task/{task_id}/cancel")).await;

    assert_eq!(again.status, StatusCode::CONFLICT);
}

#[tokio::test]
async fn heartbeat_lists_a_running_task_once_it_is_cancelled() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.running_task().await;
    let heartbeat = format!("/worker/{WORKER}/heartbeat?running={task_id}");
    let before = server.put(&heartbeat).await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text());
    assert_eq!(
        before.json(),
        json!({"stop": false, "force": false, "cancelledTasks": []})
    );
    assert_eq!(
        server.put(format!("/task/{task_id}/cancel")).await.status,
        StatusCode::OK
    );

    let after = server.put(&heartbeat).await;

    assert_eq!(after.status, StatusCode::OK);
    assert_eq!(after.json()["cancelledTasks"], json!([task_id]));
    assert_eq!(after.json()["stop"], false);
}

#[tokio::test]
async fn heartbeat_after_a_stop_request_says_stop() {
    let server = Server::start(Settings::default()).await;
    server.register_worker(json!({"tags": ["bash"]})).await;
    assert_eq!(
        server
            .put(format!("/worker/{WORKER}/stop?force=true"))
            .await
            .status,
        StatusCode::OK
    );

    let reply = server.put(format!("/worker/{WORKER}/heartbeat")).await;

    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["stop"], true);
    assert_eq!(reply.json()["force"], true);
}

#[tokio::test]
async fn heartbeat_of_an_unknown_worker_is_404() {
    let server = Server::start(Settings::default()).await;

    let answer = server.put(format!("/worker/{UNKNOWN_ID}/heartbeat")).await;

    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn worker_register_merges_fields_a_second_put_does_not_overwrite() {
    let server = Server::start(Settings::default()).await;
    let first = server
        .register_worker(
            json!({"tags": ["bash", "gpu"], "checkInterval": 3, "logfile": "/tmp/w.log"}),
        )
        .await;
    assert_eq!(first["tags"], json!(["bash", "gpu"]));
    let mut events = server.coordinator.hub().events();

    let second = server.register_worker(json!({"pid": 777})).await;

    assert_eq!(second["pid"], 777);
    assert_eq!(second["tags"], json!(["bash", "gpu"]));
    assert_eq!(second["checkInterval"], 3.0);
    assert_eq!(second["logfile"], "/tmp/w.log");
    assert_eq!(second["status"], "running");
    assert_eq!(server.get(format!("/worker/{WORKER}")).await.json(), second);
    assert_eq!(
        events.next().now_or_never(),
        Some(Some(HubEvent::WorkerChanged {
            id: WORKER.parse().unwrap()
        }))
    );
}

#[tokio::test]
async fn worker_register_with_a_check_interval_below_half_a_second_is_400() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .put_json(format!("/worker/{WORKER}"), &json!({"checkInterval": 0.1}))
        .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        server.get(format!("/worker/{WORKER}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_a_running_worker_is_409_and_keeps_it() {
    let server = Server::start(Settings::default()).await;
    server.register_worker(json!({"tags": ["bash"]})).await;

    let answer = server.delete(format!("/worker/{WORKER}")).await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert!(answer.error().contains("stop"), "{}", answer.error());
    assert_eq!(
        server.get(format!("/worker/{WORKER}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn deleting_a_stopped_worker_forgets_it() {
    let server = Server::start(Settings::default()).await;
    let stopped = server.register_worker(json!({"stopped": true})).await;
    assert_eq!(stopped["status"], "stopped");

    let answer = server.delete(format!("/worker/{WORKER}")).await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        server.get(format!("/worker/{WORKER}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn deleting_a_task_removes_its_row_and_directory() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;
    let directory = server.coordinator.config().results_dir.join(&task_id);
    // The directory appears when something needs it; here, as if the task had run.
    tokio::fs::create_dir_all(&directory).await.unwrap();

    let answer = server.delete(format!("/task/{task_id}")).await;

    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        server.get(format!("/task/{task_id}")).await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!directory.exists());
}

#[tokio::test]
async fn a_malformed_id_is_400_and_an_unknown_one_404() {
    let server = Server::start(Settings::default()).await;

    for uri in ["/task/xyz", "/task/66a1b2c3d4e5f60718293a4", "/worker/123"] {
        let answer = server.get(uri).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{uri}");
    }
    for uri in [
        format!("/task/{UNKNOWN_ID}"),
        format!("/worker/{UNKNOWN_ID}"),
    ] {
        let answer = server.get(&uri).await;
        assert_eq!(answer.status, StatusCode::NOT_FOUND, "{uri}");
    }
}

#[tokio::test]
async fn list_filters_by_state_and_counts() {
    let server = Server::start(Settings::default()).await;
    let first = server.submit_echo().await;
    let second = server.submit_echo().await;
    assert_eq!(
        server.put(format!("/task/{second}/cancel")).await.status,
        StatusCode::OK
    );

    let waiting = server.get("/task/?states=WAITING").await.json();
    let count = server.get("/task?states=WAITING,STOPPED&count=true").await;
    let newest_first = server.get("/task/?reverseSort=true").await.json();

    assert_eq!(waiting.as_array().unwrap().len(), 1);
    assert_eq!(waiting[0]["id"], first);
    assert_eq!(count.status, StatusCode::OK);
    assert_eq!(count.text(), "2");
    assert_eq!(newest_first[0]["id"], second);
}

#[tokio::test]
async fn a_foreign_host_is_403_before_any_handler_runs() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .send(
            Method::POST,
            "/task/",
            headers(&[
                ("host", "evil.example"),
                ("content-type", "application/json"),
            ]),
            Body::from(json!({"type": "echo_task"}).to_string()),
        )
        .await;

    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.error().contains("evil.example"),
        "{}",
        answer.error()
    );
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn a_request_without_a_host_is_403() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .send(Method::GET, "/version", HeaderMap::new(), Body::empty())
        .await;

    assert_eq!(answer.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_host_named_in_allowed_hosts_is_admitted() {
    let server = Server::start(Settings {
        allowed_hosts: Some(vec!["Blanket.Lan".into()]),
        ..Settings::default()
    })
    .await;

    let answer = server
        .send(
            Method::GET,
            "/version",
            headers(&[("host", "blanket.lan:8773")]),
            Body::empty(),
        )
        .await;

    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
}

#[tokio::test]
async fn a_foreign_origin_is_403_and_stores_nothing() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .send(
            Method::POST,
            "/task/",
            headers(&[
                ("host", HOST),
                ("origin", "http://evil.example"),
                ("content-type", "application/json"),
            ]),
            Body::from(json!({"type": "echo_task"}).to_string()),
        )
        .await;

    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.error().contains("evil.example"),
        "{}",
        answer.error()
    );
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn the_servers_own_origin_and_the_desktop_origin_are_admitted() {
    let server = Server::start(Settings::default()).await;

    for origin in ["http://127.0.0.1:8773", "tauri://localhost"] {
        let answer = server
            .send(
                Method::POST,
                "/task/",
                headers(&[
                    ("host", HOST),
                    ("origin", origin),
                    ("content-type", "application/json"),
                ]),
                Body::from(json!({"type": "echo_task"}).to_string()),
            )
            .await;
        assert_eq!(
            answer.status,
            StatusCode::CREATED,
            "{origin}: {}",
            answer.text()
        );
    }
    assert_eq!(server.task_count().await, 2);
}

#[tokio::test]
async fn a_token_server_answers_401_without_the_token() {
    let server = Server::start(Settings {
        token: Some("s3cret-token".into()),
        ..Settings::default()
    })
    .await;

    for authorization in [None, Some("Bearer wrong"), Some("s3cret-token")] {
        let mut request_headers = headers(&[("host", HOST)]);
        if let Some(value) = authorization {
            request_headers.insert(header::AUTHORIZATION, value.parse().unwrap());
        }
        let answer = server
            .send(Method::GET, "/task/", request_headers, Body::empty())
            .await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "Authorization: {authorization:?}"
        );
        assert!(answer.error().contains("Bearer"), "{}", answer.error());
    }
}

#[tokio::test]
async fn a_token_server_admits_the_bearer_token_and_the_query_token() {
    let server = Server::start(Settings {
        token: Some("s3cret-token".into()),
        ..Settings::default()
    })
    .await;

    let bearer = server
        .send(
            Method::GET,
            "/task/",
            headers(&[("host", HOST), ("authorization", "Bearer s3cret-token")]),
            Body::empty(),
        )
        .await;
    let query = server
        .send(
            Method::GET,
            "/task/?token=s3cret-token",
            headers(&[("host", HOST)]),
            Body::empty(),
        )
        .await;

    assert_eq!(bearer.status, StatusCode::OK, "{}", bearer.text());
    assert_eq!(query.status, StatusCode::OK, "{}", query.text());
}

#[tokio::test]
async fn every_error_body_is_exactly_an_error_field() {
    let server = Server::start(Settings::default()).await;
    let running = server.running_task().await;
    let answers = [
        ("malformed id", server.get("/task/nope").await),
        (
            "unknown task",
            server.get(format!("/task/{UNKNOWN_ID}")).await,
        ),
        ("unknown type", server.get("/task_type/nope").await),
        ("no route", server.get("/no/such/route").await),
        (
            "wrong method",
            server
                .send(Method::PATCH, "/task/", json_headers(), Body::empty())
                .await,
        ),
        ("bad query", server.get("/task/?limit=many").await),
        ("conflict", server.put(format!("/task/{running}/run")).await),
        (
            "bad worker json",
            server
                .put_json(format!("/worker/{WORKER}"), &json!(["list"]))
                .await,
        ),
        (
            "empty submit",
            server
                .send(Method::POST, "/task/", json_headers(), Body::empty())
                .await,
        ),
        (
            "foreign host",
            server
                .send(
                    Method::GET,
                    "/task/",
                    headers(&[("host", "evil.example")]),
                    Body::empty(),
                )
                .await,
        ),
        (
            "foreign origin",
            server
                .send(
                    Method::GET,
                    "/task/",
                    headers(&[("host", HOST), ("origin", "http://evil.example")]),
                    Body::empty(),
                )
                .await,
        ),
    ];
    let mut problems = Vec::new();
    for (what, answer) in &answers {
        if !(answer.status.is_client_error() || answer.status.is_server_error()) {
            problems.push(format!("{what}: status {} is not an error", answer.status));
            continue;
        }
        let content_type = answer
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .unwrap_or_default();
        let body: Option<Value> = serde_json::from_slice(&answer.body).ok();
        let message = body
            .as_ref()
            .and_then(|body| body["error"].as_str())
            .unwrap_or_default();
        let exact = serde_json::to_vec(&json!({"error": message})).unwrap();
        if content_type != "application/json" || message.is_empty() || answer.body != exact {
            problems.push(format!(
                "{what}: {} with content type {content_type:?} and body {}",
                answer.status,
                answer.text()
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn an_oversized_worker_registration_is_413_with_an_error_body() {
    let server = Server::start(Settings::default()).await;
    let limit = server.coordinator.config().max_json_bytes;
    let body = json!({"logfile": "x".repeat(limit)});

    let answer = server.put_json(format!("/worker/{WORKER}"), &body).await;

    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.headers[header::CONTENT_TYPE], "application/json");
    assert!(!answer.error().is_empty());
    assert_eq!(
        server.get(format!("/worker/{WORKER}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_path_parameter_that_is_not_utf8_is_400_with_an_error_body() {
    let server = Server::start(Settings::default()).await;

    let answers = [
        server.get("/task/%FF").await,
        server.get("/task_type/%FF").await,
        server.put("/worker/%FF/stop").await,
        server.post("/task/claim/%FF").await,
    ];

    for answer in answers {
        assert_eq!(answer.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            answer.headers[header::CONTENT_TYPE],
            "application/json",
            "{}",
            answer.text()
        );
        assert!(!answer.error().is_empty());
    }
}

#[tokio::test]
async fn a_paused_queue_hands_out_no_task_until_resumed() {
    let server = Server::start(Settings::default()).await;
    server
        .register_worker(json!({"tags": ["bash", "unix"]}))
        .await;
    let task_id = server.submit_echo().await;

    let paused = server.put("/queue/pause").await;
    let claim_while_paused = server.post(format!("/task/claim/{WORKER}")).await;
    let state = server.get("/queue/").await;
    let resumed = server.put("/queue/resume").await;
    let claim_after = server.post(format!("/task/claim/{WORKER}")).await;

    assert_eq!(paused.status, StatusCode::OK);
    assert_eq!(paused.json(), json!({"paused": true}));
    assert_eq!(claim_while_paused.status, StatusCode::NO_CONTENT);
    assert_eq!(state.json(), json!({"paused": true}));
    assert_eq!(resumed.json(), json!({"paused": false}));
    assert_eq!(claim_after.status, StatusCode::OK, "{}", claim_after.text());
    assert_eq!(claim_after.json()["id"], task_id);
}

#[tokio::test]
async fn task_log_tail_answers_the_last_lines_of_stdout_or_stderr() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;
    let directory = server.coordinator.config().results_dir.join(&task_id);
    tokio::fs::create_dir_all(&directory).await.unwrap();
    tokio::fs::write(directory.join("blanket.stdout.log"), "one\ntwo\nthree\n")
        .await
        .unwrap();
    tokio::fs::write(directory.join("blanket.stderr.log"), "oops\n")
        .await
        .unwrap();

    let stdout = server.get(format!("/task/{task_id}/log/tail?n=2")).await;
    let stderr = server
        .get(format!("/task/{task_id}/log/tail?stream=stderr"))
        .await;
    let bad_stream = server
        .get(format!("/task/{task_id}/log/tail?stream=both"))
        .await;

    assert_eq!(stdout.status, StatusCode::OK);
    assert!(
        stdout.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert_eq!(stdout.text(), "two\nthree\n");
    assert_eq!(stderr.text(), "oops\n");
    assert_eq!(bad_stream.status, StatusCode::BAD_REQUEST);
    assert!(!bad_stream.error().is_empty());
}

#[tokio::test]
async fn task_log_replays_a_finished_tasks_lines_as_events_and_ends() {
    let server = Server::start(Settings::default()).await;
    let task_id = server.submit_echo().await;
    assert_eq!(
        server.put(format!("/task/{task_id}/cancel")).await.status,
        StatusCode::OK
    );
    let directory = server.coordinator.config().results_dir.join(&task_id);
    tokio::fs::create_dir_all(&directory).await.unwrap();
    tokio::fs::write(directory.join("blanket.stdout.log"), "one\ntwo\n")
        .await
        .unwrap();

    // A finished, drained log ends the stream, so the whole body arrives; the deadline only
    // keeps a broken stream from hanging the suite.
    let whole = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        server.get(format!("/task/{task_id}/log")),
    )
    .await
    .expect("the log stream of a finished task ends");
    let resumed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        server.send(
            Method::GET,
            &format!("/task/{task_id}/log"),
            headers(&[("host", HOST), ("last-event-id", "1")]),
            Body::empty(),
        ),
    )
    .await
    .expect("the resumed log stream ends");

    assert_eq!(whole.status, StatusCode::OK);
    assert!(
        whole.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let events = sse_events(&whole.text());
    assert_eq!(
        events,
        [
            ("message".to_string(), "1".to_string(), "one\n".to_string()),
            ("message".to_string(), "2".to_string(), "two\n".to_string()),
        ]
    );
    assert_eq!(
        sse_events(&resumed.text()),
        [("message".to_string(), "2".to_string(), "two\n".to_string())]
    );
}

#[tokio::test]
async fn worker_log_tail_and_whole_log_read_the_workers_own_file() {
    let server = Server::start(Settings::default()).await;
    let logfile = server.coordinator.config().data_dir.join("worker.log");
    tokio::fs::write(&logfile, "started\nclaimed a task\nstopped\n")
        .await
        .unwrap();
    server
        .register_worker(json!({"logfile": logfile.display().to_string()}))
        .await;

    let tail = server.get(format!("/worker/{WORKER}/log/tail?n=1")).await;
    let whole = server.get(format!("/worker/{WORKER}/logs")).await;

    assert_eq!(tail.status, StatusCode::OK);
    assert_eq!(tail.text(), "stopped\n");
    assert_eq!(whole.status, StatusCode::OK);
    assert_eq!(whole.text(), "started\nclaimed a task\nstopped\n");
}

#[tokio::test]
async fn a_worker_log_file_that_does_not_exist_is_404_with_an_error_body() {
    let server = Server::start(Settings::default()).await;
    let logfile = server
        .coordinator
        .config()
        .data_dir
        .join("never-written.log");
    server
        .register_worker(json!({"logfile": logfile.display().to_string()}))
        .await;

    let answer = server.get(format!("/worker/{WORKER}/logs")).await;

    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(
        answer.headers[header::CONTENT_TYPE],
        "application/json",
        "body {:?}",
        answer.text()
    );
    assert!(!answer.error().is_empty());
}

#[tokio::test]
async fn launching_a_worker_with_a_check_interval_below_half_a_second_is_400() {
    let server = Server::start(Settings::default()).await;

    let too_fast = server
        .post_json("/worker/", &json!({"tags": ["bash"], "checkInterval": 0.1}))
        .await;
    let unknown_field = server
        .post_json("/worker/", &json!({"tag": ["bash"]}))
        .await;

    assert_eq!(too_fast.status, StatusCode::BAD_REQUEST);
    assert!(too_fast.error().contains("0.5"), "{}", too_fast.error());
    assert_eq!(unknown_field.status, StatusCode::BAD_REQUEST);
    assert!(
        unknown_field.error().contains("tag"),
        "{}",
        unknown_field.error()
    );
    assert_eq!(server.get("/worker/").await.json(), json!([]));
}

#[tokio::test]
async fn restarting_a_running_worker_is_409() {
    let server = Server::start(Settings::default()).await;
    server.register_worker(json!({"tags": ["bash"]})).await;

    let answer = server.put(format!("/worker/{WORKER}/restart")).await;

    assert_eq!(answer.status, StatusCode::CONFLICT, "{}", answer.text());
    assert_eq!(
        server.get(format!("/worker/{WORKER}")).await.json()["status"],
        "running"
    );
}

#[tokio::test]
async fn a_submit_body_broken_off_is_400_not_too_large() {
    let server = Server::start(Settings::default()).await;
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(br#"{"type": "ech"#)),
        Err(std::io::Error::other("connection reset by the client")),
    ];

    let answer = server
        .send(
            Method::POST,
            "/task/",
            json_headers(),
            Body::from_stream(futures_util::stream::iter(chunks)),
        )
        .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{}", answer.text());
    assert!(
        answer.error().contains("could not be read"),
        "{}",
        answer.error()
    );
    assert_eq!(server.task_count().await, 0);
}

/// One part of a fuzzed multipart body: field name, whether it is a file, content.
type FuzzPart = (String, bool, Vec<u8>);

fn fuzz_part() -> impl Strategy<Value = FuzzPart> {
    let name = prop_oneof![
        Just("data".to_string()),
        prop::sample::select(vec![
            "x",
            "x/y",
            "in/a.txt",
            "in",
            "../x",
            "/etc/x",
            "a/../../b",
            "a\0b",
            "C:x",
            "~/x",
            "blanket.stdout.log",
            "a//b",
            "a\\b",
            "",
        ])
        .prop_map(str::to_string),
        (0..6000_usize).prop_map(|length| "n".repeat(length)),
        "\\PC{0,12}",
    ];
    let content = prop_oneof![
        Just(br#"{"type": "echo_task"}"#.to_vec()),
        Just(br#"{"type": "wordcount_task", "environment": {"INPUT_FILE": "x"}}"#.to_vec()),
        prop::collection::vec(any::<u8>(), 0..64),
    ];
    (name, any::<bool>(), content)
}

/// A multipart body of `parts`, then damaged: cut short and with bytes overwritten.
fn fuzz_body(parts: &[FuzzPart], closed: bool, cut: Option<f64>, flips: &[(f64, u8)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (name, is_file, content) in parts {
        body.extend_from_slice(
            format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"").as_bytes(),
        );
        if *is_file {
            body.extend_from_slice(b"; filename=\"upload.bin\"");
        }
        body.extend_from_slice(b"\r\n\r\n");
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    if closed {
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    }
    // The fractions pick positions, so shrinking keeps them inside the body.
    let position = |fraction: f64, length: usize| (fraction * length as f64) as usize;
    if let Some(fraction) = cut {
        body.truncate(position(fraction, body.len()));
    }
    for (fraction, byte) in flips {
        if !body.is_empty() {
            let index = position(*fraction, body.len()).min(body.len() - 1);
            body[index] = *byte;
        }
    }
    body
}

#[test]
fn garbled_multipart_submits_are_201_or_a_json_4xx_and_leave_nothing_staged() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let server = runtime.block_on(Server::start(Settings::default()));
    let incoming = server._data.path().join("results").join(".incoming");
    let mut config = ProptestConfig::default();
    // Each case is a real submit; PROPTEST_CASES asks for more.
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 64;
    }
    proptest!(config, |(
        parts in prop::collection::vec(fuzz_part(), 0..6),
        closed in any::<bool>(),
        cut in prop::option::weighted(0.2, 0.0..1.0),
        flips in prop::collection::vec((0.0..1.0, any::<u8>()), 0..3),
        content_type in prop_oneof![
            4 => Just(format!("multipart/form-data; boundary={BOUNDARY}")),
            1 => Just("multipart/form-data".to_string()),
            1 => Just("multipart/form-data; boundary=other".to_string()),
        ],
    )| {
        let body = fuzz_body(&parts, closed, cut, &flips);
        let answer = runtime.block_on(server.send(
            Method::POST,
            "/task/",
            headers(&[("host", HOST), ("content-type", &content_type)]),
            Body::from(body),
        ));
        match answer.status.as_u16() {
            201 => {
                let id = answer.json()["id"].as_str().expect("a task id").to_string();
                let stored = runtime.block_on(server.get(format!("/task/{id}")));
                prop_assert_eq!(stored.status, StatusCode::OK);
            }
            400..=499 => prop_assert!(!answer.error().is_empty()),
            status => prop_assert!(false, "answered {}: {}", status, answer.text()),
        }
        let staged = std::fs::read_dir(&incoming).map_or(0, Iterator::count);
        prop_assert_eq!(staged, 0, "a refused or finished submit left its staged folder");
    });
}

/// The app on a temp data folder (with the bundled example types), and its coordinator.
struct Server {
    _data: tempfile::TempDir,
    coordinator: Coordinator,
    app: NormalizePath<axum::Router>,
}

impl Server {
    async fn start(settings: Settings) -> Server {
        let (data, coordinator, app) = support::open_app(settings).await;
        Server {
            _data: data,
            coordinator,
            app,
        }
    }

    async fn send(&self, method: Method, uri: &str, headers: HeaderMap, body: Body) -> Answer {
        let request = support::request(method, uri, headers, body);
        Answer::read(support::respond(&self.app, request).await).await
    }

    async fn get(&self, uri: impl AsRef<str>) -> Answer {
        self.send(Method::GET, uri.as_ref(), host_only(), Body::empty())
            .await
    }

    async fn post(&self, uri: impl AsRef<str>) -> Answer {
        self.send(Method::POST, uri.as_ref(), host_only(), Body::empty())
            .await
    }

    async fn put(&self, uri: impl AsRef<str>) -> Answer {
        self.send(Method::PUT, uri.as_ref(), host_only(), Body::empty())
            .await
    }

    async fn delete(&self, uri: impl AsRef<str>) -> Answer {
        self.send(Method::DELETE, uri.as_ref(), host_only(), Body::empty())
            .await
    }

    async fn post_json(&self, uri: impl AsRef<str>, body: &Value) -> Answer {
        let body = Body::from(body.to_string());
        self.send(Method::POST, uri.as_ref(), json_headers(), body)
            .await
    }

    async fn put_json(&self, uri: impl AsRef<str>, body: &Value) -> Answer {
        let body = Body::from(body.to_string());
        self.send(Method::PUT, uri.as_ref(), json_headers(), body)
            .await
    }

    /// Registers (or updates) the test worker and answers its record.
    async fn register_worker(&self, body: Value) -> Value {
        let answer = self.put_json(format!("/worker/{WORKER}"), &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
        answer.json()
    }

    /// Submits an `echo_task` and answers its id.
    async fn submit_echo(&self) -> String {
        let answer = self
            .post_json("/task/", &json!({"type": "echo_task"}))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
        answer.json()["id"]
            .as_str()
            .expect("a task has an id")
            .to_string()
    }

    /// Submits a `wordcount_task` multipart with the files `words.txt` and `sub/more.txt`.
    async fn submit_words(&self) -> Answer {
        let body = multipart(&[
            (
                "data",
                None,
                r#"{"type": "wordcount_task", "environment": {"INPUT_FILE": "words.txt"}}"#,
            ),
            ("words.txt", Some("words.txt"), "one two three"),
            ("sub/more.txt", Some("more.txt"), "four"),
        ]);
        self.send(
            Method::POST,
            "/task/",
            multipart_headers(),
            Body::from(body),
        )
        .await
    }

    /// [`Server::submit_words`], cancelled so it has finished; answers the task.
    async fn finished_words(&self) -> Value {
        let answer = self.submit_words().await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text());
        let task = answer.json();
        let id: TaskId = task["id"]
            .as_str()
            .and_then(|id| id.parse().ok())
            .expect("a submitted task has an id");
        self.coordinator
            .cancel_task(id)
            .await
            .expect("a waiting task can be cancelled");
        task
    }

    /// A task claimed by the test worker.
    async fn claimed_task(&self) -> String {
        self.register_worker(json!({"tags": ["bash", "unix"]}))
            .await;
        let task_id = self.submit_echo().await;
        let claimed = self.post(format!("/task/claim/{WORKER}")).await;
        assert_eq!(claimed.status, StatusCode::OK, "{}", claimed.text());
        assert_eq!(claimed.json()["id"], task_id);
        task_id
    }

    /// A task the test worker claimed and reported running.
    async fn running_task(&self) -> String {
        let task_id = self.claimed_task().await;
        let run = self
            .put(format!("/task/{task_id}/run?pid=4242&workerId={WORKER}"))
            .await;
        assert_eq!(run.status, StatusCode::OK, "{}", run.text());
        task_id
    }

    async fn task_count(&self) -> u64 {
        self.coordinator
            .count_tasks(TaskFilter::default())
            .await
            .expect("counting tasks")
    }
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

    /// The message of an error answer, checking the body is `{"error": "..."}`.
    fn error(&self) -> String {
        let body = self.json();
        assert_eq!(
            body.as_object().map(|fields| fields.len()),
            Some(1),
            "not an error body: {body}"
        );
        body["error"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {body}"))
            .to_string()
    }
}

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                header::HeaderName::from_static(name),
                value.parse().expect("a valid header value"),
            )
        })
        .collect()
}

fn host_only() -> HeaderMap {
    headers(&[("host", HOST)])
}

fn json_headers() -> HeaderMap {
    headers(&[("host", HOST), ("content-type", "application/json")])
}

fn multipart_headers() -> HeaderMap {
    let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
    headers(&[("host", HOST), ("content-type", &content_type)])
}

/// Checks that `task`'s directory holds the files of [`Server::submit_words`].
async fn assert_holds_the_words(task: &Value) {
    let directory = std::path::PathBuf::from(task["resultDir"].as_str().expect("a task's folder"));
    for (file, words) in [("words.txt", "one two three"), ("sub/more.txt", "four")] {
        let text = tokio::fs::read_to_string(directory.join(file)).await;
        assert_eq!(text.ok().as_deref(), Some(words), "{file}");
    }
}

/// A multipart body of `(field name, file name, content)` parts.
fn multipart(parts: &[(&str, Option<&str>, &str)]) -> String {
    let mut body = String::new();
    for (name, file_name, content) in parts {
        body.push_str(&format!(
            "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\""
        ));
        if let Some(file_name) = file_name {
            body.push_str(&format!(
                "; filename=\"{file_name}\"\r\nContent-Type: text/plain"
            ));
        }
        body.push_str(&format!("\r\n\r\n{content}\r\n"));
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body
}

/// `(event, id, data)` of each event of an SSE body; comment lines are skipped and `data`
/// lines join with newlines, as a browser's EventSource does.
fn sse_events(text: &str) -> Vec<(String, String, String)> {
    text.split("\n\n")
        .filter_map(|block| {
            let mut event = String::from("message");
            let mut id = String::new();
            let mut data: Vec<&str> = Vec::new();
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event:") {
                    event = value.trim_start().to_string();
                } else if let Some(value) = line.strip_prefix("id:") {
                    id = value.trim_start().to_string();
                } else if let Some(value) = line.strip_prefix("data:") {
                    data.push(value.strip_prefix(' ').unwrap_or(value));
                }
            }
            (!data.is_empty()).then(|| (event, id, data.join("\n")))
        })
        .collect()
}
