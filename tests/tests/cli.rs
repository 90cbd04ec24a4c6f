//! The `blanket` client commands, black-box: the real binary against a real `blanket serve`
//! (and a real worker where tasks must run), asserting exit codes, stdout and stderr: submit
//! with env and files, --wait/--follow, ps filters, pipelines, id prefixes, validate, errors.

use std::process::Command;
use std::time::Duration;

use blanket_blackbox::cli::CLI_TIMEOUT;
use blanket_blackbox::{Exit, Sandbox, Server, blanket_binary, free_port, poll_until, run_to_exit};
use serde_json::{Value, json};

const TASK_TIMEOUT: Duration = Duration::from_secs(60);

fn is_task_id(text: &str) -> bool {
    text.len() == 24
        && text
            .bytes()
            .all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

/// The one line of stdout, which must be a task id.
fn printed_id(exit: &Exit) -> String {
    let id = exit.stdout.trim().to_string();
    assert!(
        is_task_id(&id),
        "not a task id: {:?}\n{}",
        exit.stdout,
        exit.stderr
    );
    id
}

fn task(server: &Server, id: &str) -> Value {
    let reply = server.get(&format!("/task/{id}"));
    reply.expect_status(200);
    reply.json()
}

fn ids_of(stdout: &str) -> Vec<String> {
    stdout.lines().map(str::to_string).collect()
}

/// `sh -c SCRIPT` where `$BLANKET` is the binary under test, aimed at `server`.
fn shell(server: &Server, script: &str) -> Exit {
    let mut command = Command::new("sh");
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("BLANKET_") {
            command.env_remove(name);
        }
    }
    command
        .arg("-c")
        .arg(script)
        .env("BLANKET", blanket_binary())
        .env("BLANKET_SERVER_URL", server.origin())
        .env("HOME", server.sandbox().root().join("home"))
        .env("XDG_CONFIG_HOME", server.sandbox().root().join("config"))
        .stdin(std::process::Stdio::null());
    run_to_exit(command, CLI_TIMEOUT)
}

#[test]
fn submit_with_env_and_wait_exits_zero_when_the_task_succeeds() {
    let server = Server::start();
    server.launch_any_worker();
    let exit = server.run_cli(&[
        "submit",
        "-t",
        "echo_task",
        "-e",
        "NAME=cli",
        "--wait",
        "-q",
    ]);
    exit.expect_code(0);
    let id = printed_id(&exit);
    let task = task(&server, &id);
    assert_eq!(task["state"], "SUCCESS");
    assert_eq!(task["defaultEnv"]["NAME"], "cli");
    let log =
        std::fs::read_to_string(server.results_dir().join(&id).join("blanket.stdout.log")).unwrap();
    assert_eq!(log, "hello cli\n");
}

#[test]
fn submit_wait_exits_with_the_tasks_own_exit_code() {
    let server = Server::start();
    server.launch_any_worker();
    let exit = server.run_cli(&["submit", "-t", "fail_task", "--wait"]);
    exit.expect_code(3);
    assert!(
        exit.stdout.starts_with("submitted fail_task task "),
        "{}",
        exit.stdout
    );
    assert!(
        exit.stderr.contains("ended ERROR with exit code 3"),
        "{}",
        exit.stderr
    );
    assert!(
        exit.stderr.contains("blanket logs --stderr"),
        "{}",
        exit.stderr
    );
}

#[test]
fn submit_wait_exits_124_when_the_task_times_out() {
    let server = Server::start();
    server.launch_any_worker();
    let exit = server.run_cli(&["submit", "-t", "timeout_task", "--wait", "-q"]);
    exit.expect_code(124);
    assert_eq!(task(&server, &printed_id(&exit))["state"], "TIMEDOUT");
}

#[test]
fn submit_with_a_file_uploads_it_and_sets_its_variable() {
    let server = Server::start();
    server.launch_any_worker();
    let input = server
        .sandbox()
        .write_folder("inputs", &[("words.txt", "one two three four\n")]);
    let path = input.join("words.txt");
    let exit = server.run_cli(&[
        "submit",
        "-t",
        "wordcount_task",
        "-f",
        &format!("INPUT_FILE={}", path.display()),
        "--follow",
    ]);
    exit.expect_code(0);
    assert_eq!(exit.stdout, "4 words.txt\n", "stderr: {}", exit.stderr);
}

#[test]
fn submit_uploads_a_file_whose_name_has_a_space_under_that_name() {
    let server = Server::start();
    let input = server
        .sandbox()
        .write_folder("inputs", &[("my words.txt", "a b")]);
    let exit = server.run_cli(&[
        "submit",
        "-q",
        "-t",
        "wordcount_task",
        "-f",
        &format!("INPUT_FILE={}", input.join("my words.txt").display()),
    ]);
    exit.expect_code(0);
    let id = printed_id(&exit);
    assert_eq!(
        task(&server, &id)["defaultEnv"]["INPUT_FILE"],
        "my words.txt"
    );
    let uploaded = server.results_dir().join(&id).join("my words.txt");
    assert_eq!(std::fs::read_to_string(uploaded).unwrap(), "a b");
}

#[test]
fn follow_prints_the_tasks_output_and_the_outcome() {
    let server = Server::start();
    server.launch_any_worker();
    let exit = server.run_cli(&[
        "submit",
        "-t",
        "echo_task",
        "-e",
        "NAME=follower",
        "--follow",
    ]);
    exit.expect_code(0);
    assert_eq!(exit.stdout, "hello follower\n");
    assert!(exit.stderr.contains("ended SUCCESS"), "{}", exit.stderr);
}

#[test]
fn submit_takes_the_old_json_env_form_and_no_env_at_all() {
    let server = Server::start();
    let exit = server.run_cli(&["submit", "-t", "echo_task", "-e", r#"{"NAME":"old"}"#, "-q"]);
    exit.expect_code(0);
    assert_eq!(
        task(&server, &printed_id(&exit))["defaultEnv"]["NAME"],
        "old"
    );
    let exit = server.run_cli(&["submit", "-t", "echo_task", "-q"]);
    exit.expect_code(0);
    assert_eq!(
        task(&server, &printed_id(&exit))["defaultEnv"]["NAME"],
        "world"
    );
}

#[test]
fn submit_sets_priority_and_tags() {
    let server = Server::start();
    let exit = server.run_cli(&[
        "submit",
        "-t",
        "echo_task",
        "--priority",
        "7",
        "--tag",
        "extra",
        "--json",
    ]);
    exit.expect_code(0);
    let submitted: Value = serde_json::from_str(&exit.stdout).unwrap();
    assert_eq!(submitted["priority"], 7);
    assert!(
        submitted["tags"]
            .as_array()
            .unwrap()
            .contains(&json!("extra"))
    );
    assert_eq!(submitted["state"], "WAITING");
}

#[test]
fn ps_filters_by_state_type_and_tags_and_q_prints_ids_only() {
    let server = Server::start();
    let echo = server.submit_id(&json!({"type": "echo_task"}));
    let tagged = server.submit_id(&json!({"type": "echo_task", "tags": ["extra"]}));
    let fail = server.submit_id(&json!({"type": "fail_task"}));

    let all = server.run_cli(&["ps", "-q"]);
    all.expect_code(0);
    assert_eq!(
        ids_of(&all.stdout),
        [echo.clone(), tagged.clone(), fail.clone()]
    );

    let by_type = server.run_cli(&["ps", "-q", "-t", "fail_task"]);
    assert_eq!(ids_of(&by_type.stdout), std::slice::from_ref(&fail));
    let by_old_flags = server.run_cli(&[
        "ps",
        "-q",
        "--types",
        "echo_task",
        "--requiredTags",
        "extra",
        "-l",
        "10",
    ]);
    assert_eq!(ids_of(&by_old_flags.stdout), std::slice::from_ref(&tagged));
    let within = server.run_cli(&["ps", "-q", "--maxTags", "bash,unix"]);
    assert_eq!(ids_of(&within.stdout), [echo.clone(), fail.clone()]);
    let waiting = server.run_cli(&["ps", "-q", "-s", "WAITING"]);
    assert_eq!(ids_of(&waiting.stdout).len(), 3);
    let succeeded = server.run_cli(&["ps", "-q", "--state", "success"]);
    succeeded.expect_code(0);
    assert_eq!(succeeded.stdout, "");
    let before_2000 = server.run_cli(&["ps", "-q", "--before", "2000-01-01"]);
    assert_eq!(before_2000.stdout, "");
    let last_hour = server.run_cli(&["ps", "-q", "--since", "1h"]);
    assert_eq!(ids_of(&last_hour.stdout).len(), 3);
}

#[test]
fn ps_limit_shows_the_newest_and_says_how_many_more_match() {
    let server = Server::start();
    let ids: Vec<String> = (0..3)
        .map(|_| server.submit_id(&json!({"type": "echo_task"})))
        .collect();
    let exit = server.run_cli(&["ps", "-q", "--limit", "2"]);
    exit.expect_code(0);
    assert_eq!(ids_of(&exit.stdout), ids[1..]);
    assert!(
        exit.stderr
            .contains("showing the newest 2 matching tasks; more match"),
        "{}",
        exit.stderr
    );
    let exactly = server.run_cli(&["ps", "-q", "--limit", "3"]);
    assert_eq!(ids_of(&exactly.stdout), ids);
    assert_eq!(exactly.stderr, "");
    let everything = server.run_cli(&["ps", "-q", "--all"]);
    assert_eq!(ids_of(&everything.stdout), ids);
}

#[test]
fn ps_json_and_template_print_the_tasks_for_scripts() {
    let server = Server::start();
    let id = server.submit_id(&json!({"type": "echo_task"}));
    let exit = server.run_cli(&["ps", "--json"]);
    exit.expect_code(0);
    let tasks: Value = serde_json::from_str(&exit.stdout).unwrap();
    assert_eq!(tasks[0]["id"], id.as_str());
    assert_eq!(tasks[0]["state"], "WAITING");
    let exit = server.run_cli(&["ps", "--template", "{{.id}} {{.type}} {{.state}} {{.tags}}"]);
    exit.expect_code(0);
    assert_eq!(exit.stdout, format!("{id} echo_task WAITING bash,unix\n"));
}

#[test]
fn ps_json_prints_each_task_with_its_fields_in_the_rest_order() {
    let server = Server::start();
    server.submit(&json!({"type": "echo_task"}));
    server.submit(&json!({"type": "fail_task", "tags": ["extra"], "priority": 3}));
    let exit = server.run_cli(&["ps", "--json"]);
    exit.expect_code(0);
    let listed = server.get("/task/");
    listed.expect_status(200);
    assert_eq!(
        exit.stdout,
        format!("{}\n", String::from_utf8_lossy(&listed.body))
    );
}

#[test]
fn ps_table_fits_the_width_and_has_no_colour_in_a_pipe() {
    let server = Server::start();
    server.submit(&json!({"type": "wordcount_task", "environment": {"INPUT_FILE": "x"}, "tags": ["a-very-long-tag-name", "another-long-one"]}));
    let mut command = server.cli(&["ps"]);
    command.env("COLUMNS", "80");
    let exit = run_to_exit(command, CLI_TIMEOUT);
    exit.expect_code(0);
    let lines: Vec<&str> = exit.stdout.lines().collect();
    assert!(lines[0].starts_with("ID "), "{}", exit.stdout);
    assert!(lines[0].contains("STATE"), "{}", exit.stdout);
    assert!(
        lines.iter().all(|line| line.chars().count() <= 80),
        "{}",
        exit.stdout
    );
    assert!(lines[1].contains("WAITING"), "{}", exit.stdout);
    assert!(!exit.stdout.contains('\x1b'), "{:?}", exit.stdout);
}

#[test]
fn ps_q_piped_into_xargs_cancel_cancels_every_waiting_task() {
    let server = Server::start();
    let ids: Vec<String> = (0..3)
        .map(|_| server.submit_id(&json!({"type": "echo_task"})))
        .collect();
    let exit = shell(
        &server,
        r#""$BLANKET" ps -q --state WAITING | xargs "$BLANKET" cancel"#,
    );
    exit.expect_code(0);
    for id in &ids {
        assert!(
            exit.stdout.contains(&format!("cancelled {id}")),
            "{}",
            exit.stdout
        );
        assert_eq!(task(&server, id)["state"], "STOPPED");
    }
}

#[test]
fn cancel_reads_ids_from_a_pipe_and_reports_a_task_already_over() {
    let server = Server::start();
    let id = server.submit_id(&json!({"type": "echo_task"}));
    let exit = shell(&server, r#""$BLANKET" ps -q | "$BLANKET" cancel"#);
    exit.expect_code(0);
    assert_eq!(task(&server, &id)["state"], "STOPPED");
    let again = server.run_cli(&["cancel", &id]);
    again.expect_code(1);
    assert!(again.stderr.contains(&id), "{}", again.stderr);
}

#[test]
fn a_unique_prefix_names_a_task_and_an_ambiguous_one_lists_the_candidates() {
    let server = Server::start();
    let (first, second, common) = loop {
        let first = server.submit_id(&json!({"type": "echo_task"}));
        let second = server.submit_id(&json!({"type": "fail_task"}));
        let common = first
            .chars()
            .zip(second.chars())
            .take_while(|(a, b)| a == b)
            .count();
        // Ids of one second share their first 8 characters; a rare pair straddling a wrap of
        // the seconds' low byte may share fewer than 6, so take another.
        if common >= 6 {
            break (first, second, common);
        }
    };
    let unique = &first[..=common];
    let exit = server.run_cli(&["show", unique]);
    exit.expect_code(0);
    assert!(exit.stdout.contains(&first), "{}", exit.stdout);
    assert!(exit.stdout.contains("echo_task"), "{}", exit.stdout);

    let ambiguous = &first[..common];
    let exit = server.run_cli(&["show", ambiguous]);
    exit.expect_code(1);
    assert!(exit.stderr.contains("is ambiguous"), "{}", exit.stderr);
    assert!(exit.stderr.contains(&first), "{}", exit.stderr);
    assert!(exit.stderr.contains(&second), "{}", exit.stderr);

    let short = server.run_cli(&["show", &first[..5]]);
    short.expect_code(1);
    assert!(
        short.stderr.contains("at least its first 6"),
        "{}",
        short.stderr
    );
    let unknown = server.run_cli(&["show", "000000"]);
    unknown.expect_code(1);
    assert!(
        unknown.stderr.contains("no task id starts with 000000"),
        "{}",
        unknown.stderr
    );
}

#[test]
fn show_json_prints_the_task_as_the_api_does() {
    let server = Server::start();
    let id = server.submit_id(&json!({"type": "echo_task"}));
    let exit = server.run_cli(&["show", "--json", &id]);
    exit.expect_code(0);
    let shown: Value = serde_json::from_str(&exit.stdout).unwrap();
    assert_eq!(shown, task(&server, &id));
}

#[test]
fn wait_exits_143_when_the_task_is_cancelled_meanwhile() {
    let server = Server::start();
    let id = server.submit_id(&json!({"type": "echo_task"}));
    let command = server.cli(&["wait", &id]);
    let waiter = std::thread::spawn(move || run_to_exit(command, CLI_TIMEOUT));
    // The waiter listens on the live task stream before its first read of the task.
    poll_until(TASK_TIMEOUT, "the waiter to subscribe", || {
        (server.status()["subscribers"]["tasks"] == 1).then_some(())
    });
    server.put(&format!("/task/{id}/cancel")).expect_status(200);
    let exit = waiter.join().unwrap();
    exit.expect_code(143);
    assert!(exit.stderr.contains("ended STOPPED"), "{}", exit.stderr);
}

#[test]
fn ctrl_c_stops_waiting_leaves_the_task_and_says_how_to_cancel_it() {
    let server = Server::start();
    let id = server.submit_id(&json!({"type": "echo_task"}));
    let waiter = server.spawn_cli(&["wait", &id]);
    poll_until(TASK_TIMEOUT, "the waiter to subscribe", || {
        (server.status()["subscribers"]["tasks"] == 1).then_some(())
    });
    waiter.signal("INT");
    let exit = waiter.finish();
    exit.expect_code(130);
    assert!(
        exit.stderr.contains(&format!("blanket cancel {id}")),
        "{}",
        exit.stderr
    );
    assert_eq!(task(&server, &id)["state"], "WAITING");
}

#[test]
fn ctrl_c_with_cancel_on_interrupt_cancels_the_task() {
    let server = Server::start();
    let waiter = server.spawn_cli(&[
        "submit",
        "-q",
        "-t",
        "echo_task",
        "--wait",
        "--cancel-on-interrupt",
    ]);
    poll_until(TASK_TIMEOUT, "the waiter to subscribe", || {
        (server.status()["subscribers"]["tasks"] == 1).then_some(())
    });
    waiter.signal("INT");
    let exit = waiter.finish();
    exit.expect_code(130);
    let id = printed_id(&exit);
    assert!(
        exit.stderr.contains(&format!("cancelled task {id}")),
        "{}",
        exit.stderr
    );
    assert_eq!(task(&server, &id)["state"], "STOPPED");
}

#[test]
fn wait_on_several_tasks_exits_with_the_first_failure() {
    let server = Server::start();
    server.launch_any_worker();
    let ok = server.run_cli(&["submit", "-q", "-t", "echo_task"]);
    let failed = server.run_cli(&["submit", "-q", "-t", "fail_task"]);
    let exit = server.run_cli(&["wait", "--json", &printed_id(&ok), &printed_id(&failed)]);
    exit.expect_code(3);
    let tasks: Value = serde_json::from_str(&exit.stdout).unwrap();
    assert_eq!(tasks[0]["state"], "SUCCESS");
    assert_eq!(tasks[1]["state"], "ERROR");
}

#[test]
fn logs_print_stdout_stderr_and_a_tail() {
    let server = Server::start();
    server.launch_any_worker();
    let echo = printed_id(&server.run_cli(&["submit", "-q", "--wait", "-t", "echo_task"]));
    let fail = printed_id(&server.run_cli(&["submit", "-q", "--wait", "-t", "fail_task"]));
    let exit = server.run_cli(&["logs", &echo]);
    exit.expect_code(0);
    assert_eq!(exit.stdout, "hello world\n");
    let exit = server.run_cli(&["logs", "--stderr", &fail]);
    assert_eq!(
        exit.stdout,
        "fail_task: failing on purpose with exit code 3\n"
    );
    let exit = server.run_cli(&["logs", "-n", "1", &echo]);
    assert_eq!(exit.stdout, "hello world\n");
    let exit = server.run_cli(&["logs", "-f", &echo]);
    exit.expect_code(0);
    assert_eq!(exit.stdout, "hello world\n");
}

#[test]
fn retry_submits_the_same_type_environment_priority_and_tags_of_a_finished_task() {
    let server = Server::start();
    let old = server.submit(&json!({
        "type": "echo_task", "environment": {"NAME": "again"}, "priority": 5, "tags": ["extra"]
    }));
    let old_id = old["id"].as_str().unwrap();
    let waiting = server.run_cli(&["retry", "-q", old_id]);
    waiting.expect_code(1);
    assert!(waiting.stderr.contains("WAITING"), "{}", waiting.stderr);
    assert_eq!(server.get("/task/?count=true").text(), "1");
    server
        .put(&format!("/task/{old_id}/cancel"))
        .expect_status(200);

    let exit = server.run_cli(&["retry", "-q", old_id]);
    exit.expect_code(0);
    let new_id = printed_id(&exit);
    assert_ne!(new_id, old_id);
    let new = task(&server, &new_id);
    assert_eq!(new["type"], "echo_task");
    assert_eq!(new["defaultEnv"], old["defaultEnv"]);
    assert_eq!(new["priority"], 5);
    assert_eq!(new["tags"], old["tags"]);
}

#[test]
fn rm_deletes_the_task() {
    let server = Server::start();
    let id = server.submit_id(&json!({"type": "echo_task"}));
    let exit = server.run_cli(&["rm", &id]);
    exit.expect_code(0);
    assert_eq!(exit.stdout, format!("removed {id}\n"));
    server.get(&format!("/task/{id}")).expect_status(404);
}

#[test]
fn workers_launch_list_and_stop() {
    let server = Server::start();
    let exit = server.run_cli(&["workers", "launch", "--tags", "gpu", "--json"]);
    exit.expect_code(0);
    let worker: Value = serde_json::from_str(&exit.stdout).unwrap();
    let id = worker["id"].as_str().unwrap();
    let listed = server.run_cli(&["workers", "-q"]);
    assert_eq!(listed.stdout, format!("{id}\n"));
    let table = server.run_cli(&["workers", "ls"]);
    assert!(table.stdout.contains("running"), "{}", table.stdout);
    assert!(table.stdout.contains("gpu"), "{}", table.stdout);
    let stop = server.run_cli(&["workers", "stop", id]);
    stop.expect_code(0);
    assert!(
        stop.stdout.contains(&format!("stopping worker {id}")),
        "{}",
        stop.stdout
    );
}

#[test]
fn types_list_and_show_the_coordinators_types() {
    let server = Server::start();
    let exit = server.run_cli(&["types", "-q"]);
    exit.expect_code(0);
    assert!(
        exit.stdout.lines().any(|line| line == "wordcount_task"),
        "{}",
        exit.stdout
    );
    let exit = server.run_cli(&["types", "show", "wordcount_task"]);
    exit.expect_code(0);
    assert!(
        exit.stdout
            .contains("INPUT_FILE: Name of the uploaded file"),
        "{}",
        exit.stdout
    );
    let exit = server.run_cli(&["types", "show", "nope"]);
    exit.expect_code(1);
    assert!(
        exit.stderr.contains("unknown task type \"nope\""),
        "{}",
        exit.stderr
    );
    assert!(exit.stderr.contains("echo_task"), "{}", exit.stderr);
}

#[test]
fn task_validate_reports_the_coordinators_broken_types() {
    let server = Server::builder()
        .types(&[
            ("good.toml", "command = 'echo ok'\n"),
            ("bad.toml", "description = 'x'\ncommand = \n"),
        ])
        .start();
    let exit = server.run_cli(&["task-validate"]);
    exit.expect_code(1);
    assert!(exit.stdout.contains("good: ok"), "{}", exit.stdout);
    assert!(exit.stderr.contains("bad.toml:2"), "{}", exit.stderr);
    server.run_cli(&["task-validate", "good"]).expect_code(0);
}

#[test]
fn validate_checks_files_offline_with_line_and_column() {
    let sandbox = Sandbox::new();
    let dir = sandbox.write_folder(
        "types",
        &[
            ("good.toml", "command = 'echo hi'\n"),
            ("broken.toml", "description = \"x\"\ncommand = \n"),
            ("nocommand.toml", "description = \"no command\"\n"),
        ],
    );
    let mut command = sandbox.command();
    command.args(["validate"]).arg(dir.join("good.toml"));
    let exit = run_to_exit(command, CLI_TIMEOUT);
    exit.expect_code(0);
    assert!(
        exit.stdout.contains("ok (task type good)"),
        "{}",
        exit.stdout
    );

    let mut command = sandbox.command();
    command.arg("validate").arg(&dir);
    let exit = run_to_exit(command, CLI_TIMEOUT);
    exit.expect_code(1);
    let broken = dir.join("broken.toml");
    assert!(
        exit.stderr.contains(&format!("{}:2:", broken.display())),
        "{}",
        exit.stderr
    );
    let line = exit
        .stderr
        .lines()
        .find(|line| line.starts_with(&broken.display().to_string()))
        .unwrap();
    let location: Vec<&str> = line.splitn(4, ':').collect();
    assert!(
        location[1].parse::<usize>().is_ok() && location[2].parse::<usize>().is_ok(),
        "{line}"
    );
    assert!(exit.stderr.contains("nocommand.toml"), "{}", exit.stderr);
    assert!(exit.stderr.contains("command"), "{}", exit.stderr);
    assert!(
        exit.stderr.contains("3 files checked, 2 broken"),
        "{}",
        exit.stderr
    );
}

#[test]
fn completions_generate_for_each_shell() {
    let sandbox = Sandbox::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let mut command = sandbox.command();
        command.args(["completions", shell]);
        let exit = run_to_exit(command, CLI_TIMEOUT);
        exit.expect_code(0);
        assert!(exit.stdout.contains("submit"), "{shell}: {}", exit.stdout);
        assert!(exit.stdout.contains("blanket"), "{shell}");
    }
    let mut command = sandbox.command();
    command.args(["completions", "tcsh"]);
    run_to_exit(command, CLI_TIMEOUT).expect_code(2);
}

#[test]
fn man_prints_a_roff_page_with_the_commands_and_exit_codes() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command();
    command.arg("man");
    let exit = run_to_exit(command, CLI_TIMEOUT);
    exit.expect_code(0);
    assert!(exit.stdout.contains(".TH blanket"), "{}", exit.stdout);
    assert!(exit.stdout.contains("submit"));
    assert!(exit.stdout.contains("124"));
}

#[test]
fn help_documents_the_exit_codes() {
    let sandbox = Sandbox::new();
    let mut command = sandbox.command();
    command.arg("--help");
    let exit = run_to_exit(command, CLI_TIMEOUT);
    exit.expect_code(0);
    assert!(exit.stdout.contains("Exit codes:"), "{}", exit.stdout);
    for code in ["124", "125", "130", "143"] {
        assert!(exit.stdout.contains(code), "{code}: {}", exit.stdout);
    }
}

#[test]
fn version_names_both_sides_as_json() {
    let server = Server::start();
    let exit = server.run_cli(&["version", "--json"]);
    exit.expect_code(0);
    let versions: Value = serde_json::from_str(&exit.stdout).unwrap();
    assert_eq!(versions["name"], "blanket");
    assert_eq!(versions["server"]["version"], versions["version"]);
}

#[test]
fn no_coordinator_says_how_to_start_one() {
    let sandbox = Sandbox::new();
    let url = format!("http://127.0.0.1:{}", free_port());
    let mut command = sandbox.command();
    command.args(["ps"]).env("BLANKET_SERVER_URL", &url);
    let exit = run_to_exit(command, CLI_TIMEOUT);
    exit.expect_code(1);
    assert!(
        exit.stderr.contains(&format!(
            "no coordinator at {url}: start it with `blanket serve` or the desktop app"
        )),
        "{}",
        exit.stderr
    );
}

#[test]
fn the_config_files_port_is_where_the_cli_looks_without_a_url() {
    let server = Server::start();
    let config_dir = server.sandbox().root().join("config").join("blanket");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.toml"),
        format!("port = {}\n", server.port()),
    )
    .unwrap();
    let mut command = server.cli(&["version", "--json"]);
    command.env_remove("BLANKET_SERVER_URL");
    let exit = run_to_exit(command, CLI_TIMEOUT);
    exit.expect_code(0);
    let versions: Value = serde_json::from_str(&exit.stdout).unwrap();
    assert_eq!(versions["server"]["url"], server.origin());
}

#[test]
fn unknown_type_lists_the_known_types() {
    let server = Server::start();
    let exit = server.run_cli(&["submit", "-t", "no_such_type"]);
    exit.expect_code(1);
    assert!(
        exit.stderr.contains("unknown task type \"no_such_type\""),
        "{}",
        exit.stderr
    );
    for known in ["echo_task", "fail_task", "wordcount_task"] {
        assert!(exit.stderr.contains(known), "{known}: {}", exit.stderr);
    }
}

#[test]
fn missing_variable_is_named_with_its_description() {
    let server = Server::start();
    let exit = server.run_cli(&["submit", "-t", "wordcount_task"]);
    exit.expect_code(1);
    assert!(exit.stderr.contains("INPUT_FILE"), "{}", exit.stderr);
    assert!(
        exit.stderr
            .contains("Name of the uploaded file to count words in"),
        "{}",
        exit.stderr
    );
    assert!(exit.stderr.contains("-e NAME=VALUE"), "{}", exit.stderr);
}

#[test]
fn a_token_server_takes_blanket_token_and_says_when_it_is_missing() {
    let server = Server::builder().token("cli-secret-token").start();
    server.run_cli(&["ps", "-q"]).expect_code(0);
    let mut command = server.cli(&["ps"]);
    command.env_remove("BLANKET_TOKEN");
    let exit = run_to_exit(command, CLI_TIMEOUT);
    exit.expect_code(1);
    assert!(exit.stderr.contains("needs a token"), "{}", exit.stderr);
    assert!(exit.stderr.contains("BLANKET_TOKEN"), "{}", exit.stderr);
}

#[test]
fn a_missing_upload_is_named_before_anything_is_sent() {
    let server = Server::start();
    let exit = server.run_cli(&[
        "submit",
        "-t",
        "wordcount_task",
        "-f",
        "INPUT_FILE=/no/such/file.txt",
    ]);
    exit.expect_code(1);
    assert!(exit.stderr.contains("/no/such/file.txt"), "{}", exit.stderr);
    assert_eq!(server.get("/task/?count=true").text(), "0");
}
