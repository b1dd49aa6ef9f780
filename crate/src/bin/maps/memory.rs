//! glibc's allocator tuned for many batches: chosen by the binaries that run
//! them (`maps`, and the `bench` example, which includes this file), not by
//! the library, which leaves a process's allocator to the process.

/// Keeps memory that libtorch frees for reuse instead of handing it back to
/// the system (Linux with glibc; elsewhere nothing): the largest block glibc
/// takes from the heap rather than mapping it afresh becomes 32 MiB (its
/// maximum), and up to 256 MiB of free heap stays with the process.
///
/// Without it, glibc returns a forward pass's activations to the system and
/// the next pass takes them back page by page: after a batch of another size
/// (the vanilla gradient before SmoothGrad, say) SmoothGrad ran about 30%
/// slower on the CPU (`crate/benches/LOG.md`). Peak memory is unchanged.
pub fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only sets glibc's allocator parameters; both
            // values are within its documented limits.
            unsafe {
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 256 << 20);
            }
        });
    }
}
