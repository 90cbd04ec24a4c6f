//! Hub -> Tauri events: re-emits the shell's hub notices to the webview under the same names as
//! the SSE streams (`tasks-changed`, `workers-changed`) plus the typed `task-finished`,
//! `task-progress` and `notify-settings-changed`, so the pages' live adapter needs no SSE in the
//! window. It decides nothing: every notice is forwarded as it comes, nudges stay coalesced.
//! The hub is the embedded coordinator's, or the one an attached coordinator's event stream is
//! relayed into (`remote`): the same code either way.

use std::future::Future;

use blanket_core::hub::{HubEvent, Topic};
use blanket_core::{Hub, wire};
use tauri::{AppHandle, Emitter, Runtime};
use tokio_util::sync::CancellationToken;

/// Forwards the hub's notices to every webview of `app` until `stop` is cancelled or the hub
/// closes. A nudge missed while emitting is not lost: the watch slot keeps the latest one.
/// Subscribes before it returns, so nothing published after the call is missed.
pub fn forward<R: Runtime>(
    app: AppHandle<R>,
    hub: &Hub,
    stop: CancellationToken,
) -> impl Future<Output = ()> + use<R> {
    let mut tasks = hub.subscribe(Topic::Tasks);
    let mut workers = hub.subscribe(Topic::Workers);
    let mut events = hub.events();
    async move {
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
                    Some(HubEvent::NotifySettingsChanged(settings)) => {
                        emit(&app, wire::NOTIFY_SETTINGS_CHANGED, settings);
                    }
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

    #[tokio::test]
    async fn nudges_and_typed_events_reach_the_webview_under_their_wire_names() {
        let app = tauri::test::mock_app();
        let hub = Hub::new();
        let stop = CancellationToken::new();
        let mut tasks = listen(&app, wire::TASKS_CHANGED);
        let mut workers = listen(&app, wire::WORKERS_CHANGED);
        let mut finished = listen(&app, wire::TASK_FINISHED);
        let mut progress = listen(&app, wire::TASK_PROGRESS);
        let bridge = tokio::spawn(forward(app.handle().clone(), &hub, stop.clone()));
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
        let bridge = tokio::spawn(forward(app.handle().clone(), &hub, stop.clone()));
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
        let bridge = tokio::spawn(forward(app.handle().clone(), &hub, stop.clone()));
        hub.publish(HubEvent::Resync);
        assert_eq!(next(&mut tasks).await, "null");
        assert_eq!(next(&mut workers).await, "null");
        stop.cancel();
        bridge.await.unwrap();
    }
}
