#!/usr/bin/env python3
"""Reference attributions made with Captum, for the crate's attribution tests.

Runs Captum's implementation of each method on torchvision's SqueezeNet 1.1
with the same weights, inputs and targets as the crate, and writes .npy
files (float32):

  saliency.npy      [25, 3, 224, 224]  Saliency(abs=False)
  ixg.npy           [25, 3, 224, 224]  InputXGradient
  ig.npy            [25, 3, 224, 224]  IntegratedGradients: 50 steps, gausslegendre, zeros baseline
  ig_<rule>.npy     [5, 3, 224, 224]   16 steps of riemann_left/right/middle/trapezoid (first 5 images)
  ig_black.npy      [5, 3, 224, 224]   the black image as baseline (preprocessed), 20 steps
  ig_blur.npy       [5, 3, 224, 224]   the image blurred (scipy gaussian_filter1d, sigma 10, axes 2 and 3), 20 steps
  gbp.npy           [25, 3, 224, 224]  GuidedBackprop
  deconv.npy        [25, 3, 224, 224]  Deconvolution
  gradcam.npy       [25, 1, 224, 224]  LayerGradCam(features[12], relu_attributions=True) + bilinear interpolate
  gradcam_f9.npy    [5, 1, 224, 224]   the same at features[9]
  ggc.npy           [25, 3, 224, 224]  GuidedGradCam(features[12]) (nearest interpolation)
  occlusion.npy     [25, 3, 224, 224]  Occlusion: window 56, stride 28, baseline 0
  occlusion_default.npy [1, 3, 224, 224] window 15, stride 8 (the last window cut at the edge), baseline 0.5

Inputs: the lab's 25 images preprocessed as the lab does, targets the lab's
labels; or, with --inputs/--targets, a preprocessed batch written by the
crate's `maps --save-input` (then only the methods named by --methods, with the
settings above, on every image).

Usage: python scripts/reference_methods.py --data imagenet_val_25.npz --weights squeezenet1_1.safetensors --out DIR
       python scripts/reference_methods.py --inputs input.npy --targets targets.npy --weights W --out DIR --methods ixg,gbp
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from captum.attr import (Deconvolution, GuidedBackprop, GuidedGradCam, InputXGradient, IntegratedGradients,
                         LayerAttribution, LayerGradCam, Occlusion, Saliency)
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import load_model, preprocess  # noqa: E402  the lab's own code

warnings.filterwarnings("ignore", message="Setting backward hooks")
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def grad_cam(model, layer, x, y):
    cam = LayerGradCam(model, layer).attribute(x, target=y, relu_attributions=True)
    return LayerAttribution.interpolate(cam, x.shape[2:], interpolate_mode="bilinear")


def methods(model):
    """name -> (function of (x, y), images it runs on: None = all)."""
    f = model.features
    black = torch.from_numpy((-MEAN / STD).reshape(1, 3, 1, 1))
    ig = IntegratedGradients(model)
    table = {
        "saliency": (lambda x, y: Saliency(model).attribute(x, target=y, abs=False), None),
        "ixg": (lambda x, y: InputXGradient(model).attribute(x, target=y), None),
        "ig": (lambda x, y: ig.attribute(x, target=y, n_steps=50, method="gausslegendre", internal_batch_size=50), None),
        "ig_black": (lambda x, y: ig.attribute(x, baselines=black.expand_as(x).contiguous(), target=y, n_steps=20), 5),
        "ig_blur": (lambda x, y: ig.attribute(x, baselines=blur(x, 10.0), target=y, n_steps=20), 5),
        "gbp": (lambda x, y: GuidedBackprop(model).attribute(x, target=y), None),
        "deconv": (lambda x, y: Deconvolution(model).attribute(x, target=y), None),
        "gradcam": (lambda x, y: grad_cam(model, f[12], x, y), None),
        "gradcam_f9": (lambda x, y: grad_cam(model, f[9], x, y), 5),
        "ggc": (lambda x, y: GuidedGradCam(model, f[12]).attribute(x, target=y), None),
        "occlusion": (lambda x, y: Occlusion(model).attribute(
            x, sliding_window_shapes=(3, 56, 56), strides=(3, 28, 28), baselines=0.0, target=y,
            perturbations_per_eval=16), None),
        "occlusion_default": (lambda x, y: Occlusion(model).attribute(
            x, sliding_window_shapes=(3, 15, 15), strides=(3, 8, 8), baselines=0.5, target=y,
            perturbations_per_eval=16), 1),
    }
    for rule in ("left", "right", "middle", "trapezoid"):
        table[f"ig_riemann_{rule}"] = (
            lambda x, y, m=f"riemann_{rule}": ig.attribute(x, target=y, n_steps=16, method=m), 5)
    return table


def blur(x, sigma):
    """scipy's gaussian_filter1d along height and width (mode reflect, truncate 4)."""
    a = gaussian_filter1d(gaussian_filter1d(x.detach().numpy(), sigma, axis=2), sigma, axis=3)
    return torch.from_numpy(np.ascontiguousarray(a))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data")
    ap.add_argument("--inputs", help="a preprocessed batch [N, 3, H, W] (.npy)")
    ap.add_argument("--targets", help="int64 targets [N] (.npy), with --inputs")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--methods", help="comma-separated names (default: all)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(True)
    model = load_model(args.weights)
    if args.inputs:
        x = torch.from_numpy(np.load(args.inputs)).float()
        y = torch.from_numpy(np.load(args.targets)).long()
    else:
        from PIL import Image
        f = np.load(args.data, allow_pickle=True)
        x = torch.cat([preprocess(Image.fromarray(img)) for img in f["X"]], dim=0)
        y = torch.LongTensor(f["y"])
    table = methods(model)
    names = args.methods.split(",") if args.methods else list(table)
    for name in names:
        fn, count = table[name]
        n = len(x) if count is None or args.inputs else count
        start = time.time()
        a = fn(x[:n].clone(), y[:n])
        np.save(os.path.join(args.out, f"{name}.npy"), a.detach().numpy().astype(np.float32))
        print(f"{name}: {tuple(a.shape)} in {time.time() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
