//! `GET /results/<task id>/<path>` serves a task's files and listings and nothing outside
//! that task's directory: not through `..`, encoded or not, and not through symlinks planted
//! in it (they are neither listed nor served).

use std::path::PathBuf;

use blanket_blackbox::{Server, raw_get};
use serde_json::{Value, json};

/// Submits a task and makes its directory, as its worker would when it starts (with
/// `--workers 0` nothing runs, and a task's directory appears only when it is needed).
fn submit(server: &Server) -> (String, PathBuf) {
    let task = server.submit(&json!({"type": "echo_task"}));
    let dir = PathBuf::from(task["resultDir"].as_str().expect("a resultDir"));
    std::fs::create_dir_all(&dir).expect("creating the task directory");
    (task["id"].as_str().expect("an id").to_string(), dir)
}

fn json_listing(server: &Server, path: &str) -> Vec<String> {
    let reply = server.send(
        server
            .http()
            .get(server.url(path))
            .header("accept", "application/json"),
    );
    reply.expect_status(200);
    reply
        .json()
        .as_array()
        .expect("a listing is a list")
        .iter()
        .map(|entry: &Value| entry["name"].as_str().expect("a name").to_string())
        .collect()
}

#[test]
fn results_serve_files_and_folder_listings_of_a_task() {
    let server = Server::start();
    let (id, dir) = submit(&server);
    std::fs::write(dir.join("blanket.stdout.log"), "hello world\n").expect("writing a log");
    std::fs::create_dir(dir.join("out")).expect("creating a folder");
    std::fs::write(dir.join("out/report.txt"), "done").expect("writing a file");

    let file = server.get(&format!("/results/{id}/blanket.stdout.log"));
    file.expect_status(200);
    assert_eq!(file.text(), "hello world\n");
    let nested = server.get(&format!("/results/{id}/out/report.txt"));
    nested.expect_status(200);
    assert_eq!(nested.text(), "done");

    assert_eq!(
        json_listing(&server, &format!("/results/{id}/")),
        ["blanket.stdout.log", "out"]
    );
    assert_eq!(
        json_listing(&server, &format!("/results/{id}")),
        ["blanket.stdout.log", "out"]
    );
    assert_eq!(
        json_listing(&server, &format!("/results/{id}/out")),
        ["report.txt"]
    );
    let page = server.get(&format!("/results/{id}/"));
    page.expect_status(200);
    assert!(
        page.text().contains("blanket.stdout.log"),
        "{}",
        page.text()
    );

    server
        .get(&format!("/results/{id}/no-such-file"))
        .error(404);
}

#[test]
fn symlinks_leading_out_of_a_task_are_neither_listed_nor_served() {
    let server = Server::start();
    let (id, dir) = submit(&server);
    let (_, sibling) = submit(&server);
    std::fs::write(sibling.join("secret.txt"), "sibling secret").expect("writing a file");
    std::fs::write(dir.join("fine.txt"), "fine").expect("writing a file");
    let links = [
        ("etc", PathBuf::from("/etc")),
        ("passwd", PathBuf::from("/etc/passwd")),
        ("sibling", sibling.clone()),
        ("sibling-secret", sibling.join("secret.txt")),
        ("data", server.data_dir()),
        ("relative-escape", PathBuf::from("../..")),
        // A link to a link that leads out.
        ("chain", PathBuf::from("etc")),
    ];
    for (name, target) in &links {
        std::os::unix::fs::symlink(target, dir.join(name)).expect("planting a symlink");
    }
    std::os::unix::fs::symlink("fine.txt", dir.join("inside-link")).expect("planting a symlink");

    assert_eq!(
        json_listing(&server, &format!("/results/{id}/")),
        ["fine.txt", "inside-link"]
    );
    let page = server.get(&format!("/results/{id}/")).text();
    for (name, _) in &links {
        assert!(
            !page.contains(&format!(">{name}<")),
            "{name} listed: {page}"
        );
        for path in [
            format!("/results/{id}/{name}"),
            format!("/results/{id}/{name}/"),
            format!("/results/{id}/{name}/passwd"),
            format!("/results/{id}/{name}/secret.txt"),
            format!("/results/{id}/{name}/blanket.db"),
        ] {
            let reply = server.get(&path);
            let message = reply.error(404);
            assert!(!message.contains("root:"), "{path}: {message}");
        }
    }
    let inside = server.get(&format!("/results/{id}/inside-link"));
    inside.expect_status(200);
    assert_eq!(inside.text(), "fine");

    // Deeper down, a link leading out is refused the same way.
    std::fs::create_dir(dir.join("sub")).expect("creating a folder");
    std::fs::write(dir.join("sub/kept.txt"), "kept").expect("writing a file");
    std::os::unix::fs::symlink("../../..", dir.join("sub/up")).expect("planting a symlink");
    assert_eq!(
        json_listing(&server, &format!("/results/{id}/sub")),
        ["kept.txt"]
    );
    for path in ["sub/up", "sub/up/", "sub/up/blanket.db"] {
        server.get(&format!("/results/{id}/{path}")).error(404);
    }
}

#[test]
fn dot_dot_paths_are_404() {
    let server = Server::start();
    let (id, dir) = submit(&server);
    let (other, other_dir) = submit(&server);
    std::fs::write(other_dir.join("secret.txt"), "other secret").expect("writing a file");
    std::fs::create_dir(dir.join("sub")).expect("creating a folder");
    std::fs::write(dir.join("sub/ok.txt"), "ok").expect("writing a file");
    // Raw requests, because HTTP clients resolve dot segments before sending.
    for path in [
        format!("/results/{id}/../{other}/secret.txt"),
        format!("/results/{id}/sub/../../{other}/secret.txt"),
        format!("/results/{id}/%2e%2e/{other}/secret.txt"),
        format!("/results/{id}/..%2f{other}%2fsecret.txt"),
        format!("/results/{id}/sub/..%2F..%2F..%2Fblanket.db"),
        format!("/results/{id}/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd"),
        format!("/results/{id}/sub/./ok.txt/.."),
        format!("/results/{id}/%2fetc%2fpasswd"),
        format!("/results/{id}//etc/passwd"),
        format!("/results/{id}/.."),
    ] {
        let reply = raw_get(server.port(), &path, &[]);
        assert_eq!(reply.status, 404, "{path}: {}", reply.text());
        let message = blanket_blackbox::error_message(&reply.body);
        assert!(!reply.text().contains("other secret"), "{path}: {message}");
    }
    let fine = raw_get(server.port(), &format!("/results/{id}/sub/ok.txt"), &[]);
    assert_eq!(fine.status, 200);
    assert_eq!(fine.text(), "ok");
}
