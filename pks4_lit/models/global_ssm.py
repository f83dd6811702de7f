"""GlobalSSM: one causal global-scan layer on frozen features (registered as `global_ssm`).

    X [B,T,C,h,w] ──flatten to T·h·w tokens (t-major, then row-major)──▶ x [B,T·h·w,C]
    x ──depth × (x + Mamba(LayerNorm(x)))──▶ Y [B,T,C,h,w]

A head-only baseline: Mamba blocks (mamba_block.py) scanning ONE sequence per clip, all of its
frozen feature-map tokens, with no priors. The default (depth 1, causal) is "one causal
global-scan layer on frozen features": the scan reaches every token, but it is NOT a pure video
SSM. That is the end-to-end VideoMamba baseline (videomamba.py: a deep stack of bidirectional
blocks over patch tokens, trained from pixels). `bidirectional=True` adds the Vision-Mamba
backward scan (own conv/x_proj/dt_proj/A/D, shared in/out projections); `depth` stacks blocks.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pks4_lit.models.mamba_block import MambaBlock


class GlobalSSM(nn.Module):
    def __init__(self, dim: int, *, depth: int = 1, d_state: int = 16, expand: float = 1, d_conv: int = 4,
                 bidirectional: bool = False, dt_rank: int | str = "auto", dt_min: float = 0.001,
                 dt_max: float = 0.1, dt_init_floor: float = 1e-4):
        super().__init__()
        if depth < 1:
            raise ValueError(f"global_ssm: depth must be >= 1, got {depth}")
        self.dim, self.depth, self.bidirectional = dim, depth, bidirectional
        self.blocks = nn.ModuleList(
            MambaBlock(dim, norm="layer", d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank,
                       dt_min=dt_min, dt_max=dt_max, dt_init_floor=dt_init_floor, bidirectional=bidirectional)
            for _ in range(depth))

    def forward(self, X: torch.Tensor) -> torch.Tensor:                # [B,T,C,h,w] -> [B,T,C,h,w]
        if X.dim() != 5 or X.shape[2] != self.dim:
            raise ValueError(f"global_ssm head (dim={self.dim}) expects [B,T,{self.dim},h,w], got {tuple(X.shape)}")
        B, T, C, h, w = X.shape
        hidden = X.permute(0, 1, 3, 4, 2).reshape(B, T * h * w, C)       # [B,T·h·w,C], t-major
        residual = None
        for block in self.blocks:
            hidden, residual = block(hidden, residual)
        Y = residual + hidden                                            # the stream after the last block
        return Y.reshape(B, T, h, w, C).permute(0, 1, 4, 2, 3).to(X.dtype)
