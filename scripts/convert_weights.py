#!/usr/bin/env python3
"""Converts torchvision's SqueezeNet 1.1 state dict (.pth) to safetensors.

Usage: python scripts/convert_weights.py squeezenet1_1-b8a52dc0.pth squeezenet1_1.safetensors
"""
import sys

import torch
from safetensors.torch import save_file


def main(src, dest):
    state = torch.load(src, map_location="cpu", weights_only=True)
    tensors = {k: v.float().contiguous() for k, v in state.items()}
    if len(tensors) != 52 or "classifier.1.weight" not in tensors:
        sys.exit(f"{src}: expected torchvision's squeezenet1_1 state dict (52 tensors), got {len(tensors)}")
    save_file(tensors, dest)
    print(f"{dest}: {len(tensors)} tensors")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
