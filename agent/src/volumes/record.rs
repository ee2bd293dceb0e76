//! `volume.json`: what a volume is besides its files (its name, when it
//! was made, its labels, whether it was made for one container).

use std::collections::BTreeMap;
use std::path::Path;

use husk_api::volumes::Volume;
use serde::{Deserialize, Serialize};

use super::{VolumeError, at};

pub const FILE: &str = "volume.json";

/// A record is a few hundred bytes; a larger file is not one of ours.
const MAX_RECORD: u64 = 64 * 1024;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeRecord {
    pub name: String,
    pub created_ms: u64,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub anonymous: bool,
}

impl VolumeRecord {
    pub fn save(&self, path: &Path) -> Result<(), VolumeError> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| VolumeError::Io {
            context: path.display().to_string(),
            source: e.into(),
        })?;
        husk_common::atomic::write_atomic(path, &json, 0o600).map_err(at(path))
    }

    /// The record of volume `name`: one that is missing, too large, not
    /// JSON or of another name is damaged.
    pub fn load(name: &str, path: &Path) -> Result<Self, VolumeError> {
        let damaged = |reason: String| VolumeError::Damaged {
            name: name.into(),
            path: path.to_owned(),
            reason,
        };
        let size = std::fs::metadata(path)
            .map_err(|e| damaged(e.to_string()))?
            .len();
        if size > MAX_RECORD {
            return Err(damaged(format!("{size} bytes, more than a record holds")));
        }
        let bytes = std::fs::read(path).map_err(|e| damaged(e.to_string()))?;
        let record: Self = serde_json::from_slice(&bytes).map_err(|e| damaged(e.to_string()))?;
        if record.name != name {
            return Err(damaged(format!("it names another volume, {}", record.name)));
        }
        Ok(record)
    }

    pub fn to_api(&self, data_dir: &Path, used_by: Vec<String>) -> Volume {
        Volume {
            name: self.name.clone(),
            mountpoint: data_dir.display().to_string(),
            created: crate::containers::time::rfc3339_ms(self.created_ms),
            labels: self.labels.clone(),
            anonymous: self.anonymous,
            used_by,
        }
    }
}
