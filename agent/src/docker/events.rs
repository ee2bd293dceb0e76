//! `GET /events?since=&until=&filters=` (`docker events`, and what
//! docker-compose's `logs -f` and attached `up` follow): the agent's
//! event feed ([`crate::events`]) as dockerd's messages, one JSON object
//! a line. `since` replays what the agent still keeps (its last 256
//! events, as dockerd); `until` ends the stream at that time; without it
//! the stream goes on until the client goes. Filters as dockerd's:
//! `type`, `event`, `container`, `image`, `network`, `volume` (ids,
//! id prefixes or names) and `label` (every one must hold).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::extract::State;
use axum::response::Response;
use axum::routing::{MethodRouter, get};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

use super::Docker;
use super::containers::QueryMap;
use super::error::DockerError;
use super::ids;
use super::images::stream_response;
use super::networks::network_id;
use super::query::{Filters, Params};
use crate::events::{Event, Subject, Subscription, now_ns};

const FILTERS: [&str; 7] = [
    "type",
    "event",
    "container",
    "image",
    "network",
    "volume",
    "label",
];

pub fn route() -> MethodRouter<Docker> {
    get(|State(docker): State<Docker>, query: QueryMap| async move { events(docker, query) })
}

fn events(docker: Docker, query: QueryMap) -> Result<Response, DockerError> {
    let params = Params::from(query)?;
    let since = params.str("since").map(timestamp).transpose()?;
    let until = params.str("until").map(timestamp).transpose()?;
    // dockerd replays what it keeps up to `until` even without `since`.
    let since = since.or(until.map(|_| 0));
    let filters = params.filters()?;
    filters.only(&FILTERS)?;
    let subscription = docker.manager.events().subscribe(since);
    let (lines, rx) = mpsc::channel::<Vec<u8>>(64);
    tokio::spawn(forward(subscription, filters, until, lines));
    Ok(stream_response("application/json", rx))
}

/// Sends the subscription's matching events until `until`, or until the
/// client goes (noticed even while nothing happens).
async fn forward(
    subscription: Subscription,
    filters: Filters,
    until: Option<u64>,
    lines: mpsc::Sender<Vec<u8>>,
) {
    let Subscription { past, mut live } = subscription;
    // The line of an event the filters let through.
    let send = |event: &Event| {
        matches(&filters, event).then(|| {
            let mut line = message(event).to_string().into_bytes();
            line.push(b'\n');
            line
        })
    };
    for event in &past {
        if until.is_some_and(|u| event.time_ns > u) {
            return;
        }
        if let Some(line) = send(event)
            && lines.send(line).await.is_err()
        {
            return;
        }
    }
    loop {
        let left = until.map(|u| Duration::from_nanos(u.saturating_sub(now_ns())));
        let next = tokio::select! {
            () = lines.closed() => return,
            () = sleep_or_forever(left) => return,
            next = live.recv() => next,
        };
        match next {
            Ok(event) => {
                if until.is_some_and(|u| event.time_ns > u) {
                    return;
                }
                if let Some(line) = send(&event)
                    && lines.send(line).await.is_err()
                {
                    return;
                }
            }
            Err(RecvError::Lagged(missed)) => {
                log::warn!("Docker API: an events client fell behind and missed {missed} event(s)");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

async fn sleep_or_forever(left: Option<Duration>) {
    match left {
        Some(left) => tokio::time::sleep(left).await,
        None => std::future::pending().await,
    }
}

/// The CLI's `since`/`until`: Unix seconds, with up to nine digits of
/// fraction (`1733337000.123456789`).
fn timestamp(text: &str) -> Result<u64, DockerError> {
    let bad = || {
        DockerError::bad_request(format!(
            "invalid timestamp {text:?}: want seconds[.nanoseconds] since the epoch"
        ))
    };
    let (secs, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 9
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || secs.is_empty()
        || !secs.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    let secs: u64 = secs.parse().map_err(|_| bad())?;
    let nanos: u64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<9}").parse().map_err(|_| bad())?
    };
    secs.checked_mul(1_000_000_000)
        .and_then(|ns| ns.checked_add(nanos))
        .ok_or_else(bad)
}

/// The event's type, Docker id and attributes, as dockerd gives them.
fn actor(event: &Event) -> (&'static str, String, BTreeMap<String, String>) {
    let mut attributes = BTreeMap::new();
    let (kind, id) = match &event.subject {
        Subject::Container {
            container,
            image,
            labels,
        } => {
            attributes.extend(labels.clone());
            attributes.insert("image".into(), image.clone());
            attributes.insert("name".into(), container.name.clone());
            (
                "container",
                ids::id_for(&container.name, container.created_ms),
            )
        }
        Subject::Image { id, name } => {
            attributes.insert("name".into(), name.clone());
            ("image", id.clone())
        }
        Subject::Network {
            name,
            created,
            container,
        } => {
            attributes.insert("name".into(), name.clone());
            attributes.insert("type".into(), "bridge".into());
            if let Some(c) = container {
                attributes.insert("container".into(), ids::id_for(&c.name, c.created_ms));
            }
            ("network", network_id(name, *created))
        }
        Subject::Volume { name } => {
            attributes.insert("driver".into(), "local".into());
            ("volume", name.clone())
        }
    };
    attributes.extend(event.attributes.clone());
    (kind, id, attributes)
}

/// dockerd's `events.Message`, with the deprecated `status`, `id` and
/// `from` that older clients (docker-compose 1.29) still read.
fn message(event: &Event) -> Value {
    let (kind, id, attributes) = actor(event);
    let mut message = json!({
        "Type": kind,
        "Action": event.action,
        "Actor": {"ID": id, "Attributes": attributes},
        "scope": "local",
        "time": event.time_ns / 1_000_000_000,
        "timeNano": event.time_ns,
    });
    if matches!(kind, "container" | "image") {
        message["status"] = json!(event.action);
        message["id"] = json!(id);
    }
    if let Subject::Container { image, .. } = &event.subject {
        message["from"] = json!(image);
    }
    message
}

/// dockerd's `FuzzyMatch` of the id and of the name: the value is
/// either, or a prefix of either.
fn names(value: &str, id: &str, name: Option<&String>) -> bool {
    id.starts_with(value) || name.is_some_and(|n| n.starts_with(value))
}

/// `busybox:1.36` → `busybox` (a registry's port is no tag); a digest
/// goes too.
fn strip_tag(reference: &str) -> &str {
    let reference = reference.split('@').next().unwrap_or(reference);
    let last_slash = reference.rfind('/').map_or(0, |i| i + 1);
    match reference[last_slash..].rfind(':') {
        Some(i) => &reference[..last_slash + i],
        None => reference,
    }
}

/// dockerd's `matchImage`: the filter is exactly the id or the image's
/// name (a container's `image`, an image event's `name`), with or
/// without their tags.
fn image_matches(filter: &str, id: &str, name: Option<&String>) -> bool {
    let name = name.map_or("", String::as_str);
    [id, name, strip_tag(id), strip_tag(name)]
        .iter()
        .any(|source| !source.is_empty() && *source == filter)
}

/// dockerd's `events.Filter.Include`: every filter key must hold.
fn matches(filters: &Filters, event: &Event) -> bool {
    let (kind, id, attributes) = actor(event);
    let of_kind = |key: &str| {
        filters.any(key, |v| {
            kind == key && names(v, &id, attributes.get("name"))
        })
    };
    filters.any("type", |v| v == kind)
        && filters.any("event", |v| v == event.action)
        && of_kind("container")
        && of_kind("network")
        && of_kind("volume")
        && filters.any("image", |v| {
            let name = if kind == "image" { "name" } else { "image" };
            image_matches(v, &id, attributes.get(name))
        })
        && filters.0.get("label").is_none_or(|labels| {
            labels.iter().all(|l| match l.split_once('=') {
                Some((k, v)) => attributes.get(k).is_some_and(|a| a == v),
                None => attributes.contains_key(l.as_str()),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ContainerRef;

    fn container(name: &str, action: &str, labels: &[(&str, &str)]) -> Event {
        Event {
            subject: Subject::Container {
                container: ContainerRef {
                    name: name.into(),
                    created_ms: 7,
                },
                image: "busybox".into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect(),
            },
            action: action.into(),
            attributes: [("exitCode".to_string(), "3".to_string())].into(),
            time_ns: 1_733_337_000_123_456_789,
        }
    }

    fn filters(json: &str) -> Filters {
        let query = axum::extract::Query::<std::collections::HashMap<String, String>>(
            [("filters".to_string(), json.to_string())].into(),
        );
        Params::from(Ok(query)).unwrap().filters().unwrap()
    }

    #[test]
    fn a_container_event_has_dockerds_fields_old_and_new() {
        let m = message(&container("web", "die", &[("tier", "front")]));
        let id = ids::id_for("web", 7);
        assert_eq!(m["Type"], "container");
        assert_eq!(m["Action"], "die");
        assert_eq!(m["status"], "die");
        assert_eq!(m["id"], json!(id));
        assert_eq!(m["from"], "busybox");
        assert_eq!(m["Actor"]["ID"], json!(id));
        assert_eq!(m["Actor"]["Attributes"]["name"], "web");
        assert_eq!(m["Actor"]["Attributes"]["image"], "busybox");
        assert_eq!(m["Actor"]["Attributes"]["tier"], "front");
        assert_eq!(m["Actor"]["Attributes"]["exitCode"], "3");
        assert_eq!(m["time"], 1_733_337_000);
        assert_eq!(m["timeNano"], 1_733_337_000_123_456_789_u64);
    }

    #[test]
    fn filters_hold_as_dockerds() {
        let web = container("web", "start", &[("com.docker.compose.project", "app")]);
        let id = ids::id_for("web", 7);
        for (json, want) in [
            (r#"{}"#, true),
            (r#"{"type":["container"]}"#, true),
            (r#"{"type":["image"]}"#, false),
            (r#"{"event":["start","die"]}"#, true),
            (r#"{"event":["die"]}"#, false),
            (r#"{"container":["web"]}"#, true),
            (&format!(r#"{{"container":["{}"]}}"#, &id[..12]), true),
            (r#"{"container":["we"]}"#, true),
            (r#"{"container":["eb"]}"#, false),
            (r#"{"network":["web"]}"#, false),
            (r#"{"image":["busybox"]}"#, true),
            (r#"{"image":["busybox:latest"]}"#, false),
            (r#"{"image":["alpine"]}"#, false),
            // The container's name is not its image.
            (r#"{"image":["web"]}"#, false),
            (r#"{"label":["com.docker.compose.project=app"]}"#, true),
            (r#"{"label":["com.docker.compose.project"]}"#, true),
            (
                r#"{"label":["com.docker.compose.project=app","com.docker.compose.oneoff=False"]}"#,
                false,
            ),
            (
                r#"{"label":{"com.docker.compose.project=other":true}}"#,
                false,
            ),
        ] {
            assert_eq!(matches(&filters(json), &web), want, "{json}");
        }
    }

    #[test]
    fn image_events_match_by_id_or_name_with_or_without_the_tag() {
        let tagged = Event {
            subject: Subject::Image {
                id: "sha256:abc".into(),
                name: "127.0.0.1:5000/team/app:1".into(),
            },
            action: "tag".into(),
            attributes: BTreeMap::new(),
            time_ns: 1,
        };
        let m = message(&tagged);
        assert_eq!(
            (&m["id"], &m["Actor"]["ID"]),
            (&json!("sha256:abc"), &json!("sha256:abc"))
        );
        assert_eq!(
            m["Actor"]["Attributes"]["name"],
            "127.0.0.1:5000/team/app:1"
        );
        for (json, want) in [
            (r#"{"image":["sha256:abc"]}"#, true),
            (r#"{"image":["127.0.0.1:5000/team/app"]}"#, true),
            (r#"{"image":["127.0.0.1:5000/team/app:1"]}"#, true),
            (r#"{"image":["127.0.0.1:5000/team"]}"#, false),
            (r#"{"image":["127.0.0.1"]}"#, false),
        ] {
            assert_eq!(matches(&filters(json), &tagged), want, "{json}");
        }
        assert_eq!(strip_tag("busybox@sha256:00"), "busybox");
        assert_eq!(strip_tag("localhost:5000/app"), "localhost:5000/app");
    }

    #[test]
    fn timestamps_as_the_cli_sends_them() {
        assert_eq!(timestamp("12").unwrap(), 12_000_000_000);
        assert_eq!(timestamp("12.5").unwrap(), 12_500_000_000);
        assert_eq!(timestamp("12.000000007").unwrap(), 12_000_000_007);
        for bad in [
            "",
            "-1",
            "1.2.3",
            "1.0000000001",
            "x",
            "99999999999999999999",
        ] {
            assert!(timestamp(bad).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn the_stream_ends_at_until_and_when_the_client_goes() {
        let events = crate::events::Events::default();
        let until = now_ns() + 300_000_000;
        let (lines, mut rx) = mpsc::channel(8);
        let task = tokio::spawn(forward(
            events.subscribe(None),
            Filters::default(),
            Some(until),
            lines,
        ));
        events.emit(
            Subject::Volume { name: "v".into() },
            "create",
            BTreeMap::new(),
        );
        let line = rx.recv().await.unwrap();
        assert!(
            String::from_utf8(line)
                .unwrap()
                .contains(r#""Action":"create""#)
        );
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        assert!(rx.recv().await.is_none());

        let (lines, rx) = mpsc::channel(8);
        let task = tokio::spawn(forward(
            events.subscribe(None),
            Filters::default(),
            None,
            lines,
        ));
        drop(rx);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
