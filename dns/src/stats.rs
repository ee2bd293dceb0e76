//! The server's counters: what an operator reads to see that a network's
//! DNS works, and that nothing is flooding it.

use std::sync::atomic::{AtomicU64, Ordering};

/// What a server did with the queries it received, since it started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Answered from the network's names (an empty NOERROR included).
    pub answered: u64,
    /// Answered by an upstream resolver, relayed.
    pub forwarded: u64,
    /// REFUSED: not the network's name, and no upstream to ask (an
    /// internal network).
    pub refused: u64,
    /// Answered with an error: FORMERR (does not parse, not one question),
    /// NOTIMP (not a QUERY), BADVERS (EDNS version).
    pub rejected: u64,
    /// Not answered: shorter than a header, or a response (QR=1).
    pub dropped: u64,
    /// Not answered: from outside the network's clients.
    pub not_client: u64,
    /// Not answered: over the bound of TCP connections or of forwards in
    /// flight.
    pub overloaded: u64,
    /// No upstream answered in time (each tried): SERVFAIL.
    pub upstream_failures: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub answered: AtomicU64,
    pub forwarded: AtomicU64,
    pub refused: AtomicU64,
    pub rejected: AtomicU64,
    pub dropped: AtomicU64,
    pub not_client: AtomicU64,
    pub overloaded: AtomicU64,
    pub upstream_failures: AtomicU64,
}

/// One more of `counter`.
pub(crate) fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

impl Counters {
    pub fn snapshot(&self) -> Stats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            answered: get(&self.answered),
            forwarded: get(&self.forwarded),
            refused: get(&self.refused),
            rejected: get(&self.rejected),
            dropped: get(&self.dropped),
            not_client: get(&self.not_client),
            overloaded: get(&self.overloaded),
            upstream_failures: get(&self.upstream_failures),
        }
    }
}
