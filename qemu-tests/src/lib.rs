//! QEMU harness for Husk: boots real images and asserts on what the
//! machine prints, in the spirit of cloud-hypervisor's test_infra and
//! firecracker's integration tests.
//!
//! - [`TestDir`]: one scratch directory per test (kept with
//!   `HUSK_KEEP_TMP`);
//! - [`GuestImage`] + [`InitConfig`]: the initramfs under test, built by
//!   `husk_image` from [`Artifacts`] and the host [`Kernel`];
//! - [`Vm`]: QEMU itself — serial waits with deadlines
//!   (`HUSK_TIMEOUT_SCALE`), [`Qmp`] control, killed on drop;
//! - `husk-check` (qemu-tests/checker/, a crate of its own): the guest
//!   side of the tests.
//!
//! Environment:
//!
//! | variable | effect |
//! |---|---|
//! | `HUSK_TIMEOUT_SCALE` | multiplies every deadline (float, default 1.0) |
//! | `HUSK_KEEP_TMP` | keep each test's directory (serial.log, qemu.log, qemu.cmdline) |
//! | `HUSK_QEMU_ACCEL` | `tcg` (default) or `kvm` |
//! | `HUSK_QEMU_JOBS` | VMs one test binary runs at once (default: host CPUs) |
//! | `HUSK_QEMU` | QEMU binary (default `qemu-system-x86_64` from `$PATH`) |
//! | `HUSK_ARTIFACTS` | directory of prebuilt static binaries (else built once) |
//! | `HUSK_KERNEL`, `HUSK_MODULES` | kernel image and its modules directory |

pub mod config_drive;
pub mod deadline;
pub mod engines;
pub mod error;
pub mod esp;
pub mod guest_disk;
pub mod guest_image;
pub mod host;
pub mod host_binary;
pub mod http;
pub mod init_config;
pub mod log_lines;
pub mod qmp;
pub mod serial;
mod slots;
pub mod test_dir;
pub mod update_repo;
pub mod vm;
pub mod vm_builder;

pub use config_drive::config_drive;
pub use deadline::scaled;
pub use error::{Error, Result};
pub use guest_disk::{DiskImage, GuestDisk};
pub use guest_image::GuestImage;
pub use host::Kernel;
pub use husk_binaries::Artifacts;
pub use init_config::{InitConfig, Restart, Service};
pub use qmp::Qmp;
pub use serial::{Found, SerialCursor};
pub use slots::QEMU_JOBS_ENV;
pub use test_dir::TestDir;
pub use vm::Vm;
pub use vm_builder::{Accel, Machine, VmBuilder};
