//! # saliency-lab
//!
//! The computations of the interpretability lab "Estimating importance
//! scores" (saliency maps by backpropagation), in Rust on [`tch`]:
//!
//! 1. [`data`]: the lab's 25 ImageNet validation images, labels and class
//!    names from `imagenet_val_25.npz`;
//! 2. [`transforms`]: `preprocess`, `rescale`, `deprocess`, `blur_image`;
//! 3. [`model`]: SqueezeNet 1.1 with torchvision's pretrained weights,
//!    frozen, and class scores; [`Network`](model::Network), what the
//!    methods ask of a network, and the crate's [`layers`](model::layers);
//! 4. [`attribution`]: the vanilla gradient and its 2-D summaries, Input x
//!    Gradient, Integrated Gradients, Guided Backprop, Grad-CAM, Guided
//!    Grad-CAM, Occlusion, a noise tunnel (SmoothGrad, SG-SQ, VarGrad) over
//!    any of them, and the lab's blur average, behind one trait
//!    ([`attribution::Method`]);
//! 5. [`evaluation`]: can a map be trusted? Model randomisation (Adebayo et
//!    al. 2018), deletion and insertion (RISE), controls, and the noise
//!    tunnel's convergence;
//! 6. [`synthesis`]: the other side of the gradient, images made by
//!    gradient ascent on a class score: fooling images and class
//!    visualisations (CS231n's *Network Visualization*, the lab's source);
//! 7. [`plot`]: the lab's figures, drawn with `plotters`, inline in evcxr
//!    notebooks or saved as PNG.
//!
//! ```no_run
//! use saliency_lab::{assets, attribution, load_imagenet_val, preprocess_batch, squeezenet1_1};
//!
//! let data = load_imagenet_val(assets::data_path()?)?;
//! let model = squeezenet1_1(assets::weights_path()?, tch::Device::Cpu)?;
//! let x = preprocess_batch(data.images.view())?;
//! let grad = attribution::vanilla_gradient(&model, &x, &data.labels)?; // [25, 3, 224, 224]
//! let map = attribution::max_abs(&grad)?; // [25, 224, 224]
//! # Ok::<(), saliency_lab::Error>(())
//! ```
#![warn(missing_docs)]

pub mod assets;
pub mod attribution;
pub mod convert;
pub mod data;
pub mod device;
pub mod error;
pub mod evaluation;
pub mod grading;
pub mod model;
pub mod plot;
pub mod registry;
pub(crate) mod support;
#[cfg(feature = "synthesis")]
pub mod synthesis;
pub mod transforms;

/// This crate's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Peak resident memory of this process in MiB (`VmHWM` of
/// `/proc/self/status`), where the system reports it (Linux).
#[must_use]
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Makes a panic print one short message (`panicked at file:line: message`)
/// instead of a backtrace: for notebooks, where a failed `assert!` should
/// read like a test failure. evcxr keeps the cell's variables either way.
/// A tch method that panics on libtorch's error (`maps.get(99)`, tensors of
/// mismatched shapes added) prints libtorch's message in one line, without
/// the C++ stack frames, and names the method's `f_` twin, which returns the
/// error instead.
///
/// evcxr forwards a cell's stderr asynchronously; the hook waits 100 ms after
/// printing so that the message is shown under the cell that panicked, not
/// the next one. It says nothing about the libtorch failures the crate
/// turns into errors (their `Err` says it): it neither prints nor waits.
pub fn short_panic_messages() {
    std::panic::set_hook(Box::new(|info| {
        if support::panic_is_caught() {
            return;
        }
        let message = error::panic_message(info.payload());
        match message.as_deref().and_then(error::tch_panic_message) {
            Some(torch) => eprintln!(
                "libtorch: {torch} (a tch method panicked on this; its `f_` twin, such as `f_get` for `get`, returns it as an error)"
            ),
            None => eprintln!("{info}"),
        }
        let _ = std::io::Write::flush(&mut std::io::stderr());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }));
}

/// The tch and ndarray versions the crate is built with, for notebooks and
/// programs that need their types without a separate `:dep`.
pub use {ndarray, tch};

/// Everything a lab notebook uses, in one import:
/// `use saliency_lab::prelude::*;`.
pub mod prelude {
    pub use crate::attribution::{
        self, blur_average, vanilla_gradient, Baseline, Deconvolution, DeepLift, DeepLiftShap,
        GradCam, GradientShap, GuidedBackprop, GuidedGradCam, InputXGradient, IntegratedGradients,
        Lrp, LrpRule, Method, Occlusion, PoolingRule, Rule, Vanilla, LAB_SIGMAS,
    };
    #[cfg(feature = "noise-tunnel")]
    pub use crate::attribution::{
        smoothgrad, NoiseGenerator, NoiseSamples, NoiseTunnel, SmoothGradConfig,
    };
    pub use crate::convert::pretty;
    pub use crate::hand_in;
    pub use crate::model::{Network, Numerics};
    pub use crate::plot::{self, Colormap, Figure, Grid, Panel, Scale};
    #[cfg(feature = "synthesis")]
    pub use crate::synthesis::{self, ClassVisualisation, FoolingImage};
    pub use crate::transforms::{stack_images, AsImage, IMAGE_SIZE};
    pub use crate::{
        assets, best_device, blur_batch, blur_image, deprocess, gather_scores, load_imagenet_val,
        preprocess, preprocess_batch, rescale, squeezenet1_1, top1, Error, ImagenetVal, Model,
        Result,
    };
    pub use ndarray::{self, s, Array3, Axis};
    pub use tch;
    pub use tch::{nn::ModuleT, Device, Kind, Tensor};
}

pub use data::{load_image_file, load_imagenet_val, ImagenetVal, NUM_CLASSES};
pub use device::{best_device, parse_device};
pub use error::{Error, Result};
pub use model::{class_scores, gather_scores, squeezenet1_1, top1, Model, Network};
pub use support::{chunk_ranges, CPU_CHUNK};
pub use transforms::{
    blur_batch, blur_image, deprocess, preprocess, preprocess_batch, rescale, SQUEEZENET_MEAN,
    SQUEEZENET_STD,
};
