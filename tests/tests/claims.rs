//! Claiming under contention: many workers claiming at once take every task exactly once,
//! highest priority first and oldest first within a priority (never LIFO), and a worker only
//! gets tasks whose tags it has.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use blanket_blackbox::Server;
use serde_json::json;

const TASKS: usize = 2000;
const CLAIMERS: usize = 32;
const SUBMITTERS: usize = 8;

#[test]
fn concurrent_claimers_take_every_task_once_by_priority_then_fifo() {
    let server = Server::start();
    let started = Instant::now();

    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..SUBMITTERS {
            scope.spawn(|| {
                loop {
                    let index = next.fetch_add(1, Ordering::Relaxed);
                    if index >= TASKS {
                        break;
                    }
                    let priority = i64::try_from(index * 7 % 5).expect("small") - 1;
                    server.submit(&json!({"type": "echo_task", "priority": priority}));
                }
            });
        }
    });
    let submitted = started.elapsed();

    // The queue's FIFO order is the list's oldest-first order (commit order), which for
    // concurrent submits need not be the order the ids were generated in.
    let list = server.get(&format!("/task/?limit={TASKS}")).json();
    let list = list.as_array().expect("a list");
    assert_eq!(list.len(), TASKS);
    let rank: HashMap<String, (i64, usize)> = list
        .iter()
        .enumerate()
        .map(|(position, task)| {
            let id = task["id"].as_str().expect("an id").to_string();
            let priority = task["priority"].as_i64().expect("a priority");
            (id, (-priority, position))
        })
        .collect();

    let workers: Vec<String> = (0..CLAIMERS)
        .map(|_| server.register_worker(&["bash", "unix"]))
        .collect();
    let claimed: Vec<(String, Vec<String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = workers
            .iter()
            .map(|worker| {
                let server = &server;
                scope.spawn(move || {
                    let mut ids = Vec::new();
                    while let Some(task) = server.claim(worker) {
                        assert_eq!(task["state"], "CLAIMED");
                        assert_eq!(task["workerId"], worker.as_str());
                        ids.push(task["id"].as_str().expect("an id").to_string());
                    }
                    (worker.clone(), ids)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|handle| handle.join().expect("a claimer panicked"))
            .collect()
    });

    let mut seen = HashSet::new();
    for (worker, ids) in &claimed {
        for id in ids {
            assert!(seen.insert(id.clone()), "task {id} was claimed twice");
        }
        // The queue only gets worse as it drains, so each claimer's own claims must come in
        // queue order: a later claim never beats an earlier one.
        let ranks: Vec<(i64, usize)> = ids.iter().map(|id| rank[id]).collect();
        for pair in ranks.windows(2) {
            assert!(
                pair[0] < pair[1],
                "worker {worker} claimed (priority {}, position {}) before (priority {}, position {}): \
                 not priority-then-FIFO",
                -pair[0].0,
                pair[0].1,
                -pair[1].0,
                pair[1].1
            );
        }
    }
    assert_eq!(seen.len(), TASKS, "every task is claimed exactly once");

    assert_eq!(server.get("/task/?states=WAITING&count=true").text(), "0");
    assert_eq!(
        server.get("/task/?states=CLAIMED&count=true").text(),
        TASKS.to_string()
    );
    let owner: HashMap<&str, &str> = claimed
        .iter()
        .flat_map(|(worker, ids)| ids.iter().map(move |id| (id.as_str(), worker.as_str())))
        .collect();
    let after = server.get(&format!("/task/?limit={TASKS}")).json();
    for task in after.as_array().expect("a list") {
        let id = task["id"].as_str().expect("an id");
        assert_eq!(task["workerId"], owner[id], "task {id}");
        assert_eq!(task["attempts"], 1, "task {id}");
    }
    eprintln!(
        "submitted {TASKS} tasks in {submitted:?}, claimed them all with {CLAIMERS} claimers in {:?}",
        started.elapsed() - submitted
    );
}

#[test]
fn claim_takes_the_oldest_task_not_the_newest() {
    let server = Server::start();
    let worker = server.register_worker(&[]);
    let ids: Vec<String> = (0..5)
        .map(|_| server.submit_id(&json!({"type": "echo_task"})))
        .collect();
    for id in &ids {
        let claimed = server.claim(&worker).expect("a task is waiting");
        assert_eq!(claimed["id"], id.as_str());
    }
    assert!(server.claim(&worker).is_none());
}

#[test]
fn claim_takes_higher_priority_before_older_tasks() {
    let server = Server::start();
    let worker = server.register_worker(&[]);
    let low = server.submit(&json!({"type": "echo_task", "priority": 0}));
    let high = server.submit(&json!({"type": "echo_task", "priority": 5}));
    let middle = server.submit(&json!({"type": "echo_task", "priority": 1}));
    for expected in [&high, &middle, &low] {
        let claimed = server.claim(&worker).expect("a task is waiting");
        assert_eq!(claimed["id"], expected["id"]);
        assert_eq!(claimed["priority"], expected["priority"]);
    }
}

#[test]
fn a_claim_answers_the_task_with_its_frozen_type() {
    let server = Server::start();
    let worker = server.register_worker(&["bash", "unix"]);
    let task = server.submit(&json!({"type": "echo_task", "environment": {"NAME": "x"}}));
    let reply = server.post(&format!("/task/claim/{worker}/"));
    reply.expect_status(200);
    let claimed = reply.json();
    assert_eq!(claimed["id"], task["id"]);
    assert_eq!(claimed["state"], "CLAIMED");
    assert_eq!(claimed["workerId"], worker.as_str());
    assert_eq!(claimed["defaultEnv"]["NAME"], "x");
    assert_eq!(claimed["taskType"]["name"], "echo_task");
    assert!(
        claimed["taskType"]["command"]
            .as_str()
            .is_some_and(|command| command.contains("hello")),
        "{claimed}"
    );
}

#[test]
fn a_worker_only_claims_tasks_whose_tags_it_has() {
    let server = Server::start();
    let task = server.submit(&json!({"type": "echo_task", "tags": ["gpu"]}));
    let plain = server.register_worker(&["bash", "unix"]);
    let other = server.register_worker(&["gpu"]);
    let capable = server.register_worker(&["bash", "unix", "gpu"]);
    assert!(server.claim(&plain).is_none());
    assert!(server.claim(&other).is_none());
    let claimed = server.claim(&capable).expect("the task fits");
    assert_eq!(claimed["id"], task["id"]);
}

#[test]
fn a_worker_with_no_tags_takes_any_task() {
    let server = Server::start();
    let task = server.submit(&json!({"type": "echo_task", "tags": ["gpu"]}));
    let untagged = server.register_worker(&[]);
    let claimed = server
        .claim(&untagged)
        .expect("an untagged worker takes anything");
    assert_eq!(claimed["id"], task["id"]);
}

#[test]
fn a_stopped_worker_gets_204() {
    let server = Server::start();
    server.submit(&json!({"type": "echo_task"}));
    let worker = server.register_worker(&[]);
    server
        .put(&format!("/worker/{worker}/stop"))
        .expect_status(200);
    let reply = server.post(&format!("/task/claim/{worker}"));
    reply.expect_status(204);
    assert!(reply.body.is_empty());
    assert_eq!(server.get("/task/?states=WAITING&count=true").text(), "1");
}

#[test]
fn an_unregistered_worker_cannot_claim() {
    let server = Server::start();
    server.submit(&json!({"type": "echo_task"}));
    let message = server
        .post("/task/claim/5f2b3c4d5e6f708192a3b4c5")
        .error(404);
    assert!(message.contains("5f2b3c4d5e6f708192a3b4c5"), "{message}");
    assert_eq!(server.get("/task/?states=WAITING&count=true").text(), "1");
}
