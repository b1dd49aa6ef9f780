//! The fast paths: each network's faster route to the numbers of its
//! reference code, in one place, switched on and off by
//! [`Numerics`](super::Numerics).
//!
//! A network opts in by implementing [`FastPaths`](super::FastPaths) (its
//! documentation says what each path must compute) and returning it from
//! [`Network::fast`](super::Network::fast). SqueezeNet 1.1's are in
//! `squeezenet.rs`; the max-pooling kernel they use is in `pool.rs`.
//! `crate/benches/LOG.md` records each trick's measurement and why it is
//! there.

pub(crate) mod pool;
mod squeezenet;

pub(crate) use squeezenet::FastSqueezeNet;
