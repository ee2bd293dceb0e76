//! Docker's container ids and names over Husk's names. Husk knows a
//! container by its name; Docker clients also use a 64-hex id, which is
//! derived here (sha256 of the name and the creation time: stable across
//! agent restarts, new for a new container of the same name). `{id}` in
//! a path is resolved as dockerd does: the full id, then the name (with
//! or without its `/`), then a unique id prefix. Names Docker generates
//! (`adjective_surname`) are made here too.

use sha2::{Digest, Sha256};

use super::error::DockerError;
use crate::containers::{ContainerInfo, Manager};
use axum::http::StatusCode;

/// The container's Docker id.
pub fn id_of(info: &ContainerInfo) -> String {
    id_for(&info.name, info.created_ms)
}

/// The Docker id of the container `name` created at `created_ms`.
pub fn id_for(name: &str, created_ms: u64) -> String {
    let digest = Sha256::digest(format!("{name}/{created_ms}"));
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// The container `{id}` names, by id, name or id prefix.
pub fn resolve(manager: &Manager, reference: &str) -> Result<ContainerInfo, DockerError> {
    let not_found = || {
        DockerError::new(
            StatusCode::NOT_FOUND,
            format!("No such container: {reference}"),
        )
    };
    let name = reference.strip_prefix('/').unwrap_or(reference);
    if name.is_empty() {
        return Err(not_found());
    }
    let containers = manager.list();
    if let Some(found) = containers.iter().find(|c| id_of(c) == name) {
        return Ok(found.clone());
    }
    if let Some(found) = containers.iter().find(|c| c.name == name) {
        return Ok(found.clone());
    }
    let mut by_prefix = containers
        .into_iter()
        .filter(|c| id_of(c).starts_with(name));
    match (by_prefix.next(), by_prefix.next()) {
        (Some(found), None) => Ok(found),
        (Some(_), Some(_)) => Err(DockerError::bad_request(format!(
            "multiple IDs found with provided prefix: {name}"
        ))),
        (None, _) => Err(not_found()),
    }
}

/// The Husk name of the container `{id}` names.
pub fn name_of(manager: &Manager, reference: &str) -> Result<String, DockerError> {
    resolve(manager, reference).map(|c| c.name)
}

const ADJECTIVES: [&str; 24] = [
    "admiring", "bold", "brave", "clever", "dazzling", "eager", "elegant", "festive", "gentle",
    "happy", "jolly", "keen", "lucid", "modest", "nifty", "peaceful", "quirky", "serene", "sharp",
    "stoic", "tender", "vibrant", "wise", "zealous",
];

const SURNAMES: [&str; 24] = [
    "babbage",
    "bohr",
    "curie",
    "darwin",
    "einstein",
    "euler",
    "faraday",
    "franklin",
    "galileo",
    "hopper",
    "hypatia",
    "kepler",
    "lovelace",
    "meitner",
    "newton",
    "noether",
    "pasteur",
    "ramanujan",
    "ritchie",
    "shannon",
    "tesla",
    "thompson",
    "turing",
    "wozniak",
];

/// A Docker-style name (`brave_turing`) no container has, with a number
/// after it if every pair is taken.
pub fn generate_name(manager: &Manager) -> String {
    let taken: std::collections::HashSet<String> =
        manager.list().into_iter().map(|c| c.name).collect();
    let seed = crate::containers::time::now_ms() as usize;
    let pairs = ADJECTIVES.len() * SURNAMES.len();
    let mut round = 0u64;
    loop {
        for step in 0..pairs {
            // A stride coprime with 576 visits every pair once.
            let n = (seed + step * 7) % pairs;
            let mut name = format!(
                "{}_{}",
                ADJECTIVES[n / SURNAMES.len()],
                SURNAMES[n % SURNAMES.len()]
            );
            if round > 0 {
                name.push_str(&round.to_string());
            }
            if !taken.contains(&name) {
                return name;
            }
        }
        round += 1;
    }
}
