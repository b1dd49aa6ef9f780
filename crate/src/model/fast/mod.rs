//! The fast paths: each network's faster route to the numbers of its
//! reference code, in one place, switched on and off by
//! [`Numerics`](super::Numerics).
//!
//! A network opts in by implementing [`FastPaths`](super::FastPaths) (its
//! documentation says what each path must compute) and returning it from
//! [`Network::fast`](super::Network::fast). SqueezeNet 1.1's are in
//! `squeezenet.rs`; the max-pooling kernel they use is in `pool.rs`, and it
//! runs on libtorch's threads through `parallel.rs` (`parallel.cpp`, built by
//! `crate/build.rs`). `crate/benches/LOG.md` records each trick's
//! measurement and why it is there.

mod parallel;
pub(crate) mod pool;
mod squeezenet;

pub(crate) use squeezenet::FastSqueezeNet;
