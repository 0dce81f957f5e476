//! A socket's task: its phases in order, each a boxed future freed when it ends, so an
//! open WebSocket carries only its read loop's state. The task ends when the socket
//! closes, or when it parks (the socket then lives on as its record and a descriptor in
//! the shard's epoll set, and [`unparker`] starts a new task for it when something
//! concerns it again).

use super::Edge;
use super::conn::EdgeConn;
use super::stream::{Parked, Stream};
use super::websocket::{self, Upgrade};
use crate::rt::TcpStream;
use std::future::Future;
use std::os::fd::FromRawFd;
use std::pin::Pin;
use std::rc::Rc;

/// A phase of a socket's life, boxed so its state is freed when it ends.
pub(super) type PhaseFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A new socket: HTTP, then (if it upgrades) the WebSocket phases.
pub(super) async fn serve(edge: Rc<Edge>, tcp: TcpStream) {
    let mut stream = Stream::plain(tcp);
    let conn = edge.add_conn();
    let http: PhaseFuture<'_, Option<Box<Upgrade>>> =
        Box::pin(super::http::serve_http(&edge, &mut stream));
    let parked = match http.await {
        Some(upgrade) => websocket::websocket(&edge, &conn, &mut stream, upgrade).await,
        None => None,
    };
    end_task(&edge, &conn, stream, parked);
}

/// The task of a socket resumed from parking: the read loop again, from a clean frame
/// boundary (a socket only parks between messages).
async fn resume(edge: Rc<Edge>, conn: Rc<EdgeConn>, parked: Parked) {
    // SAFETY: `parked.fd` was the parked socket's descriptor, taken out of its record by
    // the caller, so this stream is its only owner.
    let tcp = unsafe { TcpStream::from_raw_fd(parked.fd) };
    let mut stream = Stream::resumed(tcp, parked.tls);
    edge.traffic.resume();
    let parked = websocket::open(&edge, &conn, &mut stream, Vec::new()).await;
    end_task(&edge, &conn, stream, parked);
}

/// The end of a socket's task: the socket parks (`parked` holds its duplicate
/// descriptor and its TLS session) or is gone.
fn end_task(edge: &Edge, conn: &EdgeConn, mut stream: Stream, parked: Option<Parked>) {
    // Records sealed but never written leave with the stream.
    let sealed = stream.take_sealed();
    if sealed > 0 {
        edge.account_output(sealed, 0);
    }
    drop(stream);
    match parked {
        Some(parked) => park(edge, conn, parked),
        None => edge.remove_conn(conn),
    }
}

/// Leaves the socket (now only a duplicate of the dropped stream's descriptor, and its
/// TLS session) in the shard's epoll set until it is readable or something is queued for
/// it.
fn park(edge: &Edge, conn: &EdgeConn, parked: Parked) {
    let fd = parked.fd;
    edge.traffic.park();
    conn.park(parked);
    if let Err(e) = edge.parking.watch(fd, conn.id().seq) {
        // Out of epoll watches (fs.epoll.max_user_watches): resume at once instead.
        tracing::warn!(error = %e, "cannot park a socket; keeping it active");
        edge.parking.request_resume(conn.id().seq);
    }
}

/// Resumes parked sockets that became readable or have something to do. Waits for work
/// for the shard's life: its queue is fed by the parking waiter and by deliveries.
pub(super) async fn unparker(edge: Rc<Edge>) {
    loop {
        let batch = edge.parking.next_batch().await;
        for seq in batch {
            if let Some(conn) = edge.conn(seq)
                && let Some(parked) = conn.take_parked()
            {
                edge.parking.unwatch(parked.fd);
                glommio::spawn_local(resume(edge.clone(), conn, parked)).detach();
            }
        }
    }
}
