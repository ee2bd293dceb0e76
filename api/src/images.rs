//! `/v1/images`: the image store's requests and answers.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `GET` (list).
pub const IMAGES_PATH: &str = "/v1/images";
/// `POST` `{"path": "/abs/archive.tar"}`.
pub const IMAGES_IMPORT_PATH: &str = "/v1/images/import";
/// `POST` [`PullRequest`]: answered with a stream of [`PullEvent`]s
/// (`application/x-ndjson`), the last one `done` or `error`.
pub const IMAGES_PULL_PATH: &str = "/v1/images/pull";
/// `POST`: remove unused layers and blobs.
pub const IMAGES_GC_PATH: &str = "/v1/images/gc";
/// `POST` [`TagRequest`]: answered with the image's [`ImageSummary`].
pub const IMAGES_TAG_PATH: &str = "/v1/images/tag";

/// `GET` / `DELETE` `/v1/images/{reference}` (the reference may contain
/// slashes: `registry.example/team/app:1`).
pub fn image_path(reference: &str) -> String {
    format!("{IMAGES_PATH}/{}", crate::encode_path_segment(reference))
}

/// `POST /v1/images/import`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportRequest {
    /// An OCI layout or `docker save` archive on the machine, absolute.
    pub path: PathBuf,
}

/// `POST /v1/images/tag` (`huskctl image tag SOURCE TARGET`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRequest {
    /// The image: a name, an id or an id prefix.
    pub source: String,
    /// Its new name, `[registry/]repository[:tag]` (no digest).
    pub target: String,
}

/// `POST /v1/images/pull`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullRequest {
    /// `nginx`, `ghcr.io/o/app:1`, `registry.example/app@sha256:…`.
    pub reference: String,
    /// `os/arch[/variant]` of an index to pull; default `linux/amd64`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
}

/// One line of a pull's stream. Digests are `sha256:<hex>`; a layer is
/// named by its blob digest, sizes are bytes as distributed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum PullEvent {
    /// The manifest is known: what will be fetched.
    Resolved {
        reference: String,
        digest: String,
        layers: usize,
        size: u64,
    },
    /// What the admission policy required is proven: `detail` says what
    /// (the key that signed, the trusted tag's digest).
    Verified { rule: String, detail: String },
    /// The store has the layer: not fetched.
    LayerExists { digest: String, size: u64 },
    LayerProgress {
        digest: String,
        done: u64,
        size: u64,
    },
    /// A connection failed; the download resumes where it was.
    LayerRetry {
        digest: String,
        attempt: u32,
        reason: String,
    },
    /// Received, verified and unpacked.
    LayerDone { digest: String, size: u64 },
    /// The image is in the store: the verified manifest digest, the
    /// image as `image ls` shows it, and how many layers were fetched
    /// (0: the store had the image).
    Done {
        digest: String,
        image: ImageSummary,
        #[serde(default)]
        layers_fetched: usize,
    },
    /// The pull failed; the store is as it was.
    Error { message: String },
}

/// What `image ls` shows of an image. Digests are `sha256:<hex>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageSummary {
    /// The config's digest, as Docker's image ids.
    pub id: String,
    pub names: Vec<String>,
    pub manifest: String,
    pub layers: usize,
    /// The layers as distributed (compressed), in bytes.
    pub size: u64,
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
}

/// The answer of import and list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageList {
    pub images: Vec<ImageSummary>,
}

/// `GET /v1/images/{reference}`: the summary and the image's OCI config
/// (as the image carries it; clients show it, the agent interprets it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageDetails {
    #[serde(flatten)]
    pub summary: ImageSummary,
    pub config: serde_json::Value,
}

/// `DELETE /v1/images/{reference}`: one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemoveResponse {
    /// The name removed when the image had other names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untagged: Option<String>,
    /// The image removed (its layers go at the next gc).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<String>,
}

/// `POST /v1/images/gc`: what was freed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcReport {
    pub layers: Vec<String>,
    pub blobs: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_keep_slashes_and_escape_the_rest() {
        assert_eq!(
            image_path("registry.example:5000/team/app:1.2"),
            "/v1/images/registry.example:5000/team/app:1.2"
        );
        assert_eq!(image_path("app@sha256:ab"), "/v1/images/app@sha256:ab");
        assert_eq!(image_path("a b?#%"), "/v1/images/a%20b%3F%23%25");
    }
}
