//! `GET /images/get?names=…` and `GET /images/{name}/get` (`docker
//! save`): the images as the store's export writes them (the layout of
//! Docker 25's `docker save`, which every `docker load` reads), each
//! layer the tar its diff_id names, so the images keep their ids. Names
//! are read as dockerd reads them: an id saves the image without tags, a
//! `name:tag` that tag, a repository without a tag every tag of it.
//!
//! What the store refuses (a layer without its record, or one that
//! cannot be given back byte for byte) is refused before the answer
//! begins; after, a failure breaks the transfer (see `streaming`).

use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use husk_store::{ImageId, Store};

use super::error::DockerError;
use super::{Docker, streaming};

/// `GET /images/get`: `names` may repeat.
pub fn route() -> MethodRouter<Docker> {
    get(
        |State(docker): State<Docker>, RawQuery(query): RawQuery| async move {
            let names: Vec<String> =
                url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
                    .filter(|(key, value)| key == "names" && !value.is_empty())
                    .map(|(_, value)| value.into_owned())
                    .collect();
            save(&docker, names).await
        },
    )
}

/// Writes the images `names` name as one archive.
pub async fn save(docker: &Docker, names: Vec<String>) -> Result<Response, DockerError> {
    if names.is_empty() {
        return Err(DockerError::bad_request("docker save: no image name given"));
    }
    let shown = names.join(", ");
    let export = crate::api::with_store_as(&docker.images, move |store| {
        let mut images = Vec::new();
        for name in &names {
            images.extend(resolve(store, name)?);
        }
        store
            .export(&images)
            .map_err(|e| DockerError::from_store(&e))
    })
    .await?;
    let body = streaming::from_blocking(format!("docker save of {shown}"), move |out| {
        export.write_to(out)
    });
    let mut response = body.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-tar"),
    );
    Ok(response)
}

/// The images one name stands for, each with the tags to write.
fn resolve(store: &Store, name: &str) -> Result<Vec<(ImageId, Vec<String>)>, DockerError> {
    let found = store.get(name).map_err(|e| DockerError::from_store(&e));
    let by_id = |image: &husk_store::ImageSummary| {
        let hex = image.id.0.hex();
        let given = name.strip_prefix("sha256:").unwrap_or(name);
        // (as the store finds ids: whatever the case)
        !given.is_empty() && hex.starts_with(&given.to_ascii_lowercase())
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let name_only = !name.contains('@') && !last.contains(':');
    if let Ok(image) = &found
        && by_id(image)
    {
        return Ok(vec![(image.id, Vec::new())]);
    }
    if name_only {
        // dockerd: a repository without a tag is every tag of it.
        let repository =
            husk_store::index::normalise_name(name).map_err(|e| DockerError::from_store(&e))?;
        let repository = repository.strip_suffix(":latest").unwrap_or(&repository);
        let prefix = format!("{repository}:");
        let tagged: Vec<(ImageId, Vec<String>)> = store
            .list()
            .into_iter()
            .filter_map(|image| {
                let tags: Vec<String> = image
                    .names
                    .iter()
                    .filter(|n| n.strip_prefix(&prefix).is_some_and(|t| !t.contains('/')))
                    .cloned()
                    .collect();
                (!tags.is_empty()).then_some((image.id, tags))
            })
            .collect();
        if !tagged.is_empty() {
            return Ok(tagged);
        }
    }
    let image = found?;
    let tag = husk_store::index::normalise_name(name).map_err(|e| DockerError::from_store(&e))?;
    // By digest: the image, without a tag (a digest is no tag).
    let tags = if tag.contains('@') {
        Vec::new()
    } else {
        vec![tag]
    };
    Ok(vec![(image.id, tags)])
}
