//! The live list streams `/ui/sse/tasks` and `/ui/sse/workers`, read off a raw socket:
//! headers, the event at once on connect, latency after a change, coalescing under a burst,
//! the keep-alive comment, and a dropped client giving its subscription back.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use blanket_blackbox::{Server, SseClient, SseItem, poll_until};
use serde_json::json;

const STREAMS: [(&str, &str); 2] = [
    ("/ui/sse/tasks", "tasks-changed"),
    ("/ui/sse/workers", "workers-changed"),
];

fn connect(server: &Server, path: &str) -> SseClient {
    SseClient::connect(server.port(), path, &[])
        .unwrap_or_else(|reply| panic!("{path} answered {}: {}", reply.status, reply.text()))
}

#[test]
fn streams_answer_event_stream_uncached_with_an_event_at_once() {
    let server = Server::start();
    for (path, name) in STREAMS {
        for path in [path.to_string(), format!("{path}/")] {
            let connected_at = Instant::now();
            let stream = connect(&server, &path);
            assert_eq!(stream.status, 200);
            assert_eq!(stream.header("content-type"), Some("text/event-stream"));
            assert!(
                stream
                    .header("cache-control")
                    .is_some_and(|value| value.contains("no-cache")),
                "{path}: {:?}",
                stream.headers
            );
            let (at, event) = stream
                .next_event(Duration::from_secs(5))
                .unwrap_or_else(|| panic!("{path}: no event on connect"));
            assert_eq!(event, name);
            assert!(
                at.duration_since(connected_at) < Duration::from_secs(1),
                "{path}: the first event took {:?}",
                at.duration_since(connected_at)
            );
        }
    }
}

#[test]
fn a_submit_reaches_a_task_subscriber_within_100_ms() {
    let server = Server::start();
    let stream = connect(&server, "/ui/sse/tasks");
    stream
        .next_event(Duration::from_secs(5))
        .expect("the event on connect");
    for round in 0..5 {
        server.submit(&json!({"type": "echo_task"}));
        let answered_at = Instant::now();
        let (at, event) = stream
            .next_event(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("round {round}: no event after a submit"));
        assert_eq!(event, "tasks-changed");
        let late = at.saturating_duration_since(answered_at);
        assert!(
            late < Duration::from_millis(100),
            "round {round}: the event came {late:?} after the 201"
        );
        // Nothing else is pending, so the next round measures its own submit.
        assert_eq!(stream.next_item(Duration::from_millis(50)), None);
    }
}

#[test]
fn a_worker_change_reaches_a_worker_subscriber_within_100_ms() {
    let server = Server::start();
    let stream = connect(&server, "/ui/sse/workers");
    stream
        .next_event(Duration::from_secs(5))
        .expect("the event on connect");
    server.register_worker(&["bash"]);
    let answered_at = Instant::now();
    let (at, event) = stream
        .next_event(Duration::from_secs(5))
        .expect("an event after a worker registered");
    assert_eq!(event, "workers-changed");
    let late = at.saturating_duration_since(answered_at);
    assert!(
        late < Duration::from_millis(100),
        "the event came {late:?} after the 200"
    );
}

#[test]
fn task_changes_do_not_wake_worker_subscribers() {
    let server = Server::start();
    let stream = connect(&server, "/ui/sse/workers");
    stream
        .next_event(Duration::from_secs(5))
        .expect("the event on connect");
    server.submit(&json!({"type": "echo_task"}));
    assert_eq!(stream.next_item(Duration::from_millis(300)), None);
}

#[test]
fn a_burst_of_500_submits_coalesces_and_still_ends_with_a_fresh_event() {
    const SUBMITS: usize = 500;
    let server = Server::start();
    let stream = connect(&server, "/ui/sse/tasks");
    stream
        .next_event(Duration::from_secs(5))
        .expect("the event on connect");

    let next = AtomicUsize::new(0);
    let last_sent = Mutex::new(Instant::now());
    let last_answered = Mutex::new(Instant::now());
    std::thread::scope(|scope| {
        for _ in 0..8 {
            scope.spawn(|| {
                while next.fetch_add(1, Ordering::Relaxed) < SUBMITS {
                    let sent = Instant::now();
                    server.submit(&json!({"type": "echo_task"}));
                    let answered = Instant::now();
                    let mut last = last_sent.lock().expect("no panic holds it");
                    *last = (*last).max(sent);
                    drop(last);
                    let mut last = last_answered.lock().expect("no panic holds it");
                    *last = (*last).max(answered);
                }
            });
        }
    });
    let last_sent = *last_sent.lock().expect("no panic holds it");
    let last_answered = *last_answered.lock().expect("no panic holds it");

    let items = stream.items_until_quiet(Duration::from_millis(500), Duration::from_secs(30));
    let events: Vec<Instant> = items
        .iter()
        .filter(|(_, item)| matches!(item, SseItem::Event { .. }))
        .map(|(at, _)| *at)
        .collect();
    assert!(
        !events.is_empty(),
        "no event at all after {SUBMITS} submits"
    );
    assert!(
        events.len() < SUBMITS / 2,
        "{} events for {SUBMITS} submits: changes were not coalesced",
        events.len()
    );
    let last_event = *events.last().expect("not empty");
    // The last commit happened after the last request was sent, and its event after it.
    assert!(
        last_event > last_sent,
        "the last event came before the last submit was even sent"
    );
    // A client that reloads on each event sees every task once the stream is quiet.
    assert_eq!(server.get("/task/?count=true").text(), SUBMITS.to_string());
    eprintln!(
        "{} events for {SUBMITS} submits; last event {:?} after the last 201",
        events.len(),
        last_event.saturating_duration_since(last_answered)
    );
}

#[test]
fn a_client_reloading_on_each_event_ends_up_seeing_every_task() {
    const SUBMITS: usize = 200;
    let server = Server::start();
    let stream = connect(&server, "/ui/sse/tasks");
    stream
        .next_event(Duration::from_secs(5))
        .expect("the event on connect");
    let seen = Mutex::new(0usize);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let (server, seen, done) = (&server, &seen, &done);
        scope.spawn(move || {
            // What the UI does: on each event, reload the list.
            loop {
                match stream.next_item(Duration::from_millis(100)) {
                    Some((_, SseItem::Event { .. })) => {
                        let count: usize = server
                            .get("/task/?count=true")
                            .text()
                            .parse()
                            .expect("a bare number");
                        *seen.lock().expect("no panic holds it") = count;
                    }
                    Some(_) => {}
                    None if done.load(Ordering::Acquire) => break,
                    None => {}
                }
            }
        });
        for _ in 0..SUBMITS {
            server.submit(&json!({"type": "echo_task"}));
        }
        poll_until(
            Duration::from_secs(10),
            "the reloading client to see every task",
            || (*seen.lock().expect("no panic holds it") == SUBMITS).then_some(()),
        );
        done.store(true, Ordering::Release);
    });
}

#[test]
fn an_idle_stream_sends_a_keepalive_comment() {
    let server = Server::builder()
        .env("BLANKET_KEEPALIVE_SECONDS", "1")
        .start();
    for (path, name) in STREAMS {
        let stream = connect(&server, path);
        stream
            .next_event(Duration::from_secs(5))
            .expect("the event on connect");
        match stream.next_item(Duration::from_secs(5)) {
            Some((_, SseItem::Comment(text))) => assert!(!text.contains('\n'), "{text:?}"),
            other => panic!("{path}: expected a comment line, got {other:?} ({name})"),
        }
    }
}

#[test]
fn a_dropped_client_gives_its_subscription_back() {
    let server = Server::start();
    let subscribers = |topic: &str| {
        server.status()["subscribers"][topic]
            .as_u64()
            .expect("subscriber counts are numbers")
    };
    assert_eq!(subscribers("tasks"), 0);
    let first = connect(&server, "/ui/sse/tasks");
    let second = connect(&server, "/ui/sse/tasks");
    let third = connect(&server, "/ui/sse/workers");
    for stream in [&first, &second, &third] {
        stream
            .next_event(Duration::from_secs(5))
            .expect("the event on connect");
    }
    assert_eq!(subscribers("tasks"), 2);
    assert_eq!(subscribers("workers"), 1);

    drop(first);
    poll_until(
        Duration::from_secs(5),
        "the tasks subscription to go",
        || (subscribers("tasks") == 1).then_some(()),
    );
    drop(third);
    poll_until(
        Duration::from_secs(5),
        "the workers subscription to go",
        || (subscribers("workers") == 0).then_some(()),
    );
    drop(second);
    poll_until(
        Duration::from_secs(5),
        "the last tasks subscription to go",
        || (subscribers("tasks") == 0).then_some(()),
    );
}
