//! Fuzz targets for the parsers that read what Husk does not control:
//! one module per target, each with a `run(&[u8])` that must never panic
//! (nor abort, nor hang) whatever the bytes. The libFuzzer binaries in
//! `fuzz_targets/` call them, coverage-guided (`cargo xtask fuzz`); the
//! tests in `tests/` replay every seed (`corpus/<target>/`) and every
//! input that once crashed a target (`regressions/<target>/`) through the
//! same functions, on every `cargo test`.
//!
//! | target | what it feeds |
//! |---|---|
//! | [`tar_unpack`] | the store's layer unpacker, into a fresh directory |
//! | [`image_manifest`] | an image archive to the store's import: `manifest.json`, `oci-layout`, `index.json`, manifests, configs |
//! | [`init_toml`] | husk-init's init.toml parser |
//! | [`agent_toml`] | the agent's agent.toml parser and its checks |
//! | [`user_data`] | the user-data document, also through `husk.userdata=` base64 |
//! | [`dhcp_reply`] | a DHCP reply as the agent's client reads it: reply, lease |
//! | [`dns_query`] | a datagram on a container network's DNS server (husk-dns), and its answer |
//! | [`gpt_read`] | a disk's GPT as husk-init reads and grows it |
//! | [`registry_answers`] | a registry's manifest answers (indexes, platforms), auth challenges, token and error bodies; references |
//! | [`api_bodies`] | the API's request bodies and queries, through the agent's routes, and the container spec built from them |
//!
//! Tests only: nothing here is in an image.

pub mod agent_toml;
pub mod api_bodies;
pub mod dhcp_reply;
pub mod dns_query;
pub mod gpt_read;
pub mod image_manifest;
pub mod init_toml;
pub mod registry_answers;
mod scratch;
mod spec;
pub mod tar_unpack;
pub mod user_data;

/// A target's entry point: one input, which must not make it panic.
pub type Run = fn(&[u8]);

/// Every target by name, as its binary and its corpus directory are
/// named.
pub const TARGETS: [(&str, Run); 10] = [
    ("tar_unpack", tar_unpack::run),
    ("image_manifest", image_manifest::run),
    ("init_toml", init_toml::run),
    ("agent_toml", agent_toml::run),
    ("user_data", user_data::run),
    ("dhcp_reply", dhcp_reply::run),
    ("dns_query", dns_query::run),
    ("gpt_read", gpt_read::run),
    ("api_bodies", api_bodies::run),
    ("registry_answers", registry_answers::run),
];
