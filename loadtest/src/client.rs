//! One WebSocket client connection on a glommio worker, at the byte level: connect, upgrade
//! with `partyline-protocol`'s client handshake, send masked frames, and decode server frames
//! in place. Reads go into the worker's scratch buffer; a connection keeps only the bytes of
//! a partial frame, so idle connections cost no buffer.

use futures_lite::{AsyncRead, AsyncWriteExt};
use glommio::net::TcpStream;
use partyline_protocol::ws::handshake::client;
use partyline_protocol::ws::{Decoded, FrameDecoder, FrameLimits, Opcode, Role, encode};
use std::cell::RefCell;
use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

/// Largest message the load tester accepts from a server.
pub const MESSAGE_SIZE_MAX: usize = 64 * 1024 * 1024;

thread_local! {
    /// The worker's read buffer, borrowed only inside one poll.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0u8; 64 * 1024]);
}

/// Why a connection attempt failed, by kind (the report counts each kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum ConnectFailure {
    /// TCP connect failed (refused, reset, out of ports or descriptors).
    Tcp,
    /// The server answered something other than 101 (e.g. 503 at a limit).
    Refused,
    /// The socket closed or failed during the handshake.
    Handshake,
}

/// TLS for the load tester's connections (`--tls-ca FILE`): rustls trusting only that
/// CA, the server named `localhost`. Built once per process.
pub fn tls_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    let certs = rustls::pki_types::CertificateDer::pem_file_iter(ca)
        .map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        roots.add(cert).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// An open WebSocket client.
#[derive(Debug)]
pub struct Client {
    stream: TcpStream,
    /// The TLS session, with `--tls-ca`.
    tls: Option<Box<rustls::ClientConnection>>,
    /// Bytes of a partial frame (or of frames not yet handed out).
    buf: Vec<u8>,
    mask: [u8; 4],
    /// Counted as open in the progress counters (from the 101 until dropped).
    upgraded: bool,
}

impl Drop for Client {
    fn drop(&mut self) {
        if self.upgraded {
            crate::progress::open(false);
        }
    }
}

impl Client {
    /// Connects to `addr` (from source address `from`, if given) and upgrades `path`; `seed`
    /// makes the key and mask.
    pub async fn connect(
        from: Option<IpAddr>,
        addr: SocketAddr,
        path: &str,
        seed: u64,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Client, ConnectFailure> {
        let stream = crate::sys::connect_from(from, addr).map_err(|_| ConnectFailure::Tcp)?;
        let mut key_bytes = [0u8; 16];
        key_bytes[..8].copy_from_slice(&seed.to_le_bytes());
        key_bytes[8..].copy_from_slice(&(!seed).to_le_bytes());
        let key = client::key_from(key_bytes);
        let request = client::request(&addr.to_string(), path, &key);
        let mut this = Client {
            stream,
            tls: None,
            buf: Vec::new(),
            mask: [key_bytes[0], key_bytes[1], key_bytes[2], key_bytes[3]],
            upgraded: false,
        };
        if let Some(config) = tls {
            let name = rustls::pki_types::ServerName::try_from("localhost").expect("a name");
            let mut session = rustls::ClientConnection::new(config.clone(), name)
                .map_err(|_| ConnectFailure::Handshake)?;
            // A batch of frames is encrypted whole, then written at once.
            session.set_buffer_limit(None);
            this.tls = Some(Box::new(session));
            // The first flight also waits for the non-blocking connect.
            this.flush_tls().await.map_err(|_| ConnectFailure::Tcp)?;
            while this.tls.as_ref().is_some_and(|t| t.is_handshaking()) {
                match this.fill().await {
                    Ok(0) | Err(_) => return Err(ConnectFailure::Handshake),
                    Ok(_) => this.flush_tls().await.map_err(|_| ConnectFailure::Handshake)?,
                }
            }
            this.write(&request).await.map_err(|_| ConnectFailure::Handshake)?;
        } else {
            // The first write also waits for the non-blocking connect: its failure is a
            // TCP one.
            this.write(&request).await.map_err(|_| ConnectFailure::Tcp)?;
        }
        loop {
            match client::check_response(&this.buf, &key) {
                Ok(Some(len)) => {
                    this.buf.drain(..len);
                    this.upgraded = true;
                    crate::progress::open(true);
                    return Ok(this);
                }
                Ok(None) => {}
                Err(client::ClientError::Status(_)) => return Err(ConnectFailure::Refused),
                Err(_) => return Err(ConnectFailure::Handshake),
            }
            match this.fill().await {
                Ok(0) | Err(_) => return Err(ConnectFailure::Handshake),
                Ok(_) => {}
            }
        }
    }

    /// Reads once into the scratch buffer and appends it to the partial-frame bytes (with
    /// TLS, what it decrypts to; 0 only at the end of the stream).
    async fn fill(&mut self) -> io::Result<usize> {
        let stream = &mut self.stream;
        let buf = &mut self.buf;
        let tls = &mut self.tls;
        poll_fn(|cx| {
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                let n = match Pin::new(&mut *stream).poll_read(cx, &mut scratch[..]) {
                    Poll::Ready(Ok(n)) => n,
                    other => return other,
                };
                let Some(tls) = tls.as_deref_mut() else {
                    buf.extend_from_slice(&scratch[..n]);
                    return Poll::Ready(Ok(n));
                };
                if n == 0 {
                    return Poll::Ready(Ok(0));
                }
                let before = buf.len();
                let mut rest = &scratch[..n];
                // rustls takes at most a record or so per call: feed it all, draining
                // the plaintext as it comes.
                while !rest.is_empty() {
                    tls.read_tls(&mut rest)?;
                    let state = tls
                        .process_new_packets()
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let ready = state.plaintext_bytes_to_read();
                    if ready > 0 {
                        let at = buf.len();
                        buf.resize(at + ready, 0);
                        tls.reader().read_exact(&mut buf[at..])?;
                    }
                }
                if buf.len() == before {
                    if tls.is_handshaking() || tls.wants_write() {
                        // Handshake progress: the caller has records to send.
                        return Poll::Ready(Ok(n));
                    }
                    // Partial records or session tickets: read again.
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Poll::Ready(Ok(buf.len() - before))
            })
        })
        .await
    }

    /// Writes `bytes` (through TLS, if on).
    async fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self.tls.as_deref_mut() {
            None => self.stream.write_all(bytes).await,
            Some(tls) => {
                tls.writer().write_all(bytes)?;
                self.flush_tls().await
            }
        }
    }

    /// Sends the records the TLS session holds.
    async fn flush_tls(&mut self) -> io::Result<()> {
        let Some(tls) = self.tls.as_deref_mut() else { return Ok(()) };
        let mut records = Vec::new();
        while tls.wants_write() {
            tls.write_tls(&mut records)?;
        }
        self.stream.write_all(&records).await
    }

    /// Sends one masked frame.
    pub async fn send(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        let frame = encode::client_frame(true, opcode, payload, self.mask);
        self.write(&frame).await
    }

    /// Sends `count` frames in one write (a sender catching up with its rate): the same
    /// `payload` buffer, passed to `stamp` with the frame's index before each is encoded.
    pub async fn send_batch(
        &mut self,
        opcode: Opcode,
        payload: &mut [u8],
        count: u64,
        mut stamp: impl FnMut(&mut [u8], u64),
    ) -> io::Result<()> {
        let frame_len = payload.len() + partyline_protocol::limits::WS_FRAME_HEADER_MAX;
        let mut out =
            bytes::BytesMut::with_capacity(frame_len * usize::try_from(count).unwrap_or(1));
        for i in 0..count {
            stamp(payload, i);
            encode::client_frame_into(true, opcode, payload, self.mask, &mut out);
        }
        self.write(&out).await
    }

    /// Hands every whole frame to `on_frame`, first those already buffered (a frame can
    /// arrive with the 101), else after waiting for bytes. `Ok(false)` when the server
    /// closed (a close frame or end of stream).
    pub async fn read_frames(
        &mut self,
        on_frame: &mut dyn FnMut(Opcode, &[u8]),
    ) -> io::Result<bool> {
        loop {
            let (handed, open) = self.decode_buffered(on_frame)?;
            if !open {
                return Ok(false);
            }
            if handed > 0 {
                crate::progress::messages(handed as u64);
                return Ok(true);
            }
            if self.fill().await? == 0 {
                return Ok(false);
            }
        }
    }

    /// Decodes the whole frames buffered; returns how many were handed out and whether the
    /// connection is still open.
    fn decode_buffered(
        &mut self,
        on_frame: &mut dyn FnMut(Opcode, &[u8]),
    ) -> io::Result<(usize, bool)> {
        let decoder =
            FrameDecoder::new(Role::Client, FrameLimits { message_size_max: MESSAGE_SIZE_MAX });
        let mut used = 0;
        let mut handed = 0;
        let mut open = true;
        while used < self.buf.len() {
            match decoder.decode(&mut self.buf[used..]) {
                Ok(Decoded::Frame { frame, len }) => {
                    used += len;
                    if frame.opcode == Opcode::Close {
                        open = false;
                        break;
                    }
                    handed += 1;
                    on_frame(frame.opcode, frame.payload);
                }
                Ok(Decoded::NeedMore { .. }) => break,
                Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
            }
        }
        self.buf.drain(..used);
        if self.buf.is_empty() {
            self.buf = Vec::new();
        }
        Ok((handed, open))
    }
}
