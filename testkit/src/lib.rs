//! What Husk's test suites build their inputs from: image archives of
//! Debian's busybox-static, made the way the tools users have make them.
//! Tests only; nothing here is in an image.

pub mod elf;
pub mod oci;

pub use oci::{busybox_layer, oci_archive, sha256};
