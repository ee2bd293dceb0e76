//! The `filters` of `GET /networks` (`docker network ls --filter`, and
//! docker-compose's look-ups by name and label), as dockerd reads them
//! (the prune's are [`super::super::prune`]'s).

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
        let dangling = filters.boolean("dangling")?;
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

#[cfg(test)]
mod tests {
    use super::super::view::tests::user_network as user;
    use super::*;

    fn filters(pairs: &[(&str, &str)]) -> Filters {
        Filters::of(pairs)
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
}
