//! The local worker pool of `blanket serve --workers N`: launched workers in `GET /worker/`,
//! launching more, stopping, restarting and forgetting them, their logs over HTTP, and a
//! SIGTERM to the server that stops the pool and its tasks, leaving no process behind.

use std::time::Duration;

use blanket_blackbox::workers::{Blanket, Serve, live_processes, processes_of, wait_for};
use reqwest::Method;
use serde_json::{Value, json};

/// How long a pool may take to launch and register its workers on a loaded machine.
const POOL_DEADLINE: Duration = Duration::from_secs(30);

fn id_of(value: &Value) -> String {
    value["id"]
        .as_str()
        .expect("a record has an id")
        .to_string()
}

/// Waits until `count` launched workers run, and returns all workers.
fn wait_for_pool(serve: &Serve, count: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + POOL_DEADLINE;
    loop {
        let workers = serve.call(Method::GET, "/worker/").json();
        let workers = workers.as_array().expect("a list of workers").clone();
        let running = workers
            .iter()
            .filter(|worker| worker["launched"] == true && worker["status"] == "running")
            .count();
        if running == count {
            return workers;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{running} launched workers run, not {count}: {workers:?}\n{}",
            serve.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn pid_alive(pid: u64) -> bool {
    live_processes()
        .iter()
        .any(|process| u64::from(process.pid) == pid)
}

#[test]
fn pool_runs_its_launched_workers_and_launches_more_on_request() {
    let serve = Serve::builder().workers(2).start();
    let workers = wait_for_pool(&serve, 2);
    assert_eq!(workers.len(), 2, "{workers:?}");
    for worker in &workers {
        assert!(
            worker["pid"].as_u64().is_some_and(pid_alive),
            "the worker process is not alive: {worker}"
        );
    }
    let task = serve.enqueue(&json!({"type": "echo_task"}));
    let task = serve.wait_until_finished(&id_of(&task), POOL_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");

    let reply = serve.call_json(
        Method::POST,
        "/worker/",
        &json!({"tags": ["x"], "checkInterval": 1}),
    );
    reply.expect_status(200);
    let launched = reply.json();
    assert_eq!(launched["status"], "running", "{launched}");
    assert_eq!(launched["tags"], json!(["x"]));
    assert_eq!(launched["checkInterval"], 1.0);
    assert_eq!(launched["launched"], true);
    assert!(
        launched["pid"].as_u64().is_some_and(pid_alive),
        "{launched}"
    );
    wait_for_pool(&serve, 3);

    let refused = serve.call_json(
        Method::POST,
        "/worker/",
        &json!({"tags": ["x"], "checkInterval": 0.1}),
    );
    let message = refused.error(400);
    assert!(message.contains("checkInterval"), "{message}");
    wait_for_pool(&serve, 3);
}

#[test]
fn pool_worker_is_stopped_restarted_and_deleted_only_when_not_running() {
    let serve = Serve::builder().workers(2).start();
    let workers = wait_for_pool(&serve, 2);
    let worker = id_of(&workers[0]);
    let pid = workers[0]["pid"].as_u64().expect("a pid");

    let message = serve
        .call(Method::DELETE, &format!("/worker/{worker}"))
        .error(409);
    assert!(message.contains("stop"), "{message}");

    serve
        .call(Method::PUT, &format!("/worker/{worker}/stop"))
        .expect_status(200);
    let stopped = serve.wait_for_worker_status(&worker, "stopped", POOL_DEADLINE);
    assert_eq!(stopped["stopped"], true);
    wait_for(POOL_DEADLINE, "the stopped worker to exit", || {
        (!pid_alive(pid)).then_some(())
    });

    let reply = serve.call(Method::PUT, &format!("/worker/{worker}/restart"));
    reply.expect_status(200);
    let restarted = reply.json();
    assert_eq!(restarted["id"], worker.as_str());
    assert_eq!(restarted["status"], "running", "{restarted}");
    assert_ne!(restarted["pid"].as_u64(), Some(pid));
    wait_for_pool(&serve, 2);
    let task = serve.enqueue(&json!({"type": "echo_task"}));
    assert_eq!(
        serve.wait_until_finished(&id_of(&task), POOL_DEADLINE)["state"],
        "SUCCESS"
    );

    serve
        .call(Method::PUT, &format!("/worker/{worker}/stop"))
        .expect_status(200);
    serve.wait_for_worker_status(&worker, "stopped", POOL_DEADLINE);
    serve
        .call(Method::DELETE, &format!("/worker/{worker}"))
        .expect_status(200);
    serve
        .call(Method::GET, &format!("/worker/{worker}"))
        .expect_status(404);
}

#[test]
fn pool_worker_log_is_served_as_tail_and_whole_file() {
    let serve = Serve::builder().workers(1).start();
    let workers = wait_for_pool(&serve, 1);
    let worker = id_of(&workers[0]);
    let logfile = workers[0]["logfile"]
        .as_str()
        .expect("a launched worker has a logfile")
        .to_string();
    assert!(
        logfile.starts_with(&serve.data_dir().display().to_string()),
        "{logfile}"
    );

    // The worker writes its first line just after it has registered.
    let tail = wait_for(POOL_DEADLINE, "the worker's first log line", || {
        let tail = serve.call(Method::GET, &format!("/worker/{worker}/log/tail?n=50"));
        tail.expect_status(200);
        tail.text().contains("worker registered").then_some(tail)
    });
    let whole = serve.call(Method::GET, &format!("/worker/{worker}/logs"));
    whole.expect_status(200);
    let on_disk = std::fs::read_to_string(&logfile).expect("reading the worker's log file");
    assert!(
        !whole.text().is_empty() && on_disk.starts_with(&whole.text()),
        "served {:?}, on disk {on_disk:?}",
        whole.text()
    );
    assert!(tail.text().lines().count() <= 50);
}

#[test]
fn sigterm_to_serve_stops_the_pool_and_its_running_task_leaving_no_process() {
    let mut serve = Serve::builder().workers(2).start();
    wait_for_pool(&serve, 2);
    let id =
        id_of(&serve.enqueue(&json!({"type": "sleep_task", "environment": {"DURATION": "60"}})));
    serve.wait_for_task(&id, POOL_DEADLINE, "running with a pid", |task| {
        task["state"] == "RUNNING" && task["pid"].as_u64().is_some_and(|pid| pid > 1)
    });
    assert!(
        !processes_of(&serve.data_dir()).is_empty(),
        "the pool and the task should be visible before the shutdown"
    );

    let status = serve
        .terminate_within(Duration::from_secs(10))
        .unwrap_or_else(|| panic!("serve did not exit within 10 s\n{}", serve.log()));
    assert!(
        status.success(),
        "serve exited with {status}\n{}",
        serve.log()
    );
    let left = processes_of(&serve.data_dir());
    assert!(
        left.is_empty(),
        "processes of the data dir survived: {left:?}"
    );

    serve.set_workers(0);
    serve.start_again();
    let task = serve.task(&id);
    assert_eq!(task["state"], "STOPPED", "{task}");
    assert!(
        task["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("shut down")),
        "{task}"
    );
    let workers = serve.call(Method::GET, "/worker/").json();
    for worker in workers.as_array().expect("a list of workers") {
        assert_eq!(worker["status"], "stopped", "{worker}");
    }
}
