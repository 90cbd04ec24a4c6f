//! Retry with uploaded files, black-box: a `wordcount_task` submitted multipart is retried over
//! REST and with `blanket retry`, and each retry runs on a real worker to the same output,
//! also when its uploads have awkward, long or nested names and are large.

use std::time::Duration;

use blanket_blackbox::workers::{Blanket, read_result};
use blanket_blackbox::{MultipartPart, Server};
use serde_json::{Value, json};

const TASK_TIMEOUT: Duration = Duration::from_secs(60);

/// Submits a `wordcount_task` counting the upload `input`, with `others` uploaded beside it.
fn submit_wordcount(server: &Server, input: (&str, &[u8]), others: &[(&str, &[u8])]) -> String {
    let data =
        json!({"type": "wordcount_task", "environment": {"INPUT_FILE": input.0}}).to_string();
    let mut parts = vec![
        MultipartPart::field(b"data", data.as_bytes()),
        MultipartPart::file(input.0.as_bytes(), "input.txt", input.1),
    ];
    for (name, body) in others {
        parts.push(MultipartPart::file(name.as_bytes(), "other.bin", body));
    }
    let reply = server.post_multipart("/task/", &parts);
    reply.expect_status(201);
    id_of(&reply.json())
}

fn id_of(task: &Value) -> String {
    task["id"].as_str().expect("a task has an id").to_string()
}

/// What task `id` printed, once it succeeded.
fn output_of_success(server: &Server, id: &str) -> String {
    let task = server.wait_until_finished(id, TASK_TIMEOUT);
    let stdout = read_result(&task, "blanket.stdout.log");
    assert_eq!(task["state"], "SUCCESS", "task {id}: {stdout}");
    stdout
}

/// Retries `id` over REST and answers the new task's id, checking its audit trail names `id`.
fn retry_over_rest(server: &Server, id: &str) -> String {
    let reply = server.post(&format!("/task/{id}/retry"));
    reply.expect_status(201);
    let retried = id_of(&reply.json());
    assert_retry_of(server, &retried, id);
    retried
}

fn assert_retry_of(server: &Server, retried: &str, original: &str) {
    let events = server.task_events(retried);
    assert_eq!(
        events[0]["reason"],
        format!("retry of {original}"),
        "{events:?}"
    );
}

#[test]
fn a_wordcount_task_retried_over_rest_and_with_the_cli_counts_the_same_words() {
    let server = Server::start();
    server.launch_any_worker();
    let original = submit_wordcount(&server, ("words.txt", b"one two three four\n"), &[]);
    let counted = output_of_success(&server, &original);
    assert_eq!(counted, "4 words.txt\n");

    let over_rest = retry_over_rest(&server, &original);
    assert_eq!(output_of_success(&server, &over_rest), counted);

    let exit = server.run_cli(&["retry", "--wait", "-q", &over_rest]);
    exit.expect_code(0);
    let with_cli = exit.stdout.trim().to_string();
    assert_ne!(with_cli, over_rest);
    assert_eq!(output_of_success(&server, &with_cli), counted);
    assert_retry_of(&server, &with_cli, &over_rest);
}

#[test]
fn a_retry_carries_uploads_with_awkward_long_and_nested_names_whole() {
    let server = Server::start();
    server.launch_any_worker();
    let awkward = "-n $(touch pwned); 'quoted' été #1.txt";
    let long_nested = format!("deep/{}/{}.bin", "d".repeat(200), "n".repeat(251));
    let large: Vec<u8> = b"word ".repeat(1 << 20);
    let original = submit_wordcount(
        &server,
        (awkward, b"alpha beta gamma\n"),
        &[(long_nested.as_str(), large.as_slice())],
    );
    let counted = output_of_success(&server, &original);
    assert_eq!(counted, format!("3 {awkward}\n"));

    let retried = retry_over_rest(&server, &original);

    assert_eq!(output_of_success(&server, &retried), counted);
    let folder = server.results_dir().join(&retried);
    let copied = std::fs::read(folder.join(&long_nested)).expect("the large upload was copied");
    assert!(copied == large, "the large upload changed on the way");
    assert!(!folder.join("pwned").exists());
}
