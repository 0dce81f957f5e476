//! A client socket as the edge reads and writes it: plain TCP, or TCP carrying a rustls
//! session (`tls_cert`/`tls_key`). The socket's task owns it; everything above (HTTP, the
//! WebSocket loop, parking) is the same for both.
//!
//! With TLS, reads go from the socket into rustls's own record buffer; rustls decrypts in
//! place and the plaintext is copied out into the shard's scratch buffer (no plaintext
//! buffer lives with an idle socket). Writes copy nothing before rustls: a batch of queued
//! frames (the same shared bytes every socket of a broadcast holds) is handed to rustls as
//! one vectored write, which copies it into as few records as fit (16 KiB each) and seals
//! them in place, and the records go out with one vectored send. A new batch is sealed
//! only once the previous records are written ([`crate::tls::TLS_BUFFER_BYTES`] at most),
//! so a slow client holds its queue and at most one batch of records, which stays charged
//! to the shard's output budget until it is written or the socket ends.

use super::conn::EdgeConn;
use super::out_queue::{Flush, OutQueue};
use crate::rt::{self, TcpStream};
use rustls::ServerConnection;
use std::future::poll_fn;
use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::task::{Context, Poll, ready};
use std::time::Instant;

/// A socket leaving its task to park: a duplicate of its descriptor and its TLS session.
pub(crate) struct Parked {
    pub fd: RawFd,
    pub tls: Option<Box<ServerConnection>>,
}

/// A client socket, plain or TLS.
pub(crate) struct Stream {
    tcp: TcpStream,
    tls: Option<Box<ServerConnection>>,
    /// Bytes of frames sealed into records not yet all written (an over-count until the
    /// records are gone): still charged to the shard's output budget.
    sealed: usize,
}

impl Stream {
    pub fn plain(tcp: TcpStream) -> Stream {
        Stream { tcp, tls: None, sealed: 0 }
    }

    /// A parked socket again, with its TLS session if it had one.
    pub fn resumed(tcp: TcpStream, tls: Option<Box<ServerConnection>>) -> Stream {
        Stream { tcp, tls, sealed: 0 }
    }

    /// What parking keeps of the socket (the stream is dropped after, closing only its
    /// own descriptor).
    pub fn park(&mut self) -> io::Result<Parked> {
        let fd = super::park::dup(self.fd())?;
        Ok(Parked { fd, tls: self.tls.take() })
    }

    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.tcp.peer_addr().ok()
    }

    pub fn fd(&self) -> RawFd {
        rt::fd_of(&self.tcp)
    }

    /// Starts TLS on the socket with `session`; `already` holds bytes read before (after a
    /// PROXY header): the start of the client's handshake.
    pub fn start_tls(
        &mut self,
        mut session: Box<ServerConnection>,
        mut already: &[u8],
    ) -> io::Result<()> {
        while !already.is_empty() {
            if session.read_tls(&mut already)? == 0 {
                break;
            }
            session.process_new_packets().map_err(invalid)?;
        }
        self.tls = Some(session);
        Ok(())
    }

    /// Completes the TLS handshake (nothing to do on a plain socket) by `deadline`.
    pub async fn handshake(&mut self, deadline: Instant) -> io::Result<()> {
        let Some(tls) = self.tls.as_deref_mut() else { return Ok(()) };
        let tcp = &mut self.tcp;
        let shaking = poll_fn(|cx| {
            while tls.is_handshaking() {
                ready!(poll_send_records(tcp, tls, cx))?;
                if !tls.is_handshaking() {
                    break;
                }
                if ready!(poll_receive_records(tcp, tls, cx))? == 0 {
                    // The peer left mid-handshake.
                    return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
                }
            }
            // The last flight (session tickets in TLS 1.3) goes out too.
            poll_send_records(tcp, tls, cx)
        });
        rt::within(deadline, shaking).await.unwrap_or_else(|| Err(io::ErrorKind::TimedOut.into()))
    }

    /// Polls one read of plaintext into `buf` (0: the peer ended the stream).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return rt::poll_read(&mut self.tcp, cx, buf);
        };
        loop {
            match tls.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Replies rustls owes the peer (alerts, key updates) go out first; a full
            // socket does not stop reading (its writability wake-up stays armed), as a
            // plain socket reads while its writes wait.
            if let Poll::Ready(Err(e)) = poll_send_records(&mut self.tcp, tls, cx) {
                return Poll::Ready(Err(e));
            }
            if ready!(poll_receive_records(&mut self.tcp, tls, cx))? == 0 {
                return Poll::Ready(Ok(0));
            }
        }
    }

    /// Writes all of `bytes` (an HTTP response), waiting for the socket as needed.
    pub async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let Some(tls) = self.tls.as_deref_mut() else {
            return futures_lite::AsyncWriteExt::write_all(&mut self.tcp, bytes).await;
        };
        let tcp = &mut self.tcp;
        let mut written = 0;
        poll_fn(|cx| {
            loop {
                ready!(poll_send_records(tcp, tls, cx))?;
                if written == bytes.len() {
                    return Poll::Ready(Ok(()));
                }
                match tls.writer().write(&bytes[written..])? {
                    0 => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    n => written += n,
                }
            }
        })
        .await
    }

    /// Stops writing: TLS says `close_notify` first, then the socket's write side shuts.
    pub async fn shutdown_write(&mut self) -> io::Result<()> {
        if let Some(tls) = self.tls.as_deref_mut() {
            tls.send_close_notify();
            let tcp = &mut self.tcp;
            poll_fn(|cx| poll_send_records(tcp, tls, cx)).await?;
        }
        self.tcp
            .shutdown(std::net::Shutdown::Write)
            .await
            .map_err(|e| io::Error::other(e.to_string()))
    }

    /// Writes what `conn` has queued without blocking; when the socket is full, arms a
    /// writability wake-up. Returns the outcome and the bytes queued before and after.
    pub fn poll_flush(
        &mut self,
        conn: &EdgeConn,
        cx: &mut Context<'_>,
    ) -> (io::Result<()>, usize, usize) {
        let fd = self.fd();
        let tcp = &mut self.tcp;
        let sealed = &mut self.sealed;
        match self.tls.as_deref_mut() {
            None => conn.flush_with(|out| flush_plain(out, fd, tcp, cx)),
            Some(tls) => {
                let held_before = *sealed;
                let (result, before, after) =
                    conn.flush_with(|out| flush_tls(out, tcp, tls, sealed, cx));
                (result, before + held_before, after + *sealed)
            }
        }
    }

    /// Takes the count of sealed bytes still charged (the socket's task is ending: its
    /// records go with it).
    pub fn take_sealed(&mut self) -> usize {
        std::mem::take(&mut self.sealed)
    }

    /// Whether nothing is buffered inside the stream (TLS: no plaintext decrypted and not
    /// yet read, no records to write), so the socket may park on its descriptor alone.
    pub fn at_rest(&mut self) -> bool {
        match self.tls.as_deref_mut() {
            None => true,
            Some(tls) => {
                !tls.wants_write()
                    && tls.process_new_packets().is_ok_and(|s| s.plaintext_bytes_to_read() == 0)
            }
        }
    }
}

/// Plain TCP: vectored non-blocking writes of the queue; when the socket is full, one
/// write through glommio arms the wake-up.
fn flush_plain(
    out: &mut OutQueue,
    fd: RawFd,
    tcp: &mut TcpStream,
    cx: &mut Context<'_>,
) -> io::Result<()> {
    loop {
        if out.is_empty() {
            return Ok(());
        }
        match out.flush(fd)? {
            Flush::Done => return Ok(()),
            Flush::Blocked => {
                let Some(head) = out.head() else { return Ok(()) };
                match rt::poll_write(tcp, cx, head) {
                    Poll::Ready(Ok(n)) => out.advance(n),
                    Poll::Ready(Err(e)) => return Err(e),
                    Poll::Pending => return Ok(()),
                }
            }
        }
    }
}

/// TLS: records already made go out first; then the next batch of frames is sealed
/// (counted in `sealed` until its records are all written).
fn flush_tls(
    out: &mut OutQueue,
    tcp: &mut TcpStream,
    tls: &mut ServerConnection,
    sealed: &mut usize,
    cx: &mut Context<'_>,
) -> io::Result<()> {
    loop {
        match poll_send_records(tcp, tls, cx) {
            Poll::Ready(Ok(())) => *sealed = 0,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(()),
        }
        if out.is_empty() {
            return Ok(());
        }
        match out.write_with(|slices| tls.writer().write_vectored(slices))? {
            0 => return Ok(()),
            n => *sealed += n,
        }
    }
}

/// Sends the records rustls holds until it holds none, or the socket is full (then a
/// writability wake-up is armed and this is pending).
fn poll_send_records(
    tcp: &mut TcpStream,
    tls: &mut ServerConnection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    while tls.wants_write() {
        match tls.write_tls(&mut SocketWriter { tcp: &mut *tcp, cx: &mut *cx }) {
            Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
            Err(e) => return Poll::Ready(Err(e)),
        }
    }
    Poll::Ready(Ok(()))
}

/// Reads records from the socket into rustls and processes them; `Ok(0)` at the end of
/// the stream. A record that fails (a bad MAC, a protocol error) sends rustls's alert and
/// is an error.
fn poll_receive_records(
    tcp: &mut TcpStream,
    tls: &mut ServerConnection,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let read = match tls.read_tls(&mut SocketReader { tcp: &mut *tcp, cx: &mut *cx }) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Poll::Pending,
        Err(e) => return Poll::Ready(Err(e)),
    };
    if let Err(e) = tls.process_new_packets() {
        // The alert is best effort: the connection ends either way.
        let _ = poll_send_records(tcp, tls, cx);
        return Poll::Ready(Err(invalid(e)));
    }
    Poll::Ready(Ok(read))
}

fn invalid(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The socket as rustls's reader: a non-blocking read that arms a readiness wake-up when
/// there is nothing to read (`WouldBlock`).
struct SocketReader<'a, 'c> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'c>,
}

impl Read for SocketReader<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match rt::poll_read(self.tcp, self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

/// The socket as rustls's writer: a vectored non-blocking send; when the socket is full,
/// a write through glommio arms the writability wake-up (`WouldBlock`).
struct SocketWriter<'a, 'c> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'c>,
}

impl Write for SocketWriter<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match rt::poll_write(self.tcp, self.cx, buf) {
            Poll::Ready(result) => result,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match rt::send_vectored(rt::fd_of(self.tcp), bufs) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                let first = bufs.iter().find(|b| !b.is_empty()).map_or(&[][..], |b| &b[..]);
                self.write(first)
            }
            other => other,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
