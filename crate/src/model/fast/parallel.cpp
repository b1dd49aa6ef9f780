// libtorch's public `at::parallel_for` for the crate's Rust code: the work
// runs on the threads libtorch runs its own operations on (its intra-op
// team, OpenMP's or its native pool, whichever this libtorch was built
// with), so that the crate's threads do not compete for the cores with that
// team's, which spin for a while after each operation (crate/benches/LOG.md).
// Compiled by crate/build.rs against the headers of the libtorch tch links;
// called from parallel.rs.

#include <ATen/Parallel.h>

#include <cstdint>

extern "C" {

// Calls `f(data, begin, end)` for disjoint ranges that cover [0, n), each on
// one of libtorch's intra-op threads, and returns when all have returned.
// At most ceil(n / grain) threads take part. `f` must not unwind (the Rust
// side catches its panics). Returns 0, or 1 where libtorch threw (then some
// ranges may not have run).
int saliency_lab_parallel_for(int64_t n, int64_t grain,
                              void (*f)(void *, int64_t, int64_t),
                              void *data) noexcept {
  try {
    at::parallel_for(0, n, grain,
                     [&](int64_t begin, int64_t end) { f(data, begin, end); });
    return 0;
  } catch (...) {
    return 1;
  }
}

}  // extern "C"
