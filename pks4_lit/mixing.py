"""Batch-level mixup and cutmix for clips (Zhang et al. 2018; Yun et al. 2019; timm's Mixup).

    video [B,T,3,H,W] uint8 or float, soft targets [B,K]  ──▶  float video in 0..1, mixed targets

Cutmix pastes one box, the same in every frame of a clip, and corrects λ to the box's true area.
With both on, each batch uses one of them with probability 1/2, as timm's Mixup does.
"""
from __future__ import annotations

import math

import torch


def mix_batch(video: torch.Tensor, target: torch.Tensor, mixup_alpha: float = 0.0,
              cutmix_alpha: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    use_mixup, use_cutmix = mixup_alpha > 0, cutmix_alpha > 0
    if not (use_mixup or use_cutmix) or video.shape[0] < 2:
        return video, target
    if use_mixup and use_cutmix:
        use_mixup = bool(torch.rand(()) < 0.5)
    alpha = mixup_alpha if use_mixup else cutmix_alpha
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    perm = torch.randperm(video.shape[0], device=video.device)
    video = video.float() / 255.0 if not video.is_floating_point() else video
    if use_mixup:
        video = lam * video + (1.0 - lam) * video[perm]
    else:
        h, w = video.shape[-2:]
        cut = math.sqrt(1.0 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        video = video.clone()
        video[..., y0:y1, x0:x1] = video[perm][..., y0:y1, x0:x1]
        lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
    return video, lam * target + (1.0 - lam) * target[perm]
