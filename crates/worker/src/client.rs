//! The worker's side of the REST API: register, claim, run, progress, finish, heartbeat.
//! Only `core::wire` types cross it, exactly what a third-party worker would send; calls that
//! must not be lost (the final report) retry until the coordinator is back.

use std::time::Duration;

use blanket_core::wire::{ClaimedTask, HeartbeatReply, Task, WorkerUpdate};
use blanket_core::{TaskId, TaskState, WorkerId};
use reqwest::{Method, RequestBuilder, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::WorkerError;

/// How long to wait between attempts while the coordinator is unreachable.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// A client bound to one coordinator and one worker id.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    worker_id: WorkerId,
}

impl Client {
    /// A client for the coordinator at `base` (e.g. `http://127.0.0.1:8773`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(
        base: &str,
        token: Option<String>,
        worker_id: WorkerId,
    ) -> Result<Client, WorkerError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .pool_idle_timeout(Duration::from_secs(90))
            .build()
            .map_err(|error| {
                WorkerError::Coordinator(format!("cannot build an HTTP client: {error}"))
            })?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
            worker_id,
        })
    }

    /// The coordinator's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Registers the worker, or updates its record.
    pub async fn register(&self, update: &WorkerUpdate) -> Result<(), WorkerError> {
        let path = format!("/worker/{}", self.worker_id);
        let response = self
            .send(self.request(Method::PUT, &path).json(update))
            .await?;
        expect_ok(response, "registering").await.map(drop)
    }

    /// Asks for a task, waiting up to `wait` on the coordinator's side.
    pub async fn claim(&self, wait: Duration) -> Result<Option<ClaimedTask>, WorkerError> {
        let path = format!("/task/claim/{}?wait={}", self.worker_id, wait.as_secs_f64());
        let request = self
            .request(Method::POST, &path)
            .timeout(wait + Duration::from_secs(10));
        let response = self.send(request).await?;
        if response.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        let response = expect_ok(response, "claiming a task").await?;
        response.json().await.map(Some).map_err(|error| {
            WorkerError::Coordinator(format!("the claim answer is not a task: {error}"))
        })
    }

    /// Reports that the task's process started.
    pub async fn run(&self, task_id: TaskId, pid: u32) -> Result<Task, WorkerError> {
        let path = format!("/task/{task_id}/run?pid={pid}&workerId={}", self.worker_id);
        let response = self.send(self.request(Method::PUT, &path)).await?;
        Ok(expect_ok(response, "reporting the start")
            .await?
            .json()
            .await?)
    }

    /// Reports progress (0-100).
    pub async fn progress(&self, task_id: TaskId, progress: u8) -> Result<(), WorkerError> {
        let path = format!(
            "/task/{task_id}/progress?progress={progress}&workerId={}",
            self.worker_id
        );
        let response = self.send(self.request(Method::PUT, &path)).await?;
        expect_ok(response, "reporting progress").await.map(drop)
    }

    /// Reports how the task ended. Retries while the coordinator is unreachable (until
    /// `give_up` is cancelled), so a coordinator restart does not lose the outcome.
    pub async fn finish(
        &self,
        task_id: TaskId,
        state: TaskState,
        exit_code: Option<i32>,
        reason: Option<&str>,
        give_up: &CancellationToken,
    ) -> Result<(), WorkerError> {
        let mut path = format!(
            "/task/{task_id}/finish?state={state}&workerId={}",
            self.worker_id
        );
        if let Some(code) = exit_code {
            path.push_str(&format!("&exitCode={code}"));
        }
        if let Some(reason) = reason {
            path.push_str("&reason=");
            path.push_str(&encode_query_value(reason));
        }
        loop {
            match self.send(self.request(Method::PUT, &path)).await {
                Ok(response) => return expect_ok(response, "reporting the end").await.map(drop),
                Err(WorkerError::Unreachable(message)) => {
                    tracing::warn!(task_id = %task_id, cause = %message, "coordinator unreachable, will retry the final report");
                    tokio::select! {
                        () = tokio::time::sleep(RETRY_DELAY) => {}
                        () = give_up.cancelled() => return Err(WorkerError::Unreachable(message)),
                    }
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Heartbeat: says which tasks the worker runs; the answer may be held up to `wait`.
    pub async fn heartbeat(
        &self,
        running: &[TaskId],
        wait: Duration,
    ) -> Result<HeartbeatReply, WorkerError> {
        let running: Vec<String> = running.iter().map(ToString::to_string).collect();
        let path = format!(
            "/worker/{}/heartbeat?wait={}&running={}",
            self.worker_id,
            wait.as_secs_f64(),
            running.join(",")
        );
        let request = self
            .request(Method::PUT, &path)
            .timeout(wait + Duration::from_secs(10));
        let response = self.send(request).await?;
        Ok(expect_ok(response, "sending a heartbeat")
            .await?
            .json()
            .await?)
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send(&self, request: RequestBuilder) -> Result<reqwest::Response, WorkerError> {
        request.send().await.map_err(|error| {
            if error.is_connect() || error.is_timeout() || error.is_request() {
                WorkerError::Unreachable(format!(
                    "no coordinator answers at {}: {error}",
                    self.base
                ))
            } else {
                WorkerError::Coordinator(error.to_string())
            }
        })
    }
}

async fn expect_ok(
    response: reqwest::Response,
    what: &str,
) -> Result<reqwest::Response, WorkerError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.unwrap_or_default();
    let message = serde_json::from_str::<blanket_core::wire::ErrorBody>(&body)
        .map(|error| error.error)
        .unwrap_or(body);
    Err(match status {
        StatusCode::CONFLICT | StatusCode::NOT_FOUND => {
            WorkerError::Refused(format!("{what}: {message}"))
        }
        _ => WorkerError::Coordinator(format!("{what} failed with {status}: {message}")),
    })
}

/// Percent-encodes a query value.
fn encode_query_value(value: &str) -> String {
    let mut encoded = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(char::from(byte));
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

impl From<reqwest::Error> for WorkerError {
    fn from(error: reqwest::Error) -> Self {
        WorkerError::Coordinator(format!("unreadable answer from the coordinator: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            encode_query_value("worker lost; x=1&y"),
            "worker%20lost%3B%20x%3D1%26y"
        );
        assert_eq!(encode_query_value("é"), "%C3%A9");
    }
}
