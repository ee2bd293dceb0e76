//! husk-image: builds Husk's images, unprivileged and reproducibly.
//!
//! Every writer here produces its format byte by byte (no loop devices,
//! no mounts, no root), and every input that could vary between machines
//! (timestamps, ownership, ordering) is fixed, so equal inputs give equal
//! outputs.

pub mod build;
pub mod config;
pub mod cpio;
pub mod elf;
pub mod esp;
pub mod ext4;
pub mod fat;
pub mod gpt;
pub mod initramfs;
pub mod kernel;
pub mod kmod;
pub mod preload;
pub mod progress;
pub mod qcow2;
pub mod release;
pub mod release_cli;
pub mod sparse;
pub mod tools;
pub mod trust_tag;
pub mod uki;
pub mod vhd;

/// `SOURCE_DATE_EPOCH` from the environment (reproducible-builds.org),
/// or 0: an image's timestamps never come from the clock.
pub fn source_date_epoch() -> Result<u64, String> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value
            .trim()
            .parse()
            .map_err(|_| format!("SOURCE_DATE_EPOCH={value:?} is not a number of seconds")),
        Err(_) => Ok(0),
    }
}
