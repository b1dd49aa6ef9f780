#!/usr/bin/env python3
"""The crate's evaluation against Quantus (0.6), where Quantus runs in the
venv (it is not a set-up requirement: `pip install quantus==0.6.0`).

  python scripts/compare_quantus.py --dir EVAL --data imagenet_val_25.npz --weights squeezenet1_1.safetensors

EVAL is the output of `maps evaluate --method vanilla --metric deletion
randomisation` on the npz (maxabs.npy, deletion.npy, targets.npy,
randomisation.csv). Two comparisons:

  PixelFlipping   Quantus's deletion: the same maps, 224 features a step.
                  Quantus 0.6 checks the step against the map's
                  224 x 224 but flips elements of the map broadcast over the
                  three channels: 672 steps of a third of the crate's; every
                  third of its values (a whole number of pixels deleted) is
                  compared with the crate's. Baseline 0
                  (of the normalised tensor), no normalisation, softmax. Quantus
                  records after each step, RISE before: its curve is the
                  crate's without its first value. Compared value by value.
  MPRT            Quantus's model parameter randomisation, top down, with
                  Captum's Saliency, Spearman of the absolute maps normalised
                  by their maximum. Quantus re-initialises every module with
                  `reset_parameters()` (PyTorch's defaults, 26 convolutions one
                  by one), the crate a layer at a time (a Fire module is one
                  layer) with torchvision's initialisation: the numbers cannot
                  be equal; the comparison is of the trend, first and last step.
"""
import argparse
import csv
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import load_model, preprocess  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--images", type=int, default=25, help="the first K images (Quantus is slow: ~1 min an image here)")
    ap.add_argument("--mprt-images", type=int, default=5)
    args = ap.parse_args()
    import quantus
    from PIL import Image
    f = np.load(args.data, allow_pickle=True)
    maps = np.load(os.path.join(args.dir, "maxabs.npy"))
    targets = np.load(os.path.join(args.dir, "targets.npy"))
    n = min(args.images, len(maps))
    maps, targets = maps[:n], targets[:n]
    x = torch.cat([preprocess(Image.fromarray(img)) for img in f["X"][:n]]).numpy()
    model = load_model(args.weights)

    ours = np.load(os.path.join(args.dir, "deletion.npy"))[:n]
    pf = quantus.PixelFlipping(features_in_step=224, perturb_baseline=0.0, normalise=False, abs=False,
                               disable_warnings=True, display_progressbar=False)
    theirs = np.array(pf(model=model, x_batch=x, y_batch=targets, a_batch=maps[:, None], device="cpu",
                         softmax=True))
    theirs = theirs[:, 2::3]  # after 3 x 224 elements a step: 224 whole pixels
    diff = np.abs(ours[:, 1:] - theirs).max()
    print(f"PixelFlipping ({n} images, 224 steps): largest difference from the crate's deletion curves {diff:.2e}")

    k = min(args.mprt_images, n)
    mprt = quantus.MPRT(layer_order="top_down", similarity_func=quantus.similarity_func.correlation_spearman,
                        abs=True, normalise=True, disable_warnings=True, display_progressbar=False)
    scores = mprt(model=model, x_batch=x[:k], y_batch=targets[:k], a_batch=None, device="cpu",
                  explain_func=quantus.explain, explain_func_kwargs={"method": "Saliency", "softmax": False})
    layers = [name for name in scores if name != "original"]
    means = [float(np.mean(scores[name])) for name in layers]
    print(f"MPRT ({k} images, {len(layers)} modules from the top): Spearman |map| first "
          f"{layers[0]} {means[0]:.3f}, last {layers[-1]} {means[-1]:.3f}")
    rows = list(csv.DictReader(open(os.path.join(args.dir, "randomisation.csv"))))
    crate_layers = list(dict.fromkeys(r["layer"] for r in rows))
    crate = {l: np.mean([float(r["spearman_abs"]) for r in rows if r["layer"] == l and int(r["image"]) < k])
             for l in crate_layers}
    print(f"crate ({k} images, {len(crate_layers)} layers from the top): Spearman |map| first "
          f"{crate_layers[0]} {crate[crate_layers[0]]:.3f}, last {crate_layers[-1]} {crate[crate_layers[-1]]:.3f}")


if __name__ == "__main__":
    main()
