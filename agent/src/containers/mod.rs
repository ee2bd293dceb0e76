//! The container manager: containers made from the store's images, run
//! by the embedded runtime under one shim each, with their records on the
//! data partition (see docs/ARCHITECTURE.md, "Containers").
//!
//! - [`manager`]: the table, create and restore after an agent restart;
//! - [`lifecycle`]: start, stop, kill, remove, exits and restart policies;
//! - [`io`]: logs and stats;
//! - [`exec`]: processes run in a running container, plain or with a
//!   terminal or stdin, and the table of Docker's exec instances;
//! - [`shim`]: the per-container process (`husk-agent shim`);
//! - [`logs`], [`layered`], [`stats`], [`restart`], [`record`], [`paths`],
//!   [`console`] (receiving a pty master), [`listener`]: the small parts.

pub mod archive;
mod attach;
pub mod console;
mod copy_up;
mod disk_usage;
pub mod error;
pub mod exec;
pub mod follow;
pub mod info;
pub mod io;
pub mod layered;
mod lifecycle;
pub mod listener;
pub mod logs;
pub mod manager;
mod network;
pub mod paths;
pub mod record;
pub mod restart;
pub mod shim;
pub mod stats;
pub mod storage;
mod sys;
pub mod time;
pub mod usage;
pub mod userns;
mod volumes;

pub use self::attach::Attaching;
pub use self::error::ManagerError;
pub use self::exec::{ExecConfig, ExecView};
pub use self::info::{ContainerInfo, Status};
pub use self::manager::{Manager, ManagerConfig};
pub use self::paths::Layout;
