//! Docker's query strings: booleans as Go's `strconv.ParseBool` and
//! dockerd's `BoolValue` read them (`1`, `true`, `True`…; absent or empty
//! is false), numbers, and the JSON `filters` parameter.

use std::collections::{BTreeMap, HashMap};

use axum::extract::Query;
use axum::extract::rejection::QueryRejection;

use super::error::DockerError;

/// A request's query parameters.
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn from(
        query: Result<Query<HashMap<String, String>>, QueryRejection>,
    ) -> Result<Self, DockerError> {
        let Query(map) = query.map_err(|e| DockerError::bad_request(e.body_text()))?;
        Ok(Self(map))
    }

    pub fn str(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// dockerd's `BoolValue`: anything but empty, `0`, `no`, `false`,
    /// `none` is true.
    pub fn bool(&self, key: &str) -> bool {
        self.str(key).is_some_and(|v| {
            !matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "0" | "no" | "false" | "none"
            )
        })
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, DockerError> {
        self.str(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    DockerError::bad_request(format!("invalid value for {key}: {v:?}"))
                })
            })
            .transpose()
    }

    /// `filters={"name":{"web":true}}` (or the older `{"name":["web"]}`):
    /// each key's values.
    pub fn filters(&self) -> Result<Filters, DockerError> {
        let Some(text) = self.str("filters") else {
            return Ok(Filters::default());
        };
        let bad = |e: String| DockerError::bad_request(format!("invalid filters: {e}"));
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(bad("not an object".into()));
        };
        let mut filters = BTreeMap::new();
        for (key, values) in map {
            let values: Vec<String> = match values {
                serde_json::Value::Object(set) => set
                    .into_iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(v, _)| v)
                    .collect(),
                serde_json::Value::Array(list) => list
                    .into_iter()
                    .map(|v| {
                        v.as_str()
                            .map(str::to_owned)
                            .ok_or_else(|| bad(format!("{key}: not strings")))
                    })
                    .collect::<Result<_, _>>()?,
                _ => return Err(bad(format!("{key}: not a set of values"))),
            };
            filters.insert(key, values);
        }
        Ok(Filters(filters))
    }
}

/// dockerd's `name` filters are regular expressions; the common uses
/// are a plain substring and `^…$` anchors, which this matches.
pub fn pattern_matches(pattern: &str, text: &str) -> bool {
    let (anchored_start, rest) = match pattern.strip_prefix('^') {
        Some(rest) => (true, rest),
        None => (false, pattern),
    };
    let (anchored_end, needle) = match rest.strip_suffix('$') {
        Some(needle) => (true, needle),
        None => (false, rest),
    };
    match (anchored_start, anchored_end) {
        (true, true) => text == needle,
        (true, false) => text.starts_with(needle),
        (false, true) => text.ends_with(needle),
        (false, false) => text.contains(needle),
    }
}

/// `filters`: each key and its values (a key matches when any value does).
#[derive(Debug, Default)]
pub struct Filters(pub BTreeMap<String, Vec<String>>);

impl Filters {
    /// Refuses the keys it does not know, as dockerd does.
    pub fn only(&self, known: &[&str]) -> Result<(), DockerError> {
        match self.0.keys().find(|k| !known.contains(&k.as_str())) {
            Some(key) => Err(DockerError::bad_request(format!(
                "invalid filter '{key}' (Husk knows {})",
                known.join(", ")
            ))),
            None => Ok(()),
        }
    }

    /// True when the key is not filtered on, else whether any of its
    /// values passes `matches`.
    pub fn any(&self, key: &str, matches: impl Fn(&str) -> bool) -> bool {
        match self.0.get(key) {
            None => true,
            Some(values) => values.iter().any(|v| matches(v)),
        }
    }

    /// A filter of one boolean value (`dangling=true`): None when not
    /// given; `true`/`1`, `false`/`0` (any case), else 400.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, DockerError> {
        match self.0.get(key).map(Vec::as_slice) {
            None | Some([]) => Ok(None),
            Some([one]) => match one.to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(Some(true)),
                "false" | "0" => Ok(Some(false)),
                other => Err(DockerError::bad_request(format!(
                    "invalid filter '{key}={other}'"
                ))),
            },
            Some(_) => Err(DockerError::bad_request(format!(
                "invalid filter: {key} takes one value"
            ))),
        }
    }

    /// Filters of `(key, value)` pairs, for tests.
    #[cfg(test)]
    pub fn of(pairs: &[(&str, &str)]) -> Self {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            map.entry((*k).into()).or_default().push((*v).into());
        }
        Self(map)
    }
}
