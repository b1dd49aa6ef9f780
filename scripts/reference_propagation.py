#!/usr/bin/env python3
"""Reference attributions of the propagation methods, for the crate's tests:
DeepLift, DeepLiftShap and GradientShap by Captum, every LRP rule and
composite by Zennit, on torchvision's SqueezeNet 1.1 with the crate's
weights, inputs and targets (in-place ReLUs turned off: Captum's DeepLift
and Zennit's hooks need each ReLU's input). Writes .npy files (float32
unless said):

  deeplift.npy          [25, 3, 224, 224]  DeepLift (Rescale), zeros as baseline
  deeplift_delta.npy    [25] float64       its convergence delta (sum of the map - (f(x) - f(0)))
  deeplift_black.npy    [5, 3, 224, 224]   the black image (preprocessed) as baseline
  deeplift_blur.npy     [5, 3, 224, 224]   the image blurred (scipy gaussian_filter1d, sigma 10) as baseline
  dls_baselines.npy     [3, 3, 224, 224]   zeros, black, the first image blurred (sigma 10)
  deeplift_shap.npy     [5, 3, 224, 224]   DeepLiftShap over those baselines
  gshap_indices.npy     [5, 8] int64       GradientShap's draws, given to both: the baseline of each sample,
  gshap_alphas.npy      [5, 8] float32     its point on the path,
  gshap_noise.npy       [5, 8, 3, 224, 224] and its noise (stdev 0.2)
  gshap_exact.npy       [5, 3, 224, 224]   GradientShap on those draws: the mean over the samples of
                                           (x + n - b) * the gradient (Captum's Saliency) at b + a (x + n - b)
  gshap_mc.npy          [5, 3, 224, 224]   Captum's GradientShap, its own draws: 200 samples, stdev 0.2, the
                                           dls baselines (a Monte Carlo estimate)
  lrp_<rule>.npy        [25, 3, 224, 224]  Zennit 0.5's relevance at the input, the target's one-hot as the
                                           output relevance: each rule (epsilon, gamma, zplus, alpha2-beta1) on
                                           every convolution with Zennit's base layer map, and the composites
                                           EpsilonPlus, EpsilonPlusFlat, EpsilonAlpha2Beta1, EpsilonGammaBox (box
                                           bounds: (0 - mean) / std and (1 - mean) / std per channel)

Inputs: the lab's 25 images preprocessed as the lab does, targets the lab's
labels; or, with --inputs/--targets, a preprocessed batch written by the
crate's `maps --save-input` (then only the methods named by --methods, on
every image). With --net WEIGHTS (safetensors), the network is instead the
small one of tests/propagation.rs, built from the crate's layers (a
convolution, ReLU, max-pooling, another convolution and ReLU, global
average pooling, two fully connected layers with a ReLU between; 3 input
channels, 5 classes), on --inputs and --targets: DeepLift, Deconvolution
and every LRP rule (Zennit's composites give its fully connected layers
the epsilon rule).

Usage: python scripts/reference_propagation.py --data imagenet_val_25.npz --weights squeezenet1_1.safetensors --out DIR
       python scripts/reference_propagation.py --inputs input.npy --targets targets.npy --weights W --out DIR \\
           --methods deeplift,lrp_epsilon
"""
import argparse
import os
import sys
import time
import warnings

import numpy as np
import torch
from captum.attr import Deconvolution, DeepLift, DeepLiftShap, GradientShap, Saliency
from zennit.attribution import Gradient
from zennit.composites import (EpsilonAlpha2Beta1, EpsilonGammaBox, EpsilonPlus, EpsilonPlusFlat, LayerMapComposite,
                               layer_map_base)
from zennit.rules import AlphaBeta, Epsilon, Gamma, ZPlus
from zennit.types import Linear

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import load_model, preprocess  # noqa: E402  the lab's own code
from reference_methods import MEAN, STD, blur  # noqa: E402

warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")
warnings.filterwarnings("ignore", category=UserWarning, module="captum")
SHAP_SAMPLES, SHAP_STDEV = 8, 0.2


def black_like(x):
    return torch.from_numpy((-MEAN / STD).reshape(1, 3, 1, 1)).expand_as(x).contiguous()


def bounds(x):
    low = torch.from_numpy(((0 - MEAN) / STD).reshape(1, 3, 1, 1)).expand_as(x).contiguous()
    high = torch.from_numpy(((1 - MEAN) / STD).reshape(1, 3, 1, 1)).expand_as(x).contiguous()
    return low, high


def single_rule(rule):
    """Zennit's base layer map, and `rule` on every convolution and fully connected layer."""
    return lambda x: LayerMapComposite(layer_map=layer_map_base() + [(Linear, rule)])


LRP = {
    "epsilon": single_rule(Epsilon(epsilon=1e-6)),
    "gamma": single_rule(Gamma(gamma=0.25)),
    "zplus": single_rule(ZPlus()),
    "alpha2-beta1": single_rule(AlphaBeta(alpha=2, beta=1)),
    "epsilon-plus": lambda x: EpsilonPlus(),
    "epsilon-plus-flat": lambda x: EpsilonPlusFlat(),
    "epsilon-alpha2-beta1": lambda x: EpsilonAlpha2Beta1(),
    "epsilon-gamma-box": lambda x: EpsilonGammaBox(*bounds(x)),
}


def lrp(model, x, y, name):
    with Gradient(model=model, composite=LRP[name](x)) as attributor:
        out, relevance = attributor(x.clone().requires_grad_(), lambda out: torch.eye(out.shape[1])[y])
    return relevance


def dls_baselines(x):
    return torch.cat([torch.zeros_like(x[:1]), black_like(x[:1]), blur(x[:1], 10.0)], dim=0)


def gradient_shap_exact(model, x, y, baselines, indices, alphas, noise):
    """The mean over the samples of (x + n - b) * grad f(b + a (x + n - b)), Captum's arithmetic
    (InputBaselineXGradient in its NoiseTunnel) on given draws, the gradients by Captum's Saliency."""
    out = []
    for i in range(len(x)):
        xn = x[i:i + 1] + noise[i]
        b = baselines[indices[i]]
        a = alphas[i].view(-1, 1, 1, 1)
        point = (a * xn + (1.0 - a) * b).requires_grad_()
        g = Saliency(model).attribute(point, target=y[i:i + 1].expand(len(point)), abs=False)
        out.append(((xn - b) * g).sum(dim=0, keepdim=True) / len(point))
    return torch.cat(out)


def small_net(weights):
    """tests/propagation.rs's network of the crate's layers, in PyTorch, with its weights."""
    from safetensors.torch import load_file
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(3, 2, ceil_mode=True),
        torch.nn.Conv2d(8, 16, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
        torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 5))
    net.load_state_dict(load_file(weights))
    for param in net.parameters():
        param.requires_grad = False
    return net.eval()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data")
    ap.add_argument("--inputs", help="a preprocessed batch [N, 3, H, W] (.npy)")
    ap.add_argument("--targets", help="int64 targets [N] (.npy), with --inputs")
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--methods", help="comma-separated names (default: all)")
    ap.add_argument("--net", action="store_true", help="--weights are the small network's (see above)")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(True)
    model = small_net(args.weights) if args.net else load_model(args.weights)
    for m in model.modules():
        if isinstance(m, torch.nn.ReLU):
            m.inplace = False
    if args.inputs:
        x = torch.from_numpy(np.load(args.inputs)).float()
        y = torch.from_numpy(np.load(args.targets)).long()
    else:
        from PIL import Image
        f = np.load(args.data, allow_pickle=True)
        x = torch.cat([preprocess(Image.fromarray(img)) for img in f["X"]], dim=0)
        y = torch.LongTensor(f["y"])
    save = lambda name, a: np.save(os.path.join(args.out, f"{name}.npy"), a)  # noqa: E731
    dl = DeepLift(model)

    def deeplift(xs, ys):
        maps, delta = dl.attribute(xs, baselines=torch.zeros_like(xs), target=ys, return_convergence_delta=True)
        save("deeplift_delta", delta.detach().double().numpy())
        return maps

    def gshap_exact(xs, ys):
        rng = np.random.RandomState(0)
        b = dls_baselines(x)
        n = len(xs)
        indices = rng.randint(0, len(b), size=(n, SHAP_SAMPLES)).astype(np.int64)
        alphas = rng.uniform(0.0, 1.0, size=(n, SHAP_SAMPLES)).astype(np.float32)
        noise = (rng.standard_normal((n, SHAP_SAMPLES) + tuple(xs.shape[1:])) * SHAP_STDEV).astype(np.float32)
        save("gshap_indices", indices)
        save("gshap_alphas", alphas)
        save("gshap_noise", noise)
        return gradient_shap_exact(model, xs, ys, b, torch.from_numpy(indices), torch.from_numpy(alphas),
                                   torch.from_numpy(noise))

    def gshap_mc(xs, ys):
        torch.manual_seed(0)
        np.random.seed(0)
        return torch.cat([GradientShap(model).attribute(xs[i:i + 1], baselines=dls_baselines(x), n_samples=200,
                                                        stdevs=SHAP_STDEV, target=ys[i:i + 1])
                          for i in range(len(xs))])

    table = {
        "deeplift": (deeplift, None),
        "deeplift_black": (lambda xs, ys: dl.attribute(xs, baselines=black_like(xs), target=ys), 5),
        "deeplift_blur": (lambda xs, ys: dl.attribute(xs, baselines=blur(xs, 10.0), target=ys), 5),
        "deeplift_shap": (lambda xs, ys: DeepLiftShap(model).attribute(xs, baselines=dls_baselines(x), target=ys), 5),
        "gshap_exact": (gshap_exact, 5),
        "gshap_mc": (gshap_mc, 5),
    }
    for rule in LRP:
        table[f"lrp_{rule}"] = (lambda xs, ys, r=rule: lrp(model, xs, ys, r), None)
    table["deconv"] = (lambda xs, ys: Deconvolution(model).attribute(xs.requires_grad_(), target=ys), None)
    if not args.inputs:
        save("dls_baselines", dls_baselines(x).numpy())
    names = args.methods.split(",") if args.methods else list(table)
    for name in names:
        fn, count = table[name]
        n = len(x) if count is None or args.inputs else count
        start = time.time()
        a = fn(x[:n].clone(), y[:n])
        save(name, a.detach().numpy().astype(np.float32))
        print(f"{name}: {tuple(a.shape)} in {time.time() - start:.1f} s", flush=True)


if __name__ == "__main__":
    main()
