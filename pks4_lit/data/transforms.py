"""Clip transforms on uint8 tensors [T,3,H,W]: the same crop for every frame, no float conversion.

Normalisation happens in the model (VideoClassifier), so batches stay uint8 (4x less to copy).
Random parameters come from an explicit numpy Generator (one per sample, see dataset.py), so
augmentation does not depend on which DataLoader worker draws it.

train: random-resized-crop (torchvision's parameter rule: area fraction in `scale`, aspect ratio in
       [3/4, 4/3], 10 tries then a centre crop) to crop_size × crop_size, then an optional
       horizontal flip (off by default: SSv2 has left/right classes that a flip would swap).
eval:  resize the short side to `short_side`, then 1 centre crop or 3 crops (left/centre/right
       along the long side, top/centre/bottom for portrait video).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F


def random_resized_crop_params(H: int, W: int, scale, rng: np.random.Generator, ratio=(3 / 4, 4 / 3)):
    area = H * W
    log_r = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(scale[0], scale[1])
        r = math.exp(rng.uniform(*log_r))
        w, h = round(math.sqrt(target * r)), round(math.sqrt(target / r))
        if 0 < w <= W and 0 < h <= H:
            return int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1)), h, w
    s = min(H, W)  # fallback: centre square
    return (H - s) // 2, (W - s) // 2, s, s


def train_transform(video: torch.Tensor, crop_size: int, scale, hflip: bool, rng: np.random.Generator) -> torch.Tensor:
    """[T,3,H,W] uint8 -> [T,3,crop,crop] uint8."""
    _check(video)
    top, left, h, w = random_resized_crop_params(video.shape[-2], video.shape[-1], scale, rng)
    out = F.resized_crop(video, top, left, h, w, size=[crop_size, crop_size], antialias=True)
    if hflip and rng.random() < 0.5:
        out = out.flip(-1)
    return out


def resize_short_side(video: torch.Tensor, short_side: int) -> torch.Tensor:
    H, W = video.shape[-2:]
    if min(H, W) == short_side:
        return video
    s = short_side / min(H, W)
    return F.resize(video, [max(short_side, round(H * s)), max(short_side, round(W * s))], antialias=True)


def eval_crops(video: torch.Tensor, crop_size: int, short_side: int, num_crops: int = 1) -> list[torch.Tensor]:
    """[T,3,H,W] uint8 -> num_crops tensors [T,3,crop,crop] (1: centre; 3: along the long side)."""
    _check(video)
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3 (got {num_crops})")
    if crop_size > short_side:
        raise ValueError(f"crop_size {crop_size} is larger than short_side {short_side}")
    video = resize_short_side(video, short_side)
    H, W = video.shape[-2:]
    top, left = (H - crop_size) // 2, (W - crop_size) // 2
    if num_crops == 1:
        return [F.crop(video, top, left, crop_size, crop_size)]
    if W >= H:
        return [F.crop(video, top, x, crop_size, crop_size) for x in (0, left, W - crop_size)]
    return [F.crop(video, y, left, crop_size, crop_size) for y in (0, top, H - crop_size)]


def _check(video: torch.Tensor):
    if video.dtype != torch.uint8 or video.dim() != 4 or video.shape[1] != 3:
        raise ValueError(f"expected a uint8 clip [T,3,H,W], got {tuple(video.shape)} {video.dtype}")
