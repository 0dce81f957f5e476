//! Starting and stopping a server: the party registry, one executor per shard, listening
//! sockets, the cross-shard mesh, and orderly shutdown on SIGTERM/SIGINT.

use crate::admin::{AdminListener, View};
use crate::api::Party;
use crate::clock::Clock;
use crate::config::{Admin, Config};
use crate::edge::{FetchHandler, Gates};
use crate::home::{PartyCounts, SpawnRoom, spawn_room, spawn_room_with_snapshots};
use crate::limits;
use crate::link::{LinkStats, LinkThread};
use crate::shard::{Gauges, ShardSetup, ShardStats};
use glommio::{LocalExecutorBuilder, Placement};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A server being configured: register parties, then [`Server::start`] or
/// [`Server::serve`].
pub struct Server {
    config: Config,
    /// Each party's edge gates and room task, by name.
    gates: HashMap<String, Gates>,
    spawners: HashMap<String, SpawnRoom>,
    on_fetch: Option<FetchHandler>,
    clock: Clock,
    /// Serve [`crate::Assets::welcome`] when no `serve` folder is set.
    welcome: bool,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("config", &self.config)
            .field("parties", &self.gates.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Server {
    pub fn new(config: Config) -> Self {
        Server {
            config,
            gates: HashMap::new(),
            spawners: HashMap::new(),
            on_fetch: None,
            clock: Clock::system(),
            welcome: false,
        }
    }

    /// Registers party type `P` under `name` (`/parties/<name>/<room>`).
    pub fn party<P: Party>(mut self, name: &str) -> Self {
        self.gates.insert(name.to_owned(), Gates::of::<P>());
        self.spawners.insert(name.to_owned(), spawn_room::<P>());
        self
    }

    /// Registers party type `P` under `name`, keeping its [`crate::Snapshot`] fields
    /// across sleep, unload and restart.
    pub fn party_with_snapshots<P: crate::Snapshot>(mut self, name: &str) -> Self {
        self.gates.insert(name.to_owned(), Gates::of::<P>());
        self.spawners.insert(name.to_owned(), spawn_room_with_snapshots::<P>());
        self
    }

    /// Registers the built-in parties: `main` (chat), `echo`, `relay`, `ephemeral`,
    /// `items`, `presence` and `yjs` ([`crate::parties`]).
    pub fn with_builtin_parties(self) -> Self {
        self.party::<crate::parties::Chat>("main")
            .party::<crate::parties::Echo>("echo")
            .party::<crate::parties::Relay>("relay")
            .party::<crate::parties::Ephemeral>("ephemeral")
            .party::<crate::parties::Items>("items")
            .party::<crate::parties::Presence>("presence")
            .party::<crate::parties::Yjs>("yjs")
    }

    /// Shows the welcome page (a chat through the official `partysocket` client, in rooms of
    /// the built-in `main` party) at `/` when no `serve` folder is configured: what
    /// `partyline serve` does. Pair it with [`Server::with_builtin_parties`].
    pub fn with_welcome_page(mut self) -> Self {
        self.welcome = true;
        self
    }

    /// Sets the clock alarms run on (tests use [`Clock::manual`]); the system clock by
    /// default.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// Sets the handler for requests to paths that are not party paths.
    pub fn on_fetch(mut self, handler: FetchHandler) -> Self {
        self.on_fetch = Some(handler);
        self
    }

    /// Binds and starts every shard; returns once they accept connections.
    pub fn start(mut self) -> io::Result<RunningServer> {
        self.config
            .limits
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        crate::rt::check_io_uring().map_err(io::Error::other)?;
        let members =
            crate::route::Members::from_config(&self.config.cluster, self.config.node.as_deref())
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        if !self.config.huge_pages
            && let Err(e) = crate::rt::disable_transparent_huge_pages()
        {
            tracing::warn!(error = %e, "cannot turn transparent huge pages off");
        }
        let count = self.config.shard_count();
        if self.config.limits.rooms_memory_max / count < limits::ROOM_BASE_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "rooms_memory_max must be at least {} (one room per shard, {} bytes each)",
                    count * limits::ROOM_BASE_BYTES,
                    limits::ROOM_BASE_BYTES
                ),
            ));
        }
        let data = &self.config.data;
        if data.exists() && !data.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("data folder {}: not a folder", data.display()),
            ));
        }
        std::fs::create_dir_all(data).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot create data folder {}: {e}", data.display()))
        })?;
        let assets = match &self.config.serve {
            Some(folder) => {
                let files = crate::assets::StaticFiles::folder(folder)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let count = files.current().len();
                tracing::info!(folder = %folder.display(), files = count, "serving static files");
                Some(Arc::new(files))
            }
            None if self.welcome => {
                Some(Arc::new(crate::assets::StaticFiles::fixed(crate::assets::Assets::welcome())))
            }
            None => None,
        };
        let tls = match (&self.config.tls_cert, &self.config.tls_key) {
            (Some(cert), Some(key)) => {
                let tls = crate::tls::Tls::load(cert, key)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                Some(Arc::new(tls))
            }
            (None, None) => None,
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "tls_cert and tls_key go together: set both or neither",
                ));
            }
        };
        let (open_files, _) = crate::rt::raise_open_files_limit()?;
        let fit =
            usize::try_from(open_files.saturating_sub(limits::OPEN_FILES_RESERVE) / count as u64)
                .unwrap_or(usize::MAX)
                .max(1);
        let per_shard = &mut self.config.limits.connections_per_shard_max;
        if *per_shard == 0 {
            *per_shard = fit;
        } else if *per_shard > fit {
            tracing::warn!(
                configured = *per_shard,
                open_files,
                shards = count,
                "connections_per_shard_max x shards exceeds the open-files limit; \
                 accepts may fail with EMFILE before the 503 limit applies"
            );
        }
        let (listeners, addr) = crate::rt::bind_listeners(
            self.config.listen,
            count,
            self.config.backlog,
            self.config.reuse_port,
        )?;
        partyline_storage::set_memory_release_hook(crate::rt::release_freed_memory);
        crate::rt::set_allocator_purge_delay(self.config.allocator_purge_delay_ms);
        let store_path = self.config.storage_path();
        let store = partyline_storage::Store::open(&store_path, self.config.storage)
            .map_err(|e| io::Error::other(format!("storage in {}: {e}", store_path.display())))?;
        // Sleeping rooms' connection archives describe sockets of an earlier process.
        if let Err(e) =
            futures_lite::future::block_on(store.clear_archives(crate::home::REGISTRY_ARCHIVE))
        {
            tracing::warn!(error = %e, "cannot clear the connection archives of an earlier run");
        }
        let shutdown = Arc::new(AtomicBool::new(false));
        let draining = Arc::new(AtomicBool::new(false));
        let drain_health = std::time::Duration::from_millis(self.config.drain_health_ms);
        // Each party's index (for its counts) is its place in name order.
        let mut parties: Vec<String> = self.spawners.keys().cloned().collect();
        parties.sort();
        for (index, name) in parties.iter().enumerate() {
            if let Some(spawn) = self.spawners.get_mut(name) {
                spawn.party = index;
            }
        }
        let parties: Arc<[String]> = parties.into();
        let gauges: Arc<[Gauges]> = (0..count).map(|_| Gauges::new(parties.len())).collect();
        let clustered = members.len() > 1;
        let (mesh, link_ends) =
            crate::route::mesh::build(count, limits::MESH_CHANNEL_MAX, clustered);
        let links = match link_ends.map(|ends| LinkThread::start(members.clone(), count, ends)) {
            None => None,
            Some(Ok(links)) => Some(links),
            Some(Err(e)) => {
                store.close();
                return Err(e);
            }
        };
        let (query_tx, query_rx): (Vec<_>, Vec<_>) = (0..count)
            .map(|_| crossbeam_channel::bounded(crate::shard::query::QUERIES_MAX))
            .unzip();
        let admin = match self.config.admin {
            Admin::Off => None,
            Admin::At(addr) => {
                let view = View {
                    queries: query_tx,
                    placement: crate::route::Placement::cluster(&members, count),
                    members: members.clone(),
                    gauges: gauges.clone(),
                    parties: parties.clone(),
                    store: store.clone(),
                    links: links.as_ref().map(|l| l.links.clone()),
                    draining: draining.clone(),
                    token: self
                        .config
                        .admin_token
                        .clone()
                        .or_else(|| std::env::var("PARTYLINE_ADMIN_TOKEN").ok())
                        .filter(|t| !t.is_empty()),
                };
                match AdminListener::start(addr, view, shutdown.clone()) {
                    Ok(admin) => Some(admin),
                    Err(e) => {
                        // The link thread's ends to the shards close with the mesh.
                        drop(mesh);
                        if let Some(links) = links {
                            links.stop();
                        }
                        store.close();
                        return Err(e);
                    }
                }
            }
        };
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let pin = self.config.pin_cores && count <= cores;
        let per_shard_max = self.config.limits.connections_per_shard_max;
        let setup = Arc::new(ShardSetup {
            config: Arc::new(self.config),
            clock: self.clock,
            store: store.clone(),
            gates: Arc::new(self.gates),
            spawners: Arc::new(self.spawners),
            on_fetch: self.on_fetch,
            shutdown: shutdown.clone(),
            gauges: gauges.clone(),
            drain: crate::shard::DrainBarrier::new(count),
            members: members.clone(),
            links: links.as_ref().map(|l| l.links.clone()),
            queries: query_rx,
            assets: assets.clone(),
            tls: tls.clone(),
        });
        let mut handles = Vec::with_capacity(count);
        for (id, (listener, ends)) in listeners.into_iter().zip(mesh).enumerate() {
            let setup = setup.clone();
            let placement = if pin { Placement::Fixed(id) } else { Placement::Unbound };
            let handle = LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{id}"))
                // Network shards do no direct file I/O; keep locked memory small.
                .io_memory(limits::SHARD_IO_MEMORY)
                .spawn(move || crate::shard::run(id, setup, listener, ends));
            match handle {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    // The shards already started wait for this one and never serve; at
                    // least release the data folder for whoever starts next.
                    shutdown.store(true, Ordering::Relaxed);
                    store.close();
                    return Err(io::Error::other(format!("cannot start shard {id}: {e}")));
                }
            }
        }
        tracing::info!(
            %addr,
            node = members.name(members.here()),
            nodes = members.len(),
            shards = count,
            pinned = pin,
            tls = tls.is_some(),
            connections_per_shard_max = per_shard_max,
            "partyline listening"
        );
        Ok(RunningServer {
            addr,
            shutdown,
            draining,
            drain_health,
            handles,
            gauges,
            parties,
            admin,
            store,
            links,
            tls,
            assets,
        })
    }

    /// A server configured from this process's command line, exactly as `partyline serve`
    /// is (`--listen`, `--admin`, `--shards`, `--data`, `--config`, `--no-pin`, `--node`;
    /// `--help` lists them with their defaults): for a party author's own binary,
    /// `fn main() -> ExitCode { Server::from_args().party::<Mine>("mine").run() }`. Bad
    /// flags or a bad config file are reported and the process exits with status 2.
    pub fn from_args() -> Server {
        use clap::Parser;
        match Server::from_serve_args(&crate::cli::ServeArgs::parse()) {
            Ok(server) => server,
            Err(_) => std::process::exit(2),
        }
    }

    /// A server configured from parsed `partyline serve` flags; `Err` (the exit status,
    /// after saying why in the log) when the config file cannot be read.
    pub fn from_serve_args(args: &crate::cli::ServeArgs) -> Result<Server, std::process::ExitCode> {
        match args.config() {
            Ok(config) => {
                install_logger(config.log_format);
                Ok(Server::new(config))
            }
            Err(e) => {
                install_logger(args.log_format.unwrap_or_default());
                tracing::error!("{e}");
                Err(std::process::ExitCode::from(2))
            }
        }
    }

    /// [`Server::serve`] for `main`: a start that fails is said in one readable log line
    /// (not a `Debug` dump) and gives exit status 1; a clean stop gives 0.
    pub fn run(self) -> std::process::ExitCode {
        match self.serve() {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(e) => {
                tracing::error!("partyline cannot run: {e}");
                std::process::ExitCode::FAILURE
            }
        }
    }

    /// Starts, then runs until SIGTERM or SIGINT, then drains ([`RunningServer::drain`])
    /// and exits; SIGHUP reloads the TLS certificate and key and the `serve` folder.
    /// Installs a logger (`RUST_LOG`, `info` by default) if the program has none, so the
    /// server says where it listens and what fails.
    pub fn serve(self) -> io::Result<()> {
        install_logger(self.config.log_format);
        let running = self.start()?;
        let signalled = Arc::new(AtomicBool::new(false));
        let hangup = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(signal_hook::consts::SIGTERM, signalled.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGINT, signalled.clone())?;
        signal_hook::flag::register(signal_hook::consts::SIGHUP, hangup.clone())?;
        while !signalled.load(Ordering::Relaxed) {
            std::thread::sleep(std::time::Duration::from_millis(50));
            if hangup.swap(false, Ordering::Relaxed) {
                let tls = running.reload_tls();
                match &tls {
                    Ok(true) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                    Ok(false) => {}
                    Err(e) => tracing::error!("SIGHUP: {e}; the previous certificate stays"),
                }
                let files = running.reload_static();
                match &files {
                    Ok(Some(files)) => tracing::info!(files, "SIGHUP: serve folder reloaded"),
                    Ok(None) => {}
                    Err(e) => tracing::error!("SIGHUP: {e}; the files served so far stay"),
                }
                if matches!((tls, files), (Ok(false), Ok(None))) {
                    tracing::info!("SIGHUP: no TLS and no serve folder; nothing to reload");
                }
            }
        }
        running.drain();
        running.wait()
    }
}

/// Installs the logger (`RUST_LOG`, `info` by default, to stdout, in `format`) unless the
/// program installed one.
fn install_logger(format: crate::config::LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    // Fails, harmlessly, when a logger is already set.
    let _ = match format {
        crate::config::LogFormat::Text => builder.try_init(),
        crate::config::LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// The node of `cluster` that room `room` of party `party` lives on (the same answer
/// every node of the cluster gives); `None` for an empty list.
pub fn home_node(cluster: &crate::config::Cluster, party: &str, room: &str) -> Option<String> {
    let first = cluster.nodes.first()?;
    let members = crate::route::Members::from_config(cluster, Some(&first.id)).ok()?;
    let placement = crate::route::Placement::cluster(&members, 1);
    let node = placement.node_of(&crate::route::RoomKey::new(party, room));
    Some(members.name(node).to_owned())
}

/// A started server.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Arc<AtomicBool>,
    draining: Arc<AtomicBool>,
    drain_health: std::time::Duration,
    handles: Vec<glommio::ExecutorJoinHandle<()>>,
    gauges: Arc<[Gauges]>,
    /// Party names by index, as the gauges count them.
    parties: Arc<[String]>,
    admin: Option<AdminListener>,
    store: partyline_storage::Store,
    links: Option<LinkThread>,
    tls: Option<Arc<crate::tls::Tls>>,
    assets: Option<Arc<crate::assets::StaticFiles>>,
}

impl RunningServer {
    /// The address the server listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Reads the TLS certificate and key files again (what SIGHUP does): new connections
    /// use them, open ones keep theirs. `Ok(false)` without TLS; on an error the previous
    /// pair stays.
    pub fn reload_tls(&self) -> Result<bool, String> {
        match &self.tls {
            Some(tls) => tls.reload().map(|()| true),
            None => Ok(false),
        }
    }

    /// Reads the `serve` folder again (what SIGHUP does): later requests get the new
    /// files, with their new ETags. `Ok(None)` without a folder; on an error (a folder
    /// gone or past its limits) the files served so far stay.
    pub fn reload_static(&self) -> Result<Option<usize>, String> {
        match &self.assets {
            Some(files) => files.reload(),
            None => Ok(None),
        }
    }

    /// Each shard's counts, as of its last sweep.
    pub fn stats(&self) -> Vec<ShardStats> {
        self.gauges.iter().map(Gauges::read).collect()
    }

    /// Each party's rooms, connections, sleeps and wakes, summed over shards, by name (as
    /// of each shard's last sweep).
    pub fn party_stats(&self) -> std::collections::BTreeMap<String, PartyCounts> {
        self.parties.iter().cloned().zip(Gauges::sum_parties(&self.gauges)).collect()
    }

    /// Each other node's link (in a cluster; empty otherwise), in member-list order.
    pub fn link_stats(&self) -> Vec<LinkStats> {
        self.links.as_ref().map(|l| l.links.stats()).unwrap_or_default()
    }

    /// Where the admin listener (`/metrics`) listens, if it is on.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.addr)
    }

    /// Drains: `/health` answers 503 for `drain_health_ms` (so a balancer's health check
    /// takes the node out of rotation while it still serves), then every shard stops
    /// ([`RunningServer::begin_shutdown`]). Returns when the shards have been told.
    pub fn drain(&self) {
        self.draining.store(true, Ordering::Relaxed);
        if !self.drain_health.is_zero() {
            tracing::info!(
                ms = u64::try_from(self.drain_health.as_millis()).unwrap_or(u64::MAX),
                "draining: /health answers 503; stopping after that"
            );
            std::thread::sleep(self.drain_health);
        }
        self.begin_shutdown();
    }

    /// Asks every shard to stop: no new sockets, open ones closed with 1012, rooms put
    /// to sleep (hibernating parties) or unloaded.
    pub fn begin_shutdown(&self) {
        self.shutdown.store(true, Ordering::Relaxed);
    }

    /// Stops the server and waits for every shard to finish.
    pub fn shutdown(self) -> io::Result<()> {
        self.begin_shutdown();
        self.wait()
    }

    /// The store every room's storage lives in (for tools and tests: room code uses
    /// [`crate::Room::storage`]).
    pub fn store(&self) -> &partyline_storage::Store {
        &self.store
    }

    /// Waits until the shards finish (after a signal or [`RunningServer::begin_shutdown`]),
    /// then closes the store: its folder is free for the next server.
    pub fn wait(self) -> io::Result<()> {
        let mut result = Ok(());
        for handle in self.handles {
            if let Err(e) = handle.join() {
                result = Err(io::Error::other(format!("shard failed: {e}")));
            }
        }
        if let Some(links) = self.links {
            links.stop();
        }
        if let Some(admin) = self.admin {
            admin.join();
        }
        self.store.close();
        tracing::info!("partyline stopped");
        result
    }
}
