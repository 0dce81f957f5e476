//! The edge gates: each party's `on_before_connect` and `on_before_request`, stored as
//! plain function pointers per party name, and [`run`], which runs one with a deadline
//! (`hook_timeout_ms`, then 504), turns an error into 401 (or the status of a client
//! error) and a panic into 500.

use crate::api::{Gate, Lobby, Party};
use crate::error::{Fault, Result};
use crate::payload::Request;
use futures_lite::FutureExt;
use partyline_protocol::http::Response;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// The future a gate returns.
pub(crate) type GateFuture<'a> = Pin<Box<dyn Future<Output = Result<Gate>> + 'a>>;

/// A party's gate, monomorphized.
pub(crate) type GateFn = for<'a> fn(Request, &'a Lobby) -> GateFuture<'a>;

/// One party's gates.
#[derive(Clone, Copy)]
pub(crate) struct Gates {
    pub before_connect: GateFn,
    pub before_request: GateFn,
}

impl Gates {
    pub fn of<P: Party>() -> Gates {
        Gates { before_connect: before_connect::<P>, before_request: before_request::<P> }
    }
}

fn before_connect<P: Party>(request: Request, lobby: &Lobby) -> GateFuture<'_> {
    Box::pin(P::on_before_connect(request, lobby))
}

fn before_request<P: Party>(request: Request, lobby: &Lobby) -> GateFuture<'_> {
    Box::pin(P::on_before_request(request, lobby))
}

/// Runs a gate: the request to go on with, or the response to answer with.
pub(super) async fn run(
    gate: GateFn,
    request: Request,
    lobby: &Lobby,
    timeout: Duration,
) -> Result<Request, Response> {
    let ran = crate::rt::within(
        Instant::now() + timeout,
        AssertUnwindSafe(gate(request, lobby)).catch_unwind(),
    );
    match ran.await {
        Some(Ok(Ok(Gate::Continue(r)))) => Ok(r),
        Some(Ok(Ok(Gate::Respond(r)))) => Err(r),
        Some(Ok(Err(e))) => {
            let status = match e.fault() {
                Fault::Client(status) => status,
                _ => 401,
            };
            Err(Response::text(status, format!("{e}\n")))
        }
        Some(Err(_)) => {
            tracing::error!(party = lobby.name(), room = lobby.id(), "edge gate panicked");
            Err(Response::text(500, "internal error\n"))
        }
        None => {
            tracing::error!(party = lobby.name(), room = lobby.id(), "edge gate timed out");
            Err(Response::text(
                504,
                format!("the gate timed out after {} ms\n", timeout.as_millis()),
            ))
        }
    }
}
