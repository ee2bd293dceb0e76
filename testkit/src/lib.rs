//! What Husk's test suites build their inputs from: image archives of
//! Debian's busybox-static, made the way the tools users have make them,
//! and the registries images are pulled from (Debian's docker-registry,
//! a token server in front of it, and a scripted one that misbehaves).
//! Tests only; nothing here is in an image.

pub mod chronyd;
pub mod cosign;
pub mod dhcp_server;
pub mod dnsmasq;
pub mod elf;
pub mod fake_registry;
pub mod https_files;
pub mod oci;
pub mod registry;
pub mod token_proxy;

pub use oci::{
    WEB_IMAGE, busybox_layer, files_layer, oci_archive, oci_archive_with, sha256, web_image_archive,
};
