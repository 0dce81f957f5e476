//! Warnings about what clients do wrong (bad frames, oversized messages, hooks failing on
//! their input), rate-limited per shard: a client can make the server refuse it, but it
//! cannot make the server write its log without end. At most
//! [`CLIENT_WARNINGS_PER_S`](crate::limits::CLIENT_WARNINGS_PER_S) a second per shard are
//! written; the rest are counted, and the next one written says how many were dropped.

use std::cell::Cell;
use std::time::Instant;

thread_local! {
    /// (the second the budget is for, warnings written in it, warnings dropped since the
    /// last one written). Shards are threads, so each has its own.
    static BUDGET: Cell<(u64, u32, u64)> = const { Cell::new((0, 0, 0)) };
    static EPOCH: Instant = Instant::now();
}

/// Whether a client warning may be written now; if so, how many were dropped before it.
pub(crate) fn admit_client_warning() -> Option<u64> {
    let second = EPOCH.with(|e| e.elapsed().as_secs());
    BUDGET.with(|b| {
        let (at, used, dropped) = b.get();
        let used = if at == second { used } else { 0 };
        if used < crate::limits::CLIENT_WARNINGS_PER_S {
            b.set((second, used + 1, 0));
            Some(dropped)
        } else {
            b.set((second, used, dropped + 1));
            None
        }
    })
}

/// `tracing::warn!` for client misbehaviour, within the per-shard budget; adds a `dropped`
/// field counting the warnings suppressed before this one.
macro_rules! warn_client {
    ($($arg:tt)*) => {
        if let Some(dropped) = $crate::log::admit_client_warning() {
            tracing::warn!(dropped, $($arg)*);
        }
    };
}
pub(crate) use warn_client;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_warnings_is_cut_to_the_budget() {
        let admitted = (0..1_000).filter(|_| admit_client_warning().is_some()).count();
        // The first second's budget, plus at most one more second's if the loop crossed
        // a second boundary.
        let max = 2 * crate::limits::CLIENT_WARNINGS_PER_S as usize;
        assert!(admitted >= crate::limits::CLIENT_WARNINGS_PER_S as usize && admitted <= max);
    }
}
