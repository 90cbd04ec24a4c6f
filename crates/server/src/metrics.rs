//! Request counters and the `GET /metrics` endpoint in Prometheus text format.
//! Counters are plain atomics bumped by the guard layer; the coordinator's gauges (tasks by
//! state, workers by status, subscribers) are read when scraped, so idle costs nothing.

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
    let metrics = &state.metrics;
    let mut text = String::new();
    let by_class: Vec<(String, u64)> = metrics
        .by_class
        .iter()
        .enumerate()
        .map(|(index, count)| {
            (
                format!("class=\"{}xx\"", index + 1),
                count.load(Ordering::Relaxed),
            )
        })
        .collect();
    family(
        &mut text,
        "blanket_http_requests_total",
        "counter",
        "HTTP requests answered, by status class.",
        &by_class,
    );
    let total = metrics.total();
    let mut buckets: Vec<(String, u64)> = LATENCY_BUCKETS
        .iter()
        .zip(&metrics.latency_buckets)
        .map(|(bound, bucket)| (format!("le=\"{bound}\""), bucket.load(Ordering::Relaxed)))
        .collect();
    buckets.push(("le=\"+Inf\"".into(), total));
    family(
        &mut text,
        "blanket_http_request_duration_seconds_bucket",
        "histogram",
        "Time to answer a request.",
        &buckets,
    );
    let micros = metrics.latency_micros_total.load(Ordering::Relaxed);
    text.push_str(&format!(
        "blanket_http_request_duration_seconds_sum {}\nblanket_http_request_duration_seconds_count {total}\n",
        micros as f64 / 1e6
    ));
    let tasks: Vec<(String, u64)> = status
        .tasks
        .by_state
        .iter()
        .map(|(state_name, count)| (format!("state=\"{state_name}\""), *count))
        .collect();
    family(
        &mut text,
        "blanket_tasks",
        "gauge",
        "Tasks stored, by state.",
        &tasks,
    );
    let workers: Vec<(String, u64)> = status
        .workers_by_status
        .iter()
        .map(|(worker_status, count)| (format!("status=\"{}\"", worker_status.as_str()), *count))
        .collect();
    family(
        &mut text,
        "blanket_workers",
        "gauge",
        "Workers known, by status.",
        &workers,
    );
    let subscribers = [
        (
            "topic=\"tasks\"".to_string(),
            status.task_subscribers as u64,
        ),
        (
            "topic=\"workers\"".to_string(),
            status.worker_subscribers as u64,
        ),
        (
            "topic=\"events\"".to_string(),
            status.event_subscribers as u64,
        ),
    ];
    family(
        &mut text,
        "blanket_subscribers",
        "gauge",
        "Open live-update subscriptions, by topic.",
        &subscribers,
    );
    let types = [
        ("kind=\"loaded\"".to_string(), status.task_types as u64),
        (
            "kind=\"broken\"".to_string(),
            status.broken_task_types as u64,
        ),
    ];
    family(
        &mut text,
        "blanket_task_types",
        "gauge",
        "Task types loaded, and broken type files.",
        &types,
    );
    let paused = [(String::new(), u64::from(status.queue_paused))];
    family(
        &mut text,
        "blanket_queue_paused",
        "gauge",
        "Whether the queue is paused (1) or not (0).",
        &paused,
    );
    let uptime = [(String::new(), status.uptime_seconds)];
    family(
        &mut text,
        "blanket_uptime_seconds",
        "gauge",
        "Seconds since the coordinator started.",
        &uptime,
    );
    Ok((
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    ))
}

/// Appends one metric family: its HELP and TYPE lines, then a sample per label set.
fn family(text: &mut String, name: &str, kind: &str, help: &str, samples: &[(String, u64)]) {
    // A histogram's HELP and TYPE name the family, not its `_bucket` series.
    let family_name = name.strip_suffix("_bucket").unwrap_or(name);
    text.push_str(&format!(
        "# HELP {family_name} {help}\n# TYPE {family_name} {kind}\n"
    ));
    for (labels, value) in samples {
        if labels.is_empty() {
            text.push_str(&format!("{name} {value}\n"));
        } else {
            text.push_str(&format!("{name}{{{labels}}} {value}\n"));
        }
    }
}
