//! The clock alarms run on: the system's wall clock (milliseconds since the Unix epoch),
//! or a manual one that tests set and advance, so an alarm an hour away fires at once
//! without sleeping for real.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often shards look at a manual clock for alarms that came due (real time).
pub(crate) const MANUAL_TICK: Duration = Duration::from_millis(5);

/// A clock; cheap to clone (clones of a manual clock share its time).
#[derive(Debug, Clone, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at `now_ms` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(now_ms: u64) -> Clock {
        Clock { manual: Some(Arc::new(AtomicU64::new(now_ms))) }
    }

    /// Milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            Some(t) => t.load(Ordering::Acquire),
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Moves a manual clock to `now_ms` (it may go back); no effect on the system clock.
    pub fn set(&self, now_ms: u64) {
        if let Some(t) = &self.manual {
            t.store(now_ms, Ordering::Release);
        }
    }

    /// Moves a manual clock forward by `ms`; no effect on the system clock.
    pub fn advance(&self, ms: u64) {
        if let Some(t) = &self.manual {
            t.fetch_add(ms, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clocks_move_only_when_told_and_clones_share_them() {
        let c = Clock::manual(1_000);
        let d = c.clone();
        c.advance(500);
        assert_eq!(d.now_ms(), 1_500);
        d.set(10);
        assert_eq!(c.now_ms(), 10);
        let s = Clock::system();
        s.advance(1_000_000_000);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis();
        assert!(u128::from(s.now_ms()).abs_diff(wall) < 60_000);
    }
}
