#!/usr/bin/env bash
# The benchmark on a lent GPU machine that has PyTorch but no Rust toolchain
# and no network (this workplace's `device` tool), in two steps:
#
#   scripts/bench_device.sh prepare   # here: build the Rust bench against the
#                                     # GPU machine's PyTorch, fill .gpu/
#   scripts/bench_device.sh run       # there (carry .gpu/bin, .gpu/whl and the
#                                     # two asset paths under .gpu/shared)
#
# `prepare` builds `crate/examples/bench.rs` with the tch release that matches
# the GPU machine's PyTorch (default 2.11.0 -> tch 0.24; override with
# DEVICE_TORCH and DEVICE_TCH) against that PyTorch's wheel, in a copy of the
# crate under the cache; .gpu/ is git-ignored (.git/info/exclude) and holds
# the binary, the captum wheel and a link to the asset mirror (never a copy).
# `run` prints the GPU, runs a smoke test, times the crate's SmoothGrad at
# batch sizes 10, 25, 50, then the full comparison (scripts/bench.py --device
# cuda), and leaves the logs and crate/benches/results-cuda.md under $OUT.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

prepare() {
    source scripts/env.sh
    local torch=${DEVICE_TORCH:-2.11.0} tch=${DEVICE_TCH:-0.24}
    local g=$SALIENCY_LAB_HOME/device-torch-$torch
    mkdir -p "$g"
    if [ ! -d "$g/libtorch/torch/lib" ]; then
        python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
            --platform manylinux_2_28_x86_64 -d "$g" "torch==$torch"
        unzip -q -o "$g"/torch-"$torch"-*.whl 'torch/include/*' 'torch/lib/*' -d "$g/libtorch"
    fi
    rm -rf "$g/src" && mkdir -p "$g/src"
    cp -r Cargo.toml Cargo.lock crate "$g/src/"
    sed -i "s/^tch = \".*\"/tch = \"$tch\"/" "$g/src/crate/Cargo.toml"
    # Linked here without the CUDA libraries (the GPU machine has them);
    # libtorch_cuda itself is loaded at run time (saliency_lab::device).
    (cd "$g/src" && env -u LIBTORCH_USE_PYTORCH LIBTORCH="$g/libtorch/torch" LIBTORCH_BYPASS_VERSION_CHECK=1 \
        CARGO_TARGET_DIR="$g/target" RUSTFLAGS="-C link-arg=-Wl,--allow-shlib-undefined" \
        cargo build --release --quiet --all-features --example bench)
    mkdir -p .git/info .gpu/bin .gpu/whl
    grep -qx '/.gpu/' .git/info/exclude 2>/dev/null || echo '/.gpu/' >>.git/info/exclude
    cp "$g/target/release/examples/bench" .gpu/bin/bench
    echo "the crate built with tch $tch against PyTorch $torch's libtorch by scripts/bench_device.sh" >.gpu/bin/BUILD
    python -m pip download -q --no-deps --only-binary=:all: -d .gpu/whl "captum==$(python -c 'import captum; print(captum.__version__)')"
    ln -sfn "${SALIENCY_LAB_MIRROR:-$SALIENCY_LAB_HOME/assets}" .gpu/shared
    echo "ready: carry .gpu/bin .gpu/whl .gpu/shared/data/imagenet_val_25.npz .gpu/shared/models/squeezenet1_1.safetensors"
}

run() {
    export PYTHONUNBUFFERED=1
    local out=${OUT:-/tmp/bench-device}
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
    export PYTHONPATH=/tmp/site
    local sp
    sp=$(python3 -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.__file__)))')
    LD_LIBRARY_PATH=$sp/torch/lib
    local d
    for d in "$sp"/nvidia/*/lib; do
        [[ -d "$d" ]] && LD_LIBRARY_PATH=$LD_LIBRARY_PATH:$d
    done
    export LD_LIBRARY_PATH SALIENCY_LAB_MIRROR=$ROOT/.gpu/shared
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python3 -c 'import torch, captum; print("torch", torch.__version__, "captum", captum.__version__, torch.cuda.get_device_name())'
    .gpu/bin/bench --device cuda --out /tmp/smoke --runs 2 --sg-runs 1 --sg-images 2 --batch 50
    for b in 10 25 50; do
        .gpu/bin/bench --device cuda --out "/tmp/b$b" --runs 5 --sg-runs 3 --batch "$b" >/dev/null
        cp "/tmp/b$b/rust.json" "$out/rust_batch$b.json"
        python3 -c "import json; d = json.load(open('/tmp/b$b/rust.json')); print('Rust SmoothGrad batch $b:', d['sg_runs'], 's; vanilla', d['vanilla_runs'])"
    done | tee "$out/rust_batches.txt"
    python3 scripts/bench.py --device cuda --rust-bin .gpu/bin/bench --rust-batch "${RUST_BATCH:-50}" \
        --sg-batches 10,25,50 --out /tmp/bench 2>&1 | tee "$out/bench.log" || echo "bench.py: exit $?"
    echo "- Rust side: $(cat .gpu/bin/BUILD)." >>crate/benches/results-cuda.md
    cp crate/benches/results-cuda.md "$out/"
    # How far the GPU's rounding moves a gradient: the lab's vanilla gradient
    # on the CPU against the GPU, with TF32 convolutions (the default) and
    # without.
    python3 - <<'PY' 2>&1 | tee "$out/tf32.txt"
import os, sys, torch
sys.path.insert(0, "scripts")
os.environ["BENCH_DATA"] = ".gpu/shared/data/imagenet_val_25.npz"
os.environ["BENCH_WEIGHTS"] = ".gpu/shared/models/squeezenet1_1.safetensors"
from bench import load_inputs
def grad(X, y, model):
    X = X.clone().requires_grad_()
    model(X).gather(1, y.view(-1, 1)).sum().backward()
    return X.grad.cpu()
X, y, model = load_inputs("cpu")
ref = grad(X, y, model)
for tf32 in (True, False):
    torch.backends.cudnn.allow_tf32 = tf32
    g = grad(X.cuda(), y.cuda(), model.cuda())
    err = ((g - ref).flatten(1).norm(dim=1) / ref.flatten(1).norm(dim=1))
    print(f"vanilla gradient, cuda (cudnn TF32 {tf32}) vs cpu: relative L2 error per image median {err.median():.1e}, max {err.max():.1e}")
PY
}

case "${1:-}" in
prepare) prepare ;;
run) run ;;
*) echo "usage: $0 prepare|run" >&2; exit 2 ;;
esac
