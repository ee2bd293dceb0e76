//! husk-init: PID 1 of a Husk machine.
//!
//! The boot sequence lives in [`boot`]; every other module has one job
//! (see docs/ARCHITECTURE.md for the order and the log contract). PID 1
//! must never exit or panic — the kernel panics when it does — so the
//! lints below forbid the usual ways to panic outside tests, and all
//! `unsafe` is confined to [`sys`].
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::unreachable,
    clippy::todo,
    unsafe_code
)]
#![cfg_attr(
    test,
    allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable
    )
)]

pub mod boot;
pub mod boot_count;
pub mod boot_facts;
pub mod config;
pub mod ctl;
pub mod data_partition;
pub mod event_loop;
pub mod logger;
pub mod modules;
pub use husk_common::mountinfo;
pub mod mounts;
pub mod notify;
pub mod output;
pub mod policy;
pub mod power_button;
pub mod reaper;
pub mod shutdown;
pub mod signals;
pub mod supervisor;
pub mod switch_root;
#[allow(unsafe_code)]
pub mod sys;
