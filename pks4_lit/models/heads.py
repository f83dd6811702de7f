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

import torch.nn as nn

from pks4_lit.models.attention import TemporalAttention
from pks4_lit.models.global_ssm import GlobalSSM
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
