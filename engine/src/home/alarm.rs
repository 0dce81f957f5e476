//! Alarms on their home shards. Each room has at most one alarm, kept in storage (so it
//! survives restarts); a shard holds in memory only the alarms due within the next
//! [`HORIZON_MS`] for rooms it is home to, ordered by time, and one timer task per shard
//! fires them. Shard 0 polls the store every [`POLL_MS`] for alarms entering the horizon
//! (at start: every alarm already due, such as those that came due while the server was
//! down) and sends each to its home. `set_alarm` schedules directly when the time is near.
//!
//! A scheduled entry is only a reminder: when it fires, the room reads its stored alarm
//! and runs `on_alarm` only if one is due then; alarms moved or deleted meanwhile leave
//! harmless stale entries. The stored alarm is deleted after `on_alarm` succeeds (unless
//! the handler set or deleted it), so a crash mid-handler runs it again after restart: at
//! least once, as Durable Objects do. A failing handler is retried with exponential
//! backoff ([`RETRY_BASE_MS`], doubling, [`RETRIES_MAX`] times), then the alarm is dropped.

use super::Home;
use crate::route::{RoomKey, ToHome};
use futures_lite::FutureExt;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use std::cell::RefCell;
use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

/// How far ahead shards hold alarms in memory.
pub const HORIZON_MS: u64 = 30_000;

/// How often shard 0 asks the store for alarms entering the horizon.
pub const POLL_MS: u64 = 10_000;

/// Alarms one page of a poll takes from the store.
pub const POLL_PAGE_MAX: usize = 4_096;

/// Pages one poll reads at most; when there were more, the next poll comes after
/// [`POLL_FULL_MS`] (due alarms are deleted as they fire, making room for later ones).
pub const POLL_PAGES_MAX: usize = 64;

/// Poll interval while polls come back full or fail.
pub const POLL_FULL_MS: u64 = 1_000;

/// How long an alarm whose room's mailbox is full waits before it is tried again (the
/// timer never waits on one room).
pub const MAILBOX_FULL_RETRY_MS: u64 = 100;

/// Most alarms one shard holds in memory; beyond it, far ones wait for a later poll.
pub const SCHEDULED_MAX: usize = 262_144;

/// First retry delay of a failed `on_alarm`; doubled each time.
pub const RETRY_BASE_MS: u64 = 2_000;

/// Retries of a failing `on_alarm` before its alarm is dropped.
pub const RETRIES_MAX: u8 = 6;

/// Longest the timer sleeps on the system clock before looking again (wall-clock jumps).
const TIMER_MAX_SLEEP: Duration = Duration::from_secs(1);

/// One shard's scheduled alarms.
#[derive(Default)]
pub(crate) struct Alarms {
    queue: RefCell<BTreeSet<(u64, RoomKey)>>,
    /// Wakes the timer task when an alarm earlier than all others is scheduled.
    wake: RefCell<Option<LocalSender<()>>>,
}

impl Alarms {
    /// Remembers that `room` (homed on this shard) has an alarm at `time_ms`, if that is
    /// within the horizon of `now_ms`; a later poll brings farther ones.
    pub fn schedule(&self, now_ms: u64, room: RoomKey, time_ms: u64) {
        if time_ms > now_ms.saturating_add(HORIZON_MS) {
            return;
        }
        let mut queue = self.queue.borrow_mut();
        if queue.len() >= SCHEDULED_MAX {
            tracing::warn!("alarm schedule full; a later poll brings the rest");
            return;
        }
        let earliest = queue.first().is_none_or(|(first, _)| time_ms < *first);
        queue.insert((time_ms, room));
        if earliest && let Some(wake) = &*self.wake.borrow() {
            let _ = wake.try_send(());
        }
    }

    /// Removes and returns the alarms due at `now_ms`.
    fn take_due(&self, now_ms: u64) -> Vec<(u64, RoomKey)> {
        let mut queue = self.queue.borrow_mut();
        let mut due = Vec::new();
        while queue.first().is_some_and(|(t, _)| *t <= now_ms) {
            due.extend(queue.pop_first());
        }
        due
    }

    fn next(&self) -> Option<u64> {
        self.queue.borrow().first().map(|(t, _)| *t)
    }
}

/// Starts the shard's alarm tasks: the timer, and on shard 0 the store poller.
pub(crate) fn start(home: &Rc<Home>) {
    let (tx, rx) = local_channel::new_bounded(1);
    *home.alarms.wake.borrow_mut() = Some(tx);
    glommio::spawn_local(timer(home.clone(), rx)).detach();
    if home.here().shard == 0 {
        glommio::spawn_local(poller(home.clone())).detach();
    }
}

/// Fires due alarms: each goes to its room (loaded for it if need be) as an event.
async fn timer(home: Rc<Home>, wake: LocalReceiver<()>) {
    let clock = home.runtime.clock.clone();
    while !home.is_stopping() {
        let now = clock.now_ms();
        for (time, room) in home.alarms.take_due(now) {
            home.fire_alarm(room, time);
        }
        let mut sleep = match home.alarms.next() {
            Some(t) => Duration::from_millis(t.saturating_sub(now)),
            None => TIMER_MAX_SLEEP,
        };
        sleep =
            sleep.min(if clock.is_manual() { crate::clock::MANUAL_TICK } else { TIMER_MAX_SLEEP });
        async {
            glommio::timer::sleep(sleep).await;
        }
        .or(async {
            let _ = wake.recv().await;
        })
        .await;
    }
}

/// One poll: pages through the alarms due by `until` and sends each to its home. Returns
/// how long to wait before the next.
async fn poll(home: &Rc<Home>, until: u64) -> u64 {
    let (mut last, mut orphans) = (None, 0usize);
    let router = &home.runtime.router;
    for _ in 0..POLL_PAGES_MAX {
        let page = match home.runtime.store.due_alarms(until, last.as_ref(), POLL_PAGE_MAX).await {
            Ok(page) => page,
            Err(e) => {
                tracing::error!(error = %e, "cannot read due alarms; retrying");
                return POLL_FULL_MS;
            }
        };
        let full = page.len() >= POLL_PAGE_MAX;
        for alarm in &page {
            if !home.has_party(&alarm.party) {
                // Its party is not registered (removed from this server?): left stored,
                // and skipped by the cursor, so it never holds up other alarms.
                orphans += 1;
                continue;
            }
            let room =
                RoomKey { party: alarm.party.as_str().into(), room: alarm.room.as_str().into() };
            router.send_home(ToHome::Alarm { room, time: alarm.time }).await;
        }
        if !full {
            if orphans > 0 {
                tracing::warn!(orphans, "alarms of unregistered parties are due; left stored");
            }
            return POLL_MS;
        }
        last = page.into_iter().last();
    }
    POLL_FULL_MS
}

/// Shard 0: brings alarms entering the horizon from the store to their home shards.
async fn poller(home: Rc<Home>) {
    let clock = home.runtime.clock.clone();
    let mut next_poll = 0;
    while !home.is_stopping() {
        let now = clock.now_ms();
        if now >= next_poll {
            next_poll = now + poll(&home, now.saturating_add(HORIZON_MS)).await;
        }
        let wait = if clock.is_manual() {
            crate::clock::MANUAL_TICK
        } else {
            Duration::from_millis(next_poll.saturating_sub(clock.now_ms()).clamp(1, POLL_MS))
        };
        glommio::timer::sleep(wait).await;
    }
}
