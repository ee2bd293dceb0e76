//! husk-agent: the daemon husk-init supervises on every Husk machine. It
//! composes the domain crates — husk-store (images), husk-runtime (OCI
//! runtime, `husk-agent oci`), husk-api (the contract it serves) — with
//! what only a running machine has: the API server, the container
//! manager and its shims (over husk-spec, Docker's defaults), the update
//! agent, the network, user-data and the clock.
//!
//! Clients never link this crate: they speak husk-api.

pub mod api;
pub mod bridge;
pub mod clock;
pub mod config;
pub mod containers;
pub mod docker;
pub mod events;
pub mod http_client;
pub mod images;
pub mod logger;
pub mod net;
pub mod nft;
pub mod oom;
pub mod pulls;
pub mod server;
pub mod system;
pub mod timesync;
pub mod update;
pub mod userdata;
pub mod volumes;
