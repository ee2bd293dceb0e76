//! Husk's SNTP client (RFC 4330; RFC 5905 client mode): keeps the
//! machine's clock true, which TLS certificates and TUF expiry depend on.
//!
//! It owns the packet format (`packet`, `timestamp`: eras and the 2036
//! wrap), one exchange and the checks a client must make of its reply
//! (`query`), choosing among servers (`measure`), the step-or-slew
//! decision (`discipline`), the two clock system calls (`sys`, the only
//! `unsafe`), and what a sync reports (`report`, `sync`).
//!
//! It must not know the agent, its configuration, user-data, DHCP or the
//! API: the agent hands it server addresses and shows its [`Report`].
//! No authentication (NTS): like every SNTP client it trusts the path,
//! guarding only against off-path spoofing (a random nonce).

mod discipline;
mod duration;
mod error;
mod measure;
pub mod packet;
mod query;
mod report;
mod sync;
mod sys;
pub mod timestamp;

#[cfg(test)]
mod fake_server;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use discipline::{
    Clock, Correction, CorrectionKind, DEFAULT_STEP_THRESHOLD, NEGLIGIBLE, apply, decide,
};
pub use duration::SignedDuration;
pub use error::{NtpError, Problem};
pub use measure::{Burst, measure, measure_with};
pub use query::{MAX_ROOT_DELAY, MAX_ROOT_DISPERSION, Sample, check_reply, query};
pub use report::Report;
pub use sync::{Options, sync_once, sync_with};
pub use sys::SystemClock;
