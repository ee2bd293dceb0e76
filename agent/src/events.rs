//! The agent's event feed: what happened to its containers, images,
//! networks and volumes, as it happened (`docker events`, compose's
//! `logs -f`). A bounded log of the latest events answers "since", and
//! a broadcast carries the new ones to every subscriber; a subscriber
//! that falls behind loses the events it missed (and is told so), never
//! the agent's memory.
//!
//! This module knows only subjects and actions; Docker's message shape
//! is the Docker API's (`docker::events`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::broadcast;

/// dockerd keeps the last 256 events for `since`; so does the agent.
const RECENT: usize = 256;

/// How far a live subscriber may fall behind before it loses events.
const BACKLOG: usize = 1024;

/// A container, as Docker's id of it is made (`docker::ids`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerRef {
    pub name: String,
    pub created_ms: u64,
}

/// What an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    Container {
        container: ContainerRef,
        image: String,
        labels: BTreeMap<String, String>,
    },
    /// An image, as dockerd names it: `id` its id, `name` the name the
    /// action was about (a tag, an untagged name; the id for a delete);
    /// a pull's both are the reference pulled.
    Image {
        id: String,
        name: String,
    },
    /// A network (its name and creation second make Docker's id of it),
    /// and the container connected or disconnected.
    Network {
        name: String,
        created: u64,
        container: Option<ContainerRef>,
    },
    Volume {
        name: String,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub subject: Subject,
    /// Docker's action names: create, start, die, kill, stop, destroy,
    /// restart, pull, tag, untag, delete, connect, disconnect…
    pub action: String,
    /// What else the action has to say (`exitCode`, `signal`, the
    /// container a network was connected to).
    pub attributes: BTreeMap<String, String>,
    /// Nanoseconds since the epoch.
    pub time_ns: u64,
}

/// The feed, cheap to clone.
#[derive(Clone)]
pub struct Events(Arc<Shared>);

struct Shared {
    /// Sent under `recent`'s lock, so a subscriber's past and live
    /// events neither overlap nor leave a gap.
    sender: broadcast::Sender<Arc<Event>>,
    recent: Mutex<VecDeque<Arc<Event>>>,
}

impl Default for Events {
    fn default() -> Self {
        Self(Arc::new(Shared {
            sender: broadcast::channel(BACKLOG).0,
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }))
    }
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("subscribers", &self.0.sender.receiver_count())
            .finish()
    }
}

/// A subscription: the kept events at or after its start, then the new
/// ones.
pub struct Subscription {
    pub past: Vec<Arc<Event>>,
    pub live: broadcast::Receiver<Arc<Event>>,
}

/// Nanoseconds since the epoch, as events are stamped.
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Events {
    pub fn emit(&self, subject: Subject, action: &str, attributes: BTreeMap<String, String>) {
        let event = Arc::new(Event {
            subject,
            action: action.to_string(),
            attributes,
            time_ns: now_ns(),
        });
        let mut recent = self.lock();
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back(Arc::clone(&event));
        // No subscriber is no error: the event is kept for `since`.
        let _ = self.0.sender.send(event);
    }

    /// Records `action` of an image ([`Subject::Image`]).
    pub fn image(&self, id: &str, name: &str, action: &str) {
        let subject = Subject::Image {
            id: id.to_owned(),
            name: name.to_owned(),
        };
        self.emit(subject, action, BTreeMap::new());
    }

    /// The kept events from `since_ns` on (none without it), and the
    /// live ones after them.
    pub fn subscribe(&self, since_ns: Option<u64>) -> Subscription {
        let recent = self.lock();
        let past = since_ns.map_or_else(Vec::new, |since| {
            recent
                .iter()
                .filter(|e| e.time_ns >= since)
                .cloned()
                .collect()
        });
        Subscription {
            past,
            live: self.0.sender.subscribe(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Event>>> {
        self.0.recent.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn volume(name: &str) -> Subject {
        Subject::Volume { name: name.into() }
    }

    #[tokio::test]
    async fn a_subscriber_gets_the_past_it_asked_for_then_every_new_event_once() {
        let events = Events::default();
        events.emit(volume("old"), "create", BTreeMap::new());
        let since = now_ns();
        events.emit(volume("a"), "create", BTreeMap::new());
        let mut sub = events.subscribe(Some(since));
        let mut no_past = events.subscribe(None);
        events.emit(volume("b"), "create", BTreeMap::new());
        events.emit(volume("b"), "destroy", BTreeMap::new());
        let past: Vec<_> = sub.past.iter().map(|e| e.subject.clone()).collect();
        assert_eq!(past, [volume("a")]);
        assert!(no_past.past.is_empty());
        for live in [&mut sub.live, &mut no_past.live] {
            assert_eq!(live.recv().await.unwrap().action, "create");
            assert_eq!(live.recv().await.unwrap().action, "destroy");
            assert!(live.try_recv().is_err());
        }
    }

    #[test]
    fn only_the_latest_events_are_kept() {
        let events = Events::default();
        for i in 0..RECENT + 10 {
            events.emit(volume(&i.to_string()), "create", BTreeMap::new());
        }
        let past = events.subscribe(Some(0)).past;
        assert_eq!(past.len(), RECENT);
        assert_eq!(past[0].subject, volume("10"));
    }

    #[tokio::test]
    async fn a_subscriber_that_falls_behind_is_told_and_goes_on() {
        let events = Events::default();
        let mut sub = events.subscribe(None);
        for i in 0..BACKLOG + 5 {
            events.emit(volume(&i.to_string()), "create", BTreeMap::new());
        }
        assert!(matches!(
            sub.live.recv().await,
            Err(broadcast::error::RecvError::Lagged(5))
        ));
        assert_eq!(sub.live.recv().await.unwrap().subject, volume("5"));
    }
}
