//! A shard: one executor on one core, composed of its [`Router`], its [`Home`] (the rooms
//! that hash to it) and its [`Edge`] (the sockets it accepted). [`run`] builds them in
//! order, connects them through the router, runs the sweeper until shutdown, then stops
//! them in order. Everything a shard owns is `Rc`/`RefCell`, so it cannot leave its thread
//! by construction; only route messages cross to other shards.
//!
//! This is the only module that knows both the edge and the home.

pub(crate) mod query;
mod stats;

use crate::api::runtime::Runtime;
use crate::clock::Clock;
use crate::config::Config;
use crate::edge::{Edge, FetchHandler, Gates};
use crate::home::{Home, SpawnRoom};
use crate::limits::SHUTDOWN_DRAIN_MS;
use crate::route::mesh::MeshEnds;
use crate::route::{EdgeSink, HomeSink, Members, NodeLinks, Placement, Router, ShardAddr};
pub(crate) use stats::Gauges;
pub use stats::ShardStats;
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
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
    pub drain: DrainBarrier,
    /// The cluster's nodes (just this one for a process on its own).
    pub members: Members,
    /// Other nodes' links, in a cluster.
    pub links: Option<Arc<NodeLinks>>,
    /// The `serve` folder's files, if any.
    pub assets: Option<Arc<crate::assets::StaticFiles>>,
    /// TLS on the client listener, if configured.
    pub tls: Option<Arc<crate::tls::Tls>>,
    /// Each shard's questions from the admin listener.
    pub queries: Vec<crossbeam_channel::Receiver<query::Query>>,
}

/// Where the shards meet at shutdown, between draining their edges and stopping their
/// rooms. A room's closes come from the edges of every shard; a home that stopped as soon
/// as its own edge was empty could save a room (its snapshot) before another shard's
/// close reached it, and that `on_close` would never run. So each shard, once its edge is
/// drained, publishes how many messages it handed to each other shard's home, then
/// counts itself drained; a home stops its rooms only when every edge is drained and it
/// has received all they sent it (or at the drain deadline).
pub(crate) struct DrainBarrier {
    shards: usize,
    drained: AtomicUsize,
    /// `sent[from * shards + to]`: messages shard `from` handed to shard `to`'s home, as of
    /// its edge's drain.
    sent: Box<[AtomicU64]>,
}

impl DrainBarrier {
    pub fn new(shards: usize) -> DrainBarrier {
        DrainBarrier {
            shards,
            drained: AtomicUsize::new(0),
            sent: (0..shards * shards).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// Shard `from`'s edge is drained, having sent `sent(to)` messages to each home.
    fn edge_drained(&self, from: usize, sent: impl Fn(usize) -> u64) {
        for to in 0..self.shards {
            self.sent[from * self.shards + to].store(sent(to), Ordering::Relaxed);
        }
        // Release: whoever sees the count sees the totals stored before it.
        self.drained.fetch_add(1, Ordering::Release);
    }

    /// Whether shard `to` has received, `received` in all, everything every drained edge
    /// sent it.
    fn all_arrived(&self, to: usize, received: u64) -> bool {
        if self.drained.load(Ordering::Acquire) < self.shards {
            return false;
        }
        let sent: u64 = (0..self.shards)
            .map(|from| self.sent[from * self.shards + to].load(Ordering::Relaxed))
            .sum();
        received >= sent
    }
}

/// Builds shard `id` and runs it until shutdown.
pub(crate) async fn run(
    id: usize,
    setup: Arc<ShardSetup>,
    listener: socket2::Socket,
    mesh: MeshEnds,
) {
    let shards = setup.gauges.len();
    let here = ShardAddr::local(setup.members.here(), id);
    let placement = Placement::cluster(&setup.members, shards);
    let (router, receivers) =
        Router::new(here, placement, mesh.connect().await, setup.links.clone());
    let runtime = Rc::new(Runtime {
        router: router.clone(),
        config: setup.config.clone(),
        clock: setup.clock.clone(),
        store: setup.store.clone(),
    });
    let home = Home::new(runtime.clone(), setup.spawners.clone());
    let edge = match Edge::new(
        runtime,
        setup.gates.clone(),
        setup.on_fetch,
        setup.assets.clone(),
        setup.tls.clone(),
    ) {
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

    let lost = Lost { links: setup.links.clone(), shard: id, seen: Vec::new() };
    let queries = &setup.queries[id];
    sweep_until_shutdown(&edge, &home, &setup.gauges[id], &setup.shutdown, lost, queries).await;

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
    // Every shard's closes for this shard's rooms arrive (DrainBarrier); the rooms run
    // them (on_close) and whatever else is queued, then stop; rooms of parties that keep
    // snapshots save them as their tasks end. All bounded by the same deadline.
    setup.drain.edge_drained(id, |to| router.sent_home(to));
    let deadline = Instant::now() + Duration::from_millis(SHUTDOWN_DRAIN_MS);
    while !setup.drain.all_arrived(id, router.received_home()) && Instant::now() < deadline {
        crate::rt::sleep(Duration::from_millis(5)).await;
    }
    while !home.is_quiet() && Instant::now() < deadline {
        crate::rt::sleep(Duration::from_millis(10)).await;
    }
    home.stop();
    while home.tasks() > 0 && Instant::now() < deadline {
        crate::rt::sleep(Duration::from_millis(10)).await;
    }
    tracing::debug!(shard = %here, left = edge.stats().sockets, "shard stopped");
}

/// The other nodes' lost links, as this shard has handled them.
struct Lost {
    links: Option<Arc<NodeLinks>>,
    shard: usize,
    /// Per node, the losses handled.
    seen: Vec<u64>,
}

impl Lost {
    /// For each node whose link was lost since the last sweep: this edge closes its
    /// sockets in rooms homed there (1013), and this home's rooms close their connections
    /// on that node's edges; then the loss is acknowledged, so a new link may carry
    /// traffic.
    fn sweep(&mut self, edge: &Edge, home: &Home) {
        let Some(links) = &self.links else { return };
        let members = links.members();
        self.seen.resize(members.len(), 0);
        for node in members.others() {
            let losses = links.losses(node);
            let seen = &mut self.seen[usize::from(node.0)];
            if losses != *seen {
                let sockets = edge.node_lost(node);
                let rooms = home.node_lost(node);
                tracing::debug!(
                    shard = self.shard,
                    node = members.name(node),
                    sockets,
                    rooms,
                    "closed what lived across a lost node link"
                );
                *seen = losses;
                links.ack(self.shard, node, losses);
            }
        }
    }
}

/// The sweeper: idle pings, timeouts and parking on the edge, quiet rooms to sleep and
/// idle rooms to unload on the home (both O(what they put away)),
/// the gauges, handing freed memory back, and the shutdown flag.
async fn sweep_until_shutdown(
    edge: &Edge,
    home: &Home,
    gauges: &Gauges,
    shutdown: &AtomicBool,
    mut lost: Lost,
    queries: &crossbeam_channel::Receiver<query::Query>,
) {
    // Parked sockets free their tasks and streams, sleeping rooms their connections' records;
    // hand that memory back to the OS when a burst of them ends (and once a second while
    // one lasts).
    let (mut parked_before, mut sleeps_before) = (0, 0);
    let (mut collect_due, mut collected_at) = (false, Instant::now());
    while !shutdown.load(Ordering::Relaxed) {
        crate::rt::sleep(SWEEP_INTERVAL).await;
        lost.sweep(edge, home);
        for q in queries.try_iter().take(query::QUERIES_PER_SWEEP_MAX) {
            match q {
                query::Query::Rooms { party, room, reply } => {
                    let _ = reply.try_send(home.loaded(&party, room.as_deref()));
                }
                query::Query::Connections { key, after, limit, reply } => {
                    let _ = reply.try_send(home.connections(&key, after, limit));
                }
            }
        }
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
        gauges.publish_cpu(crate::rt::thread_cpu_ns());
        gauges.publish_parties(&home.party_counts());
    }
}
