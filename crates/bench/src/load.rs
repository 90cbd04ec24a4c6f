//! Request-response measurements: the durable submit rate over a few keep-alive connections,
//! filling the store to a size, and the latency of listing a page of tasks.
//! Each records the CPU both processes used, so a reader can tell who was the bottleneck.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;

use crate::client::Connection;
use crate::server::Server;
use crate::stats::Latencies;
use crate::system::{CpuMeter, CpuUse};

/// The page the list figure asks for.
pub const LIST_PATH: &str = "/task/?limit=500";
/// How many tasks the list page should hold.
const LIST_LIMIT: usize = 500;

/// The outcome of a timed run of submits.
#[derive(Debug)]
pub struct SubmitRun {
    /// Connections that submitted at once.
    pub connections: usize,
    /// Submits completed in the timed part.
    pub submits: u64,
    /// From the first request of the timed part to the last answer.
    pub elapsed: Duration,
    /// Time to each 201.
    pub latencies: Latencies,
    /// Tasks stored when the timed part began.
    pub stored_before: u64,
    /// CPU used in the timed part.
    pub cpu: CpuUse,
}

impl SubmitRun {
    /// Completed submits per second.
    pub fn rate(&self) -> f64 {
        self.submits as f64 / self.elapsed.as_secs_f64()
    }
}

/// The outcome of filling the store.
#[derive(Debug)]
pub struct FillRun {
    /// Connections used.
    pub connections: usize,
    /// Tasks submitted.
    pub submitted: u64,
    /// How long it took.
    pub elapsed: Duration,
    /// Tasks stored afterwards.
    pub stored_after: u64,
}

/// The outcome of sequential list requests.
#[derive(Debug)]
pub struct ListRun {
    /// Tasks stored during the run.
    pub stored: u64,
    /// Time to each full response body.
    pub latencies: Latencies,
    /// Size of one response body.
    pub body_bytes: usize,
    /// CPU used during the timed requests.
    pub cpu: CpuUse,
}

/// Warms up with `warmup` submits, then submits over `connections` keep-alive connections,
/// each one request at a time, for `duration`.
///
/// # Errors
/// When a connection fails or any submit is not answered 201.
pub async fn submit_rate(
    server: &Server,
    connections: usize,
    warmup: u64,
    duration: Duration,
) -> Result<SubmitRun> {
    let mut opened = Vec::with_capacity(connections);
    for _ in 0..connections {
        opened.push(Connection::open(server.address).await?);
    }
    // The warm-up fills caches, page tables and SQLite's page cache, and lets the server's
    // worker threads start, so the timed part sees the steady state.
    let per_connection = warmup.div_ceil(connections as u64);
    let mut warming = JoinSet::new();
    for mut connection in opened {
        warming.spawn(async move {
            for _ in 0..per_connection {
                connection.submit().await?;
            }
            anyhow::Ok(connection)
        });
    }
    let mut warmed = Vec::with_capacity(connections);
    while let Some(joined) = warming.join_next().await {
        warmed.push(joined.context("a warm-up task panicked")??);
    }
    let stored_before = match warmed.first_mut() {
        Some(connection) => connection.count_tasks().await?,
        None => bail!("a submit run needs at least one connection"),
    };

    let meter = CpuMeter::start(server.pid())?;
    let started = Instant::now();
    let deadline = started + duration;
    let mut running = JoinSet::new();
    for mut connection in warmed {
        running.spawn(async move {
            let mut latencies = Vec::new();
            let mut last_answer = Instant::now();
            while Instant::now() < deadline {
                latencies.push(connection.submit().await?);
                last_answer = Instant::now();
            }
            anyhow::Ok((latencies, last_answer))
        });
    }
    let mut all = Vec::new();
    let mut finished = started;
    while let Some(joined) = running.join_next().await {
        let (latencies, last_answer) = joined.context("a submit task panicked")??;
        all.extend(latencies);
        finished = finished.max(last_answer);
    }
    let cpu = meter.read()?;
    let elapsed = finished - started;
    Ok(SubmitRun {
        connections,
        submits: all.len() as u64,
        elapsed,
        latencies: Latencies::new(all),
        stored_before,
        cpu,
    })
}

/// Submits until the store holds at least `target` tasks, over `connections` connections.
///
/// # Errors
/// When a connection fails or any submit is not answered 201.
pub async fn fill(server: &Server, target: u64, connections: usize) -> Result<FillRun> {
    let mut counter = Connection::open(server.address).await?;
    let stored = counter.count_tasks().await?;
    let missing = target.saturating_sub(stored);
    let remaining = Arc::new(AtomicU64::new(missing));
    let started = Instant::now();
    let mut running = JoinSet::new();
    for _ in 0..connections {
        let mut connection = Connection::open(server.address).await?;
        let remaining = Arc::clone(&remaining);
        running.spawn(async move {
            // Each connection takes one ticket per submit, so exactly `missing` are sent.
            while remaining
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
                    left.checked_sub(1)
                })
                .is_ok()
            {
                connection.submit().await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(joined) = running.join_next().await {
        joined.context("a fill task panicked")??;
    }
    let elapsed = started.elapsed();
    let stored_after = counter.count_tasks().await?;
    Ok(FillRun {
        connections,
        submitted: missing,
        elapsed,
        stored_after,
    })
}

/// `samples` sequential `GET /task/?limit=500` on one keep-alive connection, after a few
/// unmeasured ones.
///
/// # Errors
/// When a request fails, is not 200, or the page does not hold 500 tasks.
pub async fn list_latency(server: &Server, samples: usize) -> Result<ListRun> {
    let mut connection = Connection::open(server.address).await?;
    let stored = connection.count_tasks().await?;
    let (status, body) = connection.get(LIST_PATH).await?;
    if !status.is_success() {
        bail!("GET {LIST_PATH} answered {status}");
    }
    let page: Vec<serde_json::Value> =
        serde_json::from_slice(&body).with_context(|| format!("GET {LIST_PATH} is not a list"))?;
    if page.len() != LIST_LIMIT {
        bail!(
            "GET {LIST_PATH} returned {} tasks, expected {LIST_LIMIT} (the store holds {stored})",
            page.len()
        );
    }
    for _ in 0..5 {
        connection.get(LIST_PATH).await?;
    }
    let meter = CpuMeter::start(server.pid())?;
    let mut latencies = Vec::with_capacity(samples);
    for _ in 0..samples {
        let started = Instant::now();
        let (status, _) = connection.get(LIST_PATH).await?;
        latencies.push(started.elapsed());
        if !status.is_success() {
            bail!("GET {LIST_PATH} answered {status}");
        }
    }
    Ok(ListRun {
        stored,
        latencies: Latencies::new(latencies),
        body_bytes: body.len(),
        cpu: meter.read()?,
    })
}
