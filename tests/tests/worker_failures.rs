//! The worker runtime when something dies or is told to stop: a worker killed with -9 mid-task
//! (its lease runs out), a coordinator killed with -9 (the worker keeps its final report until
//! it is back), and the graceful ways to stop a hand-started worker (stop, force, SIGTERM).

use std::time::{Duration, Instant};

use blanket_blackbox::Server;
use blanket_blackbox::workers::{
    Blanket, EXAMPLE_TYPES, Serve, WorkerProcess, group_members, kill_group, read_result,
    task_group, wait_for,
};
use serde_json::{Value, json};

const TAGS: [&str; 2] = ["bash", "unix"];
/// The short lease of these tests, in seconds.
const LEASE: u64 = 3;
/// Ample time for a short task to be claimed and run on a loaded two-core machine.
const RUN_DEADLINE: Duration = Duration::from_secs(20);

/// Runs long the first time and finishes at once the next (its directory remembers), and
/// goes back to the queue when its worker is lost.
const REQUEUE_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 120
requeue_on_lost = true
command = '''
if [ -e first-attempt ]; then echo "second attempt"; exit 0; fi
touch first-attempt
echo "first attempt"
sleep 60
'''
"#;

fn id_of(task: &Value) -> String {
    task["id"].as_str().expect("a task has an id").to_string()
}

fn short_lease_server(types: &[(&str, &str)]) -> Server {
    let builder = Server::builder().env("BLANKET_LEASE_SECONDS", &LEASE.to_string());
    if types.is_empty() {
        builder.start()
    } else {
        builder.types(types).start()
    }
}

fn wait_running(blanket: &impl Blanket, id: &str) -> Value {
    blanket.wait_for_task(id, RUN_DEADLINE, "running with a pid", |task| {
        task["state"] == "RUNNING" && task["pid"].as_u64().is_some_and(|pid| pid > 1)
    })
}

/// The audit rows as (from, to, actor, reason), `null`s as empty text.
fn trail(blanket: &impl Blanket, id: &str) -> Vec<(String, String, String, String)> {
    blanket
        .task_events(id)
        .iter()
        .map(|event| {
            let text = |key: &str| event[key].as_str().unwrap_or_default().to_string();
            (text("from"), text("to"), text("actor"), text("reason"))
        })
        .collect()
}

#[test]
fn killed_worker_loses_its_running_task_with_reason_worker_lost() {
    let server = short_lease_server(&[]);
    let mut worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id =
        id_of(&server.enqueue(&json!({"type": "sleep_task", "environment": {"DURATION": "60"}})));
    let running = wait_running(&server, &id);
    assert_eq!(running["workerId"], worker.id());

    worker.kill();
    let killed_at = Instant::now();
    // The task's process group outlives its worker; it is not what this test is about.
    kill_group(task_group(&running));
    let task = server.wait_for_task(
        &id,
        Duration::from_secs(LEASE + 15),
        "out of RUNNING",
        |task| task["state"] != "RUNNING",
    );
    assert_eq!(task["state"], "ERROR", "{task}");
    assert_eq!(task["reason"], "worker lost", "{task}");
    assert_eq!(task["exitCode"], Value::Null);
    assert!(killed_at.elapsed() <= Duration::from_secs(LEASE + 15));

    let trail = trail(&server, &id);
    assert_eq!(
        trail.last(),
        Some(&(
            "RUNNING".to_string(),
            "ERROR".to_string(),
            "coordinator".to_string(),
            "worker lost".to_string()
        )),
        "{trail:?}"
    );
    assert_eq!(server.worker(worker.id())["status"], "lost");
}

#[test]
fn killed_worker_task_with_requeue_on_lost_runs_again_on_another_worker() {
    let server = short_lease_server(&[("requeue_task.toml", REQUEUE_TASK)]);
    let mut first = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "requeue_task"})));
    let running = wait_running(&server, &id);
    assert_eq!(running["attempts"], 1);
    assert_eq!(running["workerId"], first.id());

    first.kill();
    kill_group(task_group(&running));
    let requeued = server.wait_for_task(
        &id,
        Duration::from_secs(LEASE + 15),
        "out of RUNNING",
        |task| task["state"] != "RUNNING",
    );
    assert_eq!(requeued["state"], "WAITING", "{requeued}");
    assert_eq!(requeued["attempts"], 1, "{requeued}");

    let second = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(task["workerId"], second.id());
    assert_eq!(task["attempts"], 2);
    assert_eq!(read_result(&task, "blanket.stdout.log"), "second attempt\n");

    let trail = trail(&server, &id);
    let lost = trail
        .iter()
        .position(|row| row.0 == "RUNNING" && row.1 == "WAITING" && row.3 == "worker lost")
        .unwrap_or_else(|| panic!("no RUNNING -> WAITING for the lost worker in {trail:?}"));
    let second_actor = format!("worker:{}", second.id());
    assert!(
        trail[lost..]
            .iter()
            .any(|row| row.1 == "CLAIMED" && row.2 == second_actor),
        "{trail:?}"
    );
    assert_eq!(
        trail.last().map(|row| (row.1.as_str(), row.2.as_str())),
        Some(("SUCCESS", second_actor.as_str())),
        "{trail:?}"
    );
}

#[test]
fn healthy_worker_running_a_task_longer_than_the_lease_is_not_judged_lost() {
    let server = short_lease_server(&[]);
    let worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let duration = LEASE * 2;
    let id = id_of(&server.enqueue(
        &json!({"type": "sleep_task", "environment": {"DURATION": duration.to_string()}}),
    ));

    let task = server.wait_until_finished(&id, Duration::from_secs(duration) + RUN_DEADLINE);
    assert_eq!(
        task["state"], "SUCCESS",
        "a live worker's task was taken away: {task}"
    );
    assert_eq!(task["workerId"], worker.id());
    assert_eq!(server.worker(worker.id())["status"], "running");
}

#[test]
fn coordinator_killed_mid_task_gets_the_true_outcome_once_restarted() {
    let mut serve = Serve::builder().start();
    let worker = WorkerProcess::start(&serve, serve.sandbox(), &TAGS);
    let id =
        id_of(&serve.enqueue(&json!({"type": "sleep_task", "environment": {"DURATION": "4"}})));
    wait_running(&serve, &id);

    serve.kill();
    // The task ends while nobody listens; the worker must hold on to its report.
    wait_for(
        Duration::from_secs(30),
        "the worker to retry its final report",
        || {
            worker
                .log()
                .contains("will retry the final report")
                .then_some(())
        },
    );
    serve.start_again();

    let task = serve.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(task["exitCode"], 0);
    assert_eq!(task["workerId"], worker.id());
    assert!(
        read_result(&task, "blanket.stdout.log").ends_with("slept 4 seconds\n"),
        "{}",
        read_result(&task, "blanket.stdout.log")
    );
    let trail = trail(&serve, &id);
    assert_eq!(
        trail.last().map(|row| (row.0.as_str(), row.1.as_str())),
        Some(("RUNNING", "SUCCESS")),
        "{trail:?}"
    );
}

#[test]
fn stopped_worker_lets_its_task_finish_then_exits() {
    let server = Server::start();
    let mut worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id =
        id_of(&server.enqueue(&json!({"type": "sleep_task", "environment": {"DURATION": "2"}})));
    wait_running(&server, &id);

    let reply = server.put(&format!("/worker/{}/stop", worker.id()));
    reply.expect_status(200);
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    let status = worker.wait_for_exit(RUN_DEADLINE);
    assert!(status.success(), "the worker exited with {status}");
    let record = server.worker(worker.id());
    assert_eq!(record["status"], "stopped", "{record}");
    assert_eq!(record["stopped"], true);
}

#[test]
fn force_stopped_worker_stops_its_task_and_exits() {
    let server = Server::start();
    let mut worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id =
        id_of(&server.enqueue(&json!({"type": "sleep_task", "environment": {"DURATION": "60"}})));
    let group = task_group(&wait_running(&server, &id));

    server
        .put(&format!("/worker/{}/stop?force=true", worker.id()))
        .expect_status(200);
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "STOPPED", "{task}");
    let status = worker.wait_for_exit(RUN_DEADLINE);
    assert!(status.success(), "the worker exited with {status}");
    let survivors = group_members(group);
    assert!(
        survivors.is_empty(),
        "the task's processes survived: {survivors:?}"
    );
    assert_eq!(server.worker(worker.id())["status"], "stopped");
}

#[test]
fn sigterm_to_a_worker_lets_its_task_finish_then_it_exits() {
    let server = Server::start();
    let mut worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id =
        id_of(&server.enqueue(&json!({"type": "sleep_task", "environment": {"DURATION": "2"}})));
    wait_running(&server, &id);

    worker.terminate();
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    let status = worker.wait_for_exit(RUN_DEADLINE);
    assert!(status.success(), "the worker exited with {status}");
    assert_eq!(server.worker(worker.id())["status"], "stopped");
}

#[test]
fn example_types_file_list_matches_the_shipped_examples() {
    // The suites copy the examples next to their own types; a new example must be added there.
    let mut shipped: Vec<String> = std::fs::read_dir(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/types"),
    )
    .expect("reading examples/types")
    .flatten()
    .map(|entry| entry.file_name().to_string_lossy().into_owned())
    .collect();
    shipped.sort();
    let copied: Vec<String> = EXAMPLE_TYPES
        .iter()
        .map(|(name, _)| (*name).to_string())
        .collect();
    assert_eq!(shipped, copied);
}
