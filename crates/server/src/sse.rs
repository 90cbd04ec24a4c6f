//! The live list streams `/ui/sse/tasks` and `/ui/sse/workers`: one event at once on connect,
//! then one per (coalesced) change, a comment line when idle, and nothing else.
//! A stream holds a hub subscription and a stream slot; both are freed the moment the client
//! goes, and every stream ends when the server shuts down.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderName, header};
use axum::response::{IntoResponse, Response};
use blanket_core::hub::{Nudges, Topic};
use bytes::Bytes;
use futures_util::FutureExt as _;
use futures_util::stream::{self, Stream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

use crate::{ApiError, AppState};

/// Counts open streams so a flood of clients gets a clear 503 instead of exhausting sockets.
#[derive(Default)]
pub struct StreamSlots {
    open: AtomicUsize,
}

/// One open stream's place; gives it back when dropped.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
}

impl StreamSlots {
    /// Takes a slot, or refuses when `max` streams are open.
    pub fn acquire(self: &Arc<Self>, max: usize) -> Result<StreamSlot, ApiError> {
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (open < max).then_some(open + 1)
            });
        match taken {
            Ok(_) => Ok(StreamSlot {
                slots: Arc::clone(self),
            }),
            Err(_) => Err(ApiError::Busy(format!(
                "too many open live streams ({max}): close other Blanket tabs or clients and try again"
            ))),
        }
    }

    /// How many streams are open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Acquire)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        self.slots.open.fetch_sub(1, Ordering::AcqRel);
    }
}

/// `GET /ui/sse/tasks`: `event: tasks-changed`.
pub async fn tasks_changes(State(state): State<AppState>) -> Result<Response, ApiError> {
    changes(&state, Topic::Tasks, TASKS_EVENT)
}

/// `GET /ui/sse/workers`: `event: workers-changed`.
pub async fn workers_changes(State(state): State<AppState>) -> Result<Response, ApiError> {
    changes(&state, Topic::Workers, WORKERS_EVENT)
}

fn changes(state: &AppState, topic: Topic, event: &'static [u8]) -> Result<Response, ApiError> {
    let slot = state.streams.acquire(state.options.max_streams)?;
    let stream = ChangeStream {
        event: Bytes::from_static(event),
        nudges: state.coordinator.hub().subscribe(topic),
        shutdown: state.shutdown.clone(),
        keepalive: state.options.keepalive,
        _slot: slot,
    };
    Ok((
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
            // Proxies must pass events through as they come.
            (HeaderName::from_static("x-accel-buffering"), "no"),
        ],
        Body::from_stream(stream.events()),
    )
        .into_response())
}

/// Each topic's whole event, encoded once for every stream: a change then costs a stream a
/// wake-up and a write, with nothing formatted, allocated or reference-counted.
const TASKS_EVENT: &[u8] = b"event: tasks-changed\ndata: tasks-changed\n\n";
const WORKERS_EVENT: &[u8] = b"event: workers-changed\ndata: workers-changed\n\n";

/// The comment line an idle stream sends so proxies and browsers keep it open.
const KEEPALIVE: Bytes = Bytes::from_static(b": keepalive\n\n");

/// The shortest time between two change events of one stream. Changes within it go out as
/// one event at its end, so a burst of submits costs a page a few reloads instead of one per
/// task, while a lone change still goes out at once.
const MIN_EVENT_GAP: Duration = Duration::from_millis(50);

/// One open stream: its topic's event, its hub subscription and its slot.
struct ChangeStream {
    event: Bytes,
    nudges: Nudges,
    shutdown: CancellationToken,
    keepalive: Duration,
    _slot: StreamSlot,
}

/// What a stream sends next.
enum Next {
    Change,
    Keepalive,
    End,
}

impl ChangeStream {
    /// The first event at once, then one per (coalesced) change and a keepalive comment every
    /// `keepalive`, until the client, the hub or the server goes away.
    ///
    /// Timers are armed only when needed: the keepalive deadline moves on only when it fires
    /// (a comment soon after an event does no harm), and the gap is waited out only when a
    /// change comes within it, so sparse changes cost no timer work at all.
    fn events(self) -> impl Stream<Item = Result<Bytes, Infallible>> {
        let keepalive_at = Instant::now() + self.keepalive;
        let sleep = Box::pin(tokio::time::sleep_until(keepalive_at));
        stream::unfold(
            (self, sleep, None),
            |(mut stream, mut keepalive, last_sent): (
                ChangeStream,
                Pin<Box<Sleep>>,
                Option<Instant>,
            )| async move {
                let Some(last_sent) = last_sent else {
                    let event = stream.event.clone();
                    return Some((Ok(event), (stream, keepalive, Some(Instant::now()))));
                };
                let next = tokio::select! {
                    alive = stream.nudges.changed() => if alive { Next::Change } else { Next::End },
                    () = keepalive.as_mut() => Next::Keepalive,
                    () = stream.shutdown.cancelled() => Next::End,
                };
                match next {
                    Next::End => None,
                    Next::Keepalive => {
                        let period = stream.keepalive;
                        keepalive.as_mut().reset(Instant::now() + period);
                        Some((Ok(KEEPALIVE), (stream, keepalive, Some(last_sent))))
                    }
                    Next::Change => {
                        let gap_ends = last_sent + MIN_EVENT_GAP;
                        if Instant::now() < gap_ends {
                            tokio::select! {
                                () = tokio::time::sleep_until(gap_ends) => {}
                                () = stream.shutdown.cancelled() => return None,
                            }
                            // The event about to go covers the changes made during the gap.
                            let _ = stream.nudges.changed().now_or_never();
                        }
                        let event = stream.event.clone();
                        Some((Ok(event), (stream, keepalive, Some(Instant::now()))))
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encoded_events_carry_the_wire_names() {
        for (event, topic) in [(TASKS_EVENT, Topic::Tasks), (WORKERS_EVENT, Topic::Workers)] {
            let name = topic.event_name().expect("a visible topic");
            assert_eq!(
                std::str::from_utf8(event).expect("ASCII"),
                format!("event: {name}\ndata: {name}\n\n")
            );
        }
    }
}
