//! The accept loop: takes sockets from the shard's listener until shutdown drops it, and
//! refuses with 503 (gracefully, in a task of its own) beyond `connections_per_shard_max`,
//! so `accept` never runs the process out of descriptors.

use super::Edge;
use crate::rt::TcpListener;
use partyline_protocol::http::Response;
use std::rc::Rc;
use std::time::Duration;

/// How long the loop backs off after a failed accept (out of descriptors, or a transient
/// error), instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(super) async fn accept_loop(edge: Rc<Edge>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                if edge.full() || edge.shutting_down.get() {
                    let response =
                        Response::text(503, "server at its connection limit; try again later\n")
                            .with_header("retry-after", "1");
                    super::http::refuse_in_task(edge.clone(), stream, response);
                    continue;
                }
                glommio::spawn_local(super::socket::serve(edge.clone(), stream)).detach();
            }
            Err(e) => {
                tracing::warn!(shard = %edge.here(), error = %e, "accept failed");
                crate::rt::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}
