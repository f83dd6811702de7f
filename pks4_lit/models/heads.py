"""Temporal heads: every module here maps backbone features [B,T,C,h,w] → [B,T,C,h,w].

    tsn         identity: the classifier's mean pooling makes it order-blind (TSN-style baseline)
    attention   temporal self-attention at each location (TimeSformer's time attention, alone)
    ssm         PKS⁴'s scanners without kinematic priors: Δ/B/C from the input only
    global_ssm  one scan over the whole clip flattened to T·h·w tokens (t-major), as pure video
                SSMs such as VideoMamba do; same block as `ssm`, batch B instead of B·h·w
    pks4        the PKS⁴ block (pks4.py)

Registry in the timm style: `@register_temporal_head` on a factory `fn(dim, **kw) -> nn.Module`;
`build_temporal_head(name, dim, **kw)` checks the name and the keyword arguments.
"""
from __future__ import annotations

import inspect
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from pks4_lit.models.pks4 import PKS4

TEMPORAL_HEADS: dict = {}


def register_temporal_head(fn):
    TEMPORAL_HEADS[fn.__name__] = fn
    return fn


def list_temporal_heads() -> list[str]:
    return sorted(TEMPORAL_HEADS)


def build_temporal_head(name: str, dim: int, **kw) -> nn.Module:
    if name not in TEMPORAL_HEADS:
        raise ValueError(f"unknown temporal head {name!r}; available: {', '.join(list_temporal_heads())}")
    fn = TEMPORAL_HEADS[name]
    params = inspect.signature(fn).parameters
    unknown = sorted(k for k in kw if k not in params or k == "dim")
    if unknown:
        accepted = [p for p in params if p != "dim"]
        raise ValueError(f"temporal head {name!r} got unknown argument(s) {unknown}; "
                         f"it accepts {accepted or 'no arguments'}")
    return fn(dim, **kw)


# ---- modules that exist only as baselines -----------------------------------------------------
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


class GlobalSSM(PKS4):
    """The PKS⁴ block without priors, scanning ONE sequence per clip: the T·h·w tokens in t-major
    (then row-major) order, batch B. Causal in that flattened order unless bidirectional."""

    def __init__(self, dim, **kw):
        super().__init__(dim, use_priors=False, **kw)

    def forward(self, X, return_internals=False):                      # [B,T,C,h,w]
        if X.dim() != 5 or X.shape[2] != self.dim:
            raise ValueError(f"global_ssm head (dim={self.dim}) expects [B,T,{self.dim},h,w], got {tuple(X.shape)}")
        B, T, C, h, w = X.shape
        xn = self.norm(X.permute(0, 1, 3, 4, 2)).reshape(B, T * h * w, C)  # [B,T·h·w,C]
        out = self.mix(xn, None, return_delta=return_internals)
        if return_internals:
            out, deltas = out
        Y = X + out.reshape(B, T, h, w, C).permute(0, 1, 4, 2, 3).to(X.dtype)
        if not return_internals:
            return Y
        return Y, dict(delta=deltas[0].reshape(B, self.d_inner, T, h, w).transpose(1, 2))


# ---- registered factories ---------------------------------------------------------------------
@register_temporal_head
def tsn(dim):
    return nn.Identity()


@register_temporal_head
def attention(dim, num_heads=4, mlp_ratio=2.0, depth=1, causal=False, dropout=0.0):
    return TemporalAttention(dim, num_heads, mlp_ratio, depth, causal, dropout)


@register_temporal_head
def ssm(dim, d_state=16, expand=1, d_conv=4, bidirectional=False, dt_rank="auto",
        dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4):
    return PKS4(dim, d_state=d_state, expand=expand, d_conv=d_conv, use_priors=False,
                bidirectional=bidirectional, dt_rank=dt_rank, dt_min=dt_min, dt_max=dt_max,
                dt_init_floor=dt_init_floor)


@register_temporal_head
def global_ssm(dim, d_state=16, expand=1, d_conv=4, bidirectional=False, dt_rank="auto",
               dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4):
    return GlobalSSM(dim, d_state=d_state, expand=expand, d_conv=d_conv, bidirectional=bidirectional,
                     dt_rank=dt_rank, dt_min=dt_min, dt_max=dt_max, dt_init_floor=dt_init_floor)


@register_temporal_head
def pks4(dim, d_state=16, expand=1, d_conv=4, prior_dim=64, radius=3, dilation=1,
         use_correlation=True, use_difference=True, use_priors=True, bidirectional=False,
         dt_rank="auto", dt_min=0.001, dt_max=0.1, dt_init_floor=1e-4, diff_dim=8,
         temperature=0.1, learn_temperature=True):
    return PKS4(dim, d_state=d_state, expand=expand, d_conv=d_conv, prior_dim=prior_dim,
                radius=radius, dilation=dilation, use_correlation=use_correlation,
                use_difference=use_difference, use_priors=use_priors, bidirectional=bidirectional,
                dt_rank=dt_rank, dt_min=dt_min, dt_max=dt_max, dt_init_floor=dt_init_floor,
                diff_dim=diff_dim, temperature=temperature, learn_temperature=learn_temperature)
