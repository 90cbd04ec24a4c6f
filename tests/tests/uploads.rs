//! Multipart submits: the `data` part as a field or a file, file parts saved under their
//! field name in the task's directory, and every way a submit is refused (hostile names,
//! no data part, unknown type, missing variable) without leaving anything on disk.

use std::path::{Path, PathBuf};

use blanket_blackbox::{MultipartPart, Server, names_in, tree};
use serde_json::Value;

const WORDCOUNT: &str = r#"{"type": "wordcount_task", "environment": {"INPUT_FILE": "words.txt"}}"#;

fn result_dir(task: &Value) -> PathBuf {
    PathBuf::from(task["resultDir"].as_str().expect("a task has a resultDir"))
}

#[test]
fn multipart_data_field_and_file_parts_land_in_the_task_dir() {
    let server = Server::start();
    let reply = server.post_multipart(
        "/task/",
        &[
            MultipartPart::field(b"data", WORDCOUNT.as_bytes()),
            MultipartPart::file(b"words.txt", "original-name.txt", b"one two three\n"),
            MultipartPart::file(b"inputs/more.csv", "more.csv", b"a,b\n1,2\n"),
        ],
    );
    reply.expect_status(201);
    let task = reply.json();
    assert_eq!(task["state"], "WAITING");
    assert_eq!(task["defaultEnv"]["INPUT_FILE"], "words.txt");
    let dir = result_dir(&task);
    assert!(dir.starts_with(server.results_dir()), "{}", dir.display());
    assert_eq!(
        std::fs::read(dir.join("words.txt")).expect("words.txt saved"),
        b"one two three\n"
    );
    assert_eq!(
        std::fs::read(dir.join("inputs/more.csv")).expect("inputs/more.csv saved"),
        b"a,b\n1,2\n"
    );
    assert!(!dir.join("original-name.txt").exists());

    let id = task["id"].as_str().expect("an id");
    let served = server.get(&format!("/results/{id}/words.txt"));
    served.expect_status(200);
    assert_eq!(served.body, b"one two three\n");
    let nested = server.get(&format!("/results/{id}/inputs/more.csv"));
    nested.expect_status(200);
    assert_eq!(nested.body, b"a,b\n1,2\n");
    assert_eq!(
        names_in(&server.results_dir().join(".incoming")),
        Vec::<String>::new()
    );
}

#[test]
fn multipart_data_part_may_be_a_json_file() {
    let server = Server::start();
    let reply = server.post_multipart(
        "/task/",
        &[
            MultipartPart {
                name: b"data",
                file_name: Some("task.json"),
                content_type: Some("application/json"),
                body: WORDCOUNT.as_bytes(),
            },
            MultipartPart::file(b"words.txt", "words.txt", b"alpha beta\n"),
        ],
    );
    reply.expect_status(201);
    let task = reply.json();
    assert_eq!(task["type"], "wordcount_task");
    assert_eq!(
        std::fs::read(result_dir(&task).join("words.txt")).expect("words.txt saved"),
        b"alpha beta\n"
    );
}

#[test]
fn multipart_from_a_standard_client_is_accepted() {
    let server = Server::start();
    let form = reqwest::blocking::multipart::Form::new()
        .text("data", WORDCOUNT)
        .part(
            "words.txt",
            reqwest::blocking::multipart::Part::bytes(b"x y z".to_vec()).file_name("words.txt"),
        );
    let reply = server.send(server.http().post(server.url("/task")).multipart(form));
    reply.expect_status(201);
    assert!(reply.text().contains(r#""state":"WAITING""#));
    assert_eq!(
        std::fs::read(result_dir(&reply.json()).join("words.txt")).expect("saved"),
        b"x y z"
    );
}

#[test]
fn hostile_upload_names_are_400_and_write_nothing_anywhere() {
    let server = Server::start();
    let results = server.results_dir();
    let data_dir = server.data_dir();
    let sandbox = server.sandbox().root().to_path_buf();
    let long_name = "n".repeat(5000);
    let hostile: Vec<Vec<u8>> = vec![
        b"../x".to_vec(),
        b"/etc/x".to_vec(),
        b"a/../../b".to_vec(),
        b"..".to_vec(),
        b"a\0b".to_vec(),
        long_name.into_bytes(),
    ];
    let etc_x_existed = Path::new("/etc/x").exists();
    let results_before = tree(&results);
    let data_before = names_in(&data_dir);
    let sandbox_before = names_in(&sandbox);
    for name in &hostile {
        for data_first in [true, false] {
            let data = MultipartPart::field(b"data", WORDCOUNT.as_bytes());
            let file = MultipartPart::file(name, "payload.bin", b"payload");
            let parts = if data_first {
                [data, file]
            } else {
                [file, data]
            };
            let reply = server.post_multipart("/task/", &parts);
            let shown = String::from_utf8_lossy(name);
            let message = reply.error(400);
            assert!(!message.is_empty(), "{shown}");
            assert_eq!(tree(&results), results_before, "name {shown:?} left files");
            assert_eq!(names_in(&data_dir), data_before, "name {shown:?}");
            assert_eq!(names_in(&sandbox), sandbox_before, "name {shown:?}");
        }
    }
    assert_eq!(Path::new("/etc/x").exists(), etc_x_existed);
    assert_eq!(names_in(&results.join(".incoming")), Vec::<String>::new());
    assert_eq!(server.get("/task/?count=true").text(), "0");
}

#[test]
fn names_that_make_one_path_a_file_and_a_folder_are_400_and_write_nothing() {
    let server = Server::start();
    for (first, second) in [("x", "x/y"), ("x/y", "x"), ("in/a/b.csv", "in/a")] {
        let reply = server.post_multipart(
            "/task/",
            &[
                MultipartPart::field(b"data", WORDCOUNT.as_bytes()),
                MultipartPart::file(b"words.txt", "words.txt", b"one"),
                MultipartPart::file(first.as_bytes(), "first.bin", b"first"),
                MultipartPart::file(second.as_bytes(), "second.bin", b"second"),
            ],
        );
        let message = reply.error(400);
        assert!(
            message.contains("clash"),
            "{first} then {second}: {message}"
        );
        assert_eq!(
            names_in(&server.results_dir().join(".incoming")),
            Vec::<String>::new()
        );
    }
    assert_eq!(server.get("/task/?count=true").text(), "0");
}

#[test]
fn a_refused_name_is_named_in_the_error() {
    let server = Server::start();
    let reply = server.post_multipart(
        "/task/",
        &[
            MultipartPart::field(b"data", WORDCOUNT.as_bytes()),
            MultipartPart::file(b"../escape.txt", "escape.txt", b"payload"),
        ],
    );
    let message = reply.error(400);
    assert!(message.contains("escape.txt"), "{message}");
}

#[test]
fn multipart_without_a_data_part_is_400() {
    let server = Server::start();
    let reply = server.post_multipart(
        "/task/",
        &[MultipartPart::file(b"words.txt", "words.txt", b"one two")],
    );
    let message = reply.error(400);
    assert!(message.contains("data"), "{message}");
    assert_eq!(
        names_in(&server.results_dir()),
        vec![".incoming".to_string()]
    );
    assert_eq!(
        names_in(&server.results_dir().join(".incoming")),
        Vec::<String>::new()
    );
}

#[test]
fn unknown_type_is_400_naming_the_known_types() {
    let server = Server::start();
    let message = server
        .post_json("/task/", r#"{"type": "no_such_task"}"#)
        .error(400);
    assert!(message.contains("no_such_task"), "{message}");
    for known in ["echo_task", "wordcount_task", "sleep_task"] {
        assert!(message.contains(known), "{message}");
    }
    let message = server
        .post_multipart(
            "/task/",
            &[
                MultipartPart::field(b"data", br#"{"type": "no_such_task"}"#),
                MultipartPart::file(b"words.txt", "words.txt", b"one"),
            ],
        )
        .error(400);
    assert!(message.contains("echo_task"), "{message}");
    assert_eq!(
        names_in(&server.results_dir().join(".incoming")),
        Vec::<String>::new()
    );
    assert_eq!(
        names_in(&server.results_dir()),
        vec![".incoming".to_string()]
    );
}

#[test]
fn missing_required_variable_is_400_naming_it() {
    let server = Server::start();
    let message = server
        .post_json("/task/", r#"{"type": "wordcount_task"}"#)
        .error(400);
    assert!(message.contains("INPUT_FILE"), "{message}");
    let message = server
        .post_multipart(
            "/task/",
            &[
                MultipartPart::field(b"data", br#"{"type": "wordcount_task", "environment": {}}"#),
                MultipartPart::file(b"words.txt", "words.txt", b"one"),
            ],
        )
        .error(400);
    assert!(message.contains("INPUT_FILE"), "{message}");
    assert_eq!(
        names_in(&server.results_dir()),
        vec![".incoming".to_string()]
    );
    assert_eq!(
        names_in(&server.results_dir().join(".incoming")),
        Vec::<String>::new()
    );
    assert_eq!(server.get("/task/?count=true").text(), "0");
}
