//! Fault points for the QEMU tests that cut power in the middle of an
//! update: `husk.update_fault=<point>` on the kernel command line makes
//! the agent announce the point on the console and stop there, so the
//! test can kill the machine at exactly that moment. Without it (every
//! real machine) a point does nothing.
//!
//! Points: `download` (half the UKI downloaded), `esp-write` (half the UKI
//! written on the ESP), `rename` (written and synced, before the rename),
//! `renamed` (after the rename, before the directory is synced).
//!
//! Only builds with the `fault-injection` feature (the test images') have
//! them; in a product build the points compile to nothing and the command
//! line word is ignored with a warning.

#[cfg(feature = "fault-injection")]
static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();

/// The console line a test waits for.
pub const MARKER: &str = "update: fault point reached:";

/// Reads the fault point from a kernel command line.
pub fn configure_from_cmdline(cmdline: &str) {
    let point = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("husk.update_fault="))
        .map(str::to_owned);
    #[cfg(feature = "fault-injection")]
    {
        if let Some(point) = &point {
            log::warn!("update: fault injection armed at {point:?} (a test machine)");
        }
        let _ = POINT.set(point);
    }
    #[cfg(not(feature = "fault-injection"))]
    if let Some(point) = point {
        log::warn!("update: husk.update_fault={point} ignored: this build has no fault points");
    }
}

/// Whether `name` is the armed point (announced on the console).
fn reached(name: &str) -> bool {
    #[cfg(feature = "fault-injection")]
    if POINT.get().and_then(Option::as_deref) == Some(name) {
        log::warn!("{MARKER} {name}");
        return true;
    }
    let _ = name;
    false
}

/// Stops here forever when `name` is the armed point.
pub async fn point(name: &str) {
    if reached(name) {
        std::future::pending::<()>().await;
    }
}

/// [`point`] for code on a blocking thread: parks it forever.
pub fn point_blocking(name: &str) {
    if reached(name) {
        loop {
            std::thread::park();
        }
    }
}
