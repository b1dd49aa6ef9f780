//! A libtorch failure that the crate turns into an `Err` is said by the
//! error alone: no panic message on stderr (in a notebook the hook would
//! also wait 100 ms), while a panic of the caller's own still reaches the
//! hook. One test in a process of its own, since the panic hook is the
//! process's.

use std::cell::Cell;

use saliency_lab::attribution::vanilla_gradient;
use tch::{nn, Device, Kind, Tensor};

thread_local! {
    static PANICS: Cell<u32> = const { Cell::new(0) };
}

#[test]
fn a_libtorch_failure_becomes_an_error_without_a_panic_message() {
    std::panic::set_hook(Box::new(|_| PANICS.with(|p| p.set(p.get() + 1))));
    // A network libtorch refuses this input to (tch panics on the failure).
    let net = nn::func(|x| x.view([-1, 7]));
    let x = Tensor::zeros([1, 3, 8, 8], (Kind::Float, Device::Cpu));
    let err = vanilla_gradient(&net, &x, &[0]).unwrap_err().to_string();
    assert!(err.contains("[1, 3, 8, 8]"), "{err}");
    assert_eq!(PANICS.with(Cell::get), 0, "the hook saw the caught failure");
    let _ = std::panic::catch_unwind(|| panic!("the caller's own"));
    assert_eq!(
        PANICS.with(Cell::get),
        1,
        "the hook missed the caller's panic"
    );
}
