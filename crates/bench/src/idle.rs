//! The idle cost of a fresh server: after a few requests, with one SSE client connected, how
//! much CPU, memory and how many thread wake-ups it uses while nothing happens.
//! It reads `/proc` once a second, which never wakes the server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::sync::watch;

use crate::client::Connection;
use crate::fanout;
use crate::load::LIST_PATH;
use crate::server::Server;
use crate::system::{self, ThreadSwitches};

/// Seconds before a keepalive in which a wake-up counts as its own: tokio's timer wheel files
/// a timer 30 s away in a slot of 4.096 s (64² ms) and wakes at that slot's end to refile it
/// finer, so a keepalive can cost a wake-up or two up to about 4 s before it fires.
const KEEPALIVE_LEAD_SECONDS: u64 = 5;
/// Seconds after a keepalive in which a wake-up counts as its own (the one-second sampling).
const KEEPALIVE_LAG_SECONDS: u64 = 1;
/// Wake-ups outside keepalives this close together form one burst (one timer and its cascade).
const BURST_GAP_SECONDS: u64 = 5;
/// How long after the first requests the SSE client connects.
const SSE_CONNECT_DELAY: Duration = Duration::from_secs(10);

/// The outcome of an idle window.
#[derive(Debug)]
pub struct IdleRun {
    /// How long the server was left alone.
    pub window: Duration,
    /// CPU used in the window, in percent of one core.
    pub cpu_percent: f64,
    /// Resident memory at the end, in KiB.
    pub rss_kib: u64,
    /// Peak resident memory since start, in KiB.
    pub peak_rss_kib: u64,
    /// Context switches of all threads in the window.
    pub wakeups: u64,
    /// The same, by thread name.
    pub wakeups_by_thread: BTreeMap<String, u64>,
    /// Per second of the window that had any, its wake-ups.
    pub wakeups_by_second: BTreeMap<u64, u64>,
    /// Seconds into the window at which the SSE client got a keepalive.
    pub keepalive_seconds: Vec<u64>,
    /// Wake-ups not caused by a keepalive, grouped into bursts: (first second, last second,
    /// wake-ups). One burst is a one-off; two or more suggest a periodic source.
    pub other_bursts: Vec<(u64, u64, u64)>,
    /// Threads alive at the start and at the end of the window.
    pub threads: (usize, usize),
}

/// Makes a few requests, connects one SSE client, then watches the server for `window`.
///
/// # Errors
/// When a request fails or `/proc` cannot be read.
pub async fn measure(server: &mut Server, window: Duration) -> Result<IdleRun> {
    {
        // A few requests of each kind, so the idle state is that of a server that has
        // been used, not one that never saw a request. The connection closes after them.
        let mut connection = Connection::open(server.address).await?;
        for path in ["/version", "/ui", LIST_PATH] {
            let (status, _) = connection.get(path).await?;
            if !status.is_success() {
                bail!("GET {path} answered {status}");
            }
        }
        for _ in 0..3 {
            connection.submit().await?;
        }
        connection.get(LIST_PATH).await?;
    }
    // The keepalive runs on the stream's own 30 s clock. Connecting a few seconds later keeps
    // its wake-ups apart from anything the server does on a clock started at its own start
    // (such as a first check 30 s in), so neither hides the other.
    tokio::time::sleep(SSE_CONNECT_DELAY).await;
    let subscription = fanout::subscribe(server.address).await?;
    let (stop, stopped) = watch::channel(false);
    let listener = tokio::spawn(fanout::listen(subscription, stopped));
    // Let the server finish answering before the window opens.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let pid = server.pid();
    let ticks_before = system::cpu_ticks(pid)?;
    let started = Instant::now();
    let mut previous = system::thread_switches(pid)?;
    let threads_at_start = previous.len();
    let mut wakeups_by_thread: BTreeMap<String, u64> = BTreeMap::new();
    let mut wakeups_by_second: BTreeMap<u64, u64> = BTreeMap::new();
    let seconds = window.as_secs().max(1);
    for second in 1..=seconds {
        tokio::time::sleep_until((started + Duration::from_secs(second)).into()).await;
        let current = system::thread_switches(pid)?;
        for (name, delta) in switch_deltas(&previous, &current) {
            *wakeups_by_thread.entry(name).or_default() += delta;
            // Charged to the second that just ended, counted from 0.
            *wakeups_by_second.entry(second - 1).or_default() += delta;
        }
        previous = current;
    }
    let elapsed = started.elapsed();
    let ticks_used = system::cpu_ticks(pid)?.saturating_sub(ticks_before);
    let (rss_kib, peak_rss_kib) = system::resident_kib(pid)?;
    server.check_alive()?;
    stop.send_replace(true);
    let received = listener.await.context("the SSE client panicked")??;

    wakeups_by_second.retain(|_, count| *count > 0);
    wakeups_by_thread.retain(|_, count| *count > 0);
    let keepalive_seconds: Vec<u64> = received
        .keepalives
        .iter()
        .filter_map(|at| at.checked_duration_since(started))
        .map(|offset| offset.as_secs())
        .filter(|&second| second < seconds)
        .collect();
    let other_bursts = bursts_outside_keepalives(&wakeups_by_second, &keepalive_seconds);
    let per_second = system::clock_ticks_per_second() as f64;
    Ok(IdleRun {
        window: elapsed,
        cpu_percent: ticks_used as f64 / per_second / elapsed.as_secs_f64() * 100.0,
        rss_kib,
        peak_rss_kib,
        wakeups: wakeups_by_thread.values().sum(),
        wakeups_by_thread,
        wakeups_by_second,
        keepalive_seconds,
        other_bursts,
        threads: (threads_at_start, previous.len()),
    })
}

/// The wake-ups no keepalive explains, grouped into bursts of seconds at most
/// `BURST_GAP_SECONDS` apart, each as (first second, last second, wake-ups).
fn bursts_outside_keepalives(
    wakeups_by_second: &BTreeMap<u64, u64>,
    keepalive_seconds: &[u64],
) -> Vec<(u64, u64, u64)> {
    let mut bursts: Vec<(u64, u64, u64)> = Vec::new();
    for (&second, &count) in wakeups_by_second {
        let keepalive = keepalive_seconds.iter().any(|&keepalive| {
            second + KEEPALIVE_LEAD_SECONDS >= keepalive
                && second <= keepalive + KEEPALIVE_LAG_SECONDS
        });
        if keepalive || count == 0 {
            continue;
        }
        match bursts.last_mut() {
            Some((_, last, total)) if second - *last <= BURST_GAP_SECONDS => {
                *last = second;
                *total += count;
            }
            _ => bursts.push((second, second, count)),
        }
    }
    bursts
}

/// Switches per thread name between two snapshots. A thread born in between counts all of
/// its switches; one that exited in between is lost, which at most undercounts its last second.
fn switch_deltas(
    previous: &BTreeMap<u32, ThreadSwitches>,
    current: &BTreeMap<u32, ThreadSwitches>,
) -> Vec<(String, u64)> {
    current
        .iter()
        .map(|(tid, thread)| {
            let before = previous.get(tid).map_or(0, |earlier| earlier.switches);
            (thread.name.clone(), thread.switches.saturating_sub(before))
        })
        .filter(|(_, delta)| *delta > 0)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn thread(name: &str, switches: u64) -> ThreadSwitches {
        ThreadSwitches {
            name: name.to_owned(),
            switches,
        }
    }

    #[test]
    fn keepalives_explain_their_own_cascade_and_the_rest_forms_bursts() {
        let by_second = BTreeMap::from([
            (18, 1),
            (19, 10),
            (26, 1),
            (29, 2),
            (40, 3),
            (55, 1),
            (59, 1),
        ]);
        assert_eq!(
            bursts_outside_keepalives(&by_second, &[29, 59]),
            [(18, 19, 11), (40, 40, 3)]
        );
        assert!(bursts_outside_keepalives(&BTreeMap::from([(28, 2)]), &[29]).is_empty());
    }

    #[test]
    fn deltas_count_new_threads_whole_and_skip_quiet_ones() {
        let previous = BTreeMap::from([(1, thread("main", 10)), (2, thread("worker", 5))]);
        let current = BTreeMap::from([
            (1, thread("main", 10)),
            (2, thread("worker", 7)),
            (3, thread("blocking", 4)),
        ]);
        assert_eq!(
            switch_deltas(&previous, &current),
            [("worker".to_owned(), 2), ("blocking".to_owned(), 4)]
        );
    }
}
