//! Fan-out of change notices from the coordinator to everyone watching: SSE clients, the
//! desktop shell, the notifier and workers waiting in a long-poll.
//! Separate so the coordinator never knows who listens or how many; it stores nothing and
//! never applies backpressure: a subscriber that falls behind gets `Resync` and reloads.

use std::sync::Arc;

use tokio::sync::{broadcast, watch};

use crate::id::{TaskId, WorkerId};
use crate::state::TaskState;
use crate::wire;

/// How many typed events a subscriber may be behind before it is told to resync.
const EVENT_BACKLOG: usize = 1024;

/// A kind of change that subscribers are nudged about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topic {
    /// Anything about any task (the task list is stale).
    Tasks,
    /// Anything about any worker (the worker list is stale).
    Workers,
    /// A task became claimable or claiming rules changed: wakes long-poll claims only, so
    /// progress updates do not stampede idle workers.
    Queue,
}

impl Topic {
    /// The SSE and desktop event name, for the topics that are visible outside.
    pub fn event_name(self) -> Option<&'static str> {
        match self {
            Topic::Tasks => Some(wire::TASKS_CHANGED),
            Topic::Workers => Some(wire::WORKERS_CHANGED),
            Topic::Queue => None,
        }
    }
}

/// A typed event: ordered, bounded, never merged.
#[derive(Clone, Debug, PartialEq)]
pub enum HubEvent {
    /// A task changed state.
    TaskChanged { id: TaskId, state: TaskState },
    /// A task reached a terminal state.
    TaskFinished(wire::TaskFinished),
    /// A running task reported progress.
    TaskProgress(wire::TaskProgress),
    /// A worker registered, stopped, was restarted, deleted or lost.
    WorkerChanged { id: WorkerId },
    /// The notification settings changed (from a settings page or `PUT /config/notify`).
    NotifySettingsChanged(wire::NotifySettings),
    /// The subscriber fell behind and missed events: reload state from the store.
    Resync,
}

/// The in-process event hub. Cloning is cheap and shares the same hub.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubChannels>,
}

struct HubChannels {
    // A watch channel is exactly a capacity-one slot per subscriber: a send overwrites, a slow
    // subscriber sees one change however many happened, and sending never waits.
    tasks: watch::Sender<u64>,
    workers: watch::Sender<u64>,
    queue: watch::Sender<u64>,
    events: broadcast::Sender<HubEvent>,
}

/// A subscription to the nudges of one topic. Dropping it frees the slot at once.
pub struct Nudges {
    receiver: watch::Receiver<u64>,
}

/// A subscription to the typed events.
pub struct Events {
    receiver: broadcast::Receiver<HubEvent>,
}

impl Hub {
    /// A hub with no subscribers.
    pub fn new() -> Hub {
        Hub {
            inner: Arc::new(HubChannels {
                tasks: watch::Sender::new(0),
                workers: watch::Sender::new(0),
                queue: watch::Sender::new(0),
                events: broadcast::Sender::new(EVENT_BACKLOG),
            }),
        }
    }

    /// Nudges every subscriber of `topic`. Never blocks; costs a counter bump when nobody listens.
    pub fn nudge(&self, topic: Topic) {
        self.sender(topic)
            .send_modify(|generation| *generation = generation.wrapping_add(1));
    }

    /// Sends a typed event to every events subscriber. Never blocks.
    pub fn publish(&self, event: HubEvent) {
        if self.inner.events.receiver_count() > 0 {
            // An error only means every subscriber left in the meantime.
            let _ = self.inner.events.send(event);
        }
    }

    /// Subscribes to the nudges of `topic`, starting from now: only later changes wake it.
    pub fn subscribe(&self, topic: Topic) -> Nudges {
        Nudges {
            receiver: self.sender(topic).subscribe(),
        }
    }

    /// Subscribes to the typed events published from now on.
    pub fn events(&self) -> Events {
        Events {
            receiver: self.inner.events.subscribe(),
        }
    }

    /// How many nudge subscribers `topic` has right now.
    pub fn subscriber_count(&self, topic: Topic) -> usize {
        self.sender(topic).receiver_count()
    }

    /// How many typed-event subscribers there are right now.
    pub fn event_subscriber_count(&self) -> usize {
        self.inner.events.receiver_count()
    }

    fn sender(&self, topic: Topic) -> &watch::Sender<u64> {
        match topic {
            Topic::Tasks => &self.inner.tasks,
            Topic::Workers => &self.inner.workers,
            Topic::Queue => &self.inner.queue,
        }
    }
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Nudges {
    /// Waits for the next change after the last one seen. Returns `false` when the hub is gone.
    pub async fn changed(&mut self) -> bool {
        self.receiver.changed().await.is_ok()
    }
}

impl Events {
    /// The next event, `Resync` when this subscriber fell behind, `None` when the hub is gone.
    pub async fn next(&mut self) -> Option<HubEvent> {
        match self.receiver.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(HubEvent::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_slow_subscriber_gets_one_nudge_not_a_backlog() {
        let hub = Hub::new();
        let mut nudges = hub.subscribe(Topic::Tasks);
        for _ in 0..500 {
            hub.nudge(Topic::Tasks);
        }
        assert!(nudges.changed().await);
        let second =
            tokio::time::timeout(std::time::Duration::from_millis(20), nudges.changed()).await;
        assert!(second.is_err(), "500 nudges must coalesce into one");
    }

    #[tokio::test]
    async fn topics_are_separate() {
        let hub = Hub::new();
        let mut workers = hub.subscribe(Topic::Workers);
        hub.nudge(Topic::Tasks);
        let woke =
            tokio::time::timeout(std::time::Duration::from_millis(20), workers.changed()).await;
        assert!(woke.is_err());
    }

    #[test]
    fn dropping_a_subscription_frees_it_at_once() {
        let hub = Hub::new();
        let nudges = hub.subscribe(Topic::Tasks);
        assert_eq!(hub.subscriber_count(Topic::Tasks), 1);
        drop(nudges);
        assert_eq!(hub.subscriber_count(Topic::Tasks), 0);
    }

    #[tokio::test]
    async fn a_lagging_event_subscriber_is_told_to_resync() {
        let hub = Hub::new();
        let mut events = hub.events();
        let id = WorkerId::generate();
        for _ in 0..EVENT_BACKLOG + 10 {
            hub.publish(HubEvent::WorkerChanged { id });
        }
        assert_eq!(events.next().await, Some(HubEvent::Resync));
        assert_eq!(events.next().await, Some(HubEvent::WorkerChanged { id }));
    }

    #[tokio::test]
    async fn events_arrive_in_order() {
        let hub = Hub::new();
        let mut events = hub.events();
        let first = WorkerId::generate();
        let second = WorkerId::generate();
        hub.publish(HubEvent::WorkerChanged { id: first });
        hub.publish(HubEvent::WorkerChanged { id: second });
        assert_eq!(
            events.next().await,
            Some(HubEvent::WorkerChanged { id: first })
        );
        assert_eq!(
            events.next().await,
            Some(HubEvent::WorkerChanged { id: second })
        );
    }
}
