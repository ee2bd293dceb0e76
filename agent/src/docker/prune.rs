//! What the prunes share (`POST /containers/prune`, `/images/prune`,
//! `/networks/prune`; `docker system prune` calls them all, then
//! `/build/prune`): dockerd's `label`, `label!` and `until` filters; and
//! the build cache prune, which has nothing to remove (Husk builds no
//! images).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::routing::{MethodRouter, post};
use serde_json::json;

use super::Docker;
use super::error::DockerError;
use super::query::Filters;

/// A prune's filters, checked once: `label` (all must hold), `label!`
/// (none may), `until` (made before), and the keys `also` names, which
/// the caller reads.
pub struct PruneFilters {
    pub filters: Filters,
    until: Option<SystemTime>,
}

impl PruneFilters {
    pub fn new(filters: Filters, also: &[&str]) -> Result<Self, DockerError> {
        let mut known = vec!["label", "label!", "until"];
        known.extend_from_slice(also);
        filters.only(&known)?;
        let until = match filters.0.get("until").map(Vec::as_slice) {
            None | Some([]) => None,
            Some([one]) => {
                Some(timestamp(one, SystemTime::now()).map_err(DockerError::bad_request)?)
            }
            Some(_) => {
                return Err(DockerError::bad_request(
                    "invalid filter: until takes one value",
                ));
            }
        };
        Ok(Self { filters, until })
    }

    /// Whether an object with these labels, made at `created`, goes.
    pub fn matches(&self, labels: &BTreeMap<String, String>, created: SystemTime) -> bool {
        let holds = |filter: &String| match filter.split_once('=') {
            Some((key, value)) => labels.get(key).is_some_and(|v| v == value),
            None => labels.contains_key(filter),
        };
        let f = &self.filters.0;
        f.get("label").is_none_or(|all| all.iter().all(holds))
            && f.get("label!").is_none_or(|none| !none.iter().any(holds))
            && self.until.is_none_or(|until| created < until)
    }
}

/// `POST /build/prune`: there is no build cache to remove.
pub fn build_cache() -> MethodRouter<Docker> {
    post(|| async { Json(json!({"CachesDeleted": [], "SpaceReclaimed": 0})) })
}

/// dockerd's `until`: Unix seconds (with a fraction), an RFC 3339 time,
/// or a Go duration before `now` (`24h`, `1h30m`, `90s`).
pub fn timestamp(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let bad = || {
        format!("invalid filter 'until={text}': Unix seconds, an RFC 3339 time or a duration (24h)")
    };
    // Every step checked: a client's number never overflows a time.
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Duration::try_from_secs_f64(secs)
            .ok()
            .and_then(|d| UNIX_EPOCH.checked_add(d))
            .ok_or_else(bad);
    }
    if let Some(secs) = super::time::unix_seconds(text) {
        return u64::try_from(secs)
            .ok()
            .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
            .ok_or_else(bad);
    }
    let ago = go_duration(text).ok_or_else(bad)?;
    now.checked_sub(ago).ok_or_else(bad)
}

/// Go's `time.ParseDuration` for the units a prune uses (h, m, s, ms).
fn go_duration(text: &str) -> Option<Duration> {
    let mut rest = text;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 0.001,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.checked_add(Duration::try_from_secs_f64(number * seconds).ok()?)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        Filters::of(pairs)
    }

    #[test]
    fn prunes_filter_by_label_and_age() {
        let keep: BTreeMap<String, String> = [("keep".to_string(), "yes".to_string())].into();
        let none = BTreeMap::new();
        let (old, young) = (
            UNIX_EPOCH + Duration::from_secs(1_000),
            UNIX_EPOCH + Duration::from_secs(2_000_000_000),
        );
        let prune = |pairs: &[(&str, &str)]| PruneFilters::new(filters(pairs), &[]).unwrap();
        assert!(prune(&[]).matches(&keep, old));
        assert!(!prune(&[("label!", "keep")]).matches(&keep, old));
        assert!(prune(&[("label!", "keep")]).matches(&none, young));
        assert!(prune(&[("label", "keep=yes")]).matches(&keep, old));
        assert!(!prune(&[("label", "keep=no")]).matches(&keep, old));
        assert!(prune(&[("until", "1500")]).matches(&keep, old));
        assert!(!prune(&[("until", "1500")]).matches(&none, young));
        assert!(PruneFilters::new(filters(&[("dangling", "true")]), &[]).is_err());
        assert!(PruneFilters::new(filters(&[("dangling", "true")]), &["dangling"]).is_ok());
    }

    #[test]
    fn until_reads_seconds_times_and_durations() {
        let now = UNIX_EPOCH + Duration::from_secs(100_000);
        assert_eq!(
            timestamp("1700000000", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(
            timestamp("1970-01-02T00:00:00Z", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(86_400)
        );
        assert_eq!(
            timestamp("1h30m", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(100_000 - 5_400)
        );
        assert_eq!(
            timestamp("10s", now).unwrap(),
            UNIX_EPOCH + Duration::from_secs(99_990)
        );
        // What would overflow is refused, never a panic.
        for huge in [
            "1e300",
            "1e19",
            "4000000000000000h4000000000000000h",
            "99999999999999999999h",
        ] {
            assert!(timestamp(huge, now).is_err(), "{huge}");
        }
        assert!(timestamp("yesterday", now).is_err());
        assert!(timestamp("5y", now).is_err());
        assert!(timestamp("", now).is_err());
    }
}
