//! Reading Docker's request bodies field by field: each field is taken
//! out of its section as it is mapped, and what is left must hold only
//! Docker's zero values (what the CLI sends for a flag not given), so a
//! field Husk cannot honour is refused by name instead of dropped.

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::error::DockerError;

/// Docker's zero values: what the CLI sends for a flag not given.
pub fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.iter().all(is_empty),
        Value::Object(o) => o.values().all(is_empty),
    }
}

/// Removes `key` and reads it; absent and null are None.
pub fn take<T: DeserializeOwned>(
    map: &mut Map<String, Value>,
    section: &str,
    key: &str,
) -> Result<Option<T>, DockerError> {
    match map.remove(key) {
        None | Some(Value::Null) => Ok(None),
        Some(value) => serde_json::from_value(value)
            .map(Some)
            .map_err(|e| DockerError::bad_request(format!("{section}{key}: {e}"))),
    }
}

/// What is left of a section must be empty: a field Husk cannot honour
/// is refused by name, never dropped.
pub fn refuse_rest(map: &Map<String, Value>, section: &str) -> Result<(), DockerError> {
    match map.iter().find(|(_, value)| !is_empty(value)) {
        Some((key, value)) => Err(DockerError::bad_request(format!(
            "{section}{key} is not supported by Husk (asked: {value}); refused rather than ignored"
        ))),
        None => Ok(()),
    }
}
