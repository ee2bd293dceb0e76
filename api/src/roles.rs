//! Who may do what over the remote API: the role a client certificate
//! carries, and the role each endpoint needs. Part of the contract
//! (docs/API.md, "Roles"): the agent enforces it, huskctl's `pki issue`
//! writes the roles into the certificates it makes.
//!
//! A role is an organization (`O=`) of the certificate's subject, as
//! Talos names its roles: `husk:admin`, `husk:operator`, `husk:reader`.
//! A certificate with several gets the highest; one with none gets
//! nothing. Paths nobody listed need `admin`: a new endpoint is closed
//! to the lesser roles until it is placed here.

use std::fmt;

use hyper::Method;

/// Ordered: each role may do everything the ones below it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: health, system, images, containers and their logs and
    /// stats, networks, the update status.
    Reader,
    /// Containers, images and networks: everything but updates.
    Operator,
    /// Everything, the machine's updates and rollbacks included.
    Admin,
}

/// The prefix of the organizations that name roles.
pub const ORGANIZATION_PREFIX: &str = "husk:";

impl Role {
    pub const ALL: [Role; 3] = [Role::Reader, Role::Operator, Role::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Role::Reader => "reader",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    /// The subject organization that grants it (`husk:operator`).
    pub fn organization(self) -> String {
        format!("{ORGANIZATION_PREFIX}{}", self.name())
    }

    /// `admin`, `operator`, `reader`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.name() == name)
    }

    /// The highest role among a certificate's organizations; other
    /// organizations are ignored (a CA shared with other uses may put its
    /// own there).
    pub fn from_organizations<'a>(
        organizations: impl IntoIterator<Item = &'a str>,
    ) -> Option<Self> {
        organizations
            .into_iter()
            .filter_map(|o| o.strip_prefix(ORGANIZATION_PREFIX).and_then(Self::parse))
            .max()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The role a request needs. Reads are for readers; changes to
/// containers, images, networks and volumes for operators; updates, and
/// anything not listed, for admins.
pub fn required(method: &Method, path: &str) -> Role {
    // Decided on the path as the router reads it: axum decodes a
    // wildcard's `%2F` and `%67` before the handler sees them, so
    // `/images/busybox%2Fget` is `docker save`, not a read of an image.
    let decoded = percent_encoding::percent_decode_str(path).decode_utf8_lossy();
    let path = decoded.as_ref();
    let read = matches!(*method, Method::GET | Method::HEAD);
    let under = |prefix: &str| {
        path == prefix
            || path
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.starts_with('/'))
    };
    let workload = [
        "/v1/containers",
        "/v1/images",
        "/v1/networks",
        "/v1/volumes",
    ]
    .into_iter()
    .any(under);
    let status = [crate::HEALTH_PATH, crate::SYSTEM_PATH, "/v1/update"]
        .into_iter()
        .any(|p| path == p);
    if let Some(role) = docker_role(read, path) {
        return role;
    }
    match (read, workload || status) {
        (true, true) => Role::Reader,
        (false, true) if workload => Role::Operator,
        _ => Role::Admin,
    }
}

/// Docker's Engine API (served beside Husk's on the remote listener):
/// `/v1.41/containers/json` or unversioned. Looking is for readers, but
/// not a container's or an image's files (`archive`, `export`, `images/get`):
/// those and every change to containers, images, networks, volumes and
/// execs are for operators; the rest (swarm, plugins, secrets…) admins'.
/// None: not a Docker path.
fn docker_role(read: bool, path: &str) -> Option<Role> {
    let rest = strip_docker_version(path).unwrap_or(path);
    let mut parts = rest.split('/').skip(1);
    let first = parts.next()?;
    let files = rest.ends_with("/archive")
        || rest.ends_with("/export")
        || rest == "/images/get"
        || (first == "images" && rest.ends_with("/get"));
    let role = match first {
        "_ping" | "version" | "info" | "events" | "system" if read => Role::Reader,
        "containers" | "images" | "networks" | "volumes" | "exec" if read && !files => Role::Reader,
        "containers" | "images" | "networks" | "volumes" | "exec" | "build" | "commit" | "auth" => {
            Role::Operator
        }
        // Husk's own paths are not Docker's.
        "v1" => return None,
        _ => Role::Admin,
    };
    Some(role)
}

/// `/v1.41/rest` → `/rest`: Docker's versioned paths.
fn strip_docker_version(path: &str) -> Option<&str> {
    let after = path.strip_prefix("/v")?;
    let end = after.find('/')?;
    let (version, rest) = after.split_at(end);
    let (major, minor) = version.split_once('.')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (digits(major) && digits(minor)).then_some(rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_from_organizations() {
        assert_eq!(
            Role::from_organizations(["husk:reader"]),
            Some(Role::Reader)
        );
        assert_eq!(
            Role::from_organizations(["acme", "husk:reader", "husk:admin"]),
            Some(Role::Admin)
        );
        assert_eq!(Role::from_organizations(["admin", "husk:root"]), None);
        assert_eq!(Role::from_organizations([]), None);
        assert_eq!(Role::Operator.organization(), "husk:operator");
    }

    #[test]
    fn each_endpoint_needs_its_role() {
        let get = |p| required(&Method::GET, p);
        let post = |p| required(&Method::POST, p);
        assert_eq!(get("/v1/health"), Role::Reader);
        assert_eq!(get("/v1/system"), Role::Reader);
        assert_eq!(get("/v1/containers/web/logs"), Role::Reader);
        assert_eq!(get("/v1/update"), Role::Reader);
        assert_eq!(post("/v1/containers"), Role::Operator);
        assert_eq!(post("/v1/containers/web/exec"), Role::Operator);
        // An upgraded exec's state and resize.
        assert_eq!(get("/v1/containers/web/exec/abc"), Role::Reader);
        assert_eq!(post("/v1/containers/web/exec/abc/resize"), Role::Operator);
        assert_eq!(required(&Method::DELETE, "/v1/images/x"), Role::Operator);
        assert_eq!(post("/v1/networks"), Role::Operator);
        assert_eq!(post("/v1/update/apply"), Role::Admin);
        assert_eq!(post("/v1/update/rollback"), Role::Admin);
        // Unlisted, or only looking like a listed prefix: admin.
        assert_eq!(get("/v1/containersx"), Role::Admin);
        assert_eq!(get("/v1/update/secret"), Role::Admin);
        assert_eq!(get("/v2/anything"), Role::Admin);
        assert_eq!(post("/v1/health"), Role::Admin);
    }

    #[test]
    fn docker_endpoints_need_the_same_roles() {
        let get = |p| required(&Method::GET, p);
        let post = |p| required(&Method::POST, p);
        assert_eq!(get("/_ping"), Role::Reader);
        assert_eq!(required(&Method::HEAD, "/_ping"), Role::Reader);
        assert_eq!(get("/v1.41/version"), Role::Reader);
        assert_eq!(get("/v1.41/containers/json"), Role::Reader);
        assert_eq!(get("/v1.43/containers/web/logs"), Role::Reader);
        assert_eq!(get("/v1.41/images/json"), Role::Reader);
        assert_eq!(post("/v1.41/containers/create"), Role::Operator);
        assert_eq!(post("/v1.41/containers/web/attach"), Role::Operator);
        assert_eq!(post("/v1.41/exec/abc/start"), Role::Operator);
        // docker exec: making, starting and resizing one change a
        // container; its inspect (the exit code) is a look.
        assert_eq!(post("/v1.41/containers/web/exec"), Role::Operator);
        assert_eq!(post("/exec/abc/start"), Role::Operator);
        assert_eq!(post("/v1.41/exec/abc/resize"), Role::Operator);
        assert_eq!(get("/v1.41/exec/abc/json"), Role::Reader);
        assert_eq!(get("/exec/abc/json"), Role::Reader);
        assert_eq!(post("/containers/create"), Role::Operator);
        assert_eq!(
            required(&Method::DELETE, "/v1.41/volumes/v"),
            Role::Operator
        );
        // The files of a container or an image are more than a look.
        assert_eq!(get("/v1.41/containers/web/archive"), Role::Operator);
        assert_eq!(get("/v1.41/containers/web/export"), Role::Operator);
        assert_eq!(get("/v1.41/images/get"), Role::Operator);
        assert_eq!(get("/v1.41/images/busybox/get"), Role::Operator);
        // Encoded, as the router decodes it: still the files.
        assert_eq!(get("/v1.41/images/busybox%2Fget"), Role::Operator);
        assert_eq!(get("/v1.41/images/busybox/%67et"), Role::Operator);
        assert_eq!(get("/images/busybox%2fget"), Role::Operator);
        assert_eq!(get("/v1.41/containers/web/%61rchive"), Role::Operator);
        assert_eq!(get("/v1.41/images/busybox%2Fjson"), Role::Reader);
        // Networks: looking is a reader's, every change an operator's.
        assert_eq!(get("/v1.41/networks"), Role::Reader);
        assert_eq!(get("/networks/shop_front"), Role::Reader);
        assert_eq!(post("/v1.41/networks/create"), Role::Operator);
        assert_eq!(post("/v1.25/networks/app/connect"), Role::Operator);
        assert_eq!(post("/v1.41/networks/app/disconnect"), Role::Operator);
        assert_eq!(post("/v1.41/networks/prune"), Role::Operator);
        assert_eq!(
            required(&Method::DELETE, "/v1.41/networks/app"),
            Role::Operator
        );
        assert_eq!(post("/v1.41/swarm/init"), Role::Admin);
        assert_eq!(get("/v1.41/secrets"), Role::Admin);
        assert_eq!(post("/v1.41/plugins/pull"), Role::Admin);
        // Not a version: Husk's paths keep their own rules.
        assert_eq!(post("/v1/update/apply"), Role::Admin);
        assert_eq!(post("/v1x.41/containers/create"), Role::Admin);
        assert_eq!(post("/v1.41/v1/update/apply"), Role::Admin);
    }
}
