//! The live list streams `/ui/sse/tasks` and `/ui/sse/workers`: one event at once on connect,
//! then one per (coalesced) change, a comment line when idle, and nothing else.
//! A stream holds a hub subscription and a stream slot; both are freed the moment the client
//! goes, and every stream ends when the server shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use blanket_core::hub::{Nudges, Topic};
use futures_util::stream::{self, Stream};
use tokio::time::Instant;
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
    changes(&state, Topic::Tasks)
}

/// `GET /ui/sse/workers`: `event: workers-changed`.
pub async fn workers_changes(State(state): State<AppState>) -> Result<Response, ApiError> {
    changes(&state, Topic::Workers)
}

fn changes(state: &AppState, topic: Topic) -> Result<Response, ApiError> {
    let slot = state.streams.acquire(state.options.max_streams)?;
    let name = topic.event_name().unwrap_or_default();
    let nudges = state.coordinator.hub().subscribe(topic);
    let stream = change_events(nudges, name, state.shutdown.clone(), slot);
    let mut response = Sse::new(stream)
        .keep_alive(
            KeepAlive::new()
                .interval(state.options.keepalive)
                .text("keepalive"),
        )
        .into_response();
    // Proxies must pass events through as they come.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// The shortest time between two change events of one stream. Changes within it go out as
/// one event at its end, so a burst of submits costs a page a few reloads instead of one per
/// task, while a lone change still goes out at once.
const MIN_EVENT_GAP: Duration = Duration::from_millis(50);

/// The first event at once, then one per (coalesced) change, until the hub or the server
/// goes away.
fn change_events(
    nudges: Nudges,
    name: &'static str,
    shutdown: CancellationToken,
    slot: StreamSlot,
) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(
        (nudges, None, slot),
        move |(mut nudges, last_sent, slot): (Nudges, Option<Instant>, StreamSlot)| {
            let shutdown = shutdown.clone();
            async move {
                if let Some(last_sent) = last_sent {
                    // Changes that arrive during the gap are merged by the hub's slot.
                    let next_change = async {
                        tokio::time::sleep_until(last_sent + MIN_EVENT_GAP).await;
                        nudges.changed().await
                    };
                    let alive = tokio::select! {
                        alive = next_change => alive,
                        () = shutdown.cancelled() => false,
                    };
                    if !alive {
                        return None;
                    }
                }
                Some((
                    Ok(Event::default().event(name).data(name)),
                    (nudges, Some(Instant::now()), slot),
                ))
            }
        },
    )
}
