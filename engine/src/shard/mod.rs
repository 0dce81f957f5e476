//! A shard: one executor on one core, composed of its [`Router`], its [`Home`] (the rooms
//! that hash to it) and its [`Edge`] (the sockets it accepted). [`run`] builds them in
//! order, connects them through the router, runs the sweeper until shutdown, then stops
//! them in order. Everything a shard owns is `Rc`/`RefCell`, so it cannot leave its thread
//! by construction; only route messages cross to other shards.
//!
//! This is the only module that knows both the edge and the home.

mod stats;

use crate::api::runtime::Runtime;
use crate::clock::Clock;
use crate::config::Config;
use crate::edge::{Edge, FetchHandler, Gates};
use crate::home::{Home, SpawnRoom};
use crate::limits::SHUTDOWN_DRAIN_MS;
use crate::route::mesh::MeshEnds;
use crate::route::{EdgeSink, HomeSink, NodeId, Placement, Router, ShardAddr};
pub(crate) use stats::Gauges;
pub use stats::ShardStats;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How often the sweeper runs (idle pings, parking, gauges).
const SWEEP_INTERVAL: Duration = Duration::from_millis(200);

/// Least time between two forced allocator collections while sockets keep parking or rooms
/// keep sleeping (one takes ~0.3-3 ms at 15,000 sockets); the sweep after such a burst ends
/// collects at once.
const COLLECT_INTERVAL: Duration = Duration::from_secs(1);

/// Everything one shard starts from, shared read-only with the others.
pub(crate) struct ShardSetup {
    pub config: Arc<Config>,
    pub clock: Clock,
    pub store: partyline_storage::Store,
    pub gates: Arc<HashMap<String, Gates>>,
    pub spawners: Arc<HashMap<String, SpawnRoom>>,
    pub on_fetch: Option<FetchHandler>,
    pub shutdown: Arc<AtomicBool>,
    pub gauges: Arc<[Gauges]>,
}

/// Builds shard `id` and runs it until shutdown.
pub(crate) async fn run(
    id: usize,
    setup: Arc<ShardSetup>,
    listener: socket2::Socket,
    mesh: MeshEnds,
) {
    let shards = setup.gauges.len();
    let here = ShardAddr::local(NodeId::default(), id);
    let placement = Placement::new(here.node, shards);
    let (router, receivers) = Router::new(here, placement, mesh.connect().await);
    let runtime = Rc::new(Runtime {
        router: router.clone(),
        config: setup.config.clone(),
        clock: setup.clock.clone(),
        store: setup.store.clone(),
    });
    let home = Home::new(runtime.clone(), setup.spawners.clone());
    let edge = match Edge::new(runtime, setup.gates.clone(), setup.on_fetch) {
        Ok(edge) => edge,
        Err(e) => {
            tracing::error!(shard = %here, error = %e, "cannot create the shard's epoll set");
            return;
        }
    };
    let (home_sink, edge_sink): (Weak<dyn HomeSink>, Weak<dyn EdgeSink>) =
        (Rc::<Home>::downgrade(&home), Rc::<Edge>::downgrade(&edge));
    router.listen(home_sink, edge_sink, receivers);
    home.start();
    let (acceptor, waiter) = edge.start(listener);
    tracing::debug!(shard = %here, "shard running");

    sweep_until_shutdown(&edge, &home, &setup.gauges[id], &setup.shutdown).await;

    // Shutdown: stop accepting, close every socket with 1001, wait for them to drain,
    // then unload every room (their tasks end, and with them the references to the store).
    drop(acceptor);
    edge.close_all();
    let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
    while !edge.is_empty() && Instant::now() < deadline {
        crate::rt::sleep(Duration::from_millis(20)).await;
    }
    edge.stop_parking();
    waiter.await;
    // The rooms run the closes (on_close) still queued, then stop; rooms of parties that
    // keep snapshots save them as their tasks end. Both bounded by the same deadline.
    let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
    while !home.is_quiet() && Instant::now() < deadline {
        crate::rt::sleep(Duration::from_millis(10)).await;
    }
    home.stop();
    while home.tasks() > 0 && Instant::now() < deadline {
        crate::rt::sleep(Duration::from_millis(10)).await;
    }
    tracing::debug!(shard = %here, left = edge.stats().sockets, "shard stopped");
}

/// The sweeper: idle pings, timeouts and parking on the edge, quiet rooms to sleep and
/// idle rooms to unload on the home (both O(what they put away)),
/// the gauges, handing freed memory back, and the shutdown flag.
async fn sweep_until_shutdown(edge: &Edge, home: &Home, gauges: &Gauges, shutdown: &AtomicBool) {
    // Parked sockets free their tasks and streams, sleeping rooms their connections' records;
    // hand that memory back to the OS when a burst of them ends (and once a second while
    // one lasts).
    let (mut parked_before, mut sleeps_before) = (0, 0);
    let (mut collect_due, mut collected_at) = (false, Instant::now());
    while !shutdown.load(Ordering::Relaxed) {
        crate::rt::sleep(SWEEP_INTERVAL).await;
        let edge_stats = edge.sweep();
        home.sweep();
        let home_stats = home.stats();
        let freeing = edge_stats.parked > parked_before || home_stats.sleeps > sleeps_before;
        collect_due |= freeing;
        (parked_before, sleeps_before) = (edge_stats.parked, home_stats.sleeps);
        if collect_due && (!freeing || collected_at.elapsed() >= COLLECT_INTERVAL) {
            crate::rt::release_freed_memory();
            (collect_due, collected_at) = (false, Instant::now());
        }
        gauges.publish(&edge_stats, &home_stats);
        gauges.publish_parties(&home.party_counts());
    }
}
