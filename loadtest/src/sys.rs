//! What the load tester reads from the operating system: CPU seconds of this process and of
//! the server (from /proc, given its pid), and the server's resident memory; and sockets
//! connected from a chosen source address.

/// User + system CPU seconds of process `pid` (`None` if /proc cannot tell).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces) start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clock_ticks())
}

/// Resident set size of process `pid`, in bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "VmRSS:").map(|kib| kib * 1024)
}

/// The anonymous part of process `pid`'s resident set (its heap and stacks, not the pages
/// of its binary and libraries), in bytes. Two builds of one server differ by up to a few
/// hundred KB in the file-backed part alone, as their code is laid out differently, so
/// per-connection comparisons between builds are steadier on this figure.
pub fn anon_bytes(pid: u32) -> Option<u64> {
    status_kib(pid, "RssAnon:").map(|kib| kib * 1024)
}

fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// This process's pid.
pub fn self_pid() -> u32 {
    std::process::id()
}

/// Opens a TCP connection to `to`, from `from` when given. The source port is left to the
/// kernel at connect time (`IP_BIND_ADDRESS_NO_PORT`), so each source address offers its
/// own ~28k ports per destination instead of one port space shared by all bindings, and
/// binding stays fast. The connect is non-blocking: the first write waits for it.
pub fn connect_from(
    from: Option<std::net::IpAddr>,
    to: std::net::SocketAddr,
) -> std::io::Result<glommio::net::TcpStream> {
    use std::os::fd::{FromRawFd, IntoRawFd};
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(to),
        socket2::Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if let Some(ip) = from {
        let one: libc::c_int = 1;
        // SAFETY: setsockopt reads an int we own; the option is Linux's
        // IP_BIND_ADDRESS_NO_PORT (24) at level IPPROTO_IP.
        let rc = unsafe {
            libc::setsockopt(
                std::os::fd::AsRawFd::as_raw_fd(&socket),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                libc::socklen_t::try_from(std::mem::size_of::<libc::c_int>()).unwrap_or(4),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        socket.bind(&std::net::SocketAddr::new(ip, 0).into())?;
    }
    socket.set_nonblocking(true)?;
    socket.set_tcp_nodelay(true)?;
    match socket.connect(&to.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(e) => return Err(e),
    }
    // SAFETY: the descriptor comes from into_raw_fd: an open TCP socket owned by no one else.
    Ok(unsafe { glommio::net::TcpStream::from_raw_fd(socket.into_raw_fd()) })
}
