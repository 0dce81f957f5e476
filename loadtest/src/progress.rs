//! Progress while a run goes on: process-wide counters that workers bump (once per
//! connection attempt and once per read, not per message), and a thread that prints them to
//! stderr every second, so a long run shows it is alive and how fast it goes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

static CONNECTED: AtomicU64 = AtomicU64::new(0);
static FAILED: AtomicU64 = AtomicU64::new(0);
static MESSAGES: AtomicU64 = AtomicU64::new(0);

/// A connection attempt ended.
pub fn connection(ok: bool) {
    if ok { &CONNECTED } else { &FAILED }.fetch_add(1, Ordering::Relaxed);
}

/// `n` messages (deliveries or round trips) were received.
pub fn messages(n: u64) {
    if n > 0 {
        MESSAGES.fetch_add(n, Ordering::Relaxed);
    }
}

/// Prints progress every second until the returned guard is dropped.
pub fn report(label: String) -> Reporter {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let start = Instant::now();
        let mut last = MESSAGES.load(Ordering::Relaxed);
        while !flag.load(Ordering::Relaxed) {
            for _ in 0..10 {
                std::thread::park_timeout(Duration::from_millis(100));
                if flag.load(Ordering::Relaxed) {
                    return;
                }
            }
            let now = MESSAGES.load(Ordering::Relaxed);
            eprintln!(
                "[{label}] {:>5.1} s  connected {}  failed {}  messages {} ({}/s)",
                start.elapsed().as_secs_f64(),
                CONNECTED.load(Ordering::Relaxed),
                FAILED.load(Ordering::Relaxed),
                now,
                now - last
            );
            last = now;
        }
    });
    Reporter { stop, thread: Some(thread) }
}

/// Stops the progress thread when dropped.
#[derive(Debug)]
pub struct Reporter {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
