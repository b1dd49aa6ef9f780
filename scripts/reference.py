#!/usr/bin/env python3
"""Reference values for the Rust crate's tests, made with the lab's own code.

Runs the original lab's PyTorch/torchvision/scipy functions (copied below from
shared/seeds/000_dd584d40a3e8472d.txt, with its typos `Imagenet.fromarray`
fixed) on the same weights and images the crate uses, and writes .npy files:

  x.npy         [25, 3, 224, 224] f32  preprocess(Image.fromarray(x)) for each image
  scores.npy    [25, 1000]        f32  model(X_tensor)
  grad.npy      [25, 3, 224, 224] f32  compute_saliency_maps(X_tensor, y_tensor, model)
  max.npy, maxabs.npy [25, 224, 224]   compute_max(grad), compute_max(compute_abs(grad))
  deprocess.npy [2, 3, 224, 224, 3] u8 deprocess(x[i:i+1], should_rescale=False/True), i = 0, 1, 2
  blur_u8.npy   [4, 224, 224, 3] u8    blur_image(torch.from_numpy(X[2]), s), s = 1, 3, 9, 27 (the lab's way)
  blur_f32.npy  [2, 40, 30, 3] f32     gaussian_filter1d along axes 0 and 1, sigma 0.7 and 5, of a seeded float array
  blur_f32_in.npy                      that input array
  blur_avg2.npy [224, 224] f32         the lab's sample answer sg(2): averaged max-abs map
  cmap_hot.npy, cmap_gray.npy, cmap_bwr.npy, cmap_diverging.npy [256, 4] f32 colour maps (RGBA in [0, 1])
  print_NAME.npy, print_NAME.txt       tensors and how `print` (torch.set_printoptions' defaults) shows them

Usage: python scripts/reference.py --data imagenet_val_25.npz --weights squeezenet1_1.safetensors --out DIR
"""
import argparse
import os
from copy import deepcopy

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image
from safetensors.torch import load_file
from scipy.ndimage import gaussian_filter1d

SQUEEZENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
SQUEEZENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


# --- the lab's functions, as written there ---------------------------------
def preprocess(img, size=224):
    transform = T.Compose([
        T.Resize(size),
        T.ToTensor(),
        T.Normalize(mean=SQUEEZENET_MEAN.tolist(), std=SQUEEZENET_STD.tolist()),
        T.Lambda(lambda x: x[None]),
    ])
    return transform(img)


def rescale(x):
    low, high = x.min(), x.max()
    return (x - low) / (high - low)


def deprocess(img, should_rescale=True):
    transform = T.Compose([
        T.Lambda(lambda x: x[0]),
        T.Normalize(mean=[0, 0, 0], std=(1.0 / SQUEEZENET_STD).tolist()),
        T.Normalize(mean=(-SQUEEZENET_MEAN).tolist(), std=[1, 1, 1]),
        T.Lambda(rescale) if should_rescale else T.Lambda(lambda x: x),
        T.ToPILImage(),
    ])
    return transform(img)


def blur_image(X, sigma=1):
    X_np = X.cpu().clone().numpy()
    X_np = gaussian_filter1d(X_np, sigma, axis=0)
    X_np = gaussian_filter1d(X_np, sigma, axis=1)
    X.copy_(torch.Tensor(X_np).type_as(X))
    return X


def compute_saliency_maps(X, y, model):
    model.eval()
    X.requires_grad_()
    scores = model(X)
    scores = scores.gather(1, y.view(-1, 1)).squeeze()
    scores.backward(torch.ones(scores.shape))
    return X.grad


def compute_abs(saliency):
    return saliency.abs()


def compute_max(saliency):
    saliency_max, _ = torch.max(saliency, dim=1)
    return saliency_max
# ---------------------------------------------------------------------------


def load_model(weights):
    model = torchvision.models.squeezenet1_1(weights=None)
    model.load_state_dict(load_file(weights))
    for param in model.parameters():
        param.requires_grad = False
    model.eval()
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    save = lambda name, a: np.save(os.path.join(args.out, name), a)

    f = np.load(args.data, allow_pickle=True)
    X, y = f["X"], f["y"]
    model = load_model(args.weights)

    X_tensor = torch.cat([preprocess(Image.fromarray(x)) for x in X], dim=0)
    y_tensor = torch.LongTensor(y)
    save("x.npy", X_tensor.numpy())
    with torch.no_grad():
        save("scores.npy", model(X_tensor).numpy())

    saliency = compute_saliency_maps(X_tensor.clone(), y_tensor, model)
    save("grad.npy", saliency.numpy())
    save("max.npy", compute_max(saliency).numpy())
    save("maxabs.npy", compute_max(compute_abs(saliency)).numpy())

    dep = [[np.asarray(deprocess(X_tensor[i:i + 1].detach(), r)) for i in range(3)] for r in (False, True)]
    save("deprocess.npy", np.array(dep, dtype=np.uint8))

    sigmas = [1, 3, 9, 27]
    save("blur_u8.npy", np.stack([blur_image(torch.from_numpy(deepcopy(X[2])), s).numpy() for s in sigmas]))
    rng = np.random.default_rng(0)
    arr = rng.normal(size=(40, 30, 3)).astype(np.float32)
    save("blur_f32_in.npy", arr)
    save("blur_f32.npy", np.stack([
        gaussian_filter1d(gaussian_filter1d(arr, s, axis=0), s, axis=1) for s in (0.7, 5.0)
    ]))

    # The lab's sample answer sg(2), its computation without the plotting.
    idx = 2
    inputs = [X[idx]] + [blur_image(torch.from_numpy(deepcopy(X[idx])), s).numpy() for s in sigmas]
    tensor1 = torch.cat([preprocess(Image.fromarray(_)) for _ in inputs], dim=0)
    tensor2 = torch.LongTensor(np.repeat(y, 5)[idx * 5:(idx + 1) * 5])
    sal_maps = compute_max(compute_abs(compute_saliency_maps(tensor1, tensor2, model)))
    save("blur_avg2.npy", sal_maps.mean(0).numpy())

    # Colour maps: matplotlib's hot, gray and bwr, the lab's seaborn diverging palette.
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns
    ramp = np.linspace(0, 1, 256)
    save("cmap_hot.npy", plt.cm.hot(ramp).astype(np.float32))
    save("cmap_gray.npy", plt.cm.gray(ramp).astype(np.float32))
    save("cmap_bwr.npy", plt.cm.bwr(ramp).astype(np.float32))
    div = sns.diverging_palette(0, 359, s=100, center="dark", as_cmap=True)
    save("cmap_diverging.npy", div(ramp).astype(np.float32))
    # How PyTorch prints: the lab's printed tensors, and a few of each notation.
    g = torch.Generator().manual_seed(0)
    samples = {
        "scores": model(X_tensor).detach(),
        "scores_y": model(X_tensor).detach().gather(1, y_tensor.view(-1, 1)).squeeze(),
        "saliency_max": compute_max(saliency)[2],
        "saliency": saliency,
        "labels": y_tensor,
        "small": torch.randn(3, 4, generator=g),
        "tiny": torch.randn(5, generator=g) * 1e-3,
        "wide": torch.tensor([1.5e-3, 2.0, 3000.0]),
        "whole": torch.tensor([[1.0, -2.0], [30.0, 4.0]]),
        "whole_wide": torch.tensor([1.0, 20000.0]),
        "huge": torch.tensor([1.0e9, 2.5]),
        "zeros": torch.zeros(2, 3),
        "special": torch.tensor([float("nan"), 1.25, float("inf"), -2.0]),
        "row": torch.arange(40, dtype=torch.float32) / 7,
        "long_row": torch.randn(2000, generator=g),
        "cube": torch.randn(11, 12, 13, generator=g),
    }
    for name, t in samples.items():
        np.save(os.path.join(args.out, f"print_{name}.npy"), t.detach().numpy())
        with open(os.path.join(args.out, f"print_{name}.txt"), "w") as f:
            f.write(str(t))
    print(f"reference values written to {args.out}")


if __name__ == "__main__":
    main()
