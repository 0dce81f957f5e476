//! Time on a shard: sleeping, and [`within`], the one deadline combinator every bounded
//! wait of the engine uses. It arms a timer only when the future it guards does not finish
//! on its first poll, so a hook that completes at once (most do) costs no timer at all.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::Poll;
use std::time::{Duration, Instant};

/// Sleeps for `duration` on the current shard's timer.
pub(crate) async fn sleep(duration: Duration) {
    glommio::timer::sleep(duration).await;
}

/// Runs `fut` until `deadline`: `Some` with its output, or `None` if the deadline came
/// first (the future is then dropped, cancelling whatever it was waiting for).
pub(crate) async fn within<F: Future>(deadline: Instant, fut: F) -> Option<F::Output> {
    let mut fut = pin!(fut);
    let mut timer: Option<glommio::timer::Timer> = None;
    poll_fn(|cx| {
        if let Poll::Ready(out) = fut.as_mut().poll(cx) {
            return Poll::Ready(Some(out));
        }
        let timer = timer.get_or_insert_with(|| {
            glommio::timer::Timer::new(deadline.saturating_duration_since(Instant::now()))
        });
        match Pin::new(timer).poll(cx) {
            Poll::Ready(_) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn within_ms<F: Future>(ms: u64, fut: F) -> Option<F::Output> {
        within(Instant::now() + Duration::from_millis(ms), fut).await
    }

    #[test]
    fn deadlines_cut_off_only_what_is_late() {
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(crate::limits::SHARD_IO_MEMORY)
            .make()
            .expect("executor");
        ex.run(async {
            assert_eq!(within_ms(10, async { 7 }).await, Some(7));
            let started = Instant::now();
            let never = std::future::pending::<()>();
            assert_eq!(within_ms(30, never).await, None);
            assert!(started.elapsed() >= Duration::from_millis(30));
            let slow = async {
                sleep(Duration::from_millis(5)).await;
                1
            };
            assert_eq!(within_ms(1_000, slow).await, Some(1));
        });
    }
}
