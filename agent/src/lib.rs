//! husk-agent: the daemon husk-init supervises on every Husk machine, and
//! the client library huskctl uses. This agent serves its health
//! endpoint; the container runtime and the update agent build on it.

pub mod api;
pub mod client;
pub mod clock;
pub mod config;
pub mod containers;
pub mod http_client;
pub mod logger;
pub mod net;
pub mod runtime;
pub mod server;
pub mod spec;
pub mod store;
pub mod system;
pub mod update;
pub mod userdata;
