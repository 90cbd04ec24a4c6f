//! SSE fan-out: many raw-TCP subscribers on `/ui/sse/tasks` in this one process, then submits
//! spaced apart, timing how long each subscriber waits for its `tasks-changed` event.
//! The kernel stamps each event as it reaches a subscriber's socket (and the submit's answer
//! as it reaches the bench), and the bench reads nothing while the server fans out: on a
//! 2-core machine its reads would take the server's CPU.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt, Interest};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::client::SUBMIT_BODY;
use crate::server::Server;
use crate::stats::Latencies;
use crate::system::{self, CpuMeter, CpuUse};

/// The line that starts every change event on the tasks stream.
const TASKS_EVENT: &[u8] = b"event: tasks-changed";
/// The comment line the server sends on an idle stream.
const KEEPALIVE: &[u8] = b": keepalive";
/// Subscribers that connect at once; keeps the server's accept backlog from overflowing.
const CONNECT_BATCH: usize = 100;
/// The share of the spacing between submits the bench waits before reading a round's events:
/// the fan-out is long over by then (the goal is 10 ms of 100), and an event that comes later
/// is still read, before the next submit, with the time the kernel received it.
const READ_AFTER: f64 = 0.5;
/// The share of the spacing after which a subscriber without its event counts as missed.
const MISSED_AFTER: f64 = 0.9;
/// How long the reader rests between passes over the subscribers still waiting for an event.
const READ_PASS_PAUSE: Duration = Duration::from_millis(1);

/// The outcome of a fan-out run.
#[derive(Debug)]
pub struct FanoutRun {
    /// Subscribers connected.
    pub subscribers: usize,
    /// Submits made.
    pub rounds: usize,
    /// Submit start to the kernel receiving the event on the subscriber's socket.
    pub kernel_latencies: Latencies,
    /// The kernel receiving the submit's 201 to it receiving the event, zero when the event
    /// came first: the commit precedes the 201, so this bounds commit-to-event below.
    pub kernel_after_answer: Latencies,
    /// Per round, submit start to the kernel receiving the last subscriber's event.
    pub last_per_round_kernel: Latencies,
    /// Subscriber-rounds that got no event.
    pub missed: usize,
    /// Events beyond one per subscriber and round.
    pub extra: usize,
    /// Events the kernel gave no receive time for.
    pub unstamped: usize,
    /// Submit start to the kernel receiving its 201.
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

/// Connects `subscribers` streams, then makes `rounds` submits `spacing` apart.
///
/// # Errors
/// When a subscriber cannot connect, a submit fails or the server ends a stream.
pub async fn measure(
    server: &Server,
    subscribers: usize,
    rounds: usize,
    spacing: Duration,
) -> Result<FanoutRun> {
    let mut readers = Vec::with_capacity(subscribers);
    while readers.len() < subscribers {
        let batch = CONNECT_BATCH.min(subscribers - readers.len());
        let mut connecting = JoinSet::new();
        for _ in 0..batch {
            connecting.spawn(subscribe(server.address));
        }
        while let Some(joined) = connecting.join_next().await {
            let subscription = joined.context("a subscriber task panicked")??;
            readers.push(Reader::new(subscription)?);
        }
    }
    // Let the server finish its connection work before the first timed submit.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let mut submitter = Submitter::open(server.address)?;
    let meter = CpuMeter::start(server.pid())?;
    let mut round_starts = Vec::with_capacity(rounds);
    let mut answers = Vec::with_capacity(rounds);
    let mut submit_latencies = Vec::with_capacity(rounds);
    let mut ticks = tokio::time::interval(spacing);
    for _ in 0..rounds {
        ticks.tick().await;
        // Taken just before the request goes out, so each latency is an upper bound on
        // commit-to-event.
        let started = Instant::now();
        let wall = SystemTime::now();
        submitter.send()?;
        round_starts.push(wall);
        tokio::time::sleep_until((started + spacing.mul_f64(READ_AFTER)).into()).await;
        let deadline = started + spacing.mul_f64(MISSED_AFTER);
        let (returned, answered) = tokio::task::spawn_blocking(move || {
            let answered = submitter.read_answer()?;
            read_round(&mut readers, wall, deadline)?;
            Ok::<_, anyhow::Error>(((submitter, readers), answered))
        })
        .await
        .context("the subscribers' reader panicked")??;
        (submitter, readers) = returned;
        answers.push(answered);
        submit_latencies.push(answered.duration_since(wall).unwrap_or_default());
    }
    let cpu = meter.read()?;

    let mut kernel_latencies = Vec::with_capacity(subscribers * rounds);
    let mut kernel_after_answer = Vec::with_capacity(subscribers * rounds);
    let mut last_kernel = vec![Duration::ZERO; rounds];
    let (mut missed, mut extra, mut unstamped) = (0, 0, 0);
    for reader in &readers {
        let stamps: Vec<SystemTime> = reader
            .received
            .events
            .iter()
            .filter_map(|event| event.received_at)
            .collect();
        unstamped += reader.received.events.len() - stamps.len();
        let assigned = assign_to_rounds(&round_starts, &stamps);
        extra += assigned.extra;
        for (round, event) in assigned.per_round.into_iter().enumerate() {
            let Some(event) = event else {
                missed += 1;
                continue;
            };
            let received_at = stamps[event];
            let kernel = received_at
                .duration_since(round_starts[round])
                .unwrap_or_default();
            kernel_latencies.push(kernel);
            kernel_after_answer.push(
                received_at
                    .duration_since(answers[round])
                    .unwrap_or_default(),
            );
            last_kernel[round] = last_kernel[round].max(kernel);
        }
    }
    Ok(FanoutRun {
        subscribers,
        rounds,
        kernel_latencies: Latencies::new(kernel_latencies),
        kernel_after_answer: Latencies::new(kernel_after_answer),
        last_per_round_kernel: Latencies::new(last_kernel),
        missed,
        extra,
        unstamped,
        submit_latencies: Latencies::new(submit_latencies),
        cpu,
    })
}

/// The connection the submits go over, as raw HTTP/1.1 on a blocking socket: the bench sends
/// a submit and reads its 201 only after the fan-out, so the answer wakes nothing in the bench
/// while the server fans out; the kernel's receive time says when the 201 came.
struct Submitter {
    stream: std::net::TcpStream,
    request: Vec<u8>,
    received: Vec<u8>,
}

impl Submitter {
    fn open(address: SocketAddr) -> Result<Submitter> {
        let stream = std::net::TcpStream::connect(address)
            .with_context(|| format!("connecting the submitter to {address}"))?;
        stream
            .set_nodelay(true)
            .context("setting TCP_NODELAY on the submitter's socket")?;
        system::enable_receive_timestamps(stream.as_raw_fd())
            .context("asking for receive times on the submitter's socket")?;
        let mut request = format!(
            "POST /task/ HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n",
            SUBMIT_BODY.len()
        )
        .into_bytes();
        request.extend_from_slice(SUBMIT_BODY);
        Ok(Submitter {
            stream,
            request,
            received: Vec::new(),
        })
    }

    fn send(&mut self) -> Result<()> {
        std::io::Write::write_all(&mut self.stream, &self.request).context("sending a submit")
    }

    /// Reads the answer to the last submit, which must be a 201, and says when the kernel
    /// received its last part.
    fn read_answer(&mut self) -> Result<SystemTime> {
        let mut buffer = [0u8; 4096];
        let mut received_at = None;
        loop {
            if let Some(length) = complete_answer(&self.received)? {
                self.received.drain(..length);
                return received_at.context("the kernel gave no receive time for a 201");
            }
            let (read, stamp) = loop {
                match system::receive_with_timestamp(self.stream.as_raw_fd(), &mut buffer) {
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(READ_PASS_PAUSE);
                    }
                    outcome => break outcome.context("reading a submit's answer")?,
                }
            };
            if read == 0 {
                bail!("the server closed the submitter's connection");
            }
            self.received.extend_from_slice(&buffer[..read]);
            received_at = stamp.or(received_at);
        }
    }
}

/// The length of the whole HTTP answer at the start of `received` once it is all there.
///
/// # Errors
/// When the answer is not a 201 or has no length.
fn complete_answer(received: &[u8]) -> Result<Option<usize>> {
    let Some(head_end) = find(received, b"\r\n\r\n").map(|end| end + 4) else {
        return Ok(None);
    };
    let head = String::from_utf8_lossy(&received[..head_end]);
    if !head.starts_with("HTTP/1.1 201") {
        bail!("a submit did not answer 201: {}", head.trim());
    }
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .context("a submit's 201 had no Content-Length")?;
    Ok((received.len() >= head_end + length).then_some(head_end + length))
}

/// A subscriber's socket taken out of the async runtime, so that an event reaching it wakes
/// nothing in the bench: it is read only when the bench asks.
struct Reader {
    stream: std::net::TcpStream,
    scanner: Scanner,
    received: Received,
}

impl Reader {
    fn new(subscription: Subscription) -> Result<Reader> {
        let Subscription { stream, scanner } = subscription;
        let stream = stream
            .into_std()
            .context("taking a subscriber's socket out of the runtime")?;
        Ok(Reader {
            stream,
            scanner,
            received: Received::default(),
        })
    }

    /// Reads what the socket holds, without waiting.
    fn read_waiting(&mut self, buffer: &mut [u8]) -> Result<()> {
        loop {
            match system::receive_with_timestamp(self.stream.as_raw_fd(), buffer) {
                Ok((0, _)) => bail!("the server ended a subscriber's stream"),
                Ok((read, received_at)) => {
                    let counts = self.scanner.feed(&buffer[..read]);
                    let arrival = Arrival {
                        read_at: Instant::now(),
                        received_at,
                    };
                    let received = &mut self.received;
                    received
                        .events
                        .extend(std::iter::repeat_n(arrival, counts.events));
                    received
                        .keepalives
                        .extend(std::iter::repeat_n(arrival.read_at, counts.keepalives));
                }
                Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Ok(()),
                Err(error) => return Err(error).context("reading a subscriber's stream"),
            }
        }
    }

    /// Whether an event the kernel received at or after `since` has been read.
    fn has_event_since(&self, since: SystemTime) -> bool {
        self.received
            .events
            .last()
            .and_then(|event| event.received_at)
            .is_some_and(|at| at >= since)
    }
}

/// Reads every subscriber until each has an event received since `round_start`, or until
/// `deadline`.
fn read_round(readers: &mut [Reader], round_start: SystemTime, deadline: Instant) -> Result<()> {
    let mut buffer = [0u8; 4096];
    loop {
        let mut waiting = false;
        for reader in readers.iter_mut() {
            if !reader.has_event_since(round_start) {
                reader.read_waiting(&mut buffer)?;
                waiting |= !reader.has_event_since(round_start);
            }
        }
        if !waiting || Instant::now() >= deadline {
            return Ok(());
        }
        std::thread::sleep(READ_PASS_PAUSE);
    }
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
fn assign_to_rounds<T: PartialOrd + Copy>(starts: &[T], events: &[T]) -> Assigned {
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
