//! Settings of the allocator the `fhirlake` binary uses (mimalloc, set in `main.rs`).

/// mimalloc v3's `mi_option_purge_delay` (its index in `mi_option_t`; libmimalloc-sys names
/// no constant for it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Keep freed memory for reuse instead of returning it to the OS a second later (mimalloc
/// v3's default purge delay is 1000 ms). Tables are decoded, encoded and dropped chunk by
/// chunk, so returned memory came back as fresh pages the kernel had to fault in and zero
/// again (`clear_page_erms` was up to 20% of CPU samples). Measured on a 1 GiB corpus:
/// page faults 32-44k -> 12k, system time 0.3-1.8 s -> 0.2-0.5 s, peak RSS unchanged (the
/// memory limit bounds what is in use; this only stops handing it back between chunks).
/// `MIMALLOC_PURGE_DELAY` set by the user wins.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: mi_option_get/mi_option_set take any option index and only read or store a
    // value; purging reads the option on each purge, so setting it after startup is fine.
    unsafe {
        // The option at our index must hold purge_delay's default (1000 ms): if a later
        // mimalloc renumbered its options, leave them alone rather than set another one.
        if libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY) == MIMALLOC_PURGE_DELAY_DEFAULT {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, -1);
        }
    }
}

/// mimalloc v3's default purge delay, in milliseconds (`options.c`).
const MIMALLOC_PURGE_DELAY_DEFAULT: std::ffi::c_long = 1000;

#[cfg(test)]
mod tests {
    /// The hard-coded option index is mimalloc's purge delay: it holds that option's
    /// default, and `keep_freed_memory` turns purging off through it.
    #[test]
    fn purge_delay_option_is_found_and_set() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the user's setting wins, and the default is not there to check
        }
        // SAFETY: reading an option only reads a value.
        let get = || unsafe { libmimalloc_sys::mi_option_get(super::MI_OPTION_PURGE_DELAY) };
        assert_eq!(get(), super::MIMALLOC_PURGE_DELAY_DEFAULT);
        super::keep_freed_memory();
        assert_eq!(get(), -1);
    }
}
