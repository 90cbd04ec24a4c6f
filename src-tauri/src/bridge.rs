//! Hub -> Tauri events: re-emits the embedded coordinator's change notices to the webview
//! under the same names as the SSE streams (`tasks-changed`, `workers-changed`) plus the typed
//! `task-finished` and `task-progress`, so the pages' live adapter needs no SSE in the window.
//! It decides nothing: every notice is forwarded as it comes, nudges stay coalesced. A window
//! attached to another process's coordinator gets that server's SSE nudges forwarded instead.

use std::time::Duration;

use blanket_core::hub::{HubEvent, Topic};
use blanket_core::{Hub, wire};
use tauri::{AppHandle, Emitter, Runtime};
use tokio_util::sync::CancellationToken;

/// Forwards the hub's notices to every webview of `app` until `stop` is cancelled or the hub
/// closes. A nudge missed while emitting is not lost: the watch slot keeps the latest one.
pub async fn forward<R: Runtime>(app: AppHandle<R>, hub: Hub, stop: CancellationToken) {
    let mut tasks = hub.subscribe(Topic::Tasks);
    let mut workers = hub.subscribe(Topic::Workers);
    let mut events = hub.events();
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            alive = tasks.changed() => {
                if !alive { return }
                emit(&app, wire::TASKS_CHANGED, ());
            }
            alive = workers.changed() => {
                if !alive { return }
                emit(&app, wire::WORKERS_CHANGED, ());
            }
            event = events.next() => match event {
                None => return,
                Some(HubEvent::TaskFinished(finished)) => emit(&app, wire::TASK_FINISHED, finished),
                Some(HubEvent::TaskProgress(progress)) => emit(&app, wire::TASK_PROGRESS, progress),
                Some(HubEvent::Resync) => {
                    // Typed events were missed: have the pages reload both lists.
                    emit(&app, wire::TASKS_CHANGED, ());
                    emit(&app, wire::WORKERS_CHANGED, ());
                }
                // The nudges above already cover these.
                Some(HubEvent::TaskChanged { .. } | HubEvent::WorkerChanged { .. }) => {}
            },
        }
    }
}

/// The longest wait between two attempts to reach another process's SSE stream.
const RECONNECT_LONGEST: Duration = Duration::from_secs(30);

/// Forwards the change nudges of the Blanket at `base_url` (its `/ui/sse/tasks` and
/// `/ui/sse/workers` streams) until `stop`, reconnecting when it restarts. Typed events are not
/// on SSE, so an attached window gets the list nudges only.
pub async fn forward_remote<R: Runtime>(
    app: AppHandle<R>,
    base_url: String,
    token: Option<String>,
    stop: CancellationToken,
) {
    let client = match reqwest::Client::builder().build() {
        Ok(client) => client,
        Err(error) => {
            tracing::warn!(error = %error, "cannot make an HTTP client: the window will not update by itself");
            return;
        }
    };
    let streams = ["tasks", "workers"].map(|list| {
        let request = client.get(format!("{base_url}/ui/sse/{list}"));
        let request = match &token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        follow_stream(app.clone(), request)
    });
    let [tasks, workers] = streams;
    tokio::select! {
        () = stop.cancelled() => {}
        () = tasks => {}
        () = workers => {}
    }
}

/// Reads one SSE stream, emitting each of its `tasks-changed` / `workers-changed` events.
async fn follow_stream<R: Runtime>(app: AppHandle<R>, request: reqwest::RequestBuilder) {
    let mut delay = Duration::from_secs(1);
    loop {
        if let Some(request) = request.try_clone()
            && let Ok(mut response) = request.send().await
            && response.status().is_success()
        {
            delay = Duration::from_secs(1);
            let mut pending = String::new();
            let mut event_name = String::new();
            while let Ok(Some(chunk)) = response.chunk().await {
                pending.push_str(&String::from_utf8_lossy(&chunk));
                while let Some(end) = pending.find('\n') {
                    let line: String = pending.drain(..=end).collect();
                    let line = line.trim_end_matches(['\r', '\n']);
                    if let Some(name) = line.strip_prefix("event:") {
                        event_name = name.trim().to_owned();
                    } else if line.is_empty() && !event_name.is_empty() {
                        let name = std::mem::take(&mut event_name);
                        if name == wire::TASKS_CHANGED || name == wire::WORKERS_CHANGED {
                            emit(&app, &name, ());
                        }
                    }
                }
            }
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(RECONNECT_LONGEST);
    }
}

fn emit<R: Runtime>(app: &AppHandle<R>, name: &str, payload: impl serde::Serialize + Clone) {
    if let Err(error) = app.emit(name, payload) {
        tracing::warn!(event = name, error = %error, "could not forward a hub event to the window");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use blanket_core::{TaskId, TaskState};
    use tauri::Listener;
    use tokio::sync::mpsc;

    use super::*;

    const WAIT: Duration = Duration::from_secs(5);

    fn listen(
        app: &tauri::App<tauri::test::MockRuntime>,
        name: &str,
    ) -> mpsc::UnboundedReceiver<String> {
        let (sender, receiver) = mpsc::unbounded_channel();
        app.listen_any(name, move |event| {
            let _ = sender.send(event.payload().to_owned());
        });
        receiver
    }

    async fn next(receiver: &mut mpsc::UnboundedReceiver<String>) -> String {
        tokio::time::timeout(WAIT, receiver.recv())
            .await
            .expect("the event arrives within the deadline")
            .expect("the listener stays registered")
    }

    /// Lets the spawned bridge run up to its first wait, so it has subscribed.
    async fn until_subscribed(hub: &Hub, subscribers: usize) {
        while hub.subscriber_count(Topic::Tasks) < subscribers {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn nudges_and_typed_events_reach_the_webview_under_their_wire_names() {
        let app = tauri::test::mock_app();
        let hub = Hub::new();
        let stop = CancellationToken::new();
        let mut tasks = listen(&app, wire::TASKS_CHANGED);
        let mut workers = listen(&app, wire::WORKERS_CHANGED);
        let mut finished = listen(&app, wire::TASK_FINISHED);
        let mut progress = listen(&app, wire::TASK_PROGRESS);
        let bridge = tokio::spawn(forward(app.handle().clone(), hub.clone(), stop.clone()));
        until_subscribed(&hub, 1).await;
        let id = TaskId::generate();
        hub.nudge(Topic::Tasks);
        hub.nudge(Topic::Workers);
        hub.publish(HubEvent::TaskProgress(wire::TaskProgress {
            id,
            progress: 42,
        }));
        hub.publish(HubEvent::TaskFinished(wire::TaskFinished {
            id,
            task_type: "render".into(),
            state: TaskState::Error,
            exit_code: Some(2),
            started_ts: 10,
            finished_ts: 20,
            result_dir: "/tmp/x".into(),
            reason: None,
            by_user: false,
        }));
        assert_eq!(next(&mut tasks).await, "null");
        assert_eq!(next(&mut workers).await, "null");
        assert_eq!(
            next(&mut progress).await,
            format!(r#"{{"id":"{id}","progress":42}}"#)
        );
        let payload: serde_json::Value = serde_json::from_str(&next(&mut finished).await).unwrap();
        assert_eq!(payload["state"], "ERROR");
        assert_eq!(payload["type"], "render");
        assert_eq!(payload["byUser"], false);
        stop.cancel();
        bridge.await.unwrap();
    }

    #[tokio::test]
    async fn a_burst_of_nudges_reaches_the_webview_as_one_event() {
        let app = tauri::test::mock_app();
        let hub = Hub::new();
        let stop = CancellationToken::new();
        let mut tasks = listen(&app, wire::TASKS_CHANGED);
        let bridge = tokio::spawn(forward(app.handle().clone(), hub.clone(), stop.clone()));
        until_subscribed(&hub, 1).await;
        // The test runtime has one thread: the bridge sees the 500 nudges only once it runs.
        for _ in 0..500 {
            hub.nudge(Topic::Tasks);
        }
        next(&mut tasks).await;
        let second = tokio::time::timeout(Duration::from_millis(50), tasks.recv()).await;
        assert!(second.is_err(), "500 nudges must become one event");
        stop.cancel();
        bridge.await.unwrap();
    }

    #[tokio::test]
    async fn a_resync_asks_the_pages_to_reload_both_lists() {
        let app = tauri::test::mock_app();
        let hub = Hub::new();
        let stop = CancellationToken::new();
        let mut tasks = listen(&app, wire::TASKS_CHANGED);
        let mut workers = listen(&app, wire::WORKERS_CHANGED);
        let bridge = tokio::spawn(forward(app.handle().clone(), hub.clone(), stop.clone()));
        until_subscribed(&hub, 1).await;
        hub.publish(HubEvent::Resync);
        assert_eq!(next(&mut tasks).await, "null");
        assert_eq!(next(&mut workers).await, "null");
        stop.cancel();
        bridge.await.unwrap();
    }

    #[tokio::test]
    async fn another_servers_sse_nudges_reach_the_webview() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let app = tauri::test::mock_app();
        let mut tasks = listen(&app, wire::TASKS_CHANGED);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            // Answers both streams; only the tasks one says anything.
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut request = [0u8; 1024];
                    let read = socket.read(&mut request).await.unwrap();
                    let head = String::from_utf8_lossy(&request[..read]).into_owned();
                    let body = if head.starts_with("GET /ui/sse/tasks") {
                        ": keep-alive\n\nevent: tasks-changed\ndata: tasks-changed\n\n"
                    } else {
                        ""
                    };
                    let answer =
                        format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n{body}");
                    socket.write_all(answer.as_bytes()).await.unwrap();
                    std::future::pending::<()>().await;
                });
            }
        });
        let stop = CancellationToken::new();
        let bridge = tokio::spawn(forward_remote(
            app.handle().clone(),
            base_url,
            None,
            stop.clone(),
        ));
        assert_eq!(next(&mut tasks).await, "null");
        stop.cancel();
        bridge.await.unwrap();
        server.abort();
    }
}
