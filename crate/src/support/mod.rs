//! Checks and helpers shared by the model and the attribution methods: a
//! leaf module (it uses nothing of the crate but its error type), so that
//! modules depend on each other in one direction only. The checks of a
//! method's input in `checks.rs`, libtorch helpers in `torch.rs`.

mod checks;
mod torch;

pub(crate) use checks::{
    check_batch, check_classes, check_count, check_finite, check_targets, count_non_finite,
};
pub(crate) use torch::{
    catch_libtorch, in_chunks, in_indexed_chunks, index_tensor, input_gradient, panic_is_caught,
    target_score_sum,
};
pub use torch::{chunk_ranges, CPU_CHUNK};
