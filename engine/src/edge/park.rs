//! Parking: how an idle WebSocket gives back its task. A socket silent in both directions
//! for `ws_park_after_ms` ends its task and glommio stream (together about 1.3 KB of user
//! memory) and leaves only its [`crate::edge::EdgeConn`] record and its descriptor, which
//! joins the shard's epoll set. Anything that concerns the socket again (bytes arriving, a
//! frame to send, a close) *unparks* it: a fresh task resumes the read loop. The room never
//! notices; this is the edge-side half of PartyKit's hibernation.
//!
//! glommio cannot wait on an epoll descriptor itself (its streams `recv` first, which an
//! epoll descriptor refuses), so one `epoll_wait` runs on the shard's blocking thread
//! (`spawn_blocking`, pinned like the shard) and hands the ready connections back; the
//! epoll registrations live in the kernel, not in this process's heap.

use std::cell::RefCell;
use std::future::poll_fn;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::task::{Poll, Waker};

/// Ready events taken from the kernel per `epoll_wait`.
const EVENTS_PER_WAIT: usize = 256;

/// [`EVENTS_PER_WAIT`] as `epoll_wait` takes it.
const EVENTS_PER_WAIT_C: i32 = 256;
const _: () = assert!(EVENTS_PER_WAIT_C as usize == EVENTS_PER_WAIT);

/// The epoll token of the stop descriptor (connection sequence numbers start at 1).
const STOP_TOKEN: u64 = u64::MAX;

/// One shard's parked sockets: the epoll set they wait in and the queue of those to resume.
pub(crate) struct Parking {
    epoll: OwnedFd,
    /// An eventfd in the epoll set; written once to end the waiter at shutdown.
    stop: OwnedFd,
    /// Sequence numbers of connections to resume, in the order asked.
    queue: RefCell<Vec<u64>>,
    waker: RefCell<Option<Waker>>,
}

impl Parking {
    pub fn new() -> io::Result<Self> {
        // SAFETY: plain system calls; each result is checked before it is used as a descriptor.
        let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if epoll < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `epoll` is a new descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(epoll) };
        // SAFETY: as above.
        let stop = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if stop < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `stop` is a new descriptor that nothing else owns.
        let stop = unsafe { OwnedFd::from_raw_fd(stop) };
        let parking =
            Parking { epoll, stop, queue: RefCell::new(Vec::new()), waker: RefCell::new(None) };
        parking.ctl(
            libc::EPOLL_CTL_ADD,
            parking.stop.as_raw_fd(),
            libc::EPOLLIN as u32,
            STOP_TOKEN,
        )?;
        Ok(parking)
    }

    fn ctl(&self, op: i32, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` lives across the call; the kernel copies it.
        if unsafe { libc::epoll_ctl(self.epoll.as_raw_fd(), op, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Watches `fd` for the connection `seq`: once readable (or hung up), it is queued to
    /// resume. One-shot: each registration reports once.
    pub fn watch(&self, fd: RawFd, seq: u64) -> io::Result<()> {
        let events = (libc::EPOLLIN | libc::EPOLLRDHUP | libc::EPOLLONESHOT) as u32;
        self.ctl(libc::EPOLL_CTL_ADD, fd, events, seq)
    }

    /// Stops watching `fd` (before a task takes it back).
    pub fn unwatch(&self, fd: RawFd) {
        if let Err(e) = self.ctl(libc::EPOLL_CTL_DEL, fd, 0, 0) {
            tracing::warn!(fd, error = %e, "epoll_ctl(DEL) of a parked socket failed");
        }
    }

    /// Queues connection `seq` to be resumed by the shard's unparker task.
    pub fn request_resume(&self, seq: u64) {
        let mut queue = self.queue.borrow_mut();
        queue.push(seq);
        if queue.len() == 1
            && let Some(w) = self.waker.borrow().as_ref()
        {
            w.wake_by_ref();
        }
    }

    /// The connections queued to resume, waiting until there is at least one.
    pub async fn next_batch(&self) -> Vec<u64> {
        poll_fn(|cx| {
            let mut queue = self.queue.borrow_mut();
            if queue.is_empty() {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            } else {
                Poll::Ready(std::mem::take(&mut *queue))
            }
        })
        .await
    }

    /// Waits (on the shard's blocking thread) for parked sockets to become ready and queues
    /// them; returns after [`Parking::stop`].
    pub async fn run_waiter(&self) {
        let epoll = self.epoll.as_raw_fd();
        loop {
            let ready = glommio::executor().spawn_blocking(move || wait_ready(epoll)).await;
            let ready = match ready {
                Ok(ready) => ready,
                Err(e) => {
                    // Only EBADF/EINVAL could get here, and neither can happen while the
                    // shard owns the descriptor; parked sockets then wake on writes alone.
                    tracing::error!(error = %e, "epoll_wait failed; parked sockets stay parked");
                    return;
                }
            };
            for token in ready {
                if token == STOP_TOKEN {
                    return;
                }
                self.request_resume(token);
            }
        }
    }

    /// Ends [`Parking::run_waiter`].
    pub fn stop(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local to a descriptor we own.
        let _ = unsafe {
            libc::write(self.stop.as_raw_fd(), (&raw const one).cast(), std::mem::size_of::<u64>())
        };
    }
}

/// One blocking `epoll_wait`; the tokens of the ready descriptors.
fn wait_ready(epoll: RawFd) -> io::Result<Vec<u64>> {
    let mut events = [libc::epoll_event { events: 0, u64: 0 }; EVENTS_PER_WAIT];
    loop {
        // SAFETY: the kernel writes at most EVENTS_PER_WAIT events into `events`.
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), EVENTS_PER_WAIT_C, -1) };
        if n >= 0 {
            let n = usize::try_from(n).unwrap_or(0);
            return Ok(events[..n].iter().map(|e| e.u64).collect());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A second descriptor for `fd`'s socket, so the glommio stream holding `fd` can be
/// dropped while the socket lives on.
pub(crate) fn dup(fd: RawFd) -> io::Result<RawFd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor we hold; the result is checked.
    let new = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if new < 0 { Err(io::Error::last_os_error()) } else { Ok(new) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_reports_a_readable_socket_once() {
        let parking = Parking::new().unwrap();
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        parking.watch(a.as_raw_fd(), 7).unwrap();
        std::io::Write::write_all(&mut &b, b"x").unwrap();
        let ready = wait_ready(parking.epoll.as_raw_fd()).unwrap();
        assert_eq!(ready, vec![7]);
        // One-shot: still readable, but not reported again until watched again.
        parking.stop();
        assert_eq!(wait_ready(parking.epoll.as_raw_fd()).unwrap(), vec![STOP_TOKEN]);
        parking.unwatch(a.as_raw_fd());
        parking.watch(a.as_raw_fd(), 8).unwrap();
        let mut ready = wait_ready(parking.epoll.as_raw_fd()).unwrap();
        ready.sort_unstable();
        assert_eq!(ready, vec![8, STOP_TOKEN]);
    }
}
