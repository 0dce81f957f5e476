//! The thin layer between partyline and glommio (and the kernel): listening sockets,
//! reads into a caller's buffer, vectored non-blocking writes, deadlines on futures, and
//! process settings. Everything glommio-specific that is not a channel or a spawn lives
//! here, so another io_uring runtime could replace it. Depends on nothing else in the
//! engine.

mod net;
mod process;
mod time;

pub(crate) use net::{
    TcpListener, TcpStream, adopt_listener, bind_listeners, fd_of, poll_read, poll_write,
    send_vectored,
};
pub use process::{
    Usage, check_io_uring, disable_transparent_huge_pages, raise_open_files_limit,
    release_freed_memory, set_allocator_purge_delay, thread_cpu_ns, usage,
};
pub(crate) use time::{sleep, within};
