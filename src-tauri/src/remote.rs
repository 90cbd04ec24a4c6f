//! The coordinator of another process, when the window is attached to it: its REST API for
//! the tray's counts, the queue switch and a notification's "Retry", and its `/ui/sse/events`
//! stream relayed into a local `Hub`, so the bridge, the tray and the notifier follow an
//! attached coordinator through the very code that follows the embedded one.

use std::collections::BTreeMap;
use std::time::Duration;

use blanket_core::hub::{HubEvent, Topic};
use blanket_core::wire::{self, Task};
use blanket_core::{Hub, TaskId};
use tokio_util::sync::CancellationToken;

use crate::error::ShellError;

/// The longest wait between two attempts to reach the other process's stream.
const RECONNECT_LONGEST: Duration = Duration::from_secs(30);
/// How long one REST call may take before the tray or an action gives up on it.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Another process's coordinator at `base_url`.
#[derive(Clone, Debug)]
pub struct Remote {
    base_url: String,
    token: Option<String>,
    client: reqwest::Client,
}

/// The part of `GET /ops/status/` the tray shows.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueStatus {
    /// Task counts by state name.
    pub tasks: BTreeMap<String, u64>,
    /// Whether the queue is paused.
    pub queue_paused: bool,
}

impl Remote {
    /// The coordinator at `base_url` (no trailing slash), reached with `token` when set.
    pub fn new(base_url: String, token: Option<String>) -> Remote {
        // Only the connect is bounded: the event stream stays open for hours.
        let client = reqwest::Client::builder()
            .connect_timeout(REQUEST_TIMEOUT)
            .build()
            .unwrap_or_default();
        Remote {
            base_url,
            token,
            client,
        }
    }

    /// Task counts and the queue flag.
    ///
    /// # Errors
    /// `unavailable` when the other process does not answer as Blanket does.
    pub async fn status(&self) -> Result<QueueStatus, ShellError> {
        self.call(reqwest::Method::GET, "/ops/status/", None::<&()>)
            .await
    }

    /// Pauses or resumes the queue.
    ///
    /// # Errors
    /// As [`Remote::status`].
    pub async fn set_queue_paused(&self, paused: bool) -> Result<(), ShellError> {
        let path = if paused {
            "/queue/pause"
        } else {
            "/queue/resume"
        };
        self.call::<serde_json::Value>(reqwest::Method::PUT, path, None::<&()>)
            .await
            .map(drop)
    }

    /// Retries a finished task with `POST /task/:id/retry`, as `Coordinator::retry` does in
    /// process.
    ///
    /// # Errors
    /// As [`Remote::status`]; the other process's own message for a refused retry.
    pub async fn retry(&self, task_id: TaskId) -> Result<Task, ShellError> {
        self.call(
            reqwest::Method::POST,
            &format!("/task/{task_id}/retry"),
            None::<&()>,
        )
        .await
    }

    /// Relays the other process's `/ui/sse/events` into `hub` until `stop`, reconnecting when
    /// it restarts; each (re)connect starts with both nudges and the settings in effect.
    pub async fn relay(self, hub: Hub, stop: CancellationToken) {
        tokio::select! {
            () = stop.cancelled() => {}
            () = self.relay_forever(&hub) => {}
        }
    }

    async fn relay_forever(&self, hub: &Hub) {
        let mut delay = Duration::from_secs(1);
        loop {
            let request = self.request(reqwest::Method::GET, "/ui/sse/events");
            match request.send().await {
                Ok(mut response) if response.status().is_success() => {
                    delay = Duration::from_secs(1);
                    let mut reader = SseReader::default();
                    while let Ok(Some(chunk)) = response.chunk().await {
                        for (name, data) in reader.push(&chunk) {
                            republish(hub, &name, &data);
                        }
                    }
                    tracing::info!(url = %self.base_url, "the other Blanket's event stream ended: reconnecting");
                }
                Ok(response) => {
                    tracing::warn!(url = %self.base_url, status = %response.status(), "the other Blanket refused its event stream");
                }
                Err(error) => {
                    tracing::debug!(url = %self.base_url, error = %error, "the other Blanket does not answer");
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(RECONNECT_LONGEST);
        }
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = self
            .client
            .request(method, format!("{}{path}", self.base_url));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&impl serde::Serialize>,
    ) -> Result<T, ShellError> {
        let mut request = self.request(method, path).timeout(REQUEST_TIMEOUT);
        if let Some(body) = body {
            request = request.json(body);
        }
        let unavailable = |error: &dyn std::fmt::Display| ShellError {
            code: "unavailable",
            message: format!("the Blanket at {} did not answer: {error}", self.base_url),
        };
        let response = request.send().await.map_err(|error| unavailable(&error))?;
        if !response.status().is_success() {
            let status = response.status();
            let message = response
                .json::<serde_json::Value>()
                .await
                .ok()
                .and_then(|body| body["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| format!("it answered {status}"));
            return Err(ShellError {
                code: code_of(status),
                message,
            });
        }
        response.json().await.map_err(|error| unavailable(&error))
    }
}

/// The shell's error class for an HTTP status, as the REST API maps them.
fn code_of(status: reqwest::StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "invalid",
        404 => "not_found",
        409 => "conflict",
        500 => "internal",
        _ => "unavailable",
    }
}

/// Turns one event of the other process's stream into the hub event the embedded coordinator
/// would have published; an event this version does not know is skipped.
fn republish(hub: &Hub, name: &str, data: &str) {
    let event = match name {
        wire::TASKS_CHANGED => return hub.nudge(Topic::Tasks),
        wire::WORKERS_CHANGED => return hub.nudge(Topic::Workers),
        wire::TASK_FINISHED => serde_json::from_str(data).map(HubEvent::TaskFinished),
        wire::TASK_PROGRESS => serde_json::from_str(data).map(HubEvent::TaskProgress),
        wire::NOTIFY_SETTINGS_CHANGED => {
            serde_json::from_str(data).map(HubEvent::NotifySettingsChanged)
        }
        wire::RESYNC => Ok(HubEvent::Resync),
        _ => return,
    };
    match event {
        Ok(event) => hub.publish(event),
        Err(error) => {
            tracing::warn!(event = name, error = %error, "the other Blanket sent an event this version cannot read");
        }
    }
}

/// Splits an SSE byte stream into `(event name, data)` pairs, across chunk boundaries.
#[derive(Default)]
struct SseReader {
    pending: String,
    name: String,
    data: Vec<String>,
}

impl SseReader {
    /// Takes the next chunk; returns the events it completed.
    fn push(&mut self, chunk: &[u8]) -> Vec<(String, String)> {
        self.pending.push_str(&String::from_utf8_lossy(chunk));
        let mut complete = Vec::new();
        while let Some(end) = self.pending.find('\n') {
            let line: String = self.pending.drain(..=end).collect();
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                if !self.name.is_empty() || !self.data.is_empty() {
                    complete.push((std::mem::take(&mut self.name), self.data.join("\n")));
                    self.data.clear();
                }
            } else if let Some(name) = line.strip_prefix("event:") {
                name.trim().clone_into(&mut self.name);
            } else if let Some(data) = line.strip_prefix("data:") {
                self.data
                    .push(data.strip_prefix(' ').unwrap_or(data).to_owned());
            }
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use blanket_core::TaskState;

    use super::*;

    #[test]
    fn events_split_across_chunks_are_read_whole() {
        let mut reader = SseReader::default();
        assert!(reader.push(b":keepalive\n\nevent: task-prog").is_empty());
        let events = reader
            .push(b"ress\ndata: {\"id\":1}\n\nevent: tasks-changed\r\ndata: tasks-changed\r\n\r\n");
        assert_eq!(
            events,
            vec![
                ("task-progress".to_owned(), "{\"id\":1}".to_owned()),
                ("tasks-changed".to_owned(), "tasks-changed".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn the_streams_events_reach_the_local_hub_as_the_embedded_hub_would_say_them() {
        let hub = Hub::new();
        let mut tasks = hub.subscribe(Topic::Tasks);
        let mut events = hub.events();
        let id = TaskId::generate();
        let finished = wire::TaskFinished {
            id,
            task_type: "render".into(),
            state: TaskState::Error,
            exit_code: Some(2),
            started_ts: 10,
            finished_ts: 40,
            result_dir: "/tmp/x".into(),
            reason: None,
            by_user: false,
        };
        republish(&hub, wire::TASKS_CHANGED, wire::TASKS_CHANGED);
        republish(
            &hub,
            wire::TASK_FINISHED,
            &serde_json::to_string(&finished).unwrap(),
        );
        republish(&hub, "some-future-event", "{}");
        assert!(tasks.changed().await);
        assert_eq!(events.next().await, Some(HubEvent::TaskFinished(finished)));
    }
}
