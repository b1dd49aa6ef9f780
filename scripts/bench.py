#!/usr/bin/env python3
"""Speed of the crate against the lab's PyTorch code and Captum, in one command.

  scripts/bench.py [--runs 5] [--sg-runs 3] [--sg-images 25] [--device cpu|cuda] [--quick] [--rust-bin PATH]
  scripts/bench.py --methods-only --methods deeplift,lrp     # just those methods against their references

(On a machine without a Rust toolchain, pass a prebuilt bench example with
--rust-bin: scripts/bench_device.sh does so on a lent GPU machine.)

Times, each implementation in a process of its own (so peak memory is its own):
  1. vanilla saliency of the lab's 25 images: the crate, the lab's
     `compute_saliency_maps` (parameters frozen), Captum's `Saliency`;
  2. SmoothGrad, n = 50, noise 15% of each image's range: the crate and Captum's `NoiseTunnel(Saliency)` with the same absolute
     sigma per image, at its best `nt_samples_batch_size` of 5, 10, 25, 50;
     the crate runs batches of 10 (--rust-batch);
  3. the first call against the steady state (median of the later runs);
  4. every attribution method against its reference (--methods), each in
     a process of its own, in alternating rounds: against Captum's, Input x
     Gradient, Integrated Gradients (50 steps, Captum at its best
     internal_batch_size of 10, 25, 50), Guided Backprop, Deconvolution,
     Grad-CAM, Guided Grad-CAM, Occlusion (56-pixel windows 28 apart),
     SmoothGrad over Integrated Gradients (10 samples of 20 steps, on
     --tunnel-images images), DeepLift (zeros), DeepLiftShap and GradientShap
     (200 samples, on --tunnel-images images) over each image's baselines
     (zeros, black, blurred);
     against Zennit's, LRP (EpsilonPlus, Epsilon, EpsilonGammaBox); the
     answers checked as in tests/methods.rs and tests/propagation.rs
     (relative L2 error; the tunnel and GradientShap, whose draws differ, as
     SmoothGrad above);
  5. deletion and insertion (RISE, 224 pixels a step) of the vanilla
     gradient's maps on --causal-images images: the crate (batched) against
     RISE's own evaluation.py loop on PyTorch (scripts/reference_evaluation.py),
     AUCs checked to agree within 1e-3;
  6. fooling images of --synthesis-images of the lab's images and class
     visualisations of 2 classes (100 steps): `maps fool` and `maps
     visualise` against CS231n's code on PyTorch
     (scripts/reference_synthesis.py) on the same inputs, noise and jitter,
     the computation alone, in alternating rounds; the steps and images
     checked to agree (relative L2 1e-4). `--synthesis-only` runs just this.
It prints medians, ratios Rust / reference, peak RSS and GFLOP/s, writes the
table to crate/benches/results.md, and checks the answers against each other
(vanilla: relative L2 error <= 1e-4 per image; SmoothGrad, whose noise
differs: 8 x 8-block correlation of the max-abs maps, median >= 0.9 and
min >= 0.75 over the images, and norm ratio within [0.8, 1.25]).

GFLOP count: SqueezeNet 1.1 is 0.35 GMAC = 0.70 GFLOP per image forward; the
backward pass to the input (weights frozen) costs about as much again, so one
saliency map is counted as 1.4 GFLOP.
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from nbshared import ROOT, lab_home

GFLOP_PER_MAP = 1.4


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def load_inputs(device):
    import numpy as np
    import torch
    from PIL import Image
    sys.path.insert(0, str(ROOT / "scripts"))
    from reference import load_model, preprocess
    f = np.load(os.environ["BENCH_DATA"], allow_pickle=True)
    X = torch.cat([preprocess(Image.fromarray(x)) for x in f["X"]], dim=0).to(device)
    y = torch.LongTensor(f["y"]).to(device)
    model = load_model(os.environ["BENCH_WEIGHTS"]).to(device)
    return X, y, model


def sync(device):
    import torch
    if device == "cuda":
        torch.cuda.synchronize()


def worker_lab(args, out):
    """The lab's own code: compute_saliency_maps as written there."""
    import numpy as np
    import torch
    sys.path.insert(0, str(ROOT / "scripts"))
    from reference import compute_saliency_maps
    t = time.perf_counter()
    X, y, model = load_inputs(args.device)
    load = time.perf_counter() - t
    if args.device != "cpu":
        # The lab's code makes `torch.ones(scores.shape)` on the default
        # device (it ran on the CPU): make that the GPU, code unchanged.
        torch.set_default_device(args.device)
    times, sal = [], None
    for _ in range(args.runs):
        Xr = X.clone()
        t = time.perf_counter()
        sal = compute_saliency_maps(Xr, y, model)
        sync(args.device)
        times.append(time.perf_counter() - t)
    np.save(out / "lab_vanilla.npy", sal.detach().cpu().numpy())
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or platform.machine()
    return {"load_s": load, "vanilla_runs": times, "rss_mib": peak_rss_mib(), "threads": torch.get_num_threads(),
            "device_name": name, "torch": torch.__version__}


def worker_captum_saliency(args, out):
    import numpy as np
    from captum.attr import Saliency
    X, y, model = load_inputs(args.device)
    sal = Saliency(model)
    times, a = [], None
    for _ in range(args.runs):
        t = time.perf_counter()
        a = sal.attribute(X.clone().requires_grad_(), target=y, abs=False)
        sync(args.device)
        times.append(time.perf_counter() - t)
    np.save(out / "captum_vanilla.npy", a.detach().cpu().numpy())
    return {"vanilla_runs": times, "rss_mib": peak_rss_mib()}


def worker_captum_nt(args, out, batch):
    import numpy as np
    import torch
    from captum.attr import NoiseTunnel, Saliency
    X, y, model = load_inputs(args.device)
    n = args.sg_images
    nt = NoiseTunnel(Saliency(model))
    times, maps = [], None
    for _ in range(args.sg_runs):
        t = time.perf_counter()
        maps = []
        for i in range(n):  # Captum's stdevs is one number per input tensor: one image at a time
            xi = X[i:i + 1]
            sigma = 0.15 * (xi.max() - xi.min()).item()
            maps.append(nt.attribute(xi, nt_type="smoothgrad", nt_samples=50, nt_samples_batch_size=batch,
                                     stdevs=sigma, target=y[i:i + 1], abs=False).detach())
        sync(args.device)
        times.append(time.perf_counter() - t)
    np.save(out / f"captum_smoothgrad_b{batch}.npy", torch.cat(maps).cpu().numpy())
    return {"sg_runs": times, "rss_mib": peak_rss_mib(), "batch": batch}


# The methods' benchmark: the crate's name (bench example --method), the
# reference script's name for Captum's output, and the agreement bound.
METHODS = [
    ("vanilla", "saliency", 1e-4),
    ("input-x-gradient", "ixg", 1e-4),
    ("integrated-gradients", "ig", 1e-2),  # NHWC path: float order at flat regions (tests/methods.rs)
    ("guided-backprop", "gbp", 1e-4),
    ("deconvolution", "deconv", 1e-4),
    ("grad-cam", "gradcam", 1e-4),
    ("guided-grad-cam", "ggc", 1e-4),
    ("occlusion", "occlusion", 1e-4),
    ("smoothgrad-integrated-gradients", "sg_ig", None),  # different noise: block correlation
    ("deeplift", "deeplift", 1e-4),
    ("deeplift-shap", "dls", 1e-4),
    ("gradient-shap", "gshap", None),  # different draws: block correlation
    ("lrp", "zennit", 1e-4),  # Zennit's EpsilonPlus
    ("lrp-epsilon", "zennit", 1e-4),
    ("lrp-epsilon-gamma-box", "zennit", 1e-4),
]
SLOW = {"integrated-gradients", "occlusion", "smoothgrad-integrated-gradients", "gradient-shap"}
# Monte Carlo estimates, on --tunnel-images images with enough samples to compare.
ON_TUNNEL_IMAGES = {"smoothgrad-integrated-gradients", "gradient-shap"}


def worker_captum_method(args, out, name, batch):
    """One of Captum's methods (Zennit's for LRP) with the benchmark's settings (bench.rs's `method()`)."""
    import numpy as np
    import torch
    from captum.attr import (Deconvolution, DeepLift, DeepLiftShap, GradientShap, GuidedBackprop, GuidedGradCam,
                             InputXGradient, IntegratedGradients, LayerAttribution, LayerGradCam, NoiseTunnel,
                             Occlusion, Saliency)
    X, y, model = load_inputs(args.device)
    if name.startswith(("deeplift", "lrp")):  # their hooks need each ReLU's input
        for m in model.modules():
            if isinstance(m, torch.nn.ReLU):
                m.inplace = False
    sys.path.insert(0, str(ROOT / "scripts"))
    from reference_methods import MEAN, STD, blur

    def standard_baselines(xi):  # the crate's DeepLiftShap.standard_baselines: zeros, black, blurred
        black = torch.from_numpy((-MEAN / STD).reshape(1, 3, 1, 1)).to(xi.device).expand_as(xi)
        return torch.cat([torch.zeros_like(xi), black, blur(xi.cpu(), 10.0).to(xi.device)])
    n = args.tunnel_images if name in ON_TUNNEL_IMAGES else args.method_images
    X, y = X[:n], y[:n]
    f12 = model.features[12]

    def run():
        if name == "vanilla":
            return Saliency(model).attribute(X.clone().requires_grad_(), target=y, abs=False)
        if name == "input-x-gradient":
            return InputXGradient(model).attribute(X.clone().requires_grad_(), target=y)
        if name == "integrated-gradients":
            return IntegratedGradients(model).attribute(X, target=y, n_steps=50, internal_batch_size=batch)
        if name == "guided-backprop":
            return GuidedBackprop(model).attribute(X.clone().requires_grad_(), target=y)
        if name == "deconvolution":
            return Deconvolution(model).attribute(X.clone().requires_grad_(), target=y)
        if name == "grad-cam":
            cam = LayerGradCam(model, f12).attribute(X, target=y, relu_attributions=True)
            return LayerAttribution.interpolate(cam, X.shape[2:], interpolate_mode="bilinear")
        if name == "guided-grad-cam":
            return GuidedGradCam(model, f12).attribute(X.clone().requires_grad_(), target=y)
        if name == "occlusion":
            return Occlusion(model).attribute(X, sliding_window_shapes=(3, 56, 56), strides=(3, 28, 28),
                                              baselines=0.0, target=y, perturbations_per_eval=16)
        if name == "smoothgrad-integrated-gradients":
            nt = NoiseTunnel(IntegratedGradients(model))
            maps = []
            for i in range(len(X)):  # stdevs is one number per input tensor: one image at a time
                xi = X[i:i + 1]
                sigma = 0.15 * (xi.max() - xi.min()).item()
                maps.append(nt.attribute(xi, nt_type="smoothgrad", nt_samples=10, nt_samples_batch_size=10,
                                         stdevs=sigma, target=y[i:i + 1], n_steps=20, internal_batch_size=batch))
            return torch.cat(maps)
        if name == "deeplift":
            return DeepLift(model).attribute(X, baselines=torch.zeros_like(X), target=y)
        if name == "deeplift-shap":
            return torch.cat([DeepLiftShap(model).attribute(X[i:i + 1], baselines=standard_baselines(X[i:i + 1]),
                                                            target=y[i:i + 1]) for i in range(len(X))])
        if name == "gradient-shap":
            return torch.cat([GradientShap(model).attribute(X[i:i + 1], baselines=standard_baselines(X[i:i + 1]),
                                                            n_samples=200, target=y[i:i + 1]) for i in range(len(X))])
        if name.startswith("lrp"):
            from reference_propagation import lrp
            return lrp(model, X, y, name[4:] or "epsilon-plus")
        raise ValueError(name)

    import warnings
    warnings.filterwarnings("ignore")
    times, a = [], None
    for _ in range(1 if name in SLOW else args.runs):
        t = time.perf_counter()
        a = run()
        sync(args.device)
        times.append(time.perf_counter() - t)
    np.save(out / f"captum_method_{name}.npy", a.detach().cpu().numpy())
    return {"runs": times, "rss_mib": peak_rss_mib(), "batch": batch}


def run_worker(kind, args, out, extra=()):
    cmd = [sys.executable, __file__, "--worker", kind, "--out", str(out), "--runs", str(args.runs),
           "--sg-runs", str(args.sg_runs), "--sg-images", str(args.sg_images), "--device", args.device,
           "--method-images", str(args.method_images), "--tunnel-images", str(args.tunnel_images), *extra]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"{kind} failed:\n{res.stderr}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def steady(runs):
    return statistics.median(runs[1:]) if len(runs) > 1 else runs[0]


def rel_errors(a, b):
    import numpy as np
    a, b = a.reshape(a.shape[0], -1), b.reshape(b.shape[0], -1)
    return np.linalg.norm(a - b, axis=1) / np.linalg.norm(b, axis=1)


def sg_agreement(a, b):
    """8 x 8-block correlation and norm ratio of the max-abs maps, per image."""
    import numpy as np
    ma, mb = np.abs(a).max(1), np.abs(b).max(1)
    n, h, w = ma.shape
    pa = ma.reshape(n, h // 8, 8, w // 8, 8).mean((2, 4)).reshape(n, -1)
    pb = mb.reshape(n, h // 8, 8, w // 8, 8).mean((2, 4)).reshape(n, -1)
    corr = [np.corrcoef(pa[i], pb[i])[0, 1] for i in range(n)]
    ratio = np.linalg.norm(ma.reshape(n, -1), axis=1) / np.linalg.norm(mb.reshape(n, -1), axis=1)
    return float(np.median(corr)), min(corr), float(ratio.min()), float(ratio.max())


def bench_methods(args, rust_bin):
    """Each method against Captum's, alternating rounds; returns the table's lines and whether the answers agree."""
    import numpy as np
    chosen = [m for m in METHODS if args.methods == "all" or m[0] in args.methods.split(",")]
    # Captum's best internal_batch_size for Integrated Gradients, on 2 images.
    ig_batch = 25
    if any(m[0] in ("integrated-gradients", "smoothgrad-integrated-gradients") for m in chosen):
        trial = argparse.Namespace(**{**vars(args), "method_images": 2})
        tries = {b: run_worker("captum-method:integrated-gradients", trial, args.out, ["--batch", str(b)])["runs"][0]
                 for b in (10, 25, 50)}
        ig_batch = min(tries, key=tries.get)
        print("Captum IntegratedGradients on 2 images, internal_batch_size: "
              + ", ".join(f"{b}: {t:.2f} s" for b, t in tries.items()), flush=True)

    def rust(name):
        n = args.tunnel_images if name in ON_TUNNEL_IMAGES else args.method_images
        runs = 1 if name in SLOW else args.runs
        res = subprocess.run([str(rust_bin), "--out", str(args.out), "--method", name, "--images", str(n),
                              "--runs", str(runs), "--device", args.device], capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"the Rust bench ({name}) failed:\n{res.stderr}")
        return json.loads((args.out / f"rust_method_{name}.json").read_text())

    times = {name: ([], []) for name, _, _ in chosen}
    rss = {}
    for r in range(args.sg_runs):
        for name, _, _ in chosen:
            a = rust(name)
            c = run_worker(f"captum-method:{name}", args, args.out, ["--batch", str(ig_batch)])
            times[name][0].append(steady(a["runs"]))
            times[name][1].append(steady(c["runs"]))
            rss[name] = (a["rss_mib"], c["rss_mib"])
        print(f"methods: round {r + 1}/{args.sg_runs} done", flush=True)
    lines = [
        "",
        f"## Every method against Captum's (LRP: Zennit's) ({args.method_images} images; SmoothGrad over Integrated Gradients and GradientShap on "
        f"{args.tunnel_images}; medians over {args.sg_runs} alternating rounds, fast methods: the steady state of {args.runs} calls)",
        "",
        "| method | settings | Rust (s) | reference (s) | Rust / reference | agreement | Rust peak RSS (MiB) | reference peak RSS (MiB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    settings = {
        "integrated-gradients": f"50 steps, Gauss-Legendre, zeros; Captum internal_batch_size {ig_batch}",
        "occlusion": "window 56, stride 28, baseline 0; Captum perturbations_per_eval 16",
        "smoothgrad-integrated-gradients": f"10 samples, 15% noise, 20 steps; Captum NoiseTunnel(IntegratedGradients), internal_batch_size {ig_batch}",
        "grad-cam": "features.12, bilinear", "guided-grad-cam": "features.12",
        "deeplift": "zeros; Captum DeepLift", "deeplift-shap": "zeros, black, blurred (sigma 10); Captum DeepLiftShap",
        "gradient-shap": f"200 samples on {args.tunnel_images} images, those baselines, no noise; Captum GradientShap",
        "lrp": "EpsilonPlus; Zennit", "lrp-epsilon": "epsilon 1e-6 everywhere; Zennit",
        "lrp-epsilon-gamma-box": "EpsilonGammaBox; Zennit",
    }
    all_ok = True
    for name, _ref, tol in chosen:
        r, c = statistics.median(times[name][0]), statistics.median(times[name][1])
        got, want = np.load(args.out / f"rust_method_{name}.npy"), np.load(args.out / f"captum_method_{name}.npy")
        if tol is None:
            corr_med, corr_min, rmin, rmax = sg_agreement(got, want)
            good = corr_med >= 0.9 and corr_min >= 0.75 and 0.8 <= rmin and rmax <= 1.25
            agree = f"block corr. median {corr_med:.3f}, min {corr_min:.3f}; norm ratio {rmin:.2f}..{rmax:.2f}"
        else:
            err = float(rel_errors(got, want).max())
            good = err <= tol
            agree = f"rel. error {err:.1e} (limit {tol:.0e})"
        all_ok = all_ok and good
        lines.append(f"| {name} | {settings.get(name, 'defaults')} | {r:.3f} | {c:.3f} | **{r / c:.2f}** | "
                     f"{agree}{'' if good else ' DISAGREE'} | {rss[name][0]:.0f} | {rss[name][1]:.0f} |")
    return lines, all_ok


def bench_causal(args, rust_bin):
    """Deletion and insertion: the crate against RISE's loop, on the same maps."""
    import numpy as np
    res = subprocess.run([str(rust_bin), "--out", str(args.out), "--causal", "--images", str(args.causal_images),
                          "--device", args.device], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"the Rust bench (causal) failed:\n{res.stderr}")
    d = args.out / "causal"
    rust = json.loads((d / "rust.json").read_text())
    subprocess.run([sys.executable, str(ROOT / "scripts" / "reference_evaluation.py"), "--dir", str(d),
                    "--weights", os.environ["BENCH_WEIGHTS"]], check=True, capture_output=True)
    rise = json.loads((d / "rise" / "timing.json").read_text())
    auc = lambda c: (c.sum(1) - c[:, 0] / 2 - c[:, -1] / 2) / (c.shape[1] - 1)
    worst = max(float(np.abs(auc(np.load(d / f"rust_{m}.npy").astype(np.float64))
                              - np.load(d / "rise" / f"{m}_auc.npy")).max()) for m in ("deletion", "insertion"))
    r, p = rust["deletion"] + rust["insertion"], rise["deletion"] + rise["insertion"]
    good = worst <= 1e-3
    lines = [
        "",
        f"## Deletion and insertion ({rust['images']} images, the vanilla gradient's maps, 224 pixels a step: "
        f"225 forward passes per image and metric)",
        "",
        "| what | Rust (s) | RISE's evaluation.py on PyTorch (s) | RISE / Rust | AUC agreement |",
        "|---|---|---|---|---|",
        f"| deletion + insertion | {r:.2f} | {p:.2f} | **{p / r:.1f}x** | largest difference {worst:.1e} "
        f"(limit 1e-3){'' if good else ' DISAGREE'} |",
    ]
    return lines, good


def bench_synthesis(args):
    """Fooling images and class visualisations: `maps` against CS231n's code."""
    import numpy as np
    maps_bin = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "maps"
    subprocess.run(["cargo", "build", "--release", "--quiet", "--features", "cli", "--bin", "maps"], cwd=ROOT, check=True)
    d = args.out / "synthesis"
    n = args.synthesis_images
    index = [str(i) for i in range(0, 25, max(1, 25 // n))][:n]
    targets = [str(t) for t in (6, 113, 417, 76, 1, 340, 130, 366, 683, 78)[:n]]
    classes = ["76", "366"]
    ref = [sys.executable, str(ROOT / "scripts" / "reference_synthesis.py"), "--weights", os.environ["BENCH_WEIGHTS"]]

    def maps(args_, out):
        res = subprocess.run([str(maps_bin), *args_, "--device", args.device, "--out", str(out)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"maps {args_[0]} failed:\n{res.stderr}")
        return float(res.stdout.rsplit(" in ", 1)[1].split(" s;")[0])

    times = {"fool": ([], []), "visualise": ([], [])}
    for r in range(args.sg_runs):
        times["fool"][0].append(maps(["fool", "--npz", os.environ["BENCH_DATA"], "--index", *index,
                                       "--target", *targets], d / "fool"))
        subprocess.run(ref + ["fool", "--inputs", str(d / "fool/input.npy"), "--targets", str(d / "fool/targets.npy"),
                              "--out", str(d / "fool/ref")], check=True, capture_output=True)
        times["fool"][1].append(json.loads((d / "fool/ref/seconds.json").read_text())["compute"])
        times["visualise"][0].append(maps(["visualise", "--target", *classes, "--seed", str(r)], d / "visual"))
        subprocess.run(ref + ["visualise", "--noise", str(d / "visual/noise.npy"), "--jitter", str(d / "visual/jitter.npy"),
                              "--targets", str(d / "visual/targets.npy"), "--out", str(d / "visual/ref")],
                       check=True, capture_output=True)
        times["visualise"][1].append(json.loads((d / "visual/ref/seconds.json").read_text())["compute"])
        print(f"synthesis round {r + 1}/{args.sg_runs} done", flush=True)
    same_steps = (np.load(d / "fool/steps.npy") == np.load(d / "fool/ref/steps.npy")).all()
    err_f = float(rel_errors(np.load(d / "fool/fooled.npy"), np.load(d / "fool/ref/fooled.npy")).max())
    err_v = float(rel_errors(np.load(d / "visual/visual.npy"), np.load(d / "visual/ref/visual.npy")).max())
    good = bool(same_steps) and err_f <= 1e-4 and err_v <= 1e-4
    steps = int(np.load(d / "fool/steps.npy").sum())
    rows = [("fool", f"fooling images of {n} images ({steps} steps in all)", err_f),
            ("visualise", "class visualisations of 2 classes, 100 steps", err_v)]
    lines = [
        "",
        "## Fooling images and class visualisations (`maps fool`, `maps visualise` against CS231n's code on PyTorch, "
        "the computation alone)",
        "",
        "| what | Rust (s) | CS231n on PyTorch (s) | Rust / reference | agreement |",
        "|---|---|---|---|---|",
    ]
    for key, what, err in rows:
        rs, ps = statistics.median(times[key][0]), statistics.median(times[key][1])
        lines.append(f"| {what} | {rs:.2f} | {ps:.2f} | **{rs / ps:.2f}** | relative L2 {err:.1e}"
                     f"{', the same steps' if key == 'fool' and same_steps else ''}{'' if good else ' DISAGREE'} |")
    return lines, good


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--sg-runs", type=int, default=3, help="rounds")
    ap.add_argument("--sg-images", type=int, default=25)
    ap.add_argument("--sg-batches", default="5,10,25,50", help="Captum nt_samples_batch_size values to try")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rust-batch", type=int, default=10, help="the crate's SmoothGrad batch size")
    ap.add_argument("--quick", action="store_true", help="SmoothGrad and the methods on 5 images only")
    ap.add_argument("--methods", default="all", help="the methods to time against Captum: all, none, or a comma-separated list")
    ap.add_argument("--method-images", type=int, default=25)
    ap.add_argument("--tunnel-images", type=int, default=5, help="images for SmoothGrad over Integrated Gradients")
    ap.add_argument("--causal-images", type=int, default=25, help="images for deletion and insertion (0: skip)")
    ap.add_argument("--synthesis-images", type=int, default=5, help="images for the fooling images (0: skip the syntheses)")
    ap.add_argument("--synthesis-only", action="store_true", help="time only the fooling images and class visualisations")
    ap.add_argument("--methods-only", action="store_true", help="time only the methods against their references (--methods)")
    ap.add_argument("--rust-bin", type=Path, help="a prebuilt bench example (where there is no Rust toolchain, e.g. a GPU machine)")
    ap.add_argument("--out", type=Path, default=lab_home() / "bench")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--batch", type=int, default=25, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.quick:
        args.sg_images = 5
        args.method_images = 5
        args.tunnel_images = 2
        args.causal_images = 3
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        fn = {"lab": worker_lab, "captum-saliency": worker_captum_saliency}.get(args.worker)
        if fn:
            res = fn(args, args.out)
        elif args.worker.startswith("captum-method:"):
            res = worker_captum_method(args, args.out, args.worker.split(":", 1)[1], args.batch)
        else:
            res = worker_captum_nt(args, args.out, args.batch)
        print(json.dumps(res))
        return

    import numpy as np
    home = lab_home()
    mirror = os.environ.get("SALIENCY_LAB_MIRROR")
    def find(sub, name):
        for p in ([Path(mirror) / sub / name, Path(mirror) / name] if mirror else []) + [home / "assets" / sub / name]:
            if p.is_file():
                return str(p)
        sys.exit(f"{sub}/{name} not found: run scripts/setup")
    os.environ["BENCH_DATA"] = find("data", "imagenet_val_25.npz")
    os.environ["BENCH_WEIGHTS"] = find("models", "squeezenet1_1.safetensors")
    if args.synthesis_only:
        lines, good = bench_synthesis(args)
        print("\n".join(lines))
        sys.exit(0 if good else 1)

    if args.rust_bin:
        rust_bin = args.rust_bin
    else:
        print("building the Rust side (release)...", flush=True)
        subprocess.run(["cargo", "build", "--release", "--quiet", "--example", "bench"], cwd=ROOT, check=True)
        rust_bin = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "examples" / "bench"

    if args.methods_only:
        lines, good = bench_methods(args, rust_bin)
        print("\n".join(lines))
        sys.exit(0 if good else 1)

    def rust_run(sg_runs):
        res = subprocess.run([str(rust_bin), "--out", str(args.out), "--runs", str(args.runs), "--sg-runs", str(sg_runs),
                              "--sg-images", str(args.sg_images), "--device", args.device, "--batch", str(args.rust_batch)],
                             capture_output=True, text=True)
        if res.returncode != 0:
            sys.exit(f"the Rust bench failed:\n{res.stderr}")
        return json.loads((args.out / "rust.json").read_text())

    # Captum's best nt_samples_batch_size, chosen on 3 images (one run each).
    sel = argparse.Namespace(**{**vars(args), "sg_images": min(3, args.sg_images), "sg_runs": 1})
    trials = {}
    for b in [int(b) for b in args.sg_batches.split(",")]:
        trials[b] = run_worker("captum-nt", sel, args.out, ["--batch", str(b)])["sg_runs"][0]
        print(f"Captum NoiseTunnel, batch {b}: {trials[b]:.2f} s for {sel.sg_images} images", flush=True)
    best_batch = min(trials, key=trials.get)

    # Rounds that alternate the implementations, so that this machine's drift
    # in speed falls on all of them alike.
    rounds = []
    for r in range(args.sg_runs):
        one = argparse.Namespace(**{**vars(args), "sg_runs": 1})
        rounds.append({
            "rust": rust_run(1),
            "lab": run_worker("lab", one, args.out),
            "cap": run_worker("captum-saliency", one, args.out),
            "nt": run_worker("captum-nt", one, args.out, ["--batch", str(best_batch)]),
        })
        print(f"round {r + 1}/{args.sg_runs} done", flush=True)
    med = lambda key, f: statistics.median(f(rd[key]) for rd in rounds)
    rust = dict(rounds[-1]["rust"])
    rust["vanilla_runs"] = [med("rust", lambda d: d["vanilla_runs"][0])] + [med("rust", lambda d: steady(d["vanilla_runs"]))]
    rust["sg_s"] = med("rust", lambda d: d["sg_s"])
    rust["rss_mib"] = max(rd["rust"]["rss_mib"] for rd in rounds)
    lab = dict(rounds[-1]["lab"], vanilla_runs=[med("lab", lambda d: d["vanilla_runs"][0]), med("lab", lambda d: steady(d["vanilla_runs"]))])
    cap = dict(rounds[-1]["cap"], vanilla_runs=[med("cap", lambda d: d["vanilla_runs"][0]), med("cap", lambda d: steady(d["vanilla_runs"]))])
    best = dict(rounds[-1]["nt"], sg_runs=[rd["nt"]["sg_runs"][0] for rd in rounds])
    nts = [{"batch": b, "sg_runs": [t]} for b, t in trials.items()]

    # Same answers?
    rv, lv, cv = (np.load(args.out / f) for f in ("rust_vanilla.npy", "lab_vanilla.npy", "captum_vanilla.npy"))
    err_lab, err_cap = float(rel_errors(rv, lv).max()), float(rel_errors(rv, cv).max())
    rs = np.load(args.out / "rust_smoothgrad.npy")
    cs = np.load(args.out / f"captum_smoothgrad_b{best['batch']}.npy")
    corr_med, corr_min, rmin, rmax = sg_agreement(rs, cs)
    ok = err_lab <= 1e-4 and err_cap <= 1e-4 and corr_med >= 0.9 and corr_min >= 0.75 and 0.8 <= rmin and rmax <= 1.25

    n_img, n_sg = 25, args.sg_images * 50
    rv_s, lv_s, cv_s = steady(rust["vanilla_runs"]), steady(lab["vanilla_runs"]), steady(cap["vanilla_runs"])
    rs_s, cs_s = rust["sg_s"], statistics.median(best["sg_runs"])
    rows = [
        ("vanilla, 25 images, steady (median)", rv_s, lv_s, "lab's PyTorch", rust["rss_vanilla_mib"], lab["rss_mib"], n_img),
        ("vanilla, 25 images, steady", rv_s, cv_s, "Captum Saliency", rust["rss_vanilla_mib"], cap["rss_mib"], n_img),
        ("vanilla, first call", rust["vanilla_runs"][0], lab["vanilla_runs"][0], "lab's PyTorch", None, None, n_img),
        (f"SmoothGrad n=50, {args.sg_images} images", rs_s, cs_s, f"Captum NoiseTunnel (batch {best['batch']})", rust["rss_mib"], best["rss_mib"], n_sg),
    ]
    lines = [
        "# Benchmark: the crate against PyTorch and Captum",
        "",
        f"Made by `scripts/bench.py` on {time.strftime('%Y-%m-%d')}, {lab['device_name']}, "
        f"{os.cpu_count()} cores, device {args.device}, PyTorch {lab['torch']}, libtorch threads {rust['threads']} (Rust) / {lab['threads']} (Python). "
        f"{args.sg_runs} rounds, each running every implementation once in turn (so drift in this machine's speed falls on all alike); "
        f"times are medians over the rounds (vanilla: {args.runs} calls per round, the first excluded from the steady state).",
        "",
        "| what | Rust (s) | reference (s) | reference | Rust / reference | Rust peak RSS (MiB) | reference peak RSS (MiB) | Rust GFLOP/s | reference GFLOP/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for what, r, ref, name, rr, refr, maps in rows:
        f = lambda v: "-" if v is None else f"{v:.0f}"
        lines.append(f"| {what} | {r:.3f} | {ref:.3f} | {name} | **{r / ref:.2f}** | {f(rr)} | {f(refr)} | "
                     f"{maps * GFLOP_PER_MAP / r:.1f} | {maps * GFLOP_PER_MAP / ref:.1f} |")
    first_ratio = rust["vanilla_runs"][0] / rv_s
    lab_first_ratio = lab["vanilla_runs"][0] / lv_s
    sps_r, sps_c = n_sg / rs_s, n_sg / cs_s
    lines += [
        "",
        f"- First call / steady state: Rust {first_ratio:.2f} (the model warms libtorch up at load, {rust['load_s']:.2f} s with loading), "
        f"the lab's PyTorch {lab_first_ratio:.2f}.",
        f"- SmoothGrad samples per second: Rust {sps_r:.1f}, Captum's best setting {sps_c:.1f}: **{sps_r / sps_c:.2f}x**; "
        f"Captum's batch size chosen on {sel.sg_images} images: " + ", ".join(f"{r['batch']}: {r['sg_runs'][0]:.2f} s" for r in nts) + ".",
        f"- Same answers: vanilla relative L2 error per image, Rust vs the lab {err_lab:.1e}, vs Captum {err_cap:.1e} (limit 1e-4); "
        f"SmoothGrad (different noise, so compared as two Monte Carlo estimates) 8x8-block correlation median {corr_med:.3f} "
        f"(limit 0.9), min {corr_min:.3f} (limit 0.75), norm ratio {rmin:.2f}..{rmax:.2f} "
        f"(limit 0.8..1.25): **{'agree' if ok else 'DISAGREE'}**.",
    ]
    if "noise_cpu_vs_device_max_abs" in rust:
        lines.append(f"- The same seed on {args.device} and on the CPU (the counter-based generator): noise differs by at most "
                     f"{rust['noise_cpu_vs_device_max_abs']:.1e}; SmoothGrad of image 0, {args.device} vs CPU, relative L2 error "
                     f"{rust['sg_cpu_vs_device_rel_err']:.1e} (the GPU's convolutions round differently: TF32).")
    if args.methods != "none":
        method_lines, methods_ok = bench_methods(args, rust_bin)
        lines += method_lines
        ok = ok and methods_ok
    if args.causal_images > 0:
        causal_lines, causal_ok = bench_causal(args, rust_bin)
        lines += causal_lines
        ok = ok and causal_ok
    if args.synthesis_images > 0 and not args.rust_bin:
        synthesis_lines, synthesis_ok = bench_synthesis(args)
        lines += synthesis_lines
        ok = ok and synthesis_ok
    table = "\n".join(lines) + "\n"
    print(table)
    dest = ROOT / "crate" / "benches" / ("results.md" if args.device == "cpu" else f"results-{args.device}.md")
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(table)
    print(f"written to {dest}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
