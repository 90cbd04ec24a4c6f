//! Handler tests of the HTML pages: the whole app (`blanket_server::app`) on a store in a temp
//! dir, one `oneshot` request at a time, asserting the status, the old UI's hooks in the HTML
//! (API.md, "The old UI's hooks") and the task or worker a form post left behind.

mod support;

use std::path::Path;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use blanket_core::config::Settings;
use blanket_core::filter::TaskFilter;
use blanket_core::wire::{NewTask, WorkerUpdate};
use blanket_core::{Coordinator, TaskId, TaskState, WorkerId};
use support::{Answer, HOST};
use tower_http::normalize_path::NormalizePath;

const BOUNDARY: &str = "blanket-pages-boundary";
const WORKER: &str = "66a1b2c3d4e5f60718293a4c";

#[tokio::test]
async fn tasks_page_keeps_every_hook_of_the_old_ui() {
    let server = Server::start(Settings::default()).await;

    let page = server.get("/ui/").await;

    assert_eq!(page.status, StatusCode::OK);
    assert!(page.header(header::CONTENT_TYPE).starts_with("text/html"));
    let html = page.text();
    for hook in [
        "<h1>Tasks</h1>",
        r#"sse-connect="/ui/sse/tasks""#,
        r#"id="tasks-rows""#,
        r#"hx-trigger="sse:tasks-changed""#,
        r#"id="task-filter""#,
        r#"name="states""#,
        r#"name="types""#,
        r#"name="requiredTags""#,
        r#"name="createdAfter""#,
        r#"name="createdBefore""#,
        ">New</button>",
        ">Refresh List</button>",
        ">State</th>",
        ">Tags</th>",
        r#"href="/ui/" aria-current="page">Tasks</a>"#,
        r#"href="/ui/workers">Workers</a>"#,
        r#"href="/ui/task-types">Task Types</a>"#,
        r#"href="/ui/about">About</a>"#,
    ] {
        assert!(html.contains(hook), "the tasks page lacks {hook}");
    }
}

#[tokio::test]
async fn tasks_page_rows_show_short_ids_joined_tags_state_and_actions() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit("echo_task").await;

    let html = server.get("/ui/").await.text();

    let short = &id.to_string()[..8];
    assert!(
        html.contains(&format!(
            r#"href="/ui/tasks/{id}" title="{id}">{short}</a>"#
        )),
        "{html}"
    );
    assert!(html.contains("bash, unix"));
    assert!(html.contains(r#"class="badge state-waiting">WAITING</span>"#));
    assert!(html.contains(">Cancel</button>"));
    assert!(html.contains(">Delete</button>"));
    assert!(html.contains("1–1 of 1 task"));
}

#[tokio::test]
async fn a_rows_created_time_carries_its_age_by_the_servers_clock() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit("echo_task").await;
    let before = blanket_core::wire::now();

    let html = server.get("/ui/").await.text();
    let after = blanket_core::wire::now();

    let age = html
        .split_once("data-age=\"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(age, _)| age.parse::<i64>().unwrap())
        .unwrap_or_else(|| panic!("no data-age in {html}"));
    let created = id.created_seconds();
    assert!(
        (before - created..=after - created).contains(&age),
        "age {age} of a task created at {created}, page rendered in {before}..={after}"
    );
}

#[tokio::test]
async fn empty_tasks_page_tells_a_new_user_what_to_do() {
    let server = Server::start(Settings::default()).await;

    let html = server.get("/ui/").await.text();

    assert!(html.contains("No tasks yet"), "{html}");
    assert!(html.contains(r#"href="/ui/tasks/new?type=echo_task""#));
}

#[tokio::test]
async fn tasks_page_filters_by_state_and_type_from_the_url_and_keeps_them_in_the_form() {
    let server = Server::start(Settings::default()).await;
    let echo = server.submit("echo_task").await;
    let sleep = server.submit("sleep_task").await;
    server.coordinator.cancel_task(sleep).await.unwrap();

    let html = server
        .get("/ui/?states=STOPPED&types=sleep_task")
        .await
        .text();

    assert!(html.contains(&sleep.to_string()));
    assert!(!html.contains(&echo.to_string()));
    assert!(html.contains(r#"value="STOPPED" checked"#));
    assert!(html.contains(r#"value="sleep_task" checked"#));
    assert!(
        html.contains(r#"hx-get="/ui/partials/tasks-rows?states=STOPPED&#38;types=sleep_task""#)
    );
    let none = server.get("/ui/?states=RUNNING").await.text();
    assert!(none.contains("No task matches these filters"));
}

#[tokio::test]
async fn tasks_page_with_a_bad_date_is_400_and_says_what_to_fix() {
    let server = Server::start(Settings::default()).await;

    let page = server.get("/ui/?createdAfter=next+tuesday").await;

    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    let html = page.text();
    assert!(html.contains("next tuesday"), "{html}");
    assert!(
        html.contains("2024-05-01"),
        "the message shows an accepted form"
    );
}

#[tokio::test]
async fn tasks_page_pages_with_limit_and_offset_newest_first() {
    let server = Server::start(Settings::default()).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(server.submit("echo_task").await);
    }

    let html = server.get("/ui/?limit=2&offset=2").await.text();

    assert!(html.contains(&ids[2].to_string()));
    assert!(!html.contains(&ids[4].to_string()) && !html.contains(&ids[0].to_string()));
    assert!(html.contains("3–4 of 5 tasks"));
    assert!(html.contains(r#"href="/ui/?limit=2" rel="prev""#), "{html}");
    assert!(html.contains(r#"href="/ui/?limit=2&#38;offset=4" rel="next""#));
}

#[tokio::test]
async fn rows_partial_carries_the_pager_and_queue_state_out_of_band() {
    let server = Server::start(Settings::default()).await;
    server.submit("echo_task").await;

    let html = server.get("/ui/partials/tasks-rows").await.text();

    assert!(
        html.trim_start().starts_with("<tr"),
        "rows come first: {html}"
    );
    assert!(html.contains(
        r#"id="tasks-pager" class="pager" aria-label="Task list pages" hx-swap-oob="true""#
    ));
    assert!(html.contains(r#"id="queue-state" class="queue-state" hx-swap-oob="true""#));
}

#[tokio::test]
async fn new_task_form_is_generated_from_the_type() {
    let server = Server::start(Settings::default()).await;

    let echo = server
        .get("/ui/partials/new-task?type=echo_task")
        .await
        .text();
    let wordcount = server
        .get("/ui/partials/task-type-env?type=wordcount_task")
        .await
        .text();

    assert!(echo.contains(r#"aria-label="new task type""#));
    assert!(echo.contains(r#"<option value="echo_task" selected>"#));
    assert!(
        echo.contains(r#"name="env.NAME" value="world""#),
        "defaults are prefilled"
    );
    assert!(echo.contains(r#"name="customEnvName""#));
    assert!(echo.contains(r#"name="customEnvValue""#));
    assert!(echo.contains(r#"name="priority""#));
    assert!(echo.contains(r#"aria-label="launch task""#));
    assert!(
        wordcount.contains(r#"name="file.INPUT_FILE""#),
        "a file variable gets a file input"
    );
    assert!(wordcount.contains(r#"name="env.INPUT_FILE""#));
    assert!(wordcount.contains("kind-required"));
    assert!(wordcount.contains("Name of the uploaded file to count words in"));
}

#[tokio::test]
async fn submitting_the_form_with_a_file_creates_the_task_and_saves_the_file() {
    let server = Server::start(Settings::default()).await;
    let body = multipart(&[
        Part::text("type", "wordcount_task"),
        Part::file("file.INPUT_FILE", "words.txt", "one two three"),
        Part::text("env.INPUT_FILE", ""),
        Part::text("customEnvName", "EXTRA"),
        Part::text("customEnvValue", "yes"),
        Part::text("priority", "7"),
    ]);

    let answer = server.post_multipart("/ui/tasks", body, false).await;

    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    let location = answer.header(header::LOCATION);
    let id: TaskId = location
        .strip_prefix("/ui/tasks/")
        .expect("it goes to the task's page")
        .parse()
        .unwrap();
    let task = server.coordinator.task(id).await.unwrap();
    assert_eq!(task.default_env["INPUT_FILE"], "words.txt");
    assert_eq!(task.default_env["EXTRA"], "yes");
    assert_eq!(task.priority, 7);
    let saved = std::fs::read_to_string(Path::new(&task.result_dir).join("words.txt")).unwrap();
    assert_eq!(saved, "one two three");
}

#[tokio::test]
async fn settings_page_shows_the_notify_settings_and_says_when_they_cannot_be_saved() {
    // Built from settings alone, this coordinator read no config file, so it has none to write.
    let server = Server::start(Settings::default()).await;

    let page = server.get("/ui/settings").await;

    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains("<h1>Settings</h1>"), "{html}");
    assert!(
        html.contains(r#"href="/ui/settings" aria-current="page""#),
        "{html}"
    );
    assert!(
        html.contains(r#"name="mode" value="all" checked"#),
        "{html}"
    );
    assert!(html.contains("Changes cannot be saved"), "{html}");
    assert!(html.contains("applies to the desktop app"), "{html}");
}

#[tokio::test]
async fn a_bad_threshold_is_said_in_the_settings_form() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .post_form("/ui/settings", "mode=all&minSeconds=ten", true)
        .await;

    assert_eq!(answer.status, StatusCode::BAD_REQUEST);
    let html = answer.text();
    assert!(html.contains(r#"id="notify-settings""#), "{html}");
    assert!(
        html.contains("&#34;ten&#34; is not a whole number"),
        "{html}"
    );
    assert_eq!(server.coordinator.notify_config().min_seconds, 10);
}

#[tokio::test]
async fn htmx_submit_answers_a_notice_in_place_of_the_form() {
    let server = Server::start(Settings::default()).await;
    let body = multipart(&[
        Part::text("type", "echo_task"),
        Part::text("env.NAME", "htmx"),
    ]);

    let answer = server.post_multipart("/ui/tasks", body, true).await;

    assert_eq!(answer.status, StatusCode::OK);
    let html = answer.text();
    assert!(html.contains("Task submitted"), "{html}");
    let tasks = server
        .coordinator
        .tasks(TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].default_env["NAME"], "htmx");
}

#[tokio::test]
async fn a_missing_required_variable_shows_the_form_again_with_what_was_typed() {
    let server = Server::start(Settings::default()).await;
    let body = multipart(&[
        Part::text("type", "wordcount_task"),
        Part::text("env.INPUT_FILE", ""),
        Part::text("customEnvName", "KEEP_ME"),
        Part::text("customEnvValue", "typed value"),
        Part::text("priority", "3"),
    ]);

    let answer = server.post_multipart("/ui/tasks", body, true).await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text();
    assert!(
        html.contains("Fill in the required variable: INPUT_FILE."),
        "{html}"
    );
    assert!(html.contains(r#"value="KEEP_ME""#));
    assert!(html.contains(r#"value="typed value""#));
    assert!(html.contains(r#"name="priority" value="3""#));
    assert!(html.contains(r#"aria-invalid="true""#));
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn a_file_name_leaving_the_task_folder_is_refused_inline() {
    let server = Server::start(Settings::default()).await;
    let body = multipart(&[
        Part::text("type", "echo_task"),
        Part::file("files", "../escape.txt", "nope"),
    ]);

    let answer = server.post_multipart("/ui/tasks", body, false).await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text();
    assert!(html.contains("escape.txt"), "{html}");
    assert!(html.contains("Choose the files again"));
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn file_names_that_clash_as_file_and_folder_are_refused_inline() {
    let server = Server::start(Settings::default()).await;
    let body = multipart(&[
        Part::text("type", "echo_task"),
        Part::file("files", "x", "a file"),
        Part::file("files", "x/y", "a file inside it"),
    ]);

    let answer = server.post_multipart("/ui/tasks", body, false).await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text();
    assert!(html.contains("clash"), "{html}");
    assert_eq!(server.task_count().await, 0);
}

#[tokio::test]
async fn url_encoded_submit_works_without_files() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .post_form("/ui/tasks", "type=echo_task&env.NAME=form", false)
        .await;

    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text());
    assert_eq!(server.task_count().await, 1);
}

#[tokio::test]
async fn cancel_from_the_list_stops_the_task_and_returns_to_the_same_list() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit("sleep_task").await;

    let answer = server
        .post_form(
            &format!("/ui/tasks/{id}/cancel"),
            "next=%2Fui%2F%3Fstates%3DWAITING",
            false,
        )
        .await;

    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.header(header::LOCATION), "/ui/?states=WAITING");
    let task = server.coordinator.task(id).await.unwrap();
    assert_eq!(task.state, TaskState::Stopped);
}

#[tokio::test]
async fn a_next_field_cannot_send_the_browser_to_another_site() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit("sleep_task").await;

    let answer = server
        .post_form(
            &format!("/ui/tasks/{id}/delete"),
            "next=%2F%2Fevil.example%2F",
            false,
        )
        .await;

    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(answer.header(header::LOCATION), "/ui/");
}

#[tokio::test]
async fn cancelling_a_finished_task_is_409_as_a_page_and_as_a_notice_for_htmx() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit("sleep_task").await;
    server.coordinator.cancel_task(id).await.unwrap();

    let page = server
        .post_form(&format!("/ui/tasks/{id}/cancel"), "", false)
        .await;
    let notice = server
        .post_form(&format!("/ui/tasks/{id}/cancel"), "", true)
        .await;

    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.text().contains("Back to Tasks"));
    assert_eq!(notice.status, StatusCode::CONFLICT);
    assert_eq!(notice.header("hx-retarget"), "#flash");
    assert!(notice.text().contains("flash-error"));
    assert!(notice.text().contains("STOPPED"), "{}", notice.text());
}

#[tokio::test]
async fn delete_removes_the_task_and_retry_submits_a_copy() {
    let server = Server::start(Settings::default()).await;
    let original = server.submit_with("echo_task", &[("NAME", "again")]).await;
    server.coordinator.cancel_task(original).await.unwrap();

    let retried = server
        .post_form(&format!("/ui/tasks/{original}/retry"), "", false)
        .await;
    let deleted = server
        .post_form(&format!("/ui/tasks/{original}/delete"), "", true)
        .await;

    assert_eq!(retried.status, StatusCode::SEE_OTHER);
    let copy: TaskId = retried.header(header::LOCATION)["/ui/tasks/".len()..]
        .parse()
        .unwrap();
    let copy = server.coordinator.task(copy).await.unwrap();
    assert_eq!(copy.task_type, "echo_task");
    assert_eq!(copy.default_env["NAME"], "again");
    assert_eq!(copy.state, TaskState::Waiting);
    assert_eq!(deleted.status, StatusCode::OK);
    assert!(server.coordinator.task(original).await.is_err());
}

#[tokio::test]
async fn retrying_a_waiting_task_is_409_as_a_notice_for_htmx_and_submits_nothing() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit("sleep_task").await;

    let notice = server
        .post_form(&format!("/ui/tasks/{id}/retry"), "", true)
        .await;

    assert_eq!(notice.status, StatusCode::CONFLICT);
    assert_eq!(notice.header("hx-retarget"), "#flash");
    assert!(notice.text().contains("flash-error"));
    assert!(notice.text().contains("WAITING"), "{}", notice.text());
    let count = server
        .coordinator
        .count_tasks(blanket_core::filter::TaskFilter::default())
        .await
        .unwrap();
    assert_eq!(count, 1);
}

#[tokio::test]
async fn task_detail_shows_every_hook_the_timeline_and_the_log_tail() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit("echo_task").await;
    let task = server.coordinator.task(id).await.unwrap();
    // The directory appears when the task starts; write its log as if it had.
    std::fs::create_dir_all(&task.result_dir).unwrap();
    let lines: String = (1..=3000)
        .map(|index| format!("output line {index}\n"))
        .collect();
    std::fs::write(
        Path::new(&task.result_dir).join("blanket.stdout.log"),
        &lines,
    )
    .unwrap();

    let page = server.get(format!("/ui/tasks/{id}")).await;

    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    for hook in [
        "<h1>Task Detail</h1>",
        "Back to Tasks",
        r#"sse-connect="/ui/sse/tasks""#,
        r#"hx-trigger="sse:tasks-changed""#,
        &format!(r#"href="/results/{id}/blanket.stdout.log""#),
        &format!(r#"href="/results/{id}/blanket.stderr.log""#),
        &format!(r#"data-follow="/task/{id}/log""#),
        r#"data-lines="3000""#,
        r#"data-live="true""#,
        "output line 3000",
        "blanket.stdout.log",
        "Timeline",
        ">WAITING</span>",
        "NAME",
    ] {
        assert!(html.contains(hook), "the task page lacks {hook}");
    }
    assert!(
        !html.contains("output line 1000\n"),
        "only the tail is on the first screen"
    );
    assert!(html.contains("output line 2001\n"));
}

#[tokio::test]
async fn task_detail_of_an_unknown_or_malformed_id_is_a_page_saying_so() {
    let server = Server::start(Settings::default()).await;

    let unknown = server.get("/ui/tasks/66a1b2c3d4e5f60718293a4b").await;
    let malformed = server.get("/ui/tasks/nope").await;

    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert!(
        unknown
            .header(header::CONTENT_TYPE)
            .starts_with("text/html")
    );
    assert!(unknown.text().contains("Back to Tasks"));
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn summary_partial_of_a_deleted_task_says_it_is_gone() {
    let server = Server::start(Settings::default()).await;
    let id = server.submit("echo_task").await;
    server.coordinator.delete_task(id).await.unwrap();

    let partial = server.get(format!("/ui/partials/task-summary/{id}")).await;

    assert_eq!(partial.status, StatusCode::OK);
    assert!(partial.text().contains("This task was deleted"));
}

#[tokio::test]
async fn workers_page_keeps_every_hook_of_the_old_ui() {
    let server = Server::start(Settings::default()).await;
    server.register_worker(false, "").await;

    let html = server.get("/ui/workers").await.text();

    for hook in [
        "<h1>Workers</h1>",
        r#"sse-connect="/ui/sse/workers""#,
        r#"id="workers-rows""#,
        r#"hx-get="/ui/partials/workers-rows""#,
        r#"hx-trigger="sse:workers-changed""#,
        ">New</button>",
        ">Refresh List</button>",
        ">State</th>",
        ">Tags</th>",
        &format!(r#"href="/ui/workers/{WORKER}""#),
        ">4242</a>",
        "bash, unix",
        ">running</span>",
        ">Stop</button>",
        ">Force stop</button>",
    ] {
        assert!(html.contains(hook), "the workers page lacks {hook}");
    }
}

#[tokio::test]
async fn a_stopped_workers_page_shows_its_log_in_the_old_pre() {
    let server = Server::start(Settings::default()).await;
    let logfile = server.data.path().join("worker.log");
    std::fs::write(&logfile, "worker started\nworker stopped\n").unwrap();
    server
        .register_worker(true, &logfile.display().to_string())
        .await;

    let html = server.get(format!("/ui/workers/{WORKER}")).await.text();

    for hook in [
        "<h1>Worker Detail</h1>",
        "Live Log",
        "Back to Workers",
        r#"aria-label="worker log output""#,
        "worker started\nworker stopped\n",
        ">stopped</span>",
        ">Restart</button>",
        ">Delete</button>",
    ] {
        assert!(html.contains(hook), "the worker page lacks {hook}");
    }
}

#[tokio::test]
async fn force_stop_post_asks_the_worker_to_stop_now() {
    let server = Server::start(Settings::default()).await;
    server.register_worker(false, "").await;
    let id: WorkerId = WORKER.parse().unwrap();

    let stopped = server
        .post_form(&format!("/ui/workers/{WORKER}/stop"), "force=true", true)
        .await;

    assert_eq!(stopped.status, StatusCode::OK);
    assert!(stopped.text().contains("is stopping now"));
    let worker = server.coordinator.worker(id).await.unwrap();
    assert_eq!(worker.status, blanket_core::wire::WorkerStatus::Stopping);
}

#[tokio::test]
async fn launching_a_worker_where_none_can_be_launched_explains_it_inline() {
    let server = Server::start(Settings::default()).await;

    let answer = server
        .post_form("/ui/workers", "tags=bash%2C+unix&checkInterval=2", true)
        .await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text();
    assert!(html.contains("cannot launch workers"), "{html}");
    assert!(
        html.contains(r#"value="bash, unix""#),
        "what was typed stays"
    );
}

#[tokio::test]
async fn a_launch_body_that_is_not_the_form_launches_nothing() {
    let server = Server::start(Settings::default()).await;
    let mut headers = server.headers();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("hx-request", HeaderValue::from_static("true"));

    let answer = server
        .send(
            Method::POST,
            "/ui/workers",
            headers,
            Body::from(r#"{"tags": "bash"}"#),
        )
        .await;

    assert_eq!(answer.status, StatusCode::UNPROCESSABLE_ENTITY);
    let html = answer.text();
    assert!(html.contains("could not be read"), "{html}");
    assert!(
        !html.contains("cannot launch workers"),
        "a launch was tried"
    );
}

#[tokio::test]
async fn task_types_page_lists_types_and_broken_files_with_their_line() {
    let types = tempfile::tempdir().unwrap();
    std::fs::write(
        types.path().join("good_task.toml"),
        "description = \"Good\"\ntags = [\"bash\"]\ncommand = \"echo good\"\n",
    )
    .unwrap();
    std::fs::write(
        types.path().join("broken_task.toml"),
        "description = \"Broken\"\ncommand = \"echo\"\ntimeout = \"soon\"\n",
    )
    .unwrap();
    let server = Server::start(Settings {
        types_dirs: Some(vec![types.path().to_path_buf()]),
        ..Settings::default()
    })
    .await;

    let list = server.get("/ui/task-types").await.text();
    let good = server.get("/ui/task-types/good_task").await.text();
    let broken = server.get("/ui/task-types/broken_task").await;

    assert!(list.contains("<h1>Task Types</h1>"));
    assert!(list.contains(r#"href="/ui/task-types/good_task""#));
    assert!(list.contains(r#"href="/ui/task-types/broken_task""#));
    assert!(list.contains("Line 3:"), "{list}");
    assert!(good.contains("echo good"));
    assert!(
        good.contains("description = &#34;Good&#34;"),
        "the TOML source is shown"
    );
    assert_eq!(broken.status, StatusCode::OK);
    assert!(broken.text().contains(r#"class="line marked""#));
}

#[tokio::test]
async fn about_page_shows_the_version_paths_and_config_but_never_the_token() {
    let server = Server::start(Settings {
        token: Some("very-secret-token".into()),
        ..Settings::default()
    })
    .await;

    let page = server.get("/ui/about").await;

    assert_eq!(page.status, StatusCode::OK);
    let html = page.text();
    assert!(html.contains(env!("CARGO_PKG_VERSION")));
    assert!(html.contains(r#"href="/openapi.json""#));
    assert!(html.contains(&server.data.path().display().to_string()));
    assert!(html.contains("lease_seconds"));
    assert!(!html.contains("very-secret-token"));
}

#[tokio::test]
async fn static_files_are_cached_for_a_year_only_at_their_current_version() {
    let server = Server::start(Settings::default()).await;
    let html = server.get("/ui/").await.text();
    let start = html.find("/ui/static/app.css?v=").unwrap();
    let url: String = html[start..]
        .chars()
        .take_while(|character| *character != '"')
        .collect();

    let current = server.get(&url).await;
    let stale = server.get("/ui/static/app.css?v=old").await;
    let missing = server.get("/ui/static/nothing.js").await;

    assert_eq!(current.status, StatusCode::OK);
    assert_eq!(
        current.header(header::CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert!(current.header(header::CONTENT_TYPE).starts_with("text/css"));
    assert_eq!(stale.header(header::CACHE_CONTROL), "no-cache");
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    for vendored in [
        "vendor/htmx/htmx.min.js",
        "vendor/htmx-ext-sse/sse.min.js",
        "live.js",
        "app.js",
    ] {
        assert!(
            html.contains(&format!("/ui/static/{vendored}?v=")),
            "{vendored} is not loaded"
        );
    }
}

#[tokio::test]
async fn same_origin_form_posts_pass_the_guard_and_foreign_ones_do_not() {
    let server = Server::start(Settings::default()).await;

    let own = server
        .send_with_origin("/ui/queue/pause", &format!("http://{HOST}"))
        .await;
    let foreign = server
        .send_with_origin("/ui/queue/resume", "https://evil.example")
        .await;

    assert_eq!(own.status, StatusCode::SEE_OTHER);
    assert!(server.coordinator.queue_paused().await.unwrap());
    assert_eq!(foreign.status, StatusCode::FORBIDDEN);
    assert!(
        server.coordinator.queue_paused().await.unwrap(),
        "still paused"
    );
    let html = server.get("/ui/").await.text();
    assert!(html.contains("Queue paused"));
    assert!(html.contains(">Resume</button>"));
}

/// A server on a temporary data folder, answering through `blanket_server::app`.
struct Server {
    data: tempfile::TempDir,
    coordinator: Coordinator,
    app: NormalizePath<axum::Router>,
    token: Option<String>,
}

impl Answer {
    fn header(&self, name: impl header::AsHeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("")
    }
}

/// One part of a multipart body.
struct Part {
    name: &'static str,
    file_name: Option<&'static str>,
    content: &'static str,
}

impl Part {
    fn text(name: &'static str, content: &'static str) -> Part {
        Part {
            name,
            file_name: None,
            content,
        }
    }

    fn file(name: &'static str, file_name: &'static str, content: &'static str) -> Part {
        Part {
            name,
            file_name: Some(file_name),
            content,
        }
    }
}

fn multipart(parts: &[Part]) -> String {
    let mut body = String::new();
    for part in parts {
        body.push_str(&format!("--{BOUNDARY}\r\n"));
        match part.file_name {
            Some(file_name) => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{}\"; filename=\"{file_name}\"\r\nContent-Type: text/plain\r\n\r\n",
                part.name
            )),
            None => body.push_str(&format!(
                "Content-Disposition: form-data; name=\"{}\"\r\n\r\n",
                part.name
            )),
        }
        body.push_str(part.content);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{BOUNDARY}--\r\n"));
    body
}

impl Server {
    async fn start(settings: Settings) -> Server {
        let token = settings.token.clone();
        let (data, coordinator, app) = support::open_app(settings).await;
        Server {
            data,
            coordinator,
            app,
            token,
        }
    }

    fn headers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::HOST, HeaderValue::from_static(HOST));
        if let Some(token) = &self.token {
            headers.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}"))
                    .expect("a token is a valid header value"),
            );
        }
        headers
    }

    async fn send(&self, method: Method, uri: &str, headers: HeaderMap, body: Body) -> Answer {
        let request = support::request(method, uri, headers, body);
        Answer::read(support::respond(&self.app, request).await).await
    }

    async fn get(&self, uri: impl AsRef<str>) -> Answer {
        self.send(Method::GET, uri.as_ref(), self.headers(), Body::empty())
            .await
    }

    async fn post_form(&self, uri: &str, body: &str, htmx: bool) -> Answer {
        let mut headers = self.headers();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        if htmx {
            headers.insert("hx-request", HeaderValue::from_static("true"));
        }
        self.send(Method::POST, uri, headers, Body::from(body.to_string()))
            .await
    }

    async fn post_multipart(&self, uri: &str, body: String, htmx: bool) -> Answer {
        let mut headers = self.headers();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_str(&format!("multipart/form-data; boundary={BOUNDARY}"))
                .expect("the boundary is a valid header value"),
        );
        if htmx {
            headers.insert("hx-request", HeaderValue::from_static("true"));
        }
        self.send(Method::POST, uri, headers, Body::from(body))
            .await
    }

    async fn send_with_origin(&self, uri: &str, origin: &str) -> Answer {
        let mut headers = self.headers();
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_str(origin).expect("an origin is a valid header value"),
        );
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        self.send(Method::POST, uri, headers, Body::empty()).await
    }

    async fn submit(&self, task_type: &str) -> TaskId {
        self.submit_with(task_type, &[]).await
    }

    async fn submit_with(&self, task_type: &str, environment: &[(&str, &str)]) -> TaskId {
        let new_task = NewTask {
            task_type: task_type.into(),
            environment: environment
                .iter()
                .map(|(name, value)| (name.to_string(), value.to_string()))
                .collect(),
            ..NewTask::default()
        };
        self.coordinator
            .submit(new_task, None)
            .await
            .expect("the test task submits")
            .id
    }

    async fn register_worker(&self, stopped: bool, logfile: &str) {
        let update = WorkerUpdate {
            tags: Some(vec!["bash".into(), "unix".into()]),
            pid: Some(4242),
            stopped: Some(stopped),
            check_interval: Some(2.0),
            logfile: Some(logfile.into()),
            ..WorkerUpdate::default()
        };
        self.coordinator
            .register_worker(WORKER.parse().expect("WORKER is a valid id"), update)
            .await
            .expect("the test worker registers");
    }

    async fn task_count(&self) -> u64 {
        self.coordinator
            .count_tasks(TaskFilter::default())
            .await
            .expect("the store counts tasks")
    }
}
