//! The reliability proof: a coordinator killed with -9 in the middle of concurrent work, 8
//! workers racing for the same queue, workers killed mid-task, 200 SSE clients that never
//! read, and a data directory that stops taking writes. Small counts here (what CI runs),
//! the full ones with `BLANKET_PROOF_FULL=1` (`cargo xtask proof --full`).

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::net::TcpStream;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use blanket_blackbox::proof::{self, SmallDisk, StoredTask, Unwritable};
use blanket_blackbox::workers::{Blanket, Serve, WorkerProcess, kill_group, task_group, wait_for};
use blanket_blackbox::{Server, poll_until};
use blanket_core::TaskState;
use reqwest::blocking::Client;
use serde_json::{Value, json};

/// What one client thread of the crash loop sends: each request gives up quietly once the
/// server is gone.
struct CrashClient<'a> {
    http: &'a Client,
    base: String,
}

impl CrashClient<'_> {
    fn send(&self, request: reqwest::blocking::RequestBuilder) -> Option<(u16, Value)> {
        let response = request.timeout(Duration::from_secs(10)).send().ok()?;
        let status = response.status().as_u16();
        let body = response.bytes().ok()?;
        Some((status, serde_json::from_slice(&body).unwrap_or(Value::Null)))
    }

    fn submit(&self) -> Option<String> {
        let (status, task) = self.send(
            self.http
                .post(format!("{}/task/", self.base))
                .header("content-type", "application/json")
                .body(r#"{"type":"echo_task"}"#),
        )?;
        (status == 201).then(|| task["id"].as_str().expect("a task has an id").to_string())
    }

    fn put(&self, path: &str) -> Option<u16> {
        self.send(self.http.put(format!("{}{path}", self.base)))
            .map(|(status, _)| status)
    }

    /// Registers as a worker, then claims, runs and finishes tasks until the server is gone.
    fn work(&self, stop: &AtomicBool, operations: &AtomicUsize) {
        let worker = blanket_blackbox::new_worker_id();
        let registered = self.send(
            self.http
                .put(format!("{}/worker/{worker}", self.base))
                .header("content-type", "application/json")
                .body(r#"{"tags": [], "pid": 1}"#),
        );
        if registered.is_none_or(|(status, _)| status != 200) {
            return;
        }
        while !stop.load(Ordering::Acquire) {
            let Some((status, task)) = self.send(
                self.http
                    .post(format!("{}/task/claim/{worker}?wait=1", self.base)),
            ) else {
                return;
            };
            if status != 200 {
                continue;
            }
            let id = task["id"].as_str().expect("a claimed task has an id");
            let fenced = format!("workerId={worker}");
            if self
                .put(&format!("/task/{id}/run?pid=4242&{fenced}"))
                .is_none()
            {
                return;
            }
            let end = ["SUCCESS", "ERROR", "TIMEDOUT"][fastrand::usize(..3)];
            if self
                .put(&format!(
                    "/task/{id}/finish?state={end}&exitCode=0&{fenced}"
                ))
                .is_none()
            {
                return;
            }
            operations.fetch_add(1, Ordering::Relaxed);
        }
    }
}

#[test]
fn a_coordinator_killed_at_random_moments_keeps_every_acknowledged_task_consistent() {
    let cycles = proof::scale(20, 200);
    let mut server = Server::start();
    let mut acknowledged: HashSet<String> = HashSet::new();
    let mut transitions = 0;
    let started = Instant::now();
    for cycle in 0..cycles {
        let acked = Mutex::new(Vec::<String>::new());
        let operations = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let client = CrashClient {
            http: server.http(),
            base: server.origin(),
        };
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    while !stop.load(Ordering::Acquire) {
                        let Some(id) = client.submit() else { break };
                        acked.lock().expect("no panic holds it").push(id);
                        operations.fetch_add(1, Ordering::Relaxed);
                    }
                });
                scope.spawn(|| client.work(&stop, &operations));
            }
            scope.spawn(|| {
                while !stop.load(Ordering::Acquire) {
                    let victim = {
                        let acked = acked.lock().expect("no panic holds it");
                        if acked.is_empty() {
                            None
                        } else {
                            Some(acked[fastrand::usize(..acked.len())].clone())
                        }
                    };
                    let Some(victim) = victim else {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    };
                    // 409 (it finished meanwhile) is as fine as 200.
                    if client.put(&format!("/task/{victim}/cancel")).is_none() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(fastrand::u64(5..30)));
                }
            });
            // Some work first, so every cycle kills the server in the middle of it, then a
            // random moment within the next 300 ms.
            poll_until(Duration::from_secs(60), "the clients to get going", || {
                (operations.load(Ordering::Relaxed) >= 10).then_some(())
            });
            std::thread::sleep(Duration::from_millis(fastrand::u64(0..300)));
            server.sigkill();
            stop.store(true, Ordering::Release);
        });
        server.kill();
        acknowledged.extend(acked.into_inner().expect("no panic holds it"));
        server.restart();
        let tasks = proof::read_tasks(&server.sandbox().database_path());
        let lost: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !tasks.contains_key(*id))
            .collect();
        assert!(
            lost.is_empty(),
            "cycle {cycle}: {} acknowledged submits lost: {lost:?}",
            lost.len()
        );
        let problems = proof::problems(&tasks);
        assert!(problems.is_empty(), "cycle {cycle}: {problems:#?}");
        transitions = tasks.values().map(|task| task.events.len()).sum::<usize>();
    }
    // The restarted server still takes every kind of write.
    let task = server.submit(&json!({"type": "echo_task"}));
    let worker = server.register_worker(&[]);
    assert!(server.claim(&worker).is_some(), "{task}");
    proof::report(&format!(
        "crash loop: {cycles} kill -9 cycles in {:.0?}, {} acknowledged submits, 0 lost, {transitions} audited transitions, integrity ok",
        started.elapsed(),
        acknowledged.len()
    ));
}

/// A task type whose command appends its task id to `runs.log` in the data dir, once per run.
const MARKER_TYPE: &str = "command = 'echo \"$BLANKET_APP_TASK_ID\" >> \"$BLANKET_APP_RESULTS_DIRECTORY/../runs.log\"'\ntimeout = 600\n";

#[test]
fn eight_workers_run_every_task_exactly_once() {
    let count = proof::scale(1000, 10_000);
    let serve = Serve::builder()
        .types(&[("mark.toml", MARKER_TYPE)])
        .start();
    let marker = serve.data_dir().join("runs.log");
    let workers: Vec<WorkerProcess> = (0..8)
        .map(|_| WorkerProcess::spawn(serve.sandbox(), &serve.endpoint(""), &[]))
        .collect();
    for worker in &workers {
        serve.wait_for_worker_status(worker.id(), "running", Duration::from_secs(60));
    }
    let started = Instant::now();
    let submitted: HashSet<String> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                scope.spawn(|| {
                    (0..count / 2)
                        .map(|_| {
                            serve.enqueue(&json!({"type": "mark"}))["id"]
                                .as_str()
                                .expect("an id")
                                .to_string()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|thread| thread.join().expect("a submitter"))
            .collect()
    });
    let total = submitted.len();
    let timeout = Duration::from_secs(120)
        + Duration::from_millis(100) * u32::try_from(total).expect("a count");
    wait_for(timeout, "every task to finish", || {
        let status = serve.call(reqwest::Method::GET, "/ops/status/").json();
        let finished = ["SUCCESS", "ERROR", "STOPPED", "TIMEDOUT"]
            .iter()
            .map(|state| status["tasks"][state].as_u64().unwrap_or(0))
            .sum::<u64>();
        (finished == total as u64).then_some(())
    });
    let elapsed = started.elapsed();
    let mut runs: BTreeMap<String, usize> = BTreeMap::new();
    for line in std::fs::read_to_string(&marker)
        .expect("reading the marker file")
        .lines()
    {
        *runs.entry(line.to_string()).or_default() += 1;
    }
    let twice: Vec<_> = runs.iter().filter(|(_, runs)| **runs != 1).collect();
    assert!(twice.is_empty(), "tasks run more than once: {twice:?}");
    let never: Vec<_> = submitted
        .iter()
        .filter(|id| !runs.contains_key(*id))
        .collect();
    assert!(never.is_empty(), "tasks never run: {never:?}");
    assert_eq!(runs.len(), total, "runs of tasks nobody submitted");
    let tasks = proof::read_tasks(&serve.sandbox().database_path());
    let problems = proof::problems(&tasks);
    assert!(problems.is_empty(), "{problems:#?}");
    for task in tasks.values() {
        assert_eq!(task.state, TaskState::Success, "{task:?}");
        assert_eq!(task.entries_into(TaskState::Claimed), 1, "{task:?}");
    }
    let ran_per_worker = workers
        .iter()
        .map(|worker| {
            tasks
                .values()
                .filter(|task| task.worker_id == worker.id())
                .count()
        })
        .collect::<Vec<_>>();
    proof::report(&format!(
        "claims: 8 workers ran {total} tasks in {elapsed:.1?}, each exactly once (per worker: {ran_per_worker:?})"
    ));
}

/// How long a test lease lasts: short, so a lost worker is found quickly.
const LEASE_SECONDS: u64 = 3;

#[test]
fn tasks_of_workers_killed_mid_task_leave_running_within_the_lease_and_15_s() {
    let rounds = proof::scale(2, 10);
    let per_round = 4;
    let hold = |requeue: bool| {
        format!("command = 'sleep 600'\ntimeout = 3600\nrequeue_on_lost = {requeue}\n")
    };
    let (requeue_type, error_type) = (hold(true), hold(false));
    let serve = Serve::builder()
        .types(&[
            ("hold_requeue.toml", &requeue_type),
            ("hold_error.toml", &error_type),
        ])
        .env("BLANKET_LEASE_SECONDS", &LEASE_SECONDS.to_string())
        .start();
    let limit = Duration::from_secs(LEASE_SECONDS + 15);
    let mut slowest = Duration::ZERO;
    for round in 0..rounds {
        let mut workers: Vec<WorkerProcess> = (0..per_round)
            .map(|_| WorkerProcess::spawn(serve.sandbox(), &serve.endpoint(""), &[]))
            .collect();
        for worker in &workers {
            serve.wait_for_worker_status(worker.id(), "running", Duration::from_secs(60));
        }
        let ids: Vec<(String, bool)> = (0..per_round)
            .map(|index| {
                let requeue = index % 2 == 0;
                let name = if requeue {
                    "hold_requeue"
                } else {
                    "hold_error"
                };
                let task = serve.enqueue(&json!({"type": name}));
                (task["id"].as_str().expect("an id").to_string(), requeue)
            })
            .collect();
        let running: Vec<Value> = ids
            .iter()
            .map(|(id, _)| serve.wait_for_state(id, "RUNNING", Duration::from_secs(60)))
            .collect();
        // Each worker dies at its own random moment of the next two seconds.
        let mut killed_at = BTreeMap::new();
        let mut order: Vec<usize> = (0..per_round).collect();
        fastrand::shuffle(&mut order);
        for index in order {
            std::thread::sleep(Duration::from_millis(fastrand::u64(0..500)));
            let worker = &mut workers[index];
            let worker_id = worker.id().to_string();
            worker.kill();
            killed_at.insert(worker_id, Instant::now());
        }
        let mut left: BTreeMap<String, Duration> = BTreeMap::new();
        wait_for(limit * 2, "every task to leave RUNNING", || {
            for task in &running {
                let id = task["id"].as_str().expect("an id");
                if left.contains_key(id) {
                    continue;
                }
                let now = serve.task(id);
                if now["state"] != "RUNNING" || now["workerId"] != task["workerId"] {
                    let killed = killed_at[task["workerId"].as_str().expect("a worker id")];
                    left.insert(id.to_string(), killed.elapsed());
                }
            }
            (left.len() == running.len()).then_some(())
        });
        for (task, (id, requeue)) in running.iter().zip(&ids) {
            let took = left[id];
            slowest = slowest.max(took);
            assert!(
                took <= limit,
                "round {round}: task {id} left RUNNING {took:?} after its worker died (limit {limit:?})"
            );
            let events = serve.task_events(id);
            let released = events
                .iter()
                .find(|event| event["from"] == "RUNNING")
                .unwrap_or_else(|| panic!("no transition out of RUNNING: {events:?}"));
            assert_eq!(released["to"], if *requeue { "WAITING" } else { "ERROR" });
            assert_eq!(released["reason"], "worker lost", "{events:?}");
            kill_group(task_group(task));
            if *requeue {
                // Out of the way of the next round's workers.
                serve.call(reqwest::Method::PUT, &format!("/task/{id}/cancel"));
            }
        }
    }
    let tasks = proof::read_tasks(&serve.sandbox().database_path());
    let problems = proof::problems(&tasks);
    assert!(problems.is_empty(), "{problems:#?}");
    proof::report(&format!(
        "worker death: {} workers killed mid-task, slowest task left RUNNING {slowest:.1?} after the kill (lease {LEASE_SECONDS} s, limit {limit:?})",
        rounds * per_round
    ));
}

/// Times `count` submits one after another.
fn submit_latencies(server: &Server, count: usize) -> Vec<Duration> {
    (0..count)
        .map(|_| {
            let started = Instant::now();
            server
                .post_json("/task/", r#"{"type":"echo_task"}"#)
                .expect_status(201);
            started.elapsed()
        })
        .collect()
}

/// Opens `GET path` as an SSE client that never reads a byte of the answer.
fn stalled_sse_client(port: u16, path: &str) -> TcpStream {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the server");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .expect("sending the SSE request");
    stream
}

#[test]
fn two_hundred_sse_clients_that_never_read_do_not_slow_submits_or_grow_memory() {
    // Blocks with and without the clients alternate, so a neighbour's load that comes and
    // goes while the test runs weighs on both sides alike.
    let (blocks, per_block) = (proof::scale(3, 10), proof::scale(100, 300));
    // A stream learns that its client left when it next writes: a keep-alive every second
    // bounds that wait.
    let server = Server::builder()
        .env("BLANKET_KEEPALIVE_SECONDS", "1")
        .start();
    let task_streams = || server.status()["subscribers"]["tasks"].as_u64();
    submit_latencies(&server, 50);
    let rss_before = proof::rss_kib(server.pid());
    let (mut without, mut with, mut rss_most) = (Vec::new(), Vec::new(), rss_before);
    for _ in 0..blocks {
        without.extend(submit_latencies(&server, per_block));
        let stalled: Vec<TcpStream> = (0..200)
            .map(|_| stalled_sse_client(server.port(), "/ui/sse/tasks"))
            .collect();
        poll_until(Duration::from_secs(60), "200 task streams", || {
            (task_streams() >= Some(200)).then_some(())
        });
        with.extend(submit_latencies(&server, per_block));
        rss_most = rss_most.max(proof::rss_kib(server.pid()));
        drop(stalled);
        poll_until(Duration::from_secs(60), "the task streams to close", || {
            (task_streams() == Some(0)).then_some(())
        });
    }
    let (p50_without, p99_without) = (
        proof::percentile(&without, 50),
        proof::percentile(&without, 99),
    );
    let (p50_with, p99_with) = (proof::percentile(&with, 50), proof::percentile(&with, 99));
    let slowest = with.iter().max().copied().unwrap_or_default();
    proof::report(&format!(
        "slow consumers: {} submits each way; without: p50 {p50_without:.2?} p99 {p99_without:.2?}; \
         with 200 stalled SSE clients: p50 {p50_with:.2?} p99 {p99_with:.2?} max {slowest:.2?}; \
         server RSS {rss_before} KiB, at most {rss_most} KiB with the clients",
        with.len()
    ));
    assert!(
        slowest < Duration::from_secs(5),
        "a submit stalled for {slowest:?} with stalled SSE clients"
    );
    assert!(
        rss_most < rss_before + 64 * 1024,
        "the server grew from {rss_before} KiB to {rss_most} KiB"
    );
    if proof::full() {
        assert!(
            p99_with.as_secs_f64() <= p99_without.as_secs_f64() * 1.2,
            "submit p99 rose from {p99_without:?} to {p99_with:?} with stalled SSE clients"
        );
    }
}

#[test]
fn a_data_directory_that_stops_taking_writes_answers_503_and_recovers_without_a_restart() {
    let mut server = Server::start();
    let stored = server.submit_many(&json!({"type": "echo_task"}), 20);
    let worker = server.register_worker(&[]);
    let claimed = server.claim(&worker).expect("a task waits");
    let before = proof::read_tasks(&server.sandbox().database_path());
    let data_dir = server.data_dir();
    let unwritable: Vec<_> = ["", "blanket.db", "blanket.db-wal"]
        .iter()
        .map(|name| data_dir.join(name))
        .chain([server.results_dir()])
        .collect();
    let mut refusal = String::new();
    {
        let _read_only = Unwritable::new(&unwritable);
        for _ in 0..5 {
            let reply = server.post_json("/task/", r#"{"type":"echo_task"}"#);
            let message = reply.error(503);
            assert!(
                message.contains("cannot take writes") && message.contains("writable"),
                "{message}"
            );
            refusal = message;
        }
        let reply = server.put(&format!(
            "/task/{}/run?pid=7&workerId={worker}",
            claimed["id"].as_str().expect("an id")
        ));
        reply.error(503);
        // Reads still answer, with everything stored before.
        let listed = server.get("/task/?limit=1000").json();
        let listed: HashSet<&str> = listed
            .as_array()
            .expect("a list")
            .iter()
            .map(|task| task["id"].as_str().expect("an id"))
            .collect();
        assert!(stored.iter().all(|id| listed.contains(id.as_str())));
    }
    // The same server takes writes again once the disk does.
    let after_recovery = server.submit(&json!({"type": "echo_task"}));
    server
        .put(&format!(
            "/task/{}/run?pid=7&workerId={worker}",
            claimed["id"].as_str().expect("an id")
        ))
        .expect_status(200);
    let status = server.terminate();
    assert!(status.success(), "{status}\n{}", server.log());
    server.restart();
    let after = proof::read_tasks(&server.sandbox().database_path());
    let problems = proof::problems(&after);
    assert!(problems.is_empty(), "{problems:#?}");
    for (id, task) in &before {
        let kept: &StoredTask = after
            .get(id)
            .unwrap_or_else(|| panic!("task {id} was lost"));
        assert!(
            kept.events.starts_with(&task.events),
            "{kept:?} vs {task:?}"
        );
    }
    assert!(after.contains_key(after_recovery["id"].as_str().expect("an id")));
    assert_eq!(after.len(), before.len() + 1, "a refused submit was stored");
    proof::report(&format!(
        "read-only data dir: submits and transitions answered 503 {refusal:?}; the same server took writes again once it was writable; {} stored tasks kept",
        before.len()
    ));
}

#[test]
fn a_full_disk_answers_503_and_recovers_without_a_restart_once_space_is_freed() {
    let disk = SmallDisk::mount("16m");
    let builder = Server::builder();
    let data_dir = builder.sandbox().data_dir();
    std::fs::remove_dir(&data_dir).expect("removing the sandbox's data dir");
    std::os::unix::fs::symlink(disk.path(), &data_dir).expect("linking the data dir to the disk");
    let mut server = builder.start();
    let mut acknowledged = server.submit_many(&json!({"type": "echo_task"}), 20);
    let ballast = disk.fill();
    let stored_before_full = acknowledged.len();
    // The WAL may reuse the room it already has for a while: submit until the disk says no.
    let message = loop {
        let reply = server.post_json("/task/", r#"{"type":"echo_task"}"#);
        if reply.status == 201 {
            acknowledged.push(reply.json()["id"].as_str().expect("an id").to_string());
            assert!(
                acknowledged.len() < 20_000,
                "the full disk took every submit"
            );
            continue;
        }
        break reply.error(503);
    };
    assert!(
        message.contains("full") && message.contains("room"),
        "{message}"
    );
    server
        .post_json("/task/", r#"{"type":"echo_task"}"#)
        .error(503);
    std::fs::remove_file(&ballast).expect("freeing the disk");
    acknowledged.push(server.submit_id(&json!({"type": "echo_task"})));
    let status = server.terminate();
    assert!(status.success(), "{status}\n{}", server.log());
    server.restart();
    let tasks = proof::read_tasks(&server.sandbox().database_path());
    let problems = proof::problems(&tasks);
    assert!(problems.is_empty(), "{problems:#?}");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !tasks.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged submits lost: {lost:?}");
    assert_eq!(
        tasks.len(),
        acknowledged.len(),
        "a refused submit was stored"
    );
    proof::report(&format!(
        "full disk: {} submits still fit in the WAL, then 503 {message:?}; the same server took writes again once space was freed; {} acknowledged tasks kept",
        acknowledged.len() - 1 - stored_before_full,
        acknowledged.len()
    ));
}
