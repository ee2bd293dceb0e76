//! The registry client: pulling images over the OCI distribution
//! protocol (and Docker Registry v2) into the image store.
//!
//! - [`reference`]: `nginx` → `docker.io/library/nginx:latest`, as Docker.
//! - [`config`]: insecure registries, extra CAs, mirrors, credentials
//!   (`docker login`'s `auths` format).
//! - [`http`]: HTTP/1.1 over rustls with Mozilla's roots, deadlines,
//!   redirects; also what the update agent fetches its repository with.
//! - [`client`]: endpoints (mirrors first), Basic and bearer-token auth.
//! - [`manifest`]: manifests and indexes, verified, resolved to a platform.
//! - [`pull`]: only the missing layers, in parallel, streamed through
//!   verification into the store's unpacker, resumed with `Range`.
//!
//! It owns the protocol and nothing else: it knows no API types, no
//! containers and no runtime; what it fetches is the store's to check
//! and keep (the store knows no HTTP). Async (tokio): the agent runs it
//! on its runtime, husk-image on one of its own.

pub mod auth;
mod blob_reader;
pub mod client;
pub mod config;
pub mod error;
pub mod http;
pub mod manifest;
pub mod platform;
pub mod policy;

pub mod progress;
pub mod pull;
pub mod reference;
pub mod trust;
pub mod tuf;

pub use self::client::Registries;
pub use self::config::RegistryConfig;
pub use self::error::RegistryError;
pub use self::platform::Platform;
pub use self::progress::{Progress, ProgressFn};
pub use self::pull::{PullOptions, Pulled, pull};
pub use self::reference::Reference;
