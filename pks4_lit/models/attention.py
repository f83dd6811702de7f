"""TemporalAttention: the temporal self-attention baseline head (registered as `attention`).

    X [B,T,C,h,w] ──per location: LayerNorm, + learned time embedding E[t]──▶ x [B·h·w,T,C]
    x ──depth × (x + Attn(LN(x)), x + MLP(LN(x)))──▶ Y [B,T,C,h,w]

Built as the temporal half of TimeSformer's divided space-time attention (Bertasius et al.,
"Is Space-Time Attention All You Need for Video Understanding?", ICML 2021, `vit.py`): a
learned time embedding with one row per frame, added to every token of that frame before the
blocks; pre-norm multi-head self-attention over the T tokens of one spatial location; pre-norm
MLP; residual connections. The head reads raw frozen backbone features, whose tokens have
L2 norm ≈ 86 (EfficientNet-Lite0 blocks.4), so the embedding is added AFTER an input LayerNorm:
the token then has norm ≈ √C whatever the backbone, and the time code is initialised at that
scale (per-channel N(0, pos_init_std²), default 1: code and token of comparable norm, as with
the sinusoid added to √d-scaled embeddings in Vaswani et al. 2017). TimeSformer starts its
time_embed at zero on top of a pretrained ViT; a head trained from scratch on frozen features
would then be order-blind at its first steps (attention alone is permutation-equivariant and
the classifier mean-pools over T).

Frames t < max_frames use row t (absolute positions: a causal head gives the same outputs on a
prefix of the clip). Longer clips resample the table linearly to T rows (as TimeSformer resizes
its time_embed when T differs) with a warning. Cost O(T²) per location: that is the point of the
comparison. The table, not the attention weights, is what `no_weight_decay()` names.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn as nn
import torch.nn.functional as F


class TemporalAttention(nn.Module):
    # the first arguments stay positional-or-keyword: the registry (heads.py) passes them by position
    def __init__(self, dim: int, num_heads: int = 4, mlp_ratio: float = 2.0, depth: int = 1,
                 causal: bool = False, dropout: float = 0.0, *, max_frames: int = 32,
                 pos_init_std: float = 1.0, qkv_bias: bool = True, norm_eps: float = 1e-6):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention head: dim={dim} is not divisible by num_heads={num_heads}")
        if max_frames < 1 or depth < 1:
            raise ValueError(f"attention head: need max_frames >= 1 and depth >= 1, got {max_frames}, {depth}")
        self.dim, self.num_heads, self.causal, self.dropout = dim, num_heads, causal, dropout
        self.max_frames = max_frames
        hidden = int(dim * mlp_ratio)
        self.norm_in = nn.LayerNorm(dim, eps=norm_eps)
        self.time_embed = nn.Parameter(torch.randn(max_frames, dim) * pos_init_std)   # [max_frames,C]
        self.layers = nn.ModuleList(nn.ModuleDict(dict(
            norm1=nn.LayerNorm(dim, eps=norm_eps), qkv=nn.Linear(dim, 3 * dim, bias=qkv_bias),
            proj=nn.Linear(dim, dim), norm2=nn.LayerNorm(dim, eps=norm_eps),
            mlp=nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)),
        )) for _ in range(depth))
        self._warned_T: set[int] = set()

    def no_weight_decay(self) -> set[str]:
        return {"time_embed"}

    def time_embedding(self, T: int) -> torch.Tensor:                  # [T,C]
        if T <= self.max_frames:
            return self.time_embed[:T]
        if T not in self._warned_T:
            self._warned_T.add(T)
            warnings.warn(f"attention head: T={T} frames exceed max_frames={self.max_frames}; its time "
                          f"embedding is resampled linearly to {T} rows (build it with max_frames >= {T} "
                          f"to learn one row per frame)", stacklevel=3)
        return F.interpolate(self.time_embed.T[None], size=T, mode="linear", align_corners=True)[0].T

    def forward(self, X: torch.Tensor) -> torch.Tensor:                # [B,T,C,h,w]
        if X.dim() != 5 or X.shape[2] != self.dim:
            raise ValueError(f"attention head (dim={self.dim}) expects [B,T,{self.dim},h,w], got {tuple(X.shape)}")
        B, T, C, h, w = X.shape
        x = X.permute(0, 3, 4, 1, 2).reshape(B * h * w, T, C)           # [B·h·w,T,C]
        x = self.norm_in(x) + self.time_embedding(T).to(x.dtype)
        H = self.num_heads
        for layer in self.layers:
            q, k, v = layer.qkv(layer.norm1(x)).view(-1, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # [b,H,T,c]
            a = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal,
                                               dropout_p=self.dropout if self.training else 0.0)
            x = x + layer.proj(a.transpose(1, 2).reshape(-1, T, C))
            x = x + layer.mlp(layer.norm2(x))
        return x.reshape(B, h, w, T, C).permute(0, 3, 4, 1, 2)          # [B,T,C,h,w]
