//! Caps how many VMs one test binary runs at once. Every TCG guest keeps
//! a host CPU busy; running more guests than CPUs only makes every test's
//! deadlines tighter, so extra tests queue here instead (before their
//! deadlines start).

use std::sync::{Condvar, Mutex, OnceLock};

/// Overrides the cap (default: the number of host CPUs).
pub const QEMU_JOBS_ENV: &str = "HUSK_QEMU_JOBS";

struct Slots {
    free: Mutex<usize>,
    released: Condvar,
}

fn slots() -> &'static Slots {
    static SLOTS: OnceLock<Slots> = OnceLock::new();
    SLOTS.get_or_init(|| {
        let jobs = std::env::var(QEMU_JOBS_ENV)
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&n| n > 0)
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
        Slots {
            free: Mutex::new(jobs),
            released: Condvar::new(),
        }
    })
}

/// Held for a VM's lifetime; dropping it lets the next VM start.
#[derive(Debug)]
pub struct Slot(());

impl Slot {
    /// Blocks until fewer than the cap of VMs are running.
    pub fn acquire() -> Slot {
        let slots = slots();
        // A test that panicked while holding the lock cannot have left
        // the count inconsistent (it is one integer), so ignore poison.
        let mut free = slots.free.lock().unwrap_or_else(|e| e.into_inner());
        while *free == 0 {
            free = slots.released.wait(free).unwrap_or_else(|e| e.into_inner());
        }
        *free -= 1;
        Slot(())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let slots = slots();
        *slots.free.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        slots.released.notify_one();
    }
}
