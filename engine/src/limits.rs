//! Every limit of the engine in one place: what each bounds, its default, and what breaks
//! if it is raised. [`Limits`] carries the configured values; config files may change them.

use partyline_protocol::limits as wire;
use serde::Deserialize;

/// Largest per-connection outbound queue by default. A client that stops reading is
/// closed with 1013 once this many bytes wait for it, and the queue is freed. Raising it
/// lets each slow client pin more memory.
pub const OUTBOUND_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Largest per-connection state (`Connection::set_state`), PartyKit's new-runtime cap.
pub const CONNECTION_STATE_SIZE_MAX: usize = 16 * 1024;

/// Most tags per connection, the connection id included (PartyKit's rule).
pub const CONNECTION_TAG_COUNT_MAX: usize = 10;

/// Longest tag, in characters (PartyKit's rule).
pub const CONNECTION_TAG_CHARS_MAX: usize = 256;

/// Events waiting in one room's mailbox. The shard loop that feeds a full mailbox waits,
/// which pushes back on the sockets sending to that room.
pub const ROOM_MAILBOX_MAX: usize = 1024;

/// Messages in flight in one cross-shard channel (one per ordered pair of shards).
pub const MESH_CHANNEL_MAX: usize = 4096;

/// Delivery messages (home to edge) waiting behind a full mesh channel, per peer shard.
/// Beyond it, sends from party code fail with an error instead of buffering without end.
pub const MESH_OUTBOX_MAX: usize = 65536;

/// Bytes of the shard-wide read buffer every socket on the shard reads into.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// Frames gathered into one `sendmsg` call.
pub const WRITE_BATCH_FRAMES_MAX: usize = 64;

/// Limits configured for one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest WebSocket message (1009 beyond); PartyKit's old runtime: 1 MiB.
    pub message_size_max: usize,
    /// Largest HTTP request head (431 beyond).
    pub http_head_size_max: usize,
    /// Largest HTTP request body (413 beyond).
    pub http_body_size_max: usize,
    /// Outbound bytes queued per connection before it is closed as a slow consumer.
    pub outbound_bytes_max: usize,
    /// Open connections per room; the next one gets 503. PartyKit allows 32,000 with
    /// hibernation.
    pub connections_per_room_max: usize,
    /// Open sockets (WebSocket or HTTP) per shard; the next one gets 503. 0 (the default)
    /// derives it from the open-files limit: (limit - 256) / shards, so the server refuses
    /// cleanly before accept() ever fails with EMFILE.
    pub connections_per_shard_max: usize,
    /// Rooms loaded per shard; empty rooms are evicted to make space, else 503.
    pub rooms_per_shard_max: usize,
    /// Per-connection state size (`set_state`).
    pub connection_state_size_max: usize,
    /// Time allowed to send a whole request head (and body), against slowloris.
    pub handshake_timeout_ms: u64,
    /// An HTTP keep-alive connection idle this long is closed.
    pub http_idle_timeout_ms: u64,
    /// A WebSocket silent this long gets a ping; silent for twice this long, it is closed
    /// (1001). partysocket has no heartbeat of its own; browsers answer pings.
    pub ws_idle_timeout_ms: u64,
    /// A WebSocket with no traffic either way for this long is parked: its task and
    /// stream are freed and it waits in the shard's epoll set (0: never park). Resuming
    /// costs a few microseconds on its next message.
    pub ws_park_after_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            message_size_max: wire::WS_MESSAGE_SIZE_MAX,
            http_head_size_max: wire::HTTP_HEAD_SIZE_MAX,
            http_body_size_max: wire::HTTP_BODY_SIZE_MAX,
            outbound_bytes_max: OUTBOUND_BYTES_MAX,
            connections_per_room_max: 32_000,
            connections_per_shard_max: 0,
            rooms_per_shard_max: 100_000,
            connection_state_size_max: CONNECTION_STATE_SIZE_MAX,
            handshake_timeout_ms: 10_000,
            http_idle_timeout_ms: 30_000,
            ws_idle_timeout_ms: 60_000,
            ws_park_after_ms: 5_000,
        }
    }
}

impl Limits {
    /// Checks the relations between limits; the error says which one is off.
    pub fn validate(&self) -> Result<(), String> {
        if self.message_size_max == 0 || self.message_size_max > wire::WS_MESSAGE_SIZE_MAX_CEILING {
            return Err(format!(
                "message_size_max must be 1..={}",
                wire::WS_MESSAGE_SIZE_MAX_CEILING
            ));
        }
        if self.http_head_size_max < 256
            || self.http_head_size_max > wire::HTTP_HEAD_SIZE_MAX_CEILING
        {
            return Err(format!(
                "http_head_size_max must be 256..={}",
                wire::HTTP_HEAD_SIZE_MAX_CEILING
            ));
        }
        if self.outbound_bytes_max < self.message_size_max {
            return Err("outbound_bytes_max must be at least message_size_max, or no \
                        message of the maximum size could ever be sent"
                .into());
        }
        if self.connections_per_room_max == 0 {
            return Err("connections_per_room_max must be positive".into());
        }
        if self.handshake_timeout_ms == 0 || self.ws_idle_timeout_ms == 0 {
            return Err("timeouts must be positive".into());
        }
        Ok(())
    }
}

/// Descriptors kept free for listeners, the storage engine and logs when the per-shard
/// connection limit is derived from the open-files limit.
pub const OPEN_FILES_RESERVE: u64 = 256;

/// Memory glommio locks per shard for registered I/O buffers. Network shards do no direct
/// file I/O, so this stays small: the default (10 MiB) exceeds the usual 8 MiB memlock
/// limit of unprivileged users once there are a few shards.
pub const SHARD_IO_MEMORY: usize = 512 * 1024;
