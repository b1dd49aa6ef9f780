#!/usr/bin/env python3
"""Reference values for the crate's evaluation module (tests/evaluation.rs),
made with the field's own code on the crate's maps:

  deletion and insertion  RISE's CausalMetric.single_run and auc, from the
                          paper's public code (eclique/RISE, evaluation.py),
                          copied below with two changes: the class is given
                          (the lab's label) instead of the top-1 prediction,
                          and `np.argsort(..., kind="stable")` makes the order
                          of equal values defined (numpy's default sort is
                          not stable); on the GPU-free lab, `.cuda()` dropped.
  spearman                scipy.stats.spearmanr on flattened maps
  ssim                    skimage.metrics.structural_similarity(a, b, data_range=1)
                          on maps rescaled to [0, 1]

Reads DIR/input.npy [N, 3, H, W] (preprocessed), DIR/targets.npy [N] int64,
DIR/maps.npy [N, H, W] (the maps to rank), DIR/pairs_a.npy and
DIR/pairs_b.npy [K, H, W] (maps to compare); writes DIR/rise/: deletion.npy,
insertion.npy [N, steps + 1], deletion_auc.npy, insertion_auc.npy [N],
gkern.npy [11, 11], spearman.npy, ssim.npy [K], and timing.json (seconds of
RISE's loop for the N images, both metrics).

Usage: python scripts/reference_evaluation.py --dir DIR --weights squeezenet1_1.safetensors
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter  # RISE: scipy.ndimage.filters, since deprecated
from scipy.stats import spearmanr
from skimage.metrics import structural_similarity
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import load_model  # noqa: E402


# --- RISE's evaluation.py (eclique/RISE), as published, but see above -----
def gkern(klen, nsig):
    """Returns a Gaussian kernel array.
    Convolution with it results in image blurring."""
    # create nxn zeros
    inp = np.zeros((klen, klen))
    # set element at the middle to one, a dirac delta
    inp[klen//2, klen//2] = 1
    # gaussian-smooth the dirac, resulting in a gaussian filter mask
    k = gaussian_filter(inp, nsig)
    kern = np.zeros((3, 3, klen, klen))
    kern[0, 0] = k
    kern[1, 1] = k
    kern[2, 2] = k
    return torch.from_numpy(kern.astype('float32'))


def auc(arr):
    """Returns normalized Area Under Curve of the array."""
    return (arr.sum() - arr[0] / 2 - arr[-1] / 2) / (arr.shape[0] - 1)


class CausalMetric():

    def __init__(self, model, mode, step, substrate_fn):
        r"""Create deletion/insertion metric instance.

        Args:
            model (nn.Module): Black-box model being explained.
            mode (str): 'del' or 'ins'.
            step (int): number of pixels modified per one iteration.
            substrate_fn (func): a mapping from old pixels to new pixels.
        """
        assert mode in ['del', 'ins']
        self.model = model
        self.mode = mode
        self.step = step
        self.substrate_fn = substrate_fn

    def single_run(self, img_tensor, explanation, c):
        r"""Run metric on one image-saliency pair.

        Args:
            img_tensor (Tensor): normalized image tensor.
            explanation (np.ndarray): saliency map.
            c (int): the class (RISE: the top-1 prediction).

        Return:
            scores (nd.array): Array containing scores at every step.
        """
        HW = img_tensor.shape[2] * img_tensor.shape[3]
        n_steps = (HW + self.step - 1) // self.step

        if self.mode == 'del':
            start = img_tensor.clone()
            finish = self.substrate_fn(img_tensor)
        elif self.mode == 'ins':
            start = self.substrate_fn(img_tensor)
            finish = img_tensor.clone()

        scores = np.empty(n_steps + 1)
        # Coordinates of pixels in order of decreasing saliency
        salient_order = np.flip(np.argsort(explanation.reshape(-1, HW), axis=1, kind='stable'), axis=-1)
        for i in range(n_steps+1):
            pred = self.model(start)
            scores[i] = pred[0, c]
            if i < n_steps:
                coords = salient_order[:, self.step * i:self.step * (i + 1)]
                start.cpu().numpy().reshape(1, 3, HW)[0, :, coords] = finish.cpu().numpy().reshape(1, 3, HW)[0, :, coords]
        return scores
# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, type=str)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--step", type=int, default=224)
    args = ap.parse_args()
    out = os.path.join(args.dir, "rise")
    os.makedirs(out, exist_ok=True)
    load = lambda name: np.load(os.path.join(args.dir, name))
    torch.set_grad_enabled(False)
    model = nn.Sequential(load_model(args.weights), nn.Softmax(dim=1))
    klen, ksig = 11, 5
    kern = gkern(klen, ksig)
    np.save(os.path.join(out, "gkern.npy"), kern[0, 0].numpy())
    blur = lambda x: nn.functional.conv2d(x, kern, padding=klen // 2)
    if os.path.exists(os.path.join(args.dir, "maps.npy")):
        x = torch.from_numpy(load("input.npy")).float()
        maps, targets = load("maps.npy"), load("targets.npy")
        timing = {}
        for name, mode, substrate in [("deletion", "del", torch.zeros_like), ("insertion", "ins", blur)]:
            metric = CausalMetric(model, mode, args.step, substrate_fn=substrate)
            t = time.time()
            curves = np.stack([metric.single_run(x[i:i + 1], maps[i], int(targets[i])) for i in range(len(x))])
            timing[name] = time.time() - t
            np.save(os.path.join(out, f"{name}.npy"), curves.astype(np.float32))
            np.save(os.path.join(out, f"{name}_auc.npy"), np.array([auc(c) for c in curves]))
        with open(os.path.join(out, "timing.json"), "w") as f:
            json.dump(timing, f)
    if os.path.exists(os.path.join(args.dir, "pairs_a.npy")):
        a, b = load("pairs_a.npy").astype(np.float64), load("pairs_b.npy").astype(np.float64)
        norm = lambda m: (m - m.min()) / (m.max() - m.min()) if m.max() > m.min() else np.zeros_like(m)
        np.save(os.path.join(out, "spearman.npy"), np.array([spearmanr(p.ravel(), q.ravel())[0] for p, q in zip(a, b)]))
        np.save(os.path.join(out, "ssim.npy"), np.array([structural_similarity(norm(p), norm(q), data_range=1.0)
                                                          for p, q in zip(a, b)]))
    print(f"reference evaluation written to {out}")


if __name__ == "__main__":
    main()
