//! Server configuration: command-line flags, an optional TOML file, and the defaults that
//! make `partyline serve` work with no arguments at all (like `partykit dev`).

use crate::limits::Limits;
use partyline_storage::StoreConfig;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

/// The admin listener's default port (the Prometheus exporters' conventional 9464).
pub const ADMIN_PORT: u16 = 9464;

/// Where the admin listener listens: `"127.0.0.1:9464"`, or `"off"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Admin {
    Off,
    At(SocketAddr),
}

impl std::str::FromStr for Admin {
    type Err = String;

    fn from_str(s: &str) -> Result<Admin, String> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Admin::Off);
        }
        s.parse().map(Admin::At).map_err(|_| {
            format!(
                "admin must be an address such as 127.0.0.1:{ADMIN_PORT}, or \"off\"; got {s:?}"
            )
        })
    }
}

impl TryFrom<String> for Admin {
    type Error = String;

    fn try_from(s: String) -> Result<Admin, String> {
        s.parse()
    }
}

/// How log lines are written (`--log-format`): readable text, or one JSON object per
/// line (timestamp, level, target, fields, spans) for log shippers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The nodes of a cluster (`[cluster]` in the TOML file, the same file on every node):
/// `nodes = [{ id = "a", peer = "10.0.0.1:7001" }, ...]`. Each node's place in the list is
/// its number; every node must hold the same list (they compare a hash of it when they
/// link, and refuse to link otherwise). Empty: one process on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Cluster {
    pub nodes: Vec<NodeSpec>,
}

/// One node of a [`Cluster`]: a name, and the address its node links listen on (other
/// nodes connect there; clients never do).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    pub id: String,
    pub peer: SocketAddr,
}

/// Everything a server needs to start.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address every shard listens on (SO_REUSEPORT spreads accepts over shards).
    pub listen: SocketAddr,
    /// The admin listener (`GET /metrics` in the Prometheus text format, `GET /health`):
    /// an address, or `"off"`. Loopback by default: it has no authentication.
    pub admin: Admin,
    /// A bearer token the admin listener requires on everything but `/health`
    /// (`Authorization: Bearer <token>`; 401 without it). Unset: no authentication, so
    /// keep the listener on loopback (a non-loopback address is logged as a warning).
    /// `PARTYLINE_ADMIN_TOKEN` in the environment sets it too.
    pub admin_token: Option<String>,
    /// Number of shards (executors); 0 means one per available core.
    pub shards: usize,
    /// Whether to pin each shard to its own core.
    pub pin_cores: bool,
    /// Folder for on-disk state: room storage and alarms live in its `storage` folder.
    pub data: PathBuf,
    /// First path segment(s) of party URLs (`parties`).
    pub prefix: String,
    /// Listen backlog of each shard's socket.
    pub backlog: i32,
    /// Whether other processes may listen on the same address (SO_REUSEPORT across
    /// processes, for several partyline processes behind one port). Off by default: a
    /// second server on a port in use is refused at start, naming the address, instead of
    /// silently splitting connections (and rooms) with the first.
    pub reuse_port: bool,
    /// Whether every client connection starts with a PROXY protocol header (version 1 or
    /// 2, as HAProxy's `send-proxy` / `send-proxy-v2` write it), which then gives
    /// `Request::client`. Off by default; when on, a connection without a valid header is
    /// closed (anyone reaching the port directly could otherwise claim any address), so
    /// turn it on only behind a balancer that sends it.
    pub proxy_protocol: bool,
    /// Whether the process may use transparent huge pages. Off by default: khugepaged
    /// fills the holes that freed connection memory leaves in 2 MiB regions, which
    /// doubled the resident memory of 15,000 idle sockets (docs/benchmarks.md).
    pub huge_pages: bool,
    /// How long the allocator (mimalloc) waits before handing a free page back to the OS,
    /// in ms. 0 keeps resident memory lowest (sleeping rooms' connections: 537 instead of
    /// 818 bytes each at 5,000) at some cost in latency under a saturated fan-out (40% at the
    /// median in docs/benchmarks.md); the default is mimalloc's own.
    pub allocator_purge_delay_ms: u32,
    /// A room of a hibernating party (`Party::HIBERNATE`) whose hooks have had nothing to do
    /// for this long goes to sleep (Durable Objects: about 10 s).
    pub hibernate_after_ms: u64,
    /// A folder of static files served on the client listener for every path that is not
    /// a party path (and that `on_fetch` did not answer), like PartyKit's `serve`; read
    /// into memory at start (at most 64 MiB).
    pub serve: Option<PathBuf>,
    /// TLS on the client listener: a PEM certificate chain and its PEM private key (both
    /// or neither). Read at start and again on SIGHUP, for new connections.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The cluster's member list (see [`Cluster`]); empty for a single process.
    pub cluster: Cluster,
    /// Which node of `cluster` this process is (`partyline serve --node a`).
    pub node: Option<String>,
    /// How long a node keeps answering `/health` with 503 after SIGTERM before it stops
    /// its rooms and closes its sockets (so a balancer's health check takes it out of
    /// rotation first), in ms. 0 stops at once.
    pub drain_health_ms: u64,
    /// How log lines are written: `"text"` or `"json"`.
    pub log_format: LogFormat,
    /// Variables party code reads through `Room::env`.
    pub env: BTreeMap<String, String>,
    pub limits: Limits,
    /// Room storage: size profile, caches, group commit.
    pub storage: StoreConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 1999)),
            admin: Admin::At(SocketAddr::from(([127, 0, 0, 1], ADMIN_PORT))),
            admin_token: None,
            shards: 0,
            pin_cores: true,
            data: PathBuf::from(".partyline"),
            prefix: "parties".into(),
            backlog: 4096,
            reuse_port: false,
            proxy_protocol: false,
            huge_pages: false,
            hibernate_after_ms: 10_000,
            allocator_purge_delay_ms: 10,
            serve: None,
            tls_cert: None,
            tls_key: None,
            cluster: Cluster::default(),
            node: None,
            drain_health_ms: 0,
            log_format: LogFormat::Text,
            env: BTreeMap::new(),
            limits: Limits::default(),
            storage: StoreConfig::default(),
        }
    }
}

impl Config {
    /// Reads a TOML file; missing keys keep their defaults.
    pub fn from_toml_file(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
    }

    /// Where the store lives: `<data>/storage`.
    pub fn storage_path(&self) -> PathBuf {
        self.data.join("storage")
    }

    /// The shard count to run: `shards`, or the available cores when 0.
    pub fn shard_count(&self) -> usize {
        if self.shards > 0 {
            self.shards
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        }
    }
}
