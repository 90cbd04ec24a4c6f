//! SSE fan-out: many raw-TCP subscribers on `/ui/sse/tasks` in this one process, then submits
//! spaced apart, timing how long each subscriber waits for its `tasks-changed` event.
//! Raw sockets keep the per-event client work to one read and one clock read, and let the
//! kernel say when each event reached the socket, apart from when the bench got to read it.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::client::Connection;
use crate::server::Server;
use crate::stats::Latencies;
use crate::system::{self, CpuMeter, CpuUse};

/// The line that starts every change event on the tasks stream.
const TASKS_EVENT: &[u8] = b"event: tasks-changed";
/// The comment line the server sends on an idle stream.
const KEEPALIVE: &[u8] = b": keepalive";
/// Subscribers that connect at once; keeps the server's accept backlog from overflowing.
const CONNECT_BATCH: usize = 100;

/// The outcome of a fan-out run.
#[derive(Debug)]
pub struct FanoutRun {
    /// Subscribers connected.
    pub subscribers: usize,
    /// Submits made.
    pub rounds: usize,
    /// Submit start to the bench reading the event, for every subscriber and round.
    pub read_latencies: Latencies,
    /// Submit start to the kernel receiving the event on the subscriber's socket.
    pub kernel_latencies: Latencies,
    /// The submit's 201 read by the bench to the kernel receiving the event, zero when the
    /// event came first: the commit precedes the 201, so this bounds commit-to-event below.
    pub kernel_after_answer: Latencies,
    /// Per round, submit start to the first subscriber's read.
    pub first_per_round: Latencies,
    /// Per round, submit start to the last subscriber's read.
    pub last_per_round: Latencies,
    /// Per round, submit start to the kernel receiving the last subscriber's event.
    pub last_per_round_kernel: Latencies,
    /// Subscriber-rounds that got no event.
    pub missed: usize,
    /// Events beyond one per subscriber and round.
    pub extra: usize,
    /// Events the kernel gave no receive time for.
    pub unstamped: usize,
    /// Time to each submit's 201.
    pub submit_latencies: Latencies,
    /// CPU used from the first submit until the end.
    pub cpu: CpuUse,
}

/// When one change event arrived at a subscriber.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// When the bench's read returned it.
    pub read_at: Instant,
    /// When the kernel received it, if it said.
    pub received_at: Option<SystemTime>,
}

/// What one subscriber saw after its first event.
#[derive(Debug, Default)]
pub struct Received {
    /// Each change event.
    pub events: Vec<Arrival>,
    /// When each keepalive comment was read.
    pub keepalives: Vec<Instant>,
}

/// The start of one round, on both clocks: the kernel stamps arrivals with wall time.
#[derive(Clone, Copy, Debug)]
struct RoundStart {
    at: Instant,
    wall: SystemTime,
}

/// Connects `subscribers` streams, then makes `rounds` submits `spacing` apart.
///
/// # Errors
/// When a subscriber cannot connect or a submit fails.
pub async fn measure(
    server: &Server,
    subscribers: usize,
    rounds: usize,
    spacing: Duration,
) -> Result<FanoutRun> {
    let (stop, stopped) = watch::channel(false);
    let mut streams = JoinSet::new();
    let mut connected = 0;
    while connected < subscribers {
        let batch = CONNECT_BATCH.min(subscribers - connected);
        let mut connecting = JoinSet::new();
        for _ in 0..batch {
            connecting.spawn(subscribe(server.address));
        }
        while let Some(joined) = connecting.join_next().await {
            let stream = joined.context("a subscriber task panicked")??;
            streams.spawn(listen(stream, stopped.clone()));
        }
        connected += batch;
    }
    // Let the server finish its connection work before the first timed submit.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut submitter = Connection::open(server.address).await?;
    let meter = CpuMeter::start(server.pid())?;
    let mut starts = Vec::with_capacity(rounds);
    let mut submit_latencies = Vec::with_capacity(rounds);
    let mut ticks = tokio::time::interval(spacing);
    for _ in 0..rounds {
        ticks.tick().await;
        // Taken just before the request goes out, so each latency is an upper bound on
        // commit-to-event.
        starts.push(RoundStart {
            at: Instant::now(),
            wall: SystemTime::now(),
        });
        submit_latencies.push(submitter.submit().await?);
    }
    tokio::time::sleep(spacing).await;
    let cpu = meter.read()?;
    stop.send_replace(true);

    let start_instants: Vec<Instant> = starts.iter().map(|start| start.at).collect();
    let mut read_latencies = Vec::with_capacity(subscribers * rounds);
    let mut kernel_latencies = Vec::with_capacity(subscribers * rounds);
    let mut kernel_after_answer = Vec::with_capacity(subscribers * rounds);
    let answered: Vec<SystemTime> = starts
        .iter()
        .zip(&submit_latencies)
        .map(|(start, latency)| start.wall + *latency)
        .collect();
    let mut first = vec![Duration::MAX; rounds];
    let mut last = vec![Duration::ZERO; rounds];
    let mut last_kernel = vec![Duration::ZERO; rounds];
    let mut missed = 0;
    let mut extra = 0;
    let mut unstamped = 0;
    while let Some(joined) = streams.join_next().await {
        let received = joined.context("a subscriber task panicked")??;
        let read_times: Vec<Instant> = received.events.iter().map(|event| event.read_at).collect();
        let assigned = assign_to_rounds(&start_instants, &read_times);
        extra += assigned.extra;
        for (round, event) in assigned.per_round.into_iter().enumerate() {
            let Some(event) = event else {
                missed += 1;
                continue;
            };
            let arrival = received.events[event];
            let read = arrival.read_at - starts[round].at;
            read_latencies.push(read);
            first[round] = first[round].min(read);
            last[round] = last[round].max(read);
            match arrival
                .received_at
                .and_then(|at| at.duration_since(starts[round].wall).ok())
            {
                Some(kernel) => {
                    kernel_latencies.push(kernel);
                    let after_answer = arrival
                        .received_at
                        .and_then(|at| at.duration_since(answered[round]).ok())
                        .unwrap_or_default();
                    kernel_after_answer.push(after_answer);
                    last_kernel[round] = last_kernel[round].max(kernel);
                }
                None => unstamped += 1,
            }
        }
    }
    first.retain(|latency| *latency != Duration::MAX);
    Ok(FanoutRun {
        subscribers,
        rounds,
        read_latencies: Latencies::new(read_latencies),
        kernel_latencies: Latencies::new(kernel_latencies),
        kernel_after_answer: Latencies::new(kernel_after_answer),
        first_per_round: Latencies::new(first),
        last_per_round: Latencies::new(last),
        last_per_round_kernel: Latencies::new(last_kernel),
        missed,
        extra,
        unstamped,
        submit_latencies: Latencies::new(submit_latencies),
        cpu,
    })
}

/// An open tasks stream past its first event, with whatever followed that event in the
/// same read.
pub struct Subscription {
    stream: TcpStream,
    scanner: Scanner,
}

/// Opens `GET /ui/sse/tasks` and waits for the event the server sends on connect.
///
/// # Errors
/// When the connection fails, the answer is not 200, or the stream ends first.
pub async fn subscribe(address: SocketAddr) -> Result<Subscription> {
    let mut stream = TcpStream::connect(address)
        .await
        .with_context(|| format!("connecting a subscriber to {address}"))?;
    stream
        .set_nodelay(true)
        .context("setting TCP_NODELAY on a subscriber socket")?;
    system::enable_receive_timestamps(stream.as_raw_fd())
        .context("asking for receive times on a subscriber socket")?;
    let request = format!(
        "GET /ui/sse/tasks HTTP/1.1\r\nHost: {address}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("sending a subscribe request")?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    let header_end = loop {
        let read = stream
            .read(&mut buffer)
            .await
            .context("reading a subscribe answer")?;
        if read == 0 {
            bail!("the server closed a subscriber's connection before answering");
        }
        received.extend_from_slice(&buffer[..read]);
        if let Some(end) = find(&received, b"\r\n\r\n") {
            break end + 4;
        }
    };
    if !received.starts_with(b"HTTP/1.1 200") {
        let head = String::from_utf8_lossy(&received[..header_end]);
        bail!("GET /ui/sse/tasks did not answer 200: {}", head.trim());
    }
    let mut scanner = Scanner::default();
    let mut counts = scanner.feed(&received[header_end..]);
    while counts.events == 0 {
        let read = stream
            .read(&mut buffer)
            .await
            .context("reading a subscriber's first event")?;
        if read == 0 {
            bail!("the server closed a subscriber's stream before its first event");
        }
        counts = scanner.feed(&buffer[..read]);
    }
    Ok(Subscription { stream, scanner })
}

/// Reads `subscription` until `stop` turns true, timing every event and keepalive.
///
/// # Errors
/// When reading fails or the server ends the stream first.
pub async fn listen(
    subscription: Subscription,
    mut stop: watch::Receiver<bool>,
) -> Result<Received> {
    let Subscription {
        stream,
        mut scanner,
    } = subscription;
    let fd = stream.as_raw_fd();
    let mut received = Received::default();
    let mut buffer = [0u8; 4096];
    loop {
        tokio::select! {
            ready = stream.readable() => {
                ready.context("waiting for a subscriber's stream")?;
                let outcome = stream.try_io(Interest::READABLE, || {
                    system::receive_with_timestamp(fd, &mut buffer)
                });
                // The clock is read before any parsing, so client work adds as little as
                // possible to the measured delay.
                let read_at = Instant::now();
                let (read, received_at) = match outcome {
                    Ok(outcome) => outcome,
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(error) => return Err(error).context("reading a subscriber's stream"),
                };
                if read == 0 {
                    bail!("the server ended a subscriber's stream");
                }
                let counts = scanner.feed(&buffer[..read]);
                let arrival = Arrival { read_at, received_at };
                received.events.extend(std::iter::repeat_n(arrival, counts.events));
                received.keepalives.extend(std::iter::repeat_n(read_at, counts.keepalives));
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    return Ok(received);
                }
            }
        }
    }
}

/// Where each subscriber's events fall among the rounds.
#[derive(Debug, PartialEq)]
struct Assigned {
    /// Per round, the index of the first event after its start and before the next round's.
    per_round: Vec<Option<usize>>,
    /// Events after the first in a round, or before the first round.
    extra: usize,
}

/// Gives each event to the latest round that started before it.
fn assign_to_rounds(starts: &[Instant], events: &[Instant]) -> Assigned {
    let mut per_round = vec![None; starts.len()];
    let mut extra = 0;
    for (index, &event) in events.iter().enumerate() {
        let after = starts.partition_point(|&start| start <= event);
        let Some(round) = after.checked_sub(1) else {
            extra += 1;
            continue;
        };
        match per_round[round] {
            None => per_round[round] = Some(index),
            Some(_) => extra += 1,
        }
    }
    Assigned { per_round, extra }
}

/// Counts event and keepalive lines in a byte stream that arrives in arbitrary pieces (the
/// HTTP chunk framing may split a line across reads).
#[derive(Debug, Default)]
struct Scanner {
    /// The unfinished last line of what has been fed so far.
    partial: Vec<u8>,
}

/// Lines found by one `Scanner::feed`.
#[derive(Debug, Default, PartialEq)]
struct Counts {
    events: usize,
    keepalives: usize,
}

impl Scanner {
    fn feed(&mut self, bytes: &[u8]) -> Counts {
        let mut counts = Counts::default();
        self.partial.extend_from_slice(bytes);
        let mut start = 0;
        while let Some(offset) = self.partial[start..].iter().position(|&byte| byte == b'\n') {
            let line = &self.partial[start..start + offset];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line == TASKS_EVENT {
                counts.events += 1;
            } else if line == KEEPALIVE {
                counts.keepalives += 1;
            }
            start += offset + 1;
        }
        self.partial.drain(..start);
        counts
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_lines_split_across_reads() {
        let mut scanner = Scanner::default();
        let stream =
            b"14\r\nevent: tasks-changed\ndata: tasks-changed\n\n\r\nd\r\n: keepalive\n\n\r\n";
        let mut total = Counts::default();
        for piece in stream.chunks(3) {
            let counts = scanner.feed(piece);
            total.events += counts.events;
            total.keepalives += counts.keepalives;
        }
        assert_eq!(
            total,
            Counts {
                events: 1,
                keepalives: 1
            }
        );
    }

    #[test]
    fn scanner_ignores_the_data_line() {
        let mut scanner = Scanner::default();
        let counts = scanner.feed(b"data: tasks-changed\nevent: workers-changed\n");
        assert_eq!(counts, Counts::default());
    }

    #[test]
    fn events_go_to_the_latest_round_before_them() {
        let zero = Instant::now();
        let at = |millis| zero + Duration::from_millis(millis);
        let starts = [at(100), at(200), at(300)];
        let events = [at(50), at(103), at(105), at(302)];
        assert_eq!(
            assign_to_rounds(&starts, &events),
            Assigned {
                per_round: vec![Some(1), None, Some(3)],
                extra: 2,
            }
        );
    }
}
