"""TemporalAttention: the temporal self-attention baseline head (registered as `attention`).

    X [B,T,C,h,w] ──per location: pre-norm transformer layers over T──▶ Y [B,T,C,h,w]
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class TemporalAttention(nn.Module):
    """Pre-norm transformer layers over time at each of the B·h·w locations:
    x + MHSA(LN(x)), then x + MLP(LN(x)). Time positions: fixed sinusoidal encoding added to the
    attention input (any T). Cost O(T²) per location: that is the point of the comparison."""

    def __init__(self, dim, num_heads=4, mlp_ratio=2.0, depth=1, causal=False, dropout=0.0):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention head: dim={dim} is not divisible by num_heads={num_heads}")
        self.dim, self.num_heads, self.causal, self.dropout = dim, num_heads, causal, dropout
        hidden = int(dim * mlp_ratio)
        self.layers = nn.ModuleList(nn.ModuleDict(dict(
            norm1=nn.LayerNorm(dim), qkv=nn.Linear(dim, 3 * dim), proj=nn.Linear(dim, dim),
            norm2=nn.LayerNorm(dim), mlp=nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)),
        )) for _ in range(depth))

    def time_encoding(self, T, device, dtype):                        # [T,C] sin/cos (Vaswani et al.)
        pos = torch.arange(T, device=device, dtype=torch.float32)[:, None]
        freq = torch.exp(torch.arange(0, self.dim, 2, device=device, dtype=torch.float32)
                         * (-math.log(10000.0) / self.dim))
        pe = torch.zeros(T, self.dim, device=device)
        pe[:, 0::2] = torch.sin(pos * freq)
        pe[:, 1::2] = torch.cos(pos * freq)[:, : self.dim // 2]
        return pe.to(dtype)

    def forward(self, X):                                              # [B,T,C,h,w]
        if X.dim() != 5 or X.shape[2] != self.dim:
            raise ValueError(f"attention head (dim={self.dim}) expects [B,T,{self.dim},h,w], got {tuple(X.shape)}")
        B, T, C, h, w = X.shape
        x = X.permute(0, 3, 4, 1, 2).reshape(B * h * w, T, C)           # [B·h·w,T,C]
        x = x + self.time_encoding(T, x.device, x.dtype)
        H = self.num_heads
        for layer in self.layers:
            q, k, v = layer.qkv(layer.norm1(x)).view(-1, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # [b,H,T,c]
            a = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                               dropout_p=self.dropout if self.training else 0.0)
            x = x + layer.proj(a.transpose(1, 2).reshape(-1, T, C))
            x = x + layer.mlp(layer.norm2(x))
        return x.reshape(B, h, w, T, C).permute(0, 3, 4, 1, 2)          # [B,T,C,h,w]
