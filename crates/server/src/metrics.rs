//! Request counters and the `GET /metrics` endpoint in Prometheus text format.
//! Counters are plain atomics bumped by the guard layer; the coordinator's gauges (tasks by
//! state, workers by status, subscribers) are read when scraped, so idle costs nothing.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use crate::{ApiError, AppState};

/// Upper bounds of the request latency histogram, in seconds.
const LATENCY_BUCKETS: [f64; 8] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.5];

/// Counters of the HTTP layer.
#[derive(Default)]
pub struct HttpMetrics {
    by_class: [AtomicU64; 5],
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_micros_total: AtomicU64,
}

impl HttpMetrics {
    /// Records one answered request.
    pub fn record(&self, status: StatusCode, elapsed: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.by_class[class].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.latency_micros_total
            .fetch_add(micros, Ordering::Relaxed);
    }

    fn total(&self) -> u64 {
        self.by_class
            .iter()
            .map(|count| count.load(Ordering::Relaxed))
            .sum()
    }
}

/// `GET /metrics`.
pub async fn metrics_get(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let status = state.coordinator.status().await?;
    let mut text = String::new();
    let metrics = &state.metrics;
    // Writing into a String cannot fail, so the results of write! are ignored below.
    let _ = writeln!(
        text,
        "# HELP blanket_http_requests_total HTTP requests answered, by status class."
    );
    let _ = writeln!(text, "# TYPE blanket_http_requests_total counter");
    for (index, count) in metrics.by_class.iter().enumerate() {
        let _ = writeln!(
            text,
            "blanket_http_requests_total{{class=\"{}xx\"}} {}",
            index + 1,
            count.load(Ordering::Relaxed)
        );
    }
    let _ = writeln!(
        text,
        "# HELP blanket_http_request_duration_seconds Time to answer a request."
    );
    let _ = writeln!(
        text,
        "# TYPE blanket_http_request_duration_seconds histogram"
    );
    for (bound, bucket) in LATENCY_BUCKETS.iter().zip(&metrics.latency_buckets) {
        let _ = writeln!(
            text,
            "blanket_http_request_duration_seconds_bucket{{le=\"{bound}\"}} {}",
            bucket.load(Ordering::Relaxed)
        );
    }
    let total = metrics.total();
    let _ = writeln!(
        text,
        "blanket_http_request_duration_seconds_bucket{{le=\"+Inf\"}} {total}"
    );
    let micros = metrics.latency_micros_total.load(Ordering::Relaxed);
    let _ = writeln!(
        text,
        "blanket_http_request_duration_seconds_sum {}",
        micros as f64 / 1e6
    );
    let _ = writeln!(text, "blanket_http_request_duration_seconds_count {total}");
    let _ = writeln!(text, "# HELP blanket_tasks Tasks stored, by state.");
    let _ = writeln!(text, "# TYPE blanket_tasks gauge");
    for (state_name, count) in &status.tasks.by_state {
        let _ = writeln!(text, "blanket_tasks{{state=\"{state_name}\"}} {count}");
    }
    let _ = writeln!(text, "# HELP blanket_workers Workers known, by status.");
    let _ = writeln!(text, "# TYPE blanket_workers gauge");
    for (worker_status, count) in &status.workers_by_status {
        let name = serde_json::to_value(worker_status)
            .ok()
            .and_then(|value| value.as_str().map(str::to_string))
            .unwrap_or_default();
        let _ = writeln!(text, "blanket_workers{{status=\"{name}\"}} {count}");
    }
    let _ = writeln!(
        text,
        "# HELP blanket_subscribers Open live-update subscriptions, by topic."
    );
    let _ = writeln!(text, "# TYPE blanket_subscribers gauge");
    let _ = writeln!(
        text,
        "blanket_subscribers{{topic=\"tasks\"}} {}",
        status.task_subscribers
    );
    let _ = writeln!(
        text,
        "blanket_subscribers{{topic=\"workers\"}} {}",
        status.worker_subscribers
    );
    let _ = writeln!(
        text,
        "blanket_subscribers{{topic=\"events\"}} {}",
        status.event_subscribers
    );
    let _ = writeln!(
        text,
        "# HELP blanket_task_types Task types loaded, and broken type files."
    );
    let _ = writeln!(text, "# TYPE blanket_task_types gauge");
    let _ = writeln!(
        text,
        "blanket_task_types{{kind=\"loaded\"}} {}",
        status.task_types
    );
    let _ = writeln!(
        text,
        "blanket_task_types{{kind=\"broken\"}} {}",
        status.broken_task_types
    );
    let _ = writeln!(
        text,
        "# HELP blanket_queue_paused Whether the queue is paused (1) or not (0)."
    );
    let _ = writeln!(text, "# TYPE blanket_queue_paused gauge");
    let _ = writeln!(
        text,
        "blanket_queue_paused {}",
        u8::from(status.queue_paused)
    );
    let _ = writeln!(
        text,
        "# HELP blanket_uptime_seconds Seconds since the coordinator started."
    );
    let _ = writeln!(text, "# TYPE blanket_uptime_seconds gauge");
    let _ = writeln!(text, "blanket_uptime_seconds {}", status.uptime_seconds);
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}
