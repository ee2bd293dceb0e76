//! Husk's release format. The OS is one file, the UKI; a release is a UKI
//! plus a line in the release manifest, both TUF targets of the update
//! repository. The image builder writes them, the agent reads them, and
//! both name boot entries the way systemd-boot counts boots.

pub mod entry;
pub mod manifest;
pub mod version;

pub use entry::{BootEntry, Tries};
pub use manifest::{MANIFEST_TARGET, Manifest, Release, hex};
pub use version::{check_version, compare_versions, version_from_os_release};
