//! The `filters` of `GET /networks` (`docker network ls --filter`, and
//! docker-compose's look-ups by name and label) and of `POST
//! /networks/prune` (`label`, `label!`, `until`), as dockerd reads them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::super::error::DockerError;
use super::super::query::{Filters, pattern_matches};
use super::view::DockerNetwork;

/// `label=key` or `label=key=value`.
fn label_matches(filter: &str, network: &DockerNetwork) -> bool {
    let labels = network.labels();
    match filter.split_once('=') {
        Some((key, value)) => labels.get(key).and_then(|v| v.as_str()) == Some(value),
        None => labels.contains_key(filter),
    }
}

fn all_labels(filters: &Filters, key: &str, network: &DockerNetwork) -> bool {
    // Every label filter must hold (dockerd's rule for labels).
    filters
        .0
        .get(key)
        .is_none_or(|labels| labels.iter().all(|l| label_matches(l, network)))
}

/// The list's filters, checked once.
pub struct ListFilters {
    filters: Filters,
    dangling: Option<bool>,
}

impl ListFilters {
    pub fn new(filters: Filters) -> Result<Self, DockerError> {
        filters.only(&["dangling", "driver", "id", "label", "name", "scope", "type"])?;
        for kind in filters.0.get("type").into_iter().flatten() {
            if kind != "custom" && kind != "builtin" {
                return Err(DockerError::bad_request(format!(
                    "invalid filter: 'type'='{kind}'"
                )));
            }
        }
        let dangling = match filters.0.get("dangling").map(Vec::as_slice) {
            None | Some([]) => None,
            Some([one]) => Some(match one.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                other => {
                    return Err(DockerError::bad_request(format!(
                        "invalid filter 'dangling={other}'"
                    )));
                }
            }),
            Some(_) => {
                return Err(DockerError::bad_request(
                    "invalid filter: dangling takes one value",
                ));
            }
        };
        Ok(Self { filters, dangling })
    }

    /// Whether the filter asks which containers networks have.
    pub fn wants_containers(&self) -> bool {
        self.dangling.is_some()
    }

    /// `in_use`: some container is on it (only asked for `dangling`).
    pub fn matches(&self, network: &DockerNetwork, in_use: bool) -> bool {
        let f = &self.filters;
        f.any("name", |n| pattern_matches(n, network.name()))
            && f.any("id", |id| network.id().starts_with(id))
            && f.any("driver", |d| d == network.driver())
            && f.any("scope", |s| s == "local")
            && f.any("type", |t| (t == "builtin") == network.builtin())
            && all_labels(f, "label", network)
            // dockerd's dangling networks: user networks nothing is on.
            && self
                .dangling
                .is_none_or(|d| d == (!network.builtin() && !in_use))
    }
}

/// The prune's filters, checked once.
pub struct PruneFilters {
    filters: Filters,
    until: Option<SystemTime>,
}

impl PruneFilters {
    pub fn new(filters: Filters) -> Result<Self, DockerError> {
        filters.only(&["label", "label!", "until"])?;
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

    pub fn matches(&self, network: &DockerNetwork) -> bool {
        let created = UNIX_EPOCH + Duration::from_secs(network.created());
        all_labels(&self.filters, "label", network)
            && self
                .filters
                .0
                .get("label!")
                .is_none_or(|labels| !labels.iter().any(|l| label_matches(l, network)))
            && self.until.is_none_or(|until| created < until)
    }
}

/// dockerd's `until`: Unix seconds (with a fraction), an RFC 3339 time,
/// or a Go duration before `now` (`24h`, `1h30m`, `90s`).
pub fn timestamp(text: &str, now: SystemTime) -> Result<SystemTime, String> {
    let bad = || {
        format!("invalid filter 'until={text}': Unix seconds, an RFC 3339 time or a duration (24h)")
    };
    if let Ok(secs) = text.parse::<f64>()
        && secs.is_finite()
        && secs >= 0.0
    {
        return Ok(UNIX_EPOCH + Duration::from_secs_f64(secs));
    }
    if let Some(secs) = super::super::time::unix_seconds(text) {
        return u64::try_from(secs)
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .map_err(|_| bad());
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
        total += Duration::try_from_secs_f64(number * seconds).ok()?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::user_network as user;
    use super::*;
    use std::collections::BTreeMap;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            map.entry((*k).into()).or_default().push((*v).into());
        }
        Filters(map)
    }

    #[test]
    fn lists_filter_as_dockerd_does() {
        let shop = user("shop_front", 5, &[("com.docker.compose.project", "shop")]);
        let list = |pairs: &[(&str, &str)]| ListFilters::new(filters(pairs)).unwrap();
        assert!(list(&[("name", "shop_front")]).matches(&shop, false));
        assert!(list(&[("name", "front")]).matches(&shop, false));
        assert!(!list(&[("name", "^front")]).matches(&shop, false));
        assert!(list(&[("label", "com.docker.compose.project=shop")]).matches(&shop, false));
        assert!(!list(&[("label", "com.docker.compose.project=other")]).matches(&shop, false));
        assert!(list(&[("label", "com.docker.compose.project")]).matches(&shop, false));
        assert!(list(&[("driver", "bridge")]).matches(&shop, false));
        assert!(!list(&[("driver", "host")]).matches(&shop, false));
        assert!(list(&[("driver", "host")]).matches(&DockerNetwork::Host, false));
        assert!(list(&[("type", "custom")]).matches(&shop, false));
        assert!(!list(&[("type", "builtin")]).matches(&shop, false));
        assert!(list(&[("type", "builtin")]).matches(&DockerNetwork::Null, false));
        assert!(list(&[("id", &shop.id()[..6])]).matches(&shop, false));
        assert!(list(&[("dangling", "true")]).matches(&shop, false));
        assert!(!list(&[("dangling", "true")]).matches(&shop, true));
        assert!(!list(&[("dangling", "true")]).matches(&DockerNetwork::Host, false));
        assert!(ListFilters::new(filters(&[("type", "odd")])).is_err());
        assert!(ListFilters::new(filters(&[("colour", "red")])).is_err());
    }

    #[test]
    fn prunes_filter_by_label_and_age() {
        let old = user("old", 1_000, &[("keep", "yes")]);
        let young = user("young", 2_000_000_000, &[]);
        let prune = |pairs: &[(&str, &str)]| PruneFilters::new(filters(pairs)).unwrap();
        assert!(prune(&[]).matches(&old));
        assert!(!prune(&[("label!", "keep")]).matches(&old));
        assert!(prune(&[("label!", "keep")]).matches(&young));
        assert!(prune(&[("label", "keep=yes")]).matches(&old));
        assert!(prune(&[("until", "1500")]).matches(&old));
        assert!(!prune(&[("until", "1500")]).matches(&young));
        assert!(PruneFilters::new(filters(&[("dangling", "true")])).is_err());
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
        assert!(timestamp("yesterday", now).is_err());
        assert!(timestamp("5y", now).is_err());
        assert!(timestamp("", now).is_err());
    }
}
