# Sourced by the project's scripts: where set-up puts things, and the
# environment tch, the tests and the Jupyter kernel need. Everything lives in
# one cache outside the clone, so a second clone (or CI) reuses the venv, the
# compiled libtorch bindings and the evcxr kernel.
#
#   SALIENCY_LAB_HOME    the cache (default ~/.cache/saliency-lab)
#   SALIENCY_LAB_MIRROR  an offline folder with data/ and models/ (optional)

SALIENCY_LAB_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export SALIENCY_LAB_ROOT
export SALIENCY_LAB_HOME=${SALIENCY_LAB_HOME:-$HOME/.cache/saliency-lab}
export SALIENCY_LAB_VENV=${SALIENCY_LAB_VENV:-$SALIENCY_LAB_HOME/venv}
export SALIENCY_LAB_PYTHON=$SALIENCY_LAB_VENV/bin/python
export EVCXR_VERSION=0.22.0
export SALIENCY_LAB_EVCXR=$SALIENCY_LAB_HOME/evcxr-$EVCXR_VERSION/bin/evcxr_jupyter
# evcxr_jupyter is built at opt-level 1: measured on 2 cores, opt-level 0 builds
# in a quarter of the time but its rust-analyzer, unoptimised, then takes about
# two minutes for each notebook's first `:dep` cell (against 12 s) and doubles
# every cell's overhead; opt-level 1 runs within 15% of a release build.
export EVCXR_OPT_LEVEL=${EVCXR_OPT_LEVEL:-1}

# tch builds against the venv's PyTorch and loads its libtorch at run time.
export LIBTORCH_USE_PYTORCH=1
export PATH=$SALIENCY_LAB_VENV/bin:$HOME/.cargo/bin:$PATH
# (Before set-up has made the venv there is no torch/lib yet: a glob, not
# `ls | head`, so that a caller's `set -euo pipefail` does not end here.)
TORCH_LIB=
for _dir in "$SALIENCY_LAB_VENV"/lib/python3*/site-packages/torch/lib; do
    [[ -d "$_dir" ]] && { TORCH_LIB=$_dir; break; }
done
unset _dir
export LD_LIBRARY_PATH=${TORCH_LIB}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}

# Build output outside the clone: tch's first build takes minutes.
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$SALIENCY_LAB_HOME/target}
# evcxr's own build cache for notebook cells (warm `:dep` in seconds).
export EVCXR_TMPDIR=$SALIENCY_LAB_HOME/evcxr-tmp
export JUPYTER_DATA_DIR=$SALIENCY_LAB_HOME/jupyter
