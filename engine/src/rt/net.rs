//! Sockets: listening sockets bound with our own backlog (and refused when another process
//! already listens on the address), reads into a caller's buffer through glommio's
//! readiness, and vectored non-blocking writes straight to the descriptor.

use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

pub(crate) use glommio::net::{TcpListener, TcpStream};

/// Binds `count` SO_REUSEPORT listening sockets to `addr` (the first decides the port when
/// `addr` has port 0) with the given backlog; glommio's own `bind` hard-codes 1024.
///
/// SO_REUSEPORT lets the shards share the address, but it would equally let a second
/// process join it, and the kernel would then split connections (and so rooms) between
/// the two. Unless `shared` says processes are meant to share the port, a probe socket
/// without SO_REUSEPORT is bound first: it fails if anyone listens there, and the error
/// names the address.
pub(crate) fn bind_listeners(
    addr: SocketAddr,
    count: usize,
    backlog: i32,
    shared: bool,
) -> io::Result<(Vec<socket2::Socket>, SocketAddr)> {
    if !shared && addr.port() != 0 {
        refuse_if_in_use(addr)?;
    }
    let mut sockets = Vec::with_capacity(count);
    let mut bound = addr;
    for _ in 0..count {
        let socket = stream_socket(bound)?;
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

fn stream_socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    // Lets a restarted server bind while old connections sit in TIME_WAIT; it never lets
    // two sockets listen on one address (SO_REUSEPORT does, on purpose, for the shards).
    socket.set_reuse_address(true)?;
    Ok(socket)
}

/// Fails with `AddrInUse`, naming `addr`, if a socket already listens on it.
fn refuse_if_in_use(addr: SocketAddr) -> io::Result<()> {
    let probe = stream_socket(addr)?;
    match probe.bind(&addr.into()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(io::Error::new(
            io::ErrorKind::AddrInUse,
            format!(
                "{addr} is already in use by another process; refusing to share it (set \
                 reuse_port = true only for partyline processes meant to share one port)"
            ),
        )),
        Err(e) => Err(e),
    }
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

/// One `sendmsg` of several buffers, never blocking, never raising SIGPIPE.
pub(crate) fn send_vectored(fd: RawFd, slices: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: an all-zero msghdr is a valid empty message.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    // IoSlice is guaranteed ABI-compatible with iovec on Unix.
    msg.msg_iov = slices.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = slices.len() as _;
    // SAFETY: `msg` points at `slices`, which outlive the call; the kernel only reads them.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if n < 0 { Err(io::Error::last_os_error()) } else { Ok(n as usize) }
}

/// The raw descriptor of a stream, for [`send_vectored`].
pub(crate) fn fd_of(stream: &TcpStream) -> RawFd {
    stream.as_raw_fd()
}
