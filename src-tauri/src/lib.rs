//! Blanket's desktop shell: the coordinator and its server run in this process, the window
//! shows the server's pages at its loopback URL, and hub notices reach the window as Tauri
//! events, the tray as counts and the desktop as notifications. Wiring only: task logic is in
//! `blanket_core`, HTTP in `blanket_server`.
//!
//! Layout, in reading order:
//! - `autostart`: start at login, read and changed from the Settings page;
//! - `backend`: start the embedded coordinator, or attach to the one owning the port;
//! - `remote`: an attached coordinator's REST calls, and its event stream relayed into a hub;
//! - `shell`: the one managed value the other modules share;
//! - `window`: the main window, its navigation guard, close-to-tray;
//! - `bridge`: hub -> Tauri events for the pages' live updates;
//! - `notify`: desktop notifications and their actions;
//! - `tray`: the tray icon, its live counts and its menu;
//! - `cmd` and `error`: the commands the pages may invoke and their error JSON;
//! - `lifecycle`: Quit, signals and the graceful shutdown;
//! - `logging`: the binary's tracing subscriber.

mod autostart;
mod backend;
mod bridge;
pub mod cmd;
pub mod error;
mod lifecycle;
mod notify;
mod remote;
mod shell;
pub mod tray;
mod window;

use std::ffi::OsString;
use std::process::ExitCode;

use anyhow::Context;
use blanket_core::config::{Config, Settings};
use blanket_server::WorkerCommand;
use clap::Parser;
use tauri::{Manager, Runtime};

pub use shell::Shell;

/// The capability file granted to the main window, applied at start to the exact origin of
/// the server the window shows (its port is only known then).
const MAIN_CAPABILITY: &str = include_str!("../capabilities/main.json");

/// When the window shows and the local pool starts if the page has not finished loading by
/// then: a page that never loads must leave neither an invisible app nor a queue without
/// workers.
const REVEAL_FALLBACK: std::time::Duration = std::time::Duration::from_secs(3);

/// What the shell starts besides the window; tests turn the platform parts off.
pub struct ShellOptions {
    /// The configuration, resolved as `blanket serve` resolves it.
    pub config: Config,
    /// How local workers are launched; `None` launches none.
    pub workers: Option<WorkerCommand>,
    /// Whether to make the tray icon and handle SIGTERM and Ctrl-C (not under the mock
    /// runtime, which has neither a tray nor a process of its own).
    pub platform: bool,
    /// Whether to show desktop notifications.
    pub notifications: bool,
}

/// `blanket-desktop worker ...`: the same flags as `blanket worker`.
#[derive(Parser, Debug)]
#[command(name = "blanket-desktop worker", version)]
struct WorkerCli {
    #[command(flatten)]
    worker: blanket_worker::cli::WorkerArgs,
}

/// The binary's entry: `blanket-desktop worker ...` runs a local worker (the desktop app
/// launches itself that way), anything else opens the app.
pub fn run() -> ExitCode {
    let mut arguments: Vec<OsString> = std::env::args_os().collect();
    let outcome = if arguments
        .get(1)
        .is_some_and(|argument| argument == "worker")
    {
        arguments.remove(1);
        let cli = WorkerCli::parse_from(arguments);
        blanket_worker::cli::run(cli.worker).map(|()| ExitCode::SUCCESS)
    } else {
        run_desktop()
    };
    match outcome {
        Ok(code) => code,
        Err(error) => {
            // One line for the user, not a backtrace.
            eprintln!("blanket-desktop: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Registers the shell's commands, window events and start-up on `builder`; `run` adds the
/// single-instance plugin first, tests pass `tauri::test::mock_builder()`.
pub fn run_app<R: Runtime>(builder: tauri::Builder<R>, options: ShellOptions) -> tauri::Builder<R> {
    builder
        .plugin(autostart::plugin())
        .invoke_handler(tauri::generate_handler![
            cmd::open_task_folder,
            cmd::retry_task,
            autostart::autostart_enabled,
            autostart::set_autostart
        ])
        .on_window_event(window::on_event)
        .setup(move |app| {
            if let Err(error) = setup(app.handle(), options) {
                // Said here, once, as `run` says its errors: one line, then a clean exit
                // rather than Tauri's panic on a failed setup.
                eprintln!("blanket-desktop: {error:#}");
                app.handle().exit(1);
            }
            Ok(())
        })
}

fn run_desktop() -> anyhow::Result<ExitCode> {
    let config = Config::load(None, |name| std::env::var(name).ok(), Settings::default())
        .context("reading the configuration")?;
    config.validate().context("checking the configuration")?;
    blanket_worker::logging::init(&config.log_level, None)?;
    let runtime = blanket_server::async_runtime().context("starting the async runtime")?;
    tauri::async_runtime::set(runtime.handle().clone());
    let options = ShellOptions {
        config,
        workers: Some(backend::desktop_workers()?),
        platform: true,
        notifications: true,
    };
    // Registered first, so a second launch hands over to this one before starting anything.
    let builder = tauri::Builder::default().plugin(tauri_plugin_single_instance::init(
        |app, _arguments, _cwd| window::show(app, None),
    ));
    let app = run_app(builder, options)
        .build(tauri::generate_context!("../tauri.conf.json"))
        .context("starting the desktop app")?;
    let code = app.run_return(lifecycle::on_run_event);
    drop(runtime);
    // A failed start has said why already; the code only tells the shell it failed.
    Ok(ExitCode::from(u8::try_from(code).unwrap_or(1)))
}

fn setup<R: Runtime>(app: &tauri::AppHandle<R>, options: ShellOptions) -> anyhow::Result<()> {
    let ShellOptions {
        config,
        workers,
        platform,
        notifications,
    } = options;
    let (data_dir, notify_config) = (config.data_dir.clone(), config.notify.clone());
    let token = config.token.clone();
    let backend = tauri::async_runtime::block_on(backend::start(config, workers))?;
    let shell = match backend {
        backend::Backend::Embedded(runtime) => Shell::embedded(runtime),
        backend::Backend::Attached(url) => {
            if notifications {
                notify::inform(
                    "Blanket is already running",
                    &format!("Another Blanket serves {url}: this window shows it."),
                );
            }
            Shell::attached(url, data_dir, token)
        }
    };
    app.add_capability(capability_for(&shell.base_url)?)
        .context("granting the window its capability")?;
    // Attached, the other coordinator's settings replace these as soon as its stream connects.
    let notify_settings = shell
        .embedded_coordinator()
        .map_or(notify_config, blanket_core::Coordinator::notify_config);
    let stop = shell.stop.clone();
    // Managed before the window exists: its events and page loads read it.
    app.manage(shell);
    window::create(app, &app.state::<Shell>()).context("opening the window")?;
    if platform {
        if let Err(error) = tray::create(app) {
            tracing::warn!(error = %error, "no tray icon: quit Blanket with Ctrl-C or SIGTERM");
        }
        tauri::async_runtime::spawn(lifecycle::quit_on_signals(app.clone()));
    }
    let reveal_fallback = app.clone();
    tauri::async_runtime::spawn(async move {
        tokio::time::sleep(REVEAL_FALLBACK).await;
        window::reveal(&reveal_fallback);
    });
    // The followers subscribe before the relay can publish, so nothing is missed.
    let shell = app.state::<Shell>();
    let hub = shell.hub.clone();
    tauri::async_runtime::spawn(bridge::forward(app.clone(), &hub, stop.clone()));
    tauri::async_runtime::spawn(tray::follow(app.clone(), stop.clone()));
    if notifications {
        tauri::async_runtime::spawn(notify::watch(app.clone(), notify_settings, stop.clone()));
    }
    if let Some(remote) = shell.remote().cloned() {
        tauri::async_runtime::spawn(remote.relay(hub, stop));
    }
    Ok(())
}

/// `capabilities/main.json` for the remote origin `base_url` (and no local pages).
fn capability_for(base_url: &str) -> anyhow::Result<String> {
    let mut capability: serde_json::Value =
        serde_json::from_str(MAIN_CAPABILITY).context("reading capabilities/main.json")?;
    capability["identifier"] = "main-loopback".into();
    capability["local"] = false.into();
    capability["remote"] = serde_json::json!({ "urls": [format!("{base_url}/*")] });
    Ok(capability.to_string())
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::time::Duration;

    use blanket_core::TaskState;
    use blanket_core::hub::HubEvent;
    use blanket_core::wire::{self, NewTask};
    use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
    use tauri::webview::InvokeRequest;

    use super::*;

    fn app(data_dir: &std::path::Path) -> tauri::App<MockRuntime> {
        app_on_port(data_dir, 0)
    }

    /// An app on `port`: embedded when it is free (0 picks a free one), attached when another
    /// Blanket listens there.
    fn app_on_port(data_dir: &std::path::Path, port: u16) -> tauri::App<MockRuntime> {
        let config = Settings {
            port: Some(port),
            data_dir: Some(data_dir.to_path_buf()),
            local_workers: Some(0),
            ..Settings::default()
        }
        .resolve()
        .unwrap();
        let options = ShellOptions {
            config,
            workers: None,
            platform: false,
            notifications: false,
        };
        let mut app = run_app(mock_builder(), options)
            .build(tauri::generate_context!("../tauri.conf.json"))
            .unwrap();
        run_setup(&mut app);
        app
    }

    #[expect(
        deprecated,
        reason = "one iteration runs the setup hook on the mock runtime; nothing loops on it"
    )]
    fn run_setup(app: &mut tauri::App<MockRuntime>) {
        app.run_iteration(|_, _| {});
    }

    fn invoke(
        app: &tauri::App<MockRuntime>,
        command: &str,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, serde_json::Value> {
        let window = app.get_webview_window(window::MAIN).unwrap();
        let request = InvokeRequest {
            cmd: command.into(),
            callback: tauri::ipc::CallbackFn(0),
            error: tauri::ipc::CallbackFn(1),
            url: window.url().unwrap(),
            body: tauri::ipc::InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        };
        get_ipc_response(&window, request).map(|body| body.deserialize().unwrap())
    }

    /// A plain HTTP/1.0 GET, so the test needs no HTTP client: the status line and body.
    fn http_get(base_url: &str, path: &str) -> std::io::Result<String> {
        let address = base_url.trim_start_matches("http://");
        let mut stream = std::net::TcpStream::connect(address)?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(stream, "GET {path} HTTP/1.0\r\nHost: {address}\r\n\r\n")?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer)?;
        Ok(answer)
    }

    fn submit(app: &tauri::App<MockRuntime>, task_type: &str) -> blanket_core::wire::Task {
        let coordinator = app.state::<Shell>().coordinator().unwrap().clone();
        let request = NewTask {
            task_type: task_type.into(),
            ..NewTask::default()
        };
        tauri::async_runtime::block_on(coordinator.submit(request, None)).unwrap()
    }

    #[test]
    fn the_window_shows_the_embedded_servers_tasks_page() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let shell = app.state::<Shell>();
        let window = app.get_webview_window(window::MAIN).unwrap();
        assert_eq!(
            window.url().unwrap().as_str(),
            format!("{}/ui/", shell.base_url)
        );
        let version = http_get(&shell.base_url, "/version").unwrap();
        assert!(version.starts_with("HTTP/1.0 200"), "{version}");
        assert!(version.contains(r#""name":"blanket""#), "{version}");
    }

    #[test]
    fn the_window_is_shown_by_the_first_reveal_only() {
        // The mock runtime reports every window visible, so the journeys check the real
        // window; this checks that a reveal uses up the one showing.
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        window::reveal(app.handle());
        assert!(!app.state::<Shell>().first_reveal());
    }

    #[test]
    fn retry_task_resubmits_a_finished_task_and_refuses_a_waiting_one() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let original = submit(&app, "echo_task");
        let retry = || {
            invoke(
                &app,
                "retry_task",
                serde_json::json!({ "taskId": original.id.to_string() }),
            )
        };
        assert_eq!(retry().unwrap_err()["code"], "conflict");
        let coordinator = app.state::<Shell>().coordinator().unwrap().clone();
        tauri::async_runtime::block_on(coordinator.cancel_task(original.id)).unwrap();
        let retried = retry().unwrap();
        assert_eq!(retried["type"], "echo_task");
        assert_eq!(retried["state"], "WAITING");
        assert_eq!(retried["defaultEnv"]["NAME"], "world");
        assert_ne!(retried["id"], original.id.to_string());
    }

    #[test]
    fn a_command_on_an_unknown_task_answers_not_found_as_code_and_message() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let error = invoke(
            &app,
            "open_task_folder",
            serde_json::json!({ "taskId": "0123456789abcdef01234567" }),
        )
        .unwrap_err();
        assert_eq!(error["code"], "not_found");
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("0123456789abcdef01234567"),
            "{error}"
        );
    }

    #[test]
    fn the_tray_pauses_and_resumes_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let coordinator = app.state::<Shell>().coordinator().unwrap().clone();
        tauri::async_runtime::block_on(tray::toggle_queue(app.handle()));
        assert!(tauri::async_runtime::block_on(coordinator.queue_paused()).unwrap());
        tauri::async_runtime::block_on(tray::toggle_queue(app.handle()));
        assert!(!tauri::async_runtime::block_on(coordinator.queue_paused()).unwrap());
    }

    #[test]
    fn the_tray_counts_waiting_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        submit(&app, "echo_task");
        submit(&app, "echo_task");
        let (counts, paused) = tauri::async_runtime::block_on(tray::counts(app.handle()));
        assert!(!paused);
        assert_eq!(
            counts,
            tray::Counts {
                running: 0,
                waiting: 2,
                failed_since_look: 0
            }
        );
    }

    /// Waits for `probe` to hold, on a loaded machine too.
    fn eventually(what: &str, mut probe: impl FnMut() -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while !probe() {
            assert!(
                std::time::Instant::now() < deadline,
                "{what} never happened"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    #[test]
    fn the_tray_menus_open_keeps_the_page_and_new_task_opens_its_page() {
        // The mock runtime reports every window visible: that Open shows a hidden window is
        // the journeys' (a second launch runs the same `window::show` on the real window).
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let window = app.get_webview_window(window::MAIN).unwrap();
        let shown = window.url().unwrap();
        tray::on_menu(app.handle(), tray::OPEN);
        assert_eq!(window.url().unwrap(), shown);
        tray::on_menu(app.handle(), tray::NEW_TASK);
        assert!(
            window.url().unwrap().as_str().ends_with("/ui/tasks/new"),
            "{}",
            window.url().unwrap()
        );
    }

    #[test]
    fn the_tray_menus_pause_item_pauses_and_resumes_the_queue() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let coordinator = app.state::<Shell>().coordinator().unwrap().clone();
        let paused = || tauri::async_runtime::block_on(coordinator.queue_paused()).unwrap();
        tray::on_menu(app.handle(), tray::PAUSE);
        eventually("the queue to pause", paused);
        tray::on_menu(app.handle(), tray::PAUSE);
        eventually("the queue to resume", || !paused());
    }

    #[test]
    fn the_tray_menus_quit_stops_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let base_url = app.state::<Shell>().base_url.clone();
        tray::on_menu(app.handle(), tray::QUIT);
        eventually("the server to stop", || {
            http_get(&base_url, "/version").is_err()
        });
        assert!(app.state::<Shell>().quitting());
    }

    #[test]
    fn the_tray_counts_failures_until_the_window_is_looked_at() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let shell = app.state::<Shell>();
        let failed = |state| wire::TaskFinished {
            id: blanket_core::TaskId::generate(),
            task_type: "render".into(),
            state,
            exit_code: Some(1),
            started_ts: 1,
            finished_ts: 2,
            result_dir: String::new(),
            reason: None,
            by_user: false,
        };
        let failures = || {
            tauri::async_runtime::block_on(tray::counts(app.handle()))
                .0
                .failed_since_look
        };
        shell
            .hub
            .publish(HubEvent::TaskFinished(failed(TaskState::Error)));
        shell
            .hub
            .publish(HubEvent::TaskFinished(failed(TaskState::Success)));
        shell
            .hub
            .publish(HubEvent::TaskFinished(failed(TaskState::TimedOut)));
        eventually("two failures counted", || failures() == 2);
        shell.set_window_focused(true);
        assert_eq!(failures(), 0);
    }

    #[test]
    fn attached_to_another_blanket_the_tray_and_retry_use_its_api_and_its_events_reach_the_hub() {
        let other_dir = tempfile::tempdir().unwrap();
        let other = tauri::async_runtime::block_on(blanket_server::Runtime::start_without_pool(
            Settings {
                port: Some(0),
                data_dir: Some(other_dir.path().to_path_buf()),
                local_workers: Some(0),
                ..Settings::default()
            }
            .resolve()
            .unwrap(),
            None,
        ))
        .unwrap();
        let port: u16 = other.url().rsplit(':').next().unwrap().parse().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let app = app_on_port(dir.path(), port);
        let shell = app.state::<Shell>();
        assert!(shell.embedded_coordinator().is_none());
        assert_eq!(shell.base_url, other.url());
        let mut events = shell.hub.events();
        let coordinator = other.coordinator().clone();
        let task = tauri::async_runtime::block_on(coordinator.submit(
            NewTask {
                task_type: "echo_task".into(),
                ..NewTask::default()
            },
            None,
        ))
        .unwrap();
        let (counts, _) = tauri::async_runtime::block_on(tray::counts(app.handle()));
        assert_eq!(counts.waiting, 1);
        tauri::async_runtime::block_on(tray::toggle_queue(app.handle()));
        assert!(tauri::async_runtime::block_on(coordinator.queue_paused()).unwrap());
        tauri::async_runtime::block_on(coordinator.cancel_task(task.id)).unwrap();
        // The other Blanket's settings, sent on connect, may reach the hub before this test
        // subscribes to it, so only the task's own event is awaited here; the notifier
        // subscribes before the relay starts (`notify::watch`), so it never misses them.
        let finished = tauri::async_runtime::block_on(async {
            tokio::time::timeout(Duration::from_secs(20), async {
                loop {
                    if let Some(HubEvent::TaskFinished(finished)) = events.next().await {
                        return finished;
                    }
                }
            })
            .await
        })
        .expect("the other Blanket's task-finished reaches the app's hub");
        assert_eq!(finished.id, task.id);
        assert!(finished.by_user);
        let retried = invoke(
            &app,
            "retry_task",
            serde_json::json!({ "taskId": task.id.to_string() }),
        )
        .unwrap();
        assert_eq!(retried["type"], "echo_task");
        let events = tauri::async_runtime::block_on(
            coordinator.task_events(retried["id"].as_str().unwrap().parse().unwrap()),
        )
        .unwrap();
        assert_eq!(
            events[0].reason.as_deref(),
            Some(format!("retry of {}", task.id).as_str())
        );
        tauri::async_runtime::block_on(lifecycle::shutdown(app.handle()));
        tauri::async_runtime::block_on(other.shutdown()).unwrap();
    }

    #[test]
    fn quitting_stops_the_server_and_closes_the_database() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(dir.path());
        let base_url = app.state::<Shell>().base_url.clone();
        tauri::async_runtime::block_on(lifecycle::shutdown(app.handle()));
        assert!(http_get(&base_url, "/version").is_err());
        assert!(app.state::<Shell>().take_runtime().is_none());
    }

    #[test]
    fn the_capability_names_exactly_the_servers_origin() {
        let capability: serde_json::Value =
            serde_json::from_str(&capability_for("http://127.0.0.1:41234").unwrap()).unwrap();
        assert_eq!(
            capability["remote"]["urls"],
            serde_json::json!(["http://127.0.0.1:41234/*"])
        );
        assert_eq!(capability["local"], false);
        assert_eq!(capability["windows"], serde_json::json!(["main"]));
        assert_eq!(
            capability["permissions"],
            serde_json::json!([
                "core:event:allow-listen",
                "core:event:allow-unlisten",
                "allow-open-task-folder",
                "allow-retry-task",
                "allow-autostart-enabled",
                "allow-set-autostart"
            ])
        );
    }
}
