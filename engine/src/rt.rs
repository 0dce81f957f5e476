//! The thin layer between partyline and glommio: listening sockets with our own backlog,
//! reads into a shard-wide scratch buffer, vectored non-blocking writes, and process
//! limits. Everything glommio-specific that is not a channel or a spawn lives here, so
//! another io_uring runtime could replace it.

use bytes::Bytes;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

pub(crate) use glommio::net::{TcpListener, TcpStream};

/// Binds `count` SO_REUSEPORT listening sockets to `addr` (the first decides the port when
/// `addr` has port 0) with the given backlog; glommio's own `bind` hard-codes 1024.
pub(crate) fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: i32,
) -> io::Result<(Vec<socket2::Socket>, SocketAddr)> {
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(bound),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        socket.set_reuse_address(true)?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&bound.into())?;
        socket.listen(backlog)?;
        if bound.port() == 0 {
            bound = socket.local_addr()?.as_socket().unwrap_or(bound);
        }
        sockets.push(socket);
    }
    Ok((sockets, bound))
}

/// Hands a listening socket to the current executor.
pub(crate) fn adopt_listener(socket: socket2::Socket) -> TcpListener {
    // SAFETY: the descriptor comes from `into_raw_fd`, so it is open, a listening TCP
    // socket, and owned by nobody else from here on.
    unsafe { TcpListener::from_raw_fd(socket.into_raw_fd()) }
}

/// Polls one read of `stream` into `buf` (the shard's scratch buffer, borrowed only for
/// this call). glommio's unbuffered stream tries `recv` at once and otherwise arms a
/// readiness poll that wakes this task; it keeps no buffer of its own.
pub(crate) fn poll_read(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &mut [u8],
) -> Poll<io::Result<usize>> {
    futures_lite::AsyncRead::poll_read(Pin::new(stream), cx, buf)
}

/// Polls one write of `buf`; used only after a non-blocking write found the socket full,
/// so glommio arms a writability poll that wakes this task.
pub(crate) fn poll_write(
    stream: &mut TcpStream,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    futures_lite::AsyncWrite::poll_write(Pin::new(stream), cx, buf)
}

/// The frames queued for one socket, written in batches with one `sendmsg` each. Frames
/// are shared `Bytes`: a broadcast frame sits in many queues at the cost of a refcount.
#[derive(Debug, Default)]
pub(crate) struct OutQueue {
    frames: VecDeque<Bytes>,
    /// Bytes of the first frame already written.
    head_written: usize,
    /// Bytes waiting, for the slow-consumer limit.
    queued: usize,
}

/// What a flush achieved.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flush {
    /// Everything queued is written.
    Done,
    /// The socket is full; wait for writability.
    Blocked,
}

impl OutQueue {
    pub(crate) fn push(&mut self, frame: Bytes) {
        self.queued += frame.len();
        self.frames.push_back(frame);
    }

    /// Puts a frame before everything queued (the `101` before frames `on_connect` sent).
    pub(crate) fn push_front(&mut self, frame: Bytes) {
        debug_assert_eq!(self.head_written, 0);
        self.queued += frame.len();
        self.frames.push_front(frame);
    }

    pub(crate) fn queued(&self) -> usize {
        self.queued
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Drops everything queued and frees the queue's memory.
    pub(crate) fn clear(&mut self) {
        *self = OutQueue::default();
    }

    /// The unwritten part of the first frame.
    pub(crate) fn head(&self) -> Option<&[u8]> {
        self.frames.front().map(|f| &f[self.head_written..])
    }

    /// Marks `n` bytes as written.
    pub(crate) fn advance(&mut self, mut n: usize) {
        self.queued -= n;
        while n > 0 {
            let Some(front) = self.frames.front() else {
                break;
            };
            let left = front.len() - self.head_written;
            if n < left {
                self.head_written += n;
                return;
            }
            n -= left;
            self.head_written = 0;
            self.frames.pop_front();
        }
        if self.frames.is_empty() {
            // Give back the ring's memory: an idle connection holds no queue.
            self.frames = VecDeque::new();
        }
    }

    /// Writes as much as the socket takes without blocking, up to
    /// [`crate::limits::WRITE_BATCH_FRAMES_MAX`] frames per system call.
    pub(crate) fn flush(&mut self, fd: RawFd) -> io::Result<Flush> {
        while !self.frames.is_empty() {
            let mut slices: [IoSlice<'_>; crate::limits::WRITE_BATCH_FRAMES_MAX] =
                [IoSlice::new(&[]); crate::limits::WRITE_BATCH_FRAMES_MAX];
            let mut count = 0;
            for (i, frame) in self.frames.iter().take(slices.len()).enumerate() {
                let start = if i == 0 { self.head_written } else { 0 };
                slices[count] = IoSlice::new(&frame[start..]);
                count += 1;
            }
            match send_vectored(fd, &slices[..count]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.advance(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Flush::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Flush::Done)
    }
}

/// One `sendmsg` of several buffers, never blocking, never raising SIGPIPE.
fn send_vectored(fd: RawFd, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix.
    msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = slices.len() as _;
    // SAFETY: `msg` points at `slices`, which outlive the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// The raw descriptor of a stream, for [`OutQueue::flush`].
pub(crate) fn fd_of(stream: &TcpStream) -> RawFd {
    stream.as_raw_fd()
}

/// Raises the soft open-files limit to the hard limit; returns (soft, hard) afterwards.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`), whatever the
/// system setting and whatever the allocator asks with `madvise`.
pub fn disable_transparent_huge_pages() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes mimalloc hand this thread's free pages back to the OS now (`mi_collect(true)`).
/// Its own purges run lazily, from later allocations on the same thread, and a shard whose
/// sockets have just parked may not allocate again for a long time: without this, 5,000
/// parked sockets kept all their freed memory resident. Harmless when the global allocator
/// is another one (mimalloc's heap is then empty).
pub fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// Whether io_uring works here (Docker's default seccomp profile blocks it, and glommio
/// then fails with a misleading "kernel too old").
pub fn check_io_uring() -> Result<(), String> {
    // io_uring_setup with zero entries: ENOSYS or EPERM mean "blocked", EINVAL or EFAULT
    // mean the call exists.
    // SAFETY: the call fails on its arguments before touching the null pointer's memory.
    let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 0u32, std::ptr::null_mut::<u8>()) };
    if let Ok(fd) = i32::try_from(rc)
        && fd >= 0
    {
        // SAFETY: a successful call returned a descriptor we own.
        unsafe { libc::close(fd) };
        return Ok(());
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) => {
            Err("io_uring is not available: the kernel lacks it (Linux 5.8+ needed)".into())
        }
        Some(libc::EPERM) => Err("io_uring is blocked: a seccomp profile (Docker's default) or \
                                  kernel.io_uring_disabled forbids it; run with \
                                  --security-opt seccomp=unconfined or allow io_uring_*"
            .into()),
        _ => Ok(()),
    }
}
