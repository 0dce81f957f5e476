//! Process-wide settings: the open-files limit, transparent huge pages, handing freed
//! memory back to the OS, and whether io_uring is allowed at all.

use std::io;

/// Raises the soft open-files limit to the hard limit; returns (soft, hard) afterwards.
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            lim = raised;
        }
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Turns transparent huge pages off for this process (`PR_SET_THP_DISABLE`), whatever the
/// system setting and whatever the allocator asks with `madvise`.
pub fn disable_transparent_huge_pages() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// CPU time the calling thread has used, in ns (`CLOCK_THREAD_CPUTIME_ID`).
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid timespec for the call to write.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if !ok {
        return 0;
    }
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// Makes mimalloc hand this thread's free pages back to the OS now (`mi_collect(true)`).
/// Its own purges run lazily, from later allocations on the same thread, and a shard whose
/// sockets have just parked may not allocate again for a long time: without this, 5,000
/// parked sockets kept all their freed memory resident. Harmless when the global allocator
/// is another one (mimalloc's heap is then empty).
pub fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
}

/// mimalloc's `mi_option_purge_delay` (its index in mimalloc 2's `mi_option_e`, which
/// libmimalloc-sys does not name).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Sets how long mimalloc waits before handing a free page back to the OS (its default is
/// 10 ms; 0 is at once). A delayed purge only happens when the thread that owns the page
/// allocates or collects again; the threads that free a sleeping room's archive (fjall's
/// flush worker) may not, and their freed memory then stays resident until they work
/// again. At once, 5,000 connections in a sleeping room cost less (docs/benchmarks.md),
/// but a saturated fan-out's latency rose by 40%, hence a setting
/// (`allocator_purge_delay_ms`). Harmless when the global allocator is another one.
pub fn set_allocator_purge_delay(ms: u32) {
    let ms = libc::c_long::from(ms);
    // SAFETY: sets a process-wide option; mimalloc reads options atomically.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, ms) };
}

/// Whether io_uring works here (Docker's default seccomp profile blocks it, and glommio
/// then fails with a misleading "kernel too old").
pub fn check_io_uring() -> Result<(), String> {
    // io_uring_setup with zero entries: ENOSYS or EPERM mean "blocked", EINVAL or EFAULT
    // mean the call exists.
    // SAFETY: the call fails on its arguments before touching the null pointer's memory.
    let rc = unsafe { libc::syscall(libc::SYS_io_uring_setup, 0u32, std::ptr::null_mut::<u8>()) };
    if let Ok(fd) = i32::try_from(rc)
        && fd >= 0
    {
        // SAFETY: a successful call returned a descriptor we own.
        unsafe { libc::close(fd) };
        return Ok(());
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOSYS) => {
            Err("io_uring is not available: the kernel lacks it (Linux 5.8+ needed)".into())
        }
        Some(libc::EPERM) => Err("io_uring is blocked: a seccomp profile (Docker's default) or \
                                  kernel.io_uring_disabled forbids it; run with \
                                  --security-opt seccomp=unconfined or allow io_uring_*"
            .into()),
        _ => Ok(()),
    }
}

/// What the process uses now, read from `/proc/self` (zeros where it cannot be read).
#[derive(Debug, Default, Clone, Copy)]
pub struct Usage {
    pub resident_bytes: u64,
    pub open_fds: u64,
    pub cpu_seconds: f64,
}

/// Reads the process's resident memory, open descriptors and CPU time.
pub fn usage() -> Usage {
    // SAFETY: sysconf takes and returns integers only.
    let (page, ticks) =
        unsafe { (libc::sysconf(libc::_SC_PAGESIZE), libc::sysconf(libc::_SC_CLK_TCK)) };
    let (page, ticks) = (u64::try_from(page).unwrap_or(4096), ticks.max(1) as f64);
    let resident_pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|n| n.parse::<u64>().ok()))
        .unwrap_or(0);
    let open_fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64);
    // Fields 14 and 15 of /proc/self/stat (utime, stime), counted after the command name,
    // which is in parentheses and may contain spaces.
    let cpu_ticks = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 1..];
            let mut fields = rest.split_whitespace().skip(11);
            let user = fields.next()?.parse::<u64>().ok()?;
            let system = fields.next()?.parse::<u64>().ok()?;
            Some(user + system)
        })
        .unwrap_or(0);
    Usage { resident_bytes: resident_pages * page, open_fds, cpu_seconds: cpu_ticks as f64 / ticks }
}
