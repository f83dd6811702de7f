"""Temporal heads: every class here maps backbone features [B,T,C,h,w] → [B,T,C,h,w].

    tsn         TSN (tsn.py): identity; the classifier's mean pooling makes it order-blind
    attention   TemporalAttention (attention.py): temporal self-attention at each location
    ssm         SSM (pks4.py): PKS⁴'s scanners without kinematic priors, Δ/B/C from the input only
    global_ssm  GlobalSSM (global_ssm.py): one causal scan over the clip's T·h·w tokens
    pks4        PKS4 (pks4.py): the PKS⁴ block

A head is an nn.Module class whose first argument is `dim: int` (the backbone's channels) and whose
other arguments are typed keywords with defaults: configs name the class and set those arguments
(`class_path`/`init_args`, parsed by type). The registry maps the short names above to the classes,
timm style: `register_temporal_head(name, cls)` (or `@register_temporal_head(name)` on a class),
`build_temporal_head(name, dim, **kw)`.
"""
from __future__ import annotations

import inspect

import torch.nn as nn

from pks4_lit.models.attention import TemporalAttention
from pks4_lit.models.global_ssm import GlobalSSM
from pks4_lit.models.pks4 import PKS4, SSM
from pks4_lit.models.tsn import TSN

TEMPORAL_HEADS: dict[str, type[nn.Module]] = {}


def register_temporal_head(name: str, cls: type[nn.Module] | None = None):
    """Register `cls` under `name`; without `cls`, a class decorator."""
    def add(cls):
        params = list(inspect.signature(cls).parameters)
        if not params or params[0] != "dim":
            raise TypeError(f"temporal head {cls.__name__} must take `dim` as its first argument, got {params}")
        TEMPORAL_HEADS[name] = cls
        return cls
    return add if cls is None else add(cls)


def list_temporal_heads() -> list[str]:
    return sorted(TEMPORAL_HEADS)


def temporal_head_name(head: nn.Module) -> str:
    """The registered name of a head instance (its class name if unregistered)."""
    return next((n for n, c in TEMPORAL_HEADS.items() if type(head) is c), type(head).__name__)


def build_temporal_head(name: str, dim: int, **kw) -> nn.Module:
    if name not in TEMPORAL_HEADS:
        raise ValueError(f"unknown temporal head {name!r}; available: {', '.join(list_temporal_heads())}")
    cls = TEMPORAL_HEADS[name]
    params = list(inspect.signature(cls).parameters.values())[1:]
    accepted = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    open_ended = any(p.kind == p.VAR_KEYWORD for p in params)
    unknown = sorted(k for k in kw if k not in accepted)
    if unknown and not open_ended:
        raise ValueError(f"temporal head {name!r} got unknown argument(s) {unknown}; "
                         f"it accepts {accepted or 'no arguments'}")
    return cls(dim, **kw)


register_temporal_head("tsn", TSN)
register_temporal_head("attention", TemporalAttention)
register_temporal_head("ssm", SSM)
register_temporal_head("global_ssm", GlobalSSM)
register_temporal_head("pks4", PKS4)
