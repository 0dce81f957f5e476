//! Every limit of the engine in one place: what each bounds, its default, what happens past
//! it, and what breaks if it is raised. [`Limits`] carries the configured values (config
//! files may change them); the constants are fixed. Relations between limits are checked
//! at compile time here and at start by [`Limits::validate`].
//!
//! Memory as a whole is the sum of these budgets (docs/operations.md adds it up): per
//! socket records, the output and input budgets, the rooms' budget, mailboxes and mesh
//! queues, and storage's caches. Each budget has a defined outcome past it, never an
//! unbounded queue.

use partyline_protocol::limits as wire;
use serde::Deserialize;

/// Largest per-connection outbound queue by default. A client that stops reading is
/// closed with 1008 once this many bytes wait for it, and the queue is freed. Raising it
/// lets each slow client pin more memory.
pub const OUTBOUND_BYTES_MAX: usize = 4 * 1024 * 1024;

/// Largest per-connection state (`Connection::set_state`), PartyKit's new-runtime cap.
pub const CONNECTION_STATE_SIZE_MAX: usize = 16 * 1024;

/// Most tags per connection, the connection id included (PartyKit's rule).
pub const CONNECTION_TAG_COUNT_MAX: usize = 10;

/// Longest tag, in characters (PartyKit's rule). The connection id is a tag, so a `_pk`
/// longer than this is refused with 400 before the upgrade.
pub const CONNECTION_TAG_CHARS_MAX: usize = 256;

/// Messages one edge shard may have sent to one room that the room has not yet taken
/// from its mailbox: the room's *window* on that edge. An edge whose window for a room is
/// full stops reading that room's sockets until the room's credit arrives, so a busy room
/// pushes back on the sockets that feed it, at once and on their own shard, and no channel
/// other rooms share ever waits for it.
pub const ROOM_WINDOW_EVENTS: u32 = 256;

/// Message bytes in a room's window on one edge, like [`ROOM_WINDOW_EVENTS`]. A socket
/// reads when the window has room, so one read's messages (or one message of up to
/// `message_size_max`) may go past it.
pub const ROOM_WINDOW_BYTES: usize = 1024 * 1024;

/// A room returns credit to an edge once it has taken this many of the edge's messages
/// (or [`ROOM_CREDIT_BATCH_BYTES`]): a quarter of the window, so credit costs one small
/// cross-shard message per many, and the window never stalls on credit kept back.
pub const ROOM_CREDIT_BATCH_EVENTS: u32 = ROOM_WINDOW_EVENTS / 4;

/// See [`ROOM_CREDIT_BATCH_EVENTS`].
pub const ROOM_CREDIT_BATCH_BYTES: usize = ROOM_WINDOW_BYTES / 4;

/// Cap on one room's queued events, past which a connect or request is answered 503 (and
/// an alarm tried again later). Messages and closes are always queued: messages are
/// bounded by the windows (per edge, at most two windows and one message: a window starts
/// again when its room's last socket on that edge leaves and a new one joins while the old
/// messages are still queued), closes by the connections.
pub const ROOM_MAILBOX_MAX: usize = 16 * 1024;

/// Cap on one room's queued message and request bytes, like [`ROOM_MAILBOX_MAX`]. Raising
/// it lets connects and requests queue behind more of a flooded room's work.
pub const ROOM_MAILBOX_BYTES_MAX: usize = 64 * 1024 * 1024;

/// Most messages one `on_messages` call takes (a party's `MESSAGE_BATCH_MAX` is clamped
/// to it): messages already waiting at the head of the room's queue, so a batch costs no
/// waiting and holds no more memory than the queue did.
pub const ROOM_MESSAGE_BATCH_MAX: usize = 256;

/// Messages in flight in one cross-shard channel (one per ordered pair of shards).
pub const MESH_CHANNEL_MAX: usize = 1024;

/// Frames and broadcasts (home to edge) waiting behind a full mesh channel, per peer
/// shard. Past it, `Connection::send` and `Room::broadcast` fail with an overload error
/// (control messages such as connect outcomes, closes and replies always queue: each is
/// bounded by the sockets or requests waiting for it).
pub const MESH_OUTBOX_MAX: usize = 65536;

/// Outbox backlog at which rooms with connections on that peer stop taking events until
/// it drains below [`MESH_OUTBOX_LOW`]: a room sending faster than an edge can write waits,
/// its mailbox fills, and its sockets stop being read.
pub const MESH_OUTBOX_HIGH: usize = MESH_OUTBOX_MAX / 4;

/// See [`MESH_OUTBOX_HIGH`].
pub const MESH_OUTBOX_LOW: usize = MESH_OUTBOX_HIGH / 4;

/// Bytes of the shard-wide read buffer every socket on the shard reads into.
pub const SCRATCH_BYTES: usize = 64 * 1024;

/// Reads one socket's task makes in a row (each up to [`SCRATCH_BYTES`]) before it lets the
/// shard's other tasks run: a client that always has bytes ready cannot hold the shard,
/// and a pause from its room reaches its edge promptly.
pub const READS_PER_TURN_MAX: u32 = 8;

/// Frames gathered into one `sendmsg` call.
pub const WRITE_BATCH_FRAMES_MAX: usize = 64;

/// How long a closing socket may take to flush its last bytes and see the peer's FIN while
/// its reads are drained, so closing never resets a connection whose peer is still
/// sending (a reset discards the response or close frame the peer has not read yet).
pub const CLOSE_LINGER_MS: u64 = 2_000;

/// How long a shard waits at shutdown for its sockets to finish closing.
pub const SHUTDOWN_DRAIN_MS: u64 = 3_000;

/// Memory a loaded room is charged for itself (host, task, registry maps), against
/// `rooms_memory_max`; measured with `size_of` plus allocator overhead, rounded up.
pub const ROOM_BASE_BYTES: usize = 2048;

/// Memory a room is charged per open connection (its record and index entries).
pub const ROOM_CONNECTION_BYTES: usize = 256;

/// Warnings about client misbehaviour (bad frames, failing messages) logged per shard per
/// second; the rest are counted and the count is logged with the next one.
pub const CLIENT_WARNINGS_PER_S: u32 = 20;

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
    /// Outbound bytes queued per connection before it is closed (1008) as a slow consumer.
    pub outbound_bytes_max: usize,
    /// Outbound bytes queued for all sockets of the process together; past it the sockets
    /// with the most queued are closed with 1008 until the total is under 90% of it.
    pub outbound_total_bytes_max: usize,
    /// Bytes held for partly received messages (partial frames and fragments) by all
    /// sockets of the process; past it the largest holders are closed with 1009.
    pub inbound_total_bytes_max: usize,
    /// Open connections per room; the next one gets 503. PartyKit allows 32,000 with
    /// hibernation.
    pub connections_per_room_max: usize,
    /// Open sockets (WebSocket or HTTP) per shard; the next one gets 503. 0 (the default)
    /// derives it from the open-files limit: (limit - 256) / shards, so the server refuses
    /// cleanly before accept() ever fails with EMFILE.
    pub connections_per_shard_max: usize,
    /// Rooms loaded per shard; idle rooms are unloaded to make space, else 503.
    pub rooms_per_shard_max: usize,
    /// Memory all loaded rooms of the process may be charged together: a base per room,
    /// per connection, and what `Party::memory_bytes` reports. Past it idle rooms are
    /// unloaded, least recently used first, then new rooms get 503.
    pub rooms_memory_max: usize,
    /// A loaded room with no connections and nothing to do for this long is unloaded (its
    /// storage stays; the next event loads it again with `on_start`).
    pub room_unload_after_ms: u64,
    /// A hook still running after this long is cancelled: the event fails as if the hook
    /// had panicked (1011 to a connecting or sending socket, 504 to a request, an alarm
    /// retried), and the next event gets a fresh instance.
    pub hook_timeout_ms: u64,
    /// How long an edge waits for a room's answer to a connect or a request (and a room or
    /// gate for another room's fetch) before answering 504 itself.
    pub room_answer_timeout_ms: u64,
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
            outbound_total_bytes_max: 1024 * 1024 * 1024,
            inbound_total_bytes_max: 256 * 1024 * 1024,
            connections_per_room_max: 32_000,
            connections_per_shard_max: 0,
            rooms_per_shard_max: 100_000,
            rooms_memory_max: 2 * 1024 * 1024 * 1024,
            room_unload_after_ms: 60_000,
            hook_timeout_ms: 25_000,
            room_answer_timeout_ms: 30_000,
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
        if self.outbound_total_bytes_max < self.outbound_bytes_max {
            return Err("outbound_total_bytes_max must be at least outbound_bytes_max".into());
        }
        if self.inbound_total_bytes_max < self.message_size_max {
            return Err("inbound_total_bytes_max must be at least message_size_max, or no \
                        message of the maximum size could ever be received"
                .into());
        }
        if self.connections_per_room_max == 0 {
            return Err("connections_per_room_max must be positive".into());
        }
        if self.rooms_memory_max < ROOM_BASE_BYTES {
            return Err(format!("rooms_memory_max must be at least {ROOM_BASE_BYTES}"));
        }
        if self.handshake_timeout_ms == 0
            || self.ws_idle_timeout_ms == 0
            || self.hook_timeout_ms == 0
            || self.room_answer_timeout_ms == 0
        {
            return Err("timeouts must be positive".into());
        }
        Ok(())
    }
}

/// Descriptors kept free for listeners, the storage engine and logs when the per-shard
/// connection limit is derived from the open-files limit.
pub const OPEN_FILES_RESERVE: u64 = 256;

/// Longest request and response text of a room's auto-response (as Durable Objects').
pub const AUTO_RESPONSE_BYTES_MAX: usize = 2_048;

/// Sockets one sweep of a shard asks to park (a sweep runs five times a second). Parking
/// ends a task and cancels its read in the ring: a room of 15,000 sockets going idle at
/// once would otherwise stall the shard for one long turn and leave the ring's submission
/// queue sized for 15,000 cancels for good (glommio never shrinks it: about 50 bytes per
/// entry). At this rate 15,000 sockets park within 3 seconds.
pub const PARKS_PER_SWEEP_MAX: usize = 1_024;

/// Admin requests served at once; more are answered 503 at once (a scraper that holds a
/// connection open cannot take the admin listener's thread with it).
pub const ADMIN_CONNECTIONS_MAX: usize = 8;

/// Longest admin request head (request line and headers); longer gets 431.
pub const ADMIN_REQUEST_BYTES_MAX: usize = 8 * 1024;

/// Deadline of an admin request's whole head, and of each write: a scraper this slow is
/// dropped.
pub const ADMIN_IO_TIMEOUT_MS: u64 = 5_000;

/// Memory glommio locks per shard for registered I/O buffers. Network shards do no direct
/// file I/O, so this stays small: the default (10 MiB) exceeds the usual 8 MiB memlock
/// limit of unprivileged users once there are a few shards.
pub const SHARD_IO_MEMORY: usize = 512 * 1024;

const _: () =
    assert!(ROOM_CREDIT_BATCH_EVENTS > 0 && ROOM_CREDIT_BATCH_EVENTS < ROOM_WINDOW_EVENTS);
const _: () = assert!(ROOM_CREDIT_BATCH_BYTES < ROOM_WINDOW_BYTES);
const _: () = assert!(ROOM_WINDOW_BYTES <= ROOM_MAILBOX_BYTES_MAX / 16);
const _: () = assert!(MESH_OUTBOX_LOW < MESH_OUTBOX_HIGH && MESH_OUTBOX_HIGH < MESH_OUTBOX_MAX);
const _: () = assert!(SCRATCH_BYTES > wire::WS_FRAME_HEADER_MAX);

/// Bytes waiting to be written on one node link, past which the link is dropped (the peer
/// is not reading fast enough) and its node treated as lost: rooms homed there close
/// their sockets here with 1013, sockets there leave rooms here. The writer may hold as
/// much again while it writes.
pub const LINK_BUFFER_MAX: usize = 64 * 1024 * 1024;

/// Bytes waiting on a node link past which rooms with sockets on that node wait before
/// their next event (as for a congested shard), until it is below [`LINK_BUFFER_LOW`]:
/// a room that writes faster than the link drains is held back, not the link dropped.
pub const LINK_BUFFER_HIGH: usize = LINK_BUFFER_MAX / 4;
pub const LINK_BUFFER_LOW: usize = LINK_BUFFER_HIGH / 4;

/// How often a node link sends a heartbeat when it has nothing else to say.
pub const LINK_PING_MS: u64 = 500;

/// A node link silent for this long is dropped (a peer that hangs without closing).
pub const LINK_DEAD_MS: u64 = 3_000;

/// Time for a node link's TCP connect and its handshake, each.
pub const LINK_HANDSHAKE_MS: u64 = 2_000;

/// Connections to the peer port still in their handshake, past which new ones are closed
/// at once (the port is for the other nodes: a handful at a time).
pub const LINK_HANDSHAKES_MAX: usize = 64;

/// Between attempts to link to a node that is down: from the first to the last, doubling.
pub const LINK_BACKOFF_MIN_MS: u64 = 50;
pub const LINK_BACKOFF_MAX_MS: u64 = 2_000;

/// How long a new link waits for every shard to have closed what lived across the last
/// one (they do it at their next sweep, 200 ms apart) before carrying traffic anyway.
pub const LINK_ACK_WAIT_MS: u64 = 3_000;
