//! Work of the crate's on libtorch's own intra-op threads.
//!
//! libtorch runs each operation on a team of threads (OpenMP's, in the
//! wheels for Linux) whose threads spin for a while after the operation
//! ends. Threads of the crate's would share the two cores with them: the
//! pooling kernel on two threads of its own made the vanilla gradient no
//! faster than on one, and 7-20% slower than on libtorch's team
//! (`crate/benches/LOG.md`). So the work goes through libtorch's public
//! `at::parallel_for` (`parallel.cpp`, compiled by `crate/build.rs` against
//! the headers of the libtorch tch links, which sets `cfg(libtorch_parallel)`).
//! Where that could not be built (no headers found, or an OpenMP libtorch
//! without libgomp, as on macOS), the crate's own scoped threads run it.

/// Runs `work` once on each of `threads` threads, at most as many as
/// libtorch's intra-op threads, the calling thread among them, and returns
/// when all have returned; a panic in any of them is resumed on the calling
/// thread. `work` should take its share from a queue: a thread may run it
/// twice, or not at all, and the calling thread runs it once more where
/// libtorch refuses the call.
pub(crate) fn on_threads(threads: usize, work: &(dyn Fn() + Sync)) {
    if threads <= 1 {
        work();
        return;
    }
    #[cfg(libtorch_parallel)]
    libtorch::on_threads(threads, work);
    #[cfg(not(libtorch_parallel))]
    std::thread::scope(|scope| {
        let team = threads.min(usize::try_from(tch::get_num_threads()).unwrap_or(1));
        let others: Vec<_> = (1..team).map(|_| scope.spawn(work)).collect();
        work();
        for other in others {
            if let Err(panic) = other.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}

#[cfg(libtorch_parallel)]
mod libtorch {
    use std::any::Any;
    use std::ffi::{c_int, c_void};
    use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
    use std::sync::Mutex;

    extern "C" {
        /// `parallel.cpp`: `at::parallel_for(0, n, grain, ...)` calling
        /// `f(data, begin, end)`; 0, or 1 where libtorch threw.
        fn saliency_lab_parallel_for(
            n: i64,
            grain: i64,
            f: unsafe extern "C" fn(*mut c_void, i64, i64),
            data: *mut c_void,
        ) -> c_int;
    }

    struct Job<'a> {
        work: &'a (dyn Fn() + Sync),
        panic: Mutex<Option<Box<dyn Any + Send>>>,
    }

    /// Runs `work` once for each index in `begin..end`.
    ///
    /// # Safety
    /// `data` points to a live `Job`.
    unsafe extern "C" fn each(data: *mut c_void, begin: i64, end: i64) {
        // SAFETY: `on_threads` passes its `Job`, alive until
        // `saliency_lab_parallel_for` returns, after every call to this.
        let job = unsafe { &*(data as *const Job) };
        for _ in begin..end {
            // No unwinding into C++: the panic is carried over.
            if let Err(panic) = catch_unwind(AssertUnwindSafe(job.work)) {
                if let Ok(mut slot) = job.panic.lock() {
                    slot.get_or_insert(panic);
                }
                return;
            }
        }
    }

    pub(super) fn on_threads(threads: usize, work: &(dyn Fn() + Sync)) {
        let job = Job {
            work,
            panic: Mutex::new(None),
        };
        let n = i64::try_from(threads).unwrap_or(i64::MAX);
        // SAFETY: `each` matches the declared signature, does not unwind,
        // and `job` outlives the call, which returns after every thread has
        // left `each`.
        let failed =
            unsafe { saliency_lab_parallel_for(n, 1, each, &job as *const Job as *mut c_void) };
        if let Some(panic) = job.panic.into_inner().ok().flatten() {
            resume_unwind(panic);
        }
        if failed != 0 {
            work();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::thread::{self, ThreadId};

    /// The thread ids `on_threads(2, ..)` ran on, the calling thread's left
    /// out.
    fn workers() -> HashSet<ThreadId> {
        let ids = Mutex::new(HashSet::new());
        on_threads(2, &|| {
            ids.lock().unwrap().insert(thread::current().id());
        });
        let mut ids = ids.into_inner().unwrap();
        ids.remove(&thread::current().id());
        ids
    }

    /// Where torch-sys links libgomp, the shim must have been built.
    #[test]
    #[cfg(target_os = "linux")]
    fn the_shim_is_built_on_linux() {
        #[cfg(not(libtorch_parallel))]
        panic!("crate/build.rs did not build parallel.cpp (see its warning in cargo's output)");
    }

    #[test]
    fn work_runs_on_libtorchs_threads_and_panics_reach_the_caller() {
        tch::set_num_threads(2);
        // libtorch's team outlives each call (threads of the crate's would
        // be new ones, with new ids, each time).
        let (first, second) = (workers(), workers());
        assert_eq!(first.len(), 1, "{first:?}");
        if cfg!(libtorch_parallel) {
            assert_eq!(first, second);
        }
        let caller = thread::current().id();
        let caught = std::panic::catch_unwind(|| {
            on_threads(2, &|| {
                if thread::current().id() != caller {
                    panic!("on purpose, on a worker");
                }
            })
        });
        let message = caught.expect_err("the worker's panic was lost");
        assert_eq!(
            message.downcast_ref::<&str>(),
            Some(&"on purpose, on a worker")
        );
    }
}
