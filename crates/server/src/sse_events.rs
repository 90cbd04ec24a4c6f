//! `/ui/sse/events`: one stream with everything a client following the coordinator needs, for
//! the desktop app attached to another process's coordinator. Separate from the list streams
//! (`sse`), which stay one event name each for htmx; this one shares their slot cap, guards
//! and shutdown.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderValue;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use blanket_core::hub::{Events, HubEvent, Nudges, Topic};
use blanket_core::wire;
use futures_util::StreamExt;
use futures_util::stream::{self, Stream};

use crate::sse::StreamSlot;
use crate::{ApiError, AppState};

/// `GET /ui/sse/events`: everything a client following the coordinator needs on one
/// connection: the list nudges (`tasks-changed`, `workers-changed`, coalesced by the hub) and
/// the typed events with their JSON (`task-finished`, `task-progress`,
/// `notify-settings-changed`), plus `resync` when the client fell behind and missed some.
/// On connect it sends both nudges and the notification settings in effect, so a client starts
/// from the current state. The desktop app attached to another process's coordinator reads it.
pub async fn events(State(state): State<AppState>) -> Result<Response, ApiError> {
    let slot = state.streams.acquire(state.options.max_streams)?;
    let hub = state.coordinator.hub();
    let followed = Followed {
        tasks: hub.subscribe(Topic::Tasks),
        workers: hub.subscribe(Topic::Workers),
        events: hub.events(),
        _slot: slot,
    };
    let settings = state.coordinator.notify_settings();
    let first = [
        nudge_event(wire::TASKS_CHANGED),
        nudge_event(wire::WORKERS_CHANGED),
        typed_event(wire::NOTIFY_SETTINGS_CHANGED, &settings),
    ];
    let shutdown = state.shutdown.clone();
    let rest = stream::unfold(followed, move |mut followed| {
        let shutdown = shutdown.clone();
        async move {
            let event = tokio::select! {
                () = shutdown.cancelled() => None,
                event = followed.next() => event,
            }?;
            Some((Ok(event), followed))
        }
    });
    let stream = stream::iter(first.map(Ok::<_, Infallible>)).chain(rest);
    Ok(sse_response(stream, state.options.keepalive))
}

/// An SSE answer of `events` with a keep-alive comment every `keepalive`, marked for proxies
/// to pass through as it comes.
pub fn sse_response(
    events: impl Stream<Item = Result<Event, Infallible>> + Send + 'static,
    keepalive: Duration,
) -> Response {
    let mut response = Sse::new(events)
        .keep_alive(KeepAlive::new().interval(keepalive).text("keepalive"))
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The subscriptions of one `/ui/sse/events` stream and its slot.
struct Followed {
    tasks: Nudges,
    workers: Nudges,
    events: Events,
    _slot: StreamSlot,
}

impl Followed {
    /// The next event to send; `None` once the hub has closed.
    async fn next(&mut self) -> Option<Event> {
        loop {
            let event = tokio::select! {
                alive = self.tasks.changed() => alive.then(|| nudge_event(wire::TASKS_CHANGED)),
                alive = self.workers.changed() => alive.then(|| nudge_event(wire::WORKERS_CHANGED)),
                event = self.events.next() => match event? {
                    HubEvent::TaskFinished(finished) => Some(typed_event(wire::TASK_FINISHED, &finished)),
                    HubEvent::TaskProgress(progress) => Some(typed_event(wire::TASK_PROGRESS, &progress)),
                    HubEvent::NotifySettingsChanged(settings) => {
                        Some(typed_event(wire::NOTIFY_SETTINGS_CHANGED, &settings))
                    }
                    HubEvent::Resync => Some(nudge_event(wire::RESYNC)),
                    // The nudges above already cover these.
                    HubEvent::TaskChanged { .. } | HubEvent::WorkerChanged { .. } => continue,
                },
            };
            return event;
        }
    }
}

fn nudge_event(name: &'static str) -> Event {
    Event::default().event(name).data(name)
}

fn typed_event(name: &'static str, payload: &impl serde::Serialize) -> Event {
    Event::default()
        .event(name)
        .json_data(payload)
        .unwrap_or_else(|_| nudge_event(wire::RESYNC))
}
