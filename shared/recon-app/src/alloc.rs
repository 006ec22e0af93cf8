//! One allocator for every recon process, the CLI and the Lambdas alike (the `match` function reconciles the
//! same day the same way, so it gets the settings the benchmarks measured for the CLI).

/// mimalloc: the matcher allocates millions of small keys; glibc malloc spent much of its time in page faults.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The purge delay a batch run sets, in milliseconds.
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// `mi_option_purge_delay` in the pinned mimalloc (libmimalloc-sys 0.1.49: the same index in its v2 and v3
/// headers; the crate exports no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Allocator settings for a batch run: hand freed memory back to the OS 10 ms after it is freed (mimalloc's
/// "purge"; the pinned v3 waits 1 s by default) and ask for transparent huge pages (`madvise`, where the kernel allows
/// them), so that the matcher's random probes into tables of millions of entries miss the TLB less.
/// Freed memory kept for reuse cannot serve what comes next: the parse's 1 MiB read and hash buffers, the
/// migrations' and the staging's garbage stay resident beside the matcher's multi-megabyte tables, which
/// need fresh memory. Measured at 1M rows (session 17, 6 alternating runs each): never purging 1.05 s /
/// 337 MiB peak (median), a 10 ms delay 1.04 s / 325 MiB, no delay 1.06 s / 322 MiB, 100 ms 1.04 s /
/// 336 MiB. (An earlier session measured never purging faster, 1.56 s against 1.66, when the run freed and
/// reallocated hundreds of MiB within a second; it no longer does.) `MIMALLOC_PURGE_DELAY` /
/// `MIMALLOC_LARGE_OS_PAGES` in the environment win.
#[allow(unsafe_code)]
pub fn batch_settings() {
    // mimalloc's own environment variables still win (they were read at load)
    let unset = |v: &str| std::env::var_os(v).is_none();
    let purge = unset("MIMALLOC_PURGE_DELAY") && unset("MIMALLOC_RESET_DELAY");
    let large = unset("MIMALLOC_ALLOW_LARGE_OS_PAGES") && unset("MIMALLOC_LARGE_OS_PAGES");
    // SAFETY: mi_option_set only stores an integer option (no pointers, no memory touched); it is called
    // first thing in main; the purge delay is in milliseconds, 1 enables large OS pages.
    unsafe {
        if purge {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
        if large {
            libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1);
        }
    }
}

/// Hands memory freed so far back to the OS now, without waiting for the purge delay: freed blocks of up to
/// 32 MiB sit in mimalloc's arenas until something allocates there again, and a loop that only copies (the
/// parse's pieces appended into one vector, each freed once copied) would hold every piece it freed until
/// the loop ends.
#[allow(unsafe_code)]
pub fn release_freed() {
    // SAFETY: mi_collect takes no pointers; it frees what the calling thread's heap and the arenas hold
    // free, nothing in use.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

/// The settings in effect, as mimalloc reads them back: the purge delay in milliseconds and whether large OS
/// pages are asked for. The Lambdas log them at start (the arm64 check in `make test` reads that line).
#[allow(unsafe_code)]
pub fn in_effect() -> (std::ffi::c_long, bool) {
    // SAFETY: mi_option_get reads an integer option.
    let (purge, large) = unsafe {
        (
            libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            libmimalloc_sys::mi_option_get(libmimalloc_sys::mi_option_large_os_pages),
        )
    };
    (purge, large != 0)
}

#[cfg(test)]
mod tests {
    /// After the batch settings, freed memory is handed back 10 ms after it is freed (unless the
    /// environment says otherwise).
    #[test]
    fn the_batch_settings_purge_freed_memory_soon() {
        super::batch_settings();
        let (purge, large) = super::in_effect();
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none()
            && std::env::var_os("MIMALLOC_RESET_DELAY").is_none()
        {
            assert_eq!(purge, super::PURGE_DELAY_MS);
        }
        if std::env::var_os("MIMALLOC_ALLOW_LARGE_OS_PAGES").is_none()
            && std::env::var_os("MIMALLOC_LARGE_OS_PAGES").is_none()
        {
            assert!(large, "large OS pages asked for");
        }
    }
}
