//! `/v1/volumes`: named volumes (docs/API.md), directories of the data
//! partition that outlive the containers mounting them. A volume in use by
//! any container, running or not, cannot be removed.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET` (list), `POST` (create).
pub const VOLUMES_PATH: &str = "/v1/volumes";

/// `POST /v1/volumes` (`huskctl volume create`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VolumeCreate {
    /// Empty: the agent names it (64 hex digits, as Docker does).
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// One volume, as `GET /v1/volumes/NAME` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    /// Where its files are on the machine.
    pub mountpoint: String,
    /// RFC 3339.
    pub created: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Made for one container (`-v /path`), removed with it on request.
    #[serde(default)]
    pub anonymous: bool,
    /// The containers whose mounts name it.
    #[serde(default)]
    pub used_by: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeList {
    pub volumes: Vec<Volume>,
    /// Volumes whose record cannot be read: each with the reason. Their
    /// files are left alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<String>,
}

/// `DELETE /v1/volumes/NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedVolume {
    pub removed: String,
}

/// `POST /v1/volumes/prune`: every volume no container uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrunedVolumes {
    pub removed: Vec<String>,
}

/// `/v1/volumes/NAME`.
pub fn volume_path(name: &str) -> String {
    format!("{VOLUMES_PATH}/{}", crate::encode_path_segment(name))
}
