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

/// Makes mimalloc hand this thread's free pages back to the OS now (`mi_collect(true)`).
/// Its own purges run lazily, from later allocations on the same thread, and a shard whose
/// sockets have just parked may not allocate again for a long time: without this, 5,000
/// parked sockets kept all their freed memory resident. Harmless when the global allocator
/// is another one (mimalloc's heap is then empty).
pub fn release_freed_memory() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) };
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
