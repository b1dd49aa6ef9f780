#!/usr/bin/env python3
"""Reference fooling images and class visualisations, made with CS231n's own
algorithms (NetworkVisualization-PyTorch, `cs231n/net_visualization_pytorch.py`,
copied below as written), one image at a time, on torchvision's SqueezeNet 1.1
with the same weights, inputs, noise and jitter offsets as the crate.

  fool       make_fooling_image(X, target_y, model) for each image of --inputs
             (a preprocessed batch, float32 [N, 3, 224, 224], such as `maps
             fool`'s input.npy) and its target (--targets, int64 [N]):
               fooled.npy [N, 3, 224, 224] f32, steps.npy [N] i64,
               before.npy, after.npy [N] i64 (the class predicted on the input and on the result)
             --no-clamp: CS231n's rule as written; by default each step is
             clamped to the range of a real image, as the crate does by
             default (the same lines as the class visualisation's clamp).
  visualise  create_class_visualization(target_y, model, ...) for each target,
             from --noise (float32 [N, 3, 224, 224], in place of torch.randn) and
             --jitter (int64 [N, steps, 2]: ox, oy per step, in place of
             random.randint), such as `maps visualise`'s noise.npy and jitter.npy:
               visual.npy [N, 3, 224, 224] f32, scores.npy [N, steps] f32 (the
               target's score at each step), final_scores.npy [N] f32

Each writes seconds.json, the time of the computation alone (the model loaded).

Usage:
  python scripts/reference_synthesis.py fool --inputs input.npy --targets targets.npy --weights W --out DIR
  python scripts/reference_synthesis.py visualise --noise noise.npy --jitter jitter.npy --targets targets.npy \
      --weights W --out DIR [--steps 100 --learning-rate 25 --l2-reg 1e-3 --blur-every 10]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from scipy.ndimage import gaussian_filter1d

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference import SQUEEZENET_MEAN, SQUEEZENET_STD, load_model  # noqa: E402


# --- CS231n's functions, as written there (the fooling image's clamp added,
# --- off with --no-clamp; the noise and offsets given) -----------------------
def clamp_(img):
    for c in range(3):
        lo = float(-SQUEEZENET_MEAN[c] / SQUEEZENET_STD[c])
        hi = float((1.0 - SQUEEZENET_MEAN[c]) / SQUEEZENET_STD[c])
        img.data[:, c].clamp_(min=lo, max=hi)


def make_fooling_image(X, target_y, model, clamp=True, max_steps=100):
    X_fooling = X.clone()
    X_fooling = X_fooling.requires_grad_()
    learning_rate = 1
    steps = 0
    for _ in range(max_steps):
        scores = model(X_fooling)
        _, index = scores.data.max(dim=1)
        if index[0] == target_y:
            break
        target_score = scores[0, target_y]
        target_score.backward()
        im_grad = X_fooling.grad.data
        X_fooling.data += learning_rate * (im_grad / im_grad.norm())
        X_fooling.grad.data.zero_()
        if clamp:
            clamp_(X_fooling)
        steps += 1
    return X_fooling, steps


def jitter(X, ox, oy):
    if ox != 0:
        left = X[:, :, :, :-ox]
        right = X[:, :, :, -ox:]
        X = torch.cat([right, left], dim=3)
    if oy != 0:
        top = X[:, :, :-oy]
        bottom = X[:, :, -oy:]
        X = torch.cat([bottom, top], dim=2)
    return X


def blur_image(X, sigma=1):
    X_np = X.cpu().clone().numpy()
    X_np = gaussian_filter1d(X_np, sigma, axis=2)
    X_np = gaussian_filter1d(X_np, sigma, axis=3)
    X.copy_(torch.Tensor(X_np).type_as(X))
    return X


def class_visualization_update_step(img, model, target_y, l2_reg, learning_rate):
    scores = model(img)
    target_score = scores[0, target_y]
    obj = target_score - l2_reg * img.norm() ** 2
    obj.backward()
    img.data += learning_rate * (img.grad.data / img.grad.data.norm())
    img.grad.data.zero_()
    return float(target_score.detach())


def create_class_visualization(target_y, model, noise, offsets, l2_reg=1e-3, learning_rate=25,
                               num_iterations=100, blur_every=10):
    img = noise.clone().requires_grad_()
    scores = []
    for t in range(num_iterations):
        ox, oy = (int(v) for v in offsets[t])
        img.data.copy_(jitter(img.data, ox, oy))
        scores.append(class_visualization_update_step(img, model, target_y, l2_reg, learning_rate))
        img.data.copy_(jitter(img.data, -ox, -oy))
        clamp_(img)
        if blur_every and t % blur_every == 0:
            blur_image(img.data, sigma=0.5)
    return img.data, scores
# ---------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["fool", "visualise"])
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--inputs")
    ap.add_argument("--no-clamp", action="store_true")
    ap.add_argument("--max-steps", type=int, default=100)
    ap.add_argument("--noise")
    ap.add_argument("--jitter")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--learning-rate", type=float, default=25)
    ap.add_argument("--l2-reg", type=float, default=1e-3)
    ap.add_argument("--blur-every", type=int, default=10)
    args = ap.parse_args()
    model = load_model(args.weights)
    targets = np.load(args.targets).astype(np.int64).reshape(-1)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    if args.mode == "fool":
        x = torch.from_numpy(np.load(args.inputs).astype(np.float32))
        fooled, steps, before, after = [], [], [], []
        for i, t in enumerate(targets):
            xi = x[i:i + 1]
            with torch.no_grad():
                before.append(int(model(xi).argmax(1)))
            f, k = make_fooling_image(xi, int(t), model, clamp=not args.no_clamp, max_steps=args.max_steps)
            with torch.no_grad():
                after.append(int(model(f).argmax(1)))
            fooled.append(f.detach().numpy())
            steps.append(k)
            print(f"image {i}: {before[-1]} -> {after[-1]} (target {t}) in {k} steps", file=sys.stderr)
        np.save(os.path.join(args.out, "fooled.npy"), np.concatenate(fooled).astype(np.float32))
        for name, v in (("steps", steps), ("before", before), ("after", after)):
            np.save(os.path.join(args.out, f"{name}.npy"), np.array(v, dtype=np.int64))
    else:
        noise = torch.from_numpy(np.load(args.noise).astype(np.float32))
        offsets = np.load(args.jitter)
        visual, scores, final = [], [], []
        for i, t in enumerate(targets):
            img, s = create_class_visualization(int(t), model, noise[i:i + 1], offsets[i], args.l2_reg,
                                                args.learning_rate, args.steps, args.blur_every)
            with torch.no_grad():
                final.append(float(model(img)[0, int(t)]))
            visual.append(img.numpy())
            scores.append(s)
            print(f"class {t}: score {s[0]:.3f} -> {final[-1]:.3f}", file=sys.stderr)
        np.save(os.path.join(args.out, "visual.npy"), np.concatenate(visual).astype(np.float32))
        np.save(os.path.join(args.out, "scores.npy"), np.array(scores, dtype=np.float32))
        np.save(os.path.join(args.out, "final_scores.npy"), np.array(final, dtype=np.float32))
    with open(os.path.join(args.out, "seconds.json"), "w") as f:
        json.dump({"compute": time.perf_counter() - start}, f)


if __name__ == "__main__":
    main()
