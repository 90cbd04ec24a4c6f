//! The worker runtime, black-box: real `blanket worker` processes run real task processes in
//! real directories, and we check what a user sees: states, exit codes, log files and streams,
//! progress, the task's environment, tag matching, and that no process of a task survives it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use blanket_blackbox::workers::{
    Blanket, EXAMPLE_TYPES, WorkerProcess, cpu_time, group_members, read_result, result_dir,
    sse_events, task_group, wait_for,
};
use blanket_blackbox::{MultipartPart, Server, SseClient, SseItem, raw_get};
use reqwest::Method;
use serde_json::{Value, json};

const TAGS: [&str; 2] = ["bash", "unix"];
/// Ample time for a short task to be claimed and run on a loaded two-core machine.
const RUN_DEADLINE: Duration = Duration::from_secs(20);

/// Prints five lines to stdout and two to stderr.
const LINES_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 60
command = 'for i in 1 2 3 4 5; do echo "line $i"; done; echo "warning one" >&2; echo "warning two" >&2'
"#;

/// Prints a line, waits for a file `go` in its directory, prints another.
const GATED_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 60
command = 'echo first; while [ ! -e go ]; do sleep 0.02; done; echo second'
"#;

/// Writes a line every few milliseconds until a file `go` appears in its directory.
const CHATTY_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 120
command = 'while [ ! -e go ]; do echo tick; sleep 0.005; done'
"#;

/// Ignores SIGTERM in a background subshell, then outlives its one-second timeout.
const STUBBORN_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 1
command = '(trap "" TERM; sleep 60) & echo started; sleep 60'
"#;

/// Greets NAME through the environment, the injection-safe form.
const GREET_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 60
command = 'echo "hello $NAME"'

  [[environment.required]]
  name = "NAME"
  description = "Who to greet"
"#;

/// Reports its own progress over HTTP, then waits for a file `go`.
const SELF_PROGRESS_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 60
command = '''
curl -sf -X PUT "$BLANKET_SERVER_URL/task/$BLANKET_APP_TASK_ID/progress?progress=42" > curl.out
while [ ! -e go ]; do sleep 0.02; done
'''
"#;

/// Prints the BLANKET_ variables and the files the type brings along.
const ENV_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 60
files_to_include = [["included.txt"], ["*.csv", "inputs"]]
command = 'env | grep "^BLANKET_" | sort; cat included.txt; cat inputs/table.csv'
"#;

/// Names a file to include that does not exist.
const MISSING_INCLUDE_TASK: &str = r#"
tags = ["bash", "unix"]
timeout = 60
files_to_include = [["not-there.txt"]]
command = 'echo "should never run"'
"#;

/// A task for workers tagged `gpu`.
const GPU_TASK: &str = r#"
tags = ["gpu"]
timeout = 60
command = 'echo gpu'
"#;

/// The example types plus `extra`.
fn types_with<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut files = EXAMPLE_TYPES.to_vec();
    files.extend_from_slice(extra);
    files
}

fn id_of(task: &Value) -> String {
    task["id"].as_str().expect("a task has an id").to_string()
}

fn connect_log(server: &Server, path: &str) -> SseClient {
    SseClient::connect(server.port(), path, &[])
        .unwrap_or_else(|reply| panic!("{path} answered {}: {}", reply.status, reply.text()))
}

/// The next `message` event's data, skipping comments; panics on anything else.
fn next_message(stream: &SseClient, what: &str) -> String {
    let deadline = Instant::now() + RUN_DEADLINE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match stream.next_item(left) {
            Some((_, SseItem::Event { name, data })) => {
                assert_eq!(name, "message", "{what}: unexpected event");
                return data;
            }
            Some((_, SseItem::Comment(_))) => {}
            Some((_, SseItem::End)) => panic!("{what}: the stream ended early"),
            None => panic!("{what}: nothing arrived within {RUN_DEADLINE:?}"),
        }
    }
}

#[test]
fn echo_task_succeeds_with_its_output_in_the_log_file_and_the_log_stream() {
    let server = Server::start();
    let task = server.enqueue(&json!({"type": "echo_task"}));
    let id = id_of(&task);
    // Connected before any worker exists, so the line must arrive live.
    let stream = connect_log(&server, &format!("/task/{id}/log"));
    assert_eq!(stream.header("content-type"), Some("text/event-stream"));
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);

    // The line, then the empty data line that gives a client appending the data its newline.
    assert_eq!(next_message(&stream, "echo_task's line"), "hello world\n");
    assert!(
        stream.ended_within(RUN_DEADLINE),
        "the stream must end once the task has ended and its log is drained; the task: {}",
        server.task(&id)
    );
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(task["exitCode"], 0);
    assert_eq!(task["progress"], 100);
    assert_eq!(read_result(&task, "blanket.stdout.log"), "hello world\n");
    assert_eq!(read_result(&task, "blanket.stderr.log"), "");
    let served = server.get(&format!("/results/{id}/blanket.stdout.log"));
    served.expect_status(200);
    assert_eq!(served.text(), "hello world\n");
}

#[test]
fn log_stream_follows_a_running_task_line_by_line() {
    let server = Server::builder()
        .types(&[("gated_task.toml", GATED_TASK)])
        .start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let task = server.enqueue(&json!({"type": "gated_task"}));
    let id = id_of(&task);
    let stream = connect_log(&server, &format!("/task/{id}/log"));

    assert_eq!(next_message(&stream, "the first line"), "first\n");
    assert_eq!(server.task(&id)["state"], "RUNNING");
    std::fs::write(result_dir(&task).join("go"), "").expect("opening the gate");
    assert_eq!(next_message(&stream, "the second line"), "second\n");
    assert!(stream.ended_within(RUN_DEADLINE), "the stream did not end");
    assert_eq!(server.task(&id)["state"], "SUCCESS");
}

#[test]
fn finished_task_log_replays_resumes_after_last_event_id_and_serves_stderr_and_tails() {
    let server = Server::builder()
        .types(&[("lines_task.toml", LINES_TASK)])
        .start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "lines_task"})));
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");

    // The stream of a finished task replays everything and ends, so it can be read whole.
    let replay = raw_get(server.port(), &format!("/task/{id}/log"), &[]);
    assert_eq!(replay.status, 200, "{}", replay.text());
    let expected: Vec<(String, String, Vec<String>)> = (1..=5)
        .map(|line| {
            (
                "message".to_string(),
                line.to_string(),
                vec![format!("line {line}"), String::new()],
            )
        })
        .collect();
    assert_eq!(sse_events(&replay.text()), expected, "{}", replay.text());

    let resumed = raw_get(
        server.port(),
        &format!("/task/{id}/log"),
        &[("Last-Event-ID", "2")],
    );
    assert_eq!(resumed.status, 200);
    assert_eq!(sse_events(&resumed.text()), expected[2..].to_vec());

    let stderr = raw_get(server.port(), &format!("/task/{id}/log?stream=stderr"), &[]);
    assert_eq!(stderr.status, 200);
    let stderr_lines: Vec<(String, Vec<String>)> = sse_events(&stderr.text())
        .into_iter()
        .map(|(_, id, data)| (id, data))
        .collect();
    assert_eq!(
        stderr_lines,
        vec![
            (
                "1".to_string(),
                vec!["warning one".to_string(), String::new()]
            ),
            (
                "2".to_string(),
                vec!["warning two".to_string(), String::new()]
            ),
        ]
    );

    let tail = server.get(&format!("/task/{id}/log/tail?n=2"));
    tail.expect_status(200);
    assert!(
        tail.header("content-type")
            .is_some_and(|value| value.starts_with("text/plain")),
        "{:?}",
        tail.headers
    );
    assert_eq!(tail.text(), "line 4\nline 5\n");
    let stderr_tail = server.get(&format!("/task/{id}/log/tail?n=1&stream=stderr"));
    stderr_tail.expect_status(200);
    assert_eq!(stderr_tail.text(), "warning two\n");
}

/// Opens the log stream at `path`, reads its first bytes and hangs up; `false` when the server
/// did not answer within `timeout`.
fn open_and_drop_stream(port: u16, path: &str, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    if stream.set_read_timeout(Some(timeout)).is_err() {
        return false;
    }
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut buffer = [0u8; 512];
    matches!(stream.read(&mut buffer), Ok(read) if read > 0)
}

#[test]
fn log_streams_opened_and_dropped_while_a_task_writes_never_freeze_the_server() {
    let mut server = Server::builder()
        .types(&[("chatty_task.toml", CHATTY_TASK)])
        .start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let task = server.enqueue(&json!({"type": "chatty_task"}));
    let id = id_of(&task);
    server.wait_for_state(&id, "RUNNING", RUN_DEADLINE);

    let port = server.port();
    let path = format!("/task/{id}/log");
    let stalled = AtomicBool::new(false);
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..60 {
                    if stalled.load(Ordering::Relaxed)
                        || !open_and_drop_stream(port, &path, Duration::from_secs(5))
                    {
                        stalled.store(true, Ordering::Relaxed);
                        return;
                    }
                }
            });
        }
    });
    if stalled.load(Ordering::Relaxed) {
        // A frozen server would only be killed after the harness's SIGTERM grace period.
        server.kill();
        panic!("a log stream got no answer within 5 s while streams came and went");
    }
    let version = server.send(
        server
            .http()
            .get(server.url("/version"))
            .timeout(Duration::from_secs(5)),
    );
    version.expect_status(200);
    std::fs::write(result_dir(&task).join("go"), "").expect("ending the task");
    assert_eq!(
        server.wait_until_finished(&id, RUN_DEADLINE)["state"],
        "SUCCESS"
    );
}

#[test]
fn following_the_log_of_a_quiet_running_task_costs_the_server_almost_no_cpu() {
    let mut server = Server::builder()
        .types(&[("gated_task.toml", GATED_TASK)])
        .start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let task = server.enqueue(&json!({"type": "gated_task"}));
    let id = id_of(&task);
    let stream = connect_log(&server, &format!("/task/{id}/log"));
    assert_eq!(next_message(&stream, "the first line"), "first\n");

    // A measurement over a fixed window: nothing is awaited here, the server should idle.
    let window = Duration::from_secs(2);
    let before = cpu_time(server.pid());
    std::thread::sleep(window);
    let used = cpu_time(server.pid()).saturating_sub(before);
    std::fs::write(result_dir(&task).join("go"), "").expect("opening the gate");
    if used > Duration::from_millis(400) {
        // Closing the stream may freeze a server in this state; don't wait for its SIGTERM.
        server.kill();
        panic!("one follower of a quiet log made the server use {used:?} of CPU in {window:?}");
    }
    assert_eq!(next_message(&stream, "the second line"), "second\n");
}

#[test]
fn fail_task_ends_error_with_exit_code_3() {
    let server = Server::start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "fail_task"})));
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "ERROR", "{task}");
    assert_eq!(task["exitCode"], 3);
    assert!(
        task["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains('3')),
        "{task}"
    );
    assert_eq!(
        read_result(&task, "blanket.stderr.log"),
        "fail_task: failing on purpose with exit code 3\n"
    );
}

#[test]
fn timeout_task_ends_timedout_and_leaves_no_process_in_its_group() {
    let server = Server::start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "timeout_task"})));
    let running = server.wait_for_task(&id, RUN_DEADLINE, "running with a pid", |task| {
        task["state"] == "RUNNING" && task["pid"].as_u64().is_some_and(|pid| pid > 1)
    });
    let group = task_group(&running);
    assert!(
        !group_members(group).is_empty(),
        "the running task's group {group} has no process"
    );

    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "TIMEDOUT", "{task}");
    // The worker reports the end only once the group is gone.
    assert_eq!(
        group_members(group)
            .iter()
            .map(|process| &process.command)
            .collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "processes of the timed-out task survived"
    );
    assert_eq!(
        read_result(&task, "blanket.stdout.log"),
        "sleeping 30 seconds; the 2 second timeout stops this task first\n"
    );
}

#[test]
fn timeout_also_kills_processes_that_ignore_sigterm() {
    let server = Server::builder()
        .types(&[("stubborn_task.toml", STUBBORN_TASK)])
        .start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "stubborn_task"})));
    let running = server.wait_for_task(&id, RUN_DEADLINE, "running with a pid", |task| {
        task["state"] == "RUNNING" && task["pid"].as_u64().is_some_and(|pid| pid > 1)
    });
    let group = task_group(&running);

    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "TIMEDOUT", "{task}");
    let survivors = group_members(group);
    assert!(
        survivors.is_empty(),
        "processes of the timed-out task survived: {survivors:?}"
    );
}

#[test]
fn cancel_of_a_running_task_stops_it_within_a_second_and_kills_its_group() {
    let server = Server::start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id =
        id_of(&server.enqueue(&json!({"type": "sleep_task", "environment": {"DURATION": "30"}})));
    let running = server.wait_for_task(&id, RUN_DEADLINE, "running with a pid", |task| {
        task["state"] == "RUNNING" && task["pid"].as_u64().is_some_and(|pid| pid > 1)
    });
    let group = task_group(&running);
    wait_for(RUN_DEADLINE, "the task's processes to exist", || {
        (!group_members(group).is_empty()).then_some(())
    });

    let cancelled_at = Instant::now();
    let reply = server.put(&format!("/task/{id}/cancel"));
    reply.expect_status(200);
    assert_eq!(reply.json()["state"], "STOPPED");
    server.wait_for_state(&id, "STOPPED", Duration::from_secs(1));
    wait_for(
        Duration::from_secs(1).saturating_sub(cancelled_at.elapsed()),
        "the cancelled task's process group to be gone",
        || group_members(group).is_empty().then_some(()),
    );
    let task = server.task(&id);
    assert_eq!(
        task["state"], "STOPPED",
        "the worker's late report won: {task}"
    );
}

#[test]
fn uploaded_file_is_in_the_task_directory_for_wordcount_task() {
    let server = Server::start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let data =
        json!({"type": "wordcount_task", "environment": {"INPUT_FILE": "words.txt"}}).to_string();
    let reply = server.post_multipart(
        "/task/",
        &[
            MultipartPart::field(b"data", data.as_bytes()),
            MultipartPart::file(
                b"words.txt",
                "my words.txt",
                b"the quick brown fox\njumps over the lazy dog\n",
            ),
        ],
    );
    reply.expect_status(201);
    let id = id_of(&reply.json());

    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(read_result(&task, "blanket.stdout.log"), "9 words.txt\n");
}

#[test]
fn variable_holding_shell_syntax_is_passed_as_data_not_run() {
    let server = Server::builder()
        .types(&[("greet_task.toml", GREET_TASK)])
        .start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let root = server.sandbox().root();
    let name = format!(
        "x; touch {0}/pwned-semicolon $(touch {0}/pwned-dollar) `touch {0}/pwned-backtick`",
        root.display()
    );
    let id = id_of(&server.enqueue(&json!({"type": "greet_task", "environment": {"NAME": name}})));

    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(
        read_result(&task, "blanket.stdout.log"),
        format!("hello {name}\n")
    );
    for file in ["pwned-semicolon", "pwned-dollar", "pwned-backtick"] {
        assert!(
            !root.join(file).exists(),
            "the variable was executed: {file} exists"
        );
    }
}

#[test]
fn workers_take_only_tasks_whose_tags_they_all_have_and_a_tagless_worker_takes_any() {
    let server = Server::builder()
        .types(&types_with(&[("gpu_task.toml", GPU_TASK)]))
        .start();
    // Submitted first: no worker below has all of bash, unix and special, so both must skip
    // it to take the later tasks, which proves it was passed over, not just not reached.
    let special = id_of(&server.enqueue(&json!({"type": "echo_task", "tags": ["special"]})));
    let unix_tasks: Vec<String> = (0..3)
        .map(|_| id_of(&server.enqueue(&json!({"type": "echo_task"}))))
        .collect();
    let gpu_tasks: Vec<String> = (0..3)
        .map(|_| id_of(&server.enqueue(&json!({"type": "gpu_task"}))))
        .collect();
    let unix_worker = WorkerProcess::start(&server, server.sandbox(), &["bash", "unix", "extra"]);
    let gpu_worker = WorkerProcess::start(&server, server.sandbox(), &["gpu"]);

    for (ids, worker) in [(&unix_tasks, &unix_worker), (&gpu_tasks, &gpu_worker)] {
        for id in ids {
            let task = server.wait_until_finished(id, RUN_DEADLINE);
            assert_eq!(task["state"], "SUCCESS", "{task}");
            assert_eq!(task["workerId"], worker.id(), "{task}");
        }
    }
    assert_eq!(server.task(&special)["state"], "WAITING");

    let any_worker = WorkerProcess::start(&server, server.sandbox(), &[]);
    let task = server.wait_until_finished(&special, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(task["workerId"], any_worker.id(), "{task}");
}

#[test]
fn finish_from_a_worker_whose_task_was_cancelled_is_refused() {
    let server = Server::start();
    let worker = server.register_worker(&TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "echo_task"})));
    let claimed = server.claim(&worker).expect("the waiting task is claimed");
    assert_eq!(claimed["id"], id.as_str());
    server.put(&format!("/task/{id}/cancel")).expect_status(200);

    let reply = server.put(&format!(
        "/task/{id}/finish?state=SUCCESS&exitCode=0&workerId={worker}"
    ));
    let message = reply.error(409);
    assert!(message.contains("STOPPED"), "{message}");
    let task = server.task(&id);
    assert_eq!(task["state"], "STOPPED");
    assert_eq!(task["exitCode"], Value::Null);
}

#[test]
fn progress_lines_printed_by_a_task_raise_its_progress() {
    let server = Server::start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id =
        id_of(&server.enqueue(&json!({"type": "sleep_task", "environment": {"DURATION": "3"}})));

    let mut seen: Vec<u64> = Vec::new();
    let task = server.wait_for_task(&id, RUN_DEADLINE, "finished", |task| {
        let progress = task["progress"].as_u64().expect("progress is a number");
        if task["state"] == "RUNNING" && seen.last() != Some(&progress) {
            seen.push(progress);
        }
        !matches!(
            task["state"].as_str(),
            Some("WAITING" | "CLAIMED" | "RUNNING")
        )
    });
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(task["progress"], 100);
    let reported: Vec<u64> = seen.iter().copied().filter(|value| *value > 0).collect();
    assert!(
        reported.len() >= 2,
        "expected progress to rise while running, saw {seen:?}"
    );
    assert!(
        reported.windows(2).all(|pair| pair[0] < pair[1]),
        "progress went down: {seen:?}"
    );
}

#[test]
fn task_reports_its_own_progress_through_the_server_url_in_its_environment() {
    let server = Server::builder()
        .types(&[("self_progress_task.toml", SELF_PROGRESS_TASK)])
        .start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let task = server.enqueue(&json!({"type": "self_progress_task"}));
    let id = id_of(&task);

    let reported = server.wait_for_task(&id, RUN_DEADLINE, "RUNNING at 42%", |task| {
        task["state"] == "RUNNING" && task["progress"] == 42
    });
    assert_eq!(reported["progress"], 42);
    std::fs::write(result_dir(&task).join("go"), "").expect("opening the gate");
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert!(
        read_result(&task, "curl.out").contains("\"progress\":42"),
        "the progress call answered: {}",
        read_result(&task, "curl.out")
    );
}

#[test]
fn task_sees_the_blanket_variables_and_the_files_its_type_includes() {
    let server = Server::builder()
        .types(&[
            ("env_task.toml", ENV_TASK),
            ("included.txt", "brought along by the type\n"),
            ("table.csv", "a,b\n1,2\n"),
        ])
        .start();
    let worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "env_task"})));

    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    let directory = result_dir(&task);
    let results_root = directory.parent().expect("a task dir has a parent");
    let mut expected = vec![
        format!("BLANKET_APP_RESULTS_DIRECTORY={}", results_root.display()),
        format!("BLANKET_APP_SERVER_PORT={}", server.port()),
        format!("BLANKET_APP_TASK_ID={id}"),
        format!("BLANKET_APP_TASK_RESULTS_DIRECTORY={}", directory.display()),
        format!("BLANKET_APP_WORKER_PID={}", worker.pid()),
        format!("BLANKET_SERVER_URL=http://127.0.0.1:{}", server.port()),
    ];
    expected.sort();
    let stdout = read_result(&task, "blanket.stdout.log");
    let variables: Vec<&str> = stdout
        .lines()
        .filter(|line| line.starts_with("BLANKET_"))
        .collect();
    for line in &expected {
        assert!(
            variables.contains(&line.as_str()),
            "{line} missing in {variables:?}"
        );
    }
    assert!(
        stdout.ends_with("brought along by the type\na,b\n1,2\n"),
        "{stdout}"
    );
    assert_eq!(
        std::fs::read_to_string(directory.join("included.txt")).expect("included.txt copied"),
        "brought along by the type\n"
    );
    assert!(directory.join("inputs/table.csv").is_file());
}

#[test]
fn missing_file_to_include_fails_the_task_naming_it() {
    let server = Server::builder()
        .types(&[("missing_include_task.toml", MISSING_INCLUDE_TASK)])
        .start();
    let _worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "missing_include_task"})));

    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "ERROR", "{task}");
    assert!(
        task["reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("not-there.txt")),
        "the reason must name the missing file: {task}"
    );
    assert_eq!(read_result(&task, "blanket.stdout.log"), "");
    let events = server.task_events(&id);
    let last = events.last().expect("the task has events");
    assert_eq!(last["from"], "CLAIMED", "{events:?}");
    assert_eq!(last["to"], "ERROR", "{events:?}");
}

#[test]
fn paused_queue_keeps_tasks_waiting_beside_an_idle_worker_until_resumed() {
    let server = Server::start();
    server.put("/queue/pause").expect_status(200);
    let worker = WorkerProcess::start(&server, server.sandbox(), &TAGS);
    let id = id_of(&server.enqueue(&json!({"type": "echo_task"})));

    // Nothing may happen here, so this watches for a while rather than for an event.
    let watch_until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < watch_until {
        assert_eq!(server.task(&id)["state"], "WAITING", "claimed while paused");
        std::thread::sleep(Duration::from_millis(50));
    }

    server.put("/queue/resume").expect_status(200);
    let task = server.wait_until_finished(&id, RUN_DEADLINE);
    assert_eq!(task["state"], "SUCCESS", "{task}");
    assert_eq!(task["workerId"], worker.id());
    assert_eq!(
        server.call(Method::GET, "/queue").json()["paused"],
        false,
        "the queue reports itself resumed"
    );
}
