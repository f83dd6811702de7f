"""A compact Mamba block for token sequences [b,L,C], optionally bidirectional (Vision Mamba "v2").

    x [b,L,C] ──in_proj──▶ u, z [b,d,L]                                       (d = expand·C)
    u ──causal depthwise conv (d_conv taps) + SiLU──▶ u'
    Δ, B, C = x_proj(u')  (Δ through a rank-R projection)
    y = selective_scan(u', Δ, A, B, C, D, z)          (y·SiLU(z) inside the scan, as mamba-ssm)
    bidirectional: y += flip(scan of the flipped u, z with the *_b parameters)
    out = out_proj(y) [b,L,C]

Written from Mamba (Gu & Dao 2023, mamba-ssm `modules/mamba_simple.py`) and the bidirectional
mixer of Vision Mamba / VideoMamba (Zhu et al. 2024; Li et al. 2024, arXiv 2403.06977; the
VideoMamba repository's `mamba_simple.py` with `bimamba=True`): the backward direction has its
own conv1d_b, x_proj_b, dt_proj_b, A_b_log and D_b; in_proj, the gate z and out_proj are shared;
the two directions' gated outputs are summed before out_proj. Parameter names follow that file,
so an official checkpoint maps key for key (see videomamba.py).

`MambaBlock` is VideoMamba's residual block: "Add → Norm → Mixer", carrying the residual stream
separately (kept in fp32 when residual_in_fp32) so that the add and the norm can be fused on GPU;
drop path is applied to the mixer output when it is added to the stream by the NEXT block (or by
the model's final norm), exactly as the official code does.

Numerics: A_log, D and the dt bias are fp32 parameters; on CPU the conv and the scan run in fp32
with autocast off, on CUDA in the input dtype (the fused kernels' contract). The conv and the scan
go through `pks4_lit.ops` (fused CUDA kernels when available, exact PyTorch otherwise).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath

from pks4_lit.ops import causal_conv1d, selective_scan


def _dt_init_(dt_proj: nn.Linear, d_inner: int, dt_rank: int, dt_min: float, dt_max: float,
              dt_init_floor: float) -> None:
    """Mamba's Δ init: weight U(±R^-½); bias = softplus⁻¹(dt), dt log-uniform in [dt_min, dt_max]."""
    nn.init.uniform_(dt_proj.weight, -dt_rank ** -0.5, dt_rank ** -0.5)
    dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    dt = dt.clamp(min=dt_init_floor)
    with torch.no_grad():
        dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))
    dt_proj.bias._no_reinit = True            # a model-level init must not zero it


def _s4d_real(d_inner: int, d_state: int) -> nn.Parameter:
    """A_log for A_n = -n, n = 1..N (S4D-real), fp32, one row per channel: [d,N]."""
    A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32)).repeat(d_inner, 1))
    return A_log


class Mamba(nn.Module):
    """Selective-SSM sequence mixer: x [b,L,C] -> [b,L,C]. Causal unless bidirectional."""

    def __init__(self, d_model: int, *, d_state: int = 16, d_conv: int = 4, expand: float = 2,
                 dt_rank: int | str = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, conv_bias: bool = True, bias: bool = False,
                 bidirectional: bool = False):
        super().__init__()
        if d_model < 1 or d_state < 1 or d_conv < 1 or int(expand * d_model) < 1:
            raise ValueError(f"need d_model, d_state, d_conv >= 1 and int(expand·d_model) >= 1; got "
                             f"d_model={d_model}, d_state={d_state}, d_conv={d_conv}, expand={expand}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = d = int(expand * d_model)         # as mamba-ssm: expand may be fractional
        self.dt_rank = R = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.bidirectional = bidirectional

        self.in_proj = nn.Linear(d_model, 2 * d, bias=bias)
        for sfx in ("", "_b") if bidirectional else ("",):
            setattr(self, "conv1d" + sfx, nn.Conv1d(d, d, d_conv, groups=d, bias=conv_bias))
            setattr(self, "x_proj" + sfx, nn.Linear(d, R + 2 * d_state, bias=False))
            dt_proj = nn.Linear(R, d, bias=True)
            _dt_init_(dt_proj, d, R, dt_min, dt_max, dt_init_floor)
            setattr(self, "dt_proj" + sfx, dt_proj)
            setattr(self, "A_b_log" if sfx else "A_log", _s4d_real(d, d_state))
            setattr(self, "D" + sfx, nn.Parameter(torch.ones(d)))
        self.out_proj = nn.Linear(d, d_model, bias=bias)

    def no_weight_decay(self) -> set[str]:
        """SSM state parameters stay out of weight decay (pks4_lit.optim reads this), as in Mamba."""
        return {"A_log", "A_b_log", "D", "D_b"}

    def _scan(self, u, z, sfx: str):                  # u, z [b,d,L] -> y [b,d,L] (gated by z)
        conv, x_proj, dt_proj = (getattr(self, n + sfx) for n in ("conv1d", "x_proj", "dt_proj"))
        A_log, D = getattr(self, "A_b_log" if sfx else "A_log"), getattr(self, "D" + sfx)
        cdt = u.dtype if u.is_cuda or u.dtype == torch.float64 else torch.float32
        with torch.autocast(u.device.type, enabled=False):
            u, z = u.to(cdt), z.to(cdt)
            bias = None if conv.bias is None else conv.bias.to(cdt)
            u = causal_conv1d(u, conv.weight[:, 0].to(cdt), bias, activation="silu")   # [b,d,L]
            dbc = F.linear(u.transpose(1, 2), x_proj.weight.to(cdt))               # [b,L,R+2N]
            dt, B, C = dbc.split([self.dt_rank, self.d_state, self.d_state], -1)
            delta = F.linear(dt, dt_proj.weight.to(cdt)).transpose(1, 2).contiguous()   # [b,d,L]
            sdt = torch.float64 if cdt == torch.float64 else torch.float32      # SSM parameters
            return selective_scan(u.contiguous(), delta, -torch.exp(A_log.to(sdt)),
                                  B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous(),
                                  D.to(sdt), z=z.contiguous(), delta_bias=dt_proj.bias.to(sdt),
                                  delta_softplus=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:                   # [b,L,C] -> [b,L,C]
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"Mamba(d_model={self.d_model}) expects [b,L,{self.d_model}], got {tuple(x.shape)}")
        u, z = self.in_proj(x).transpose(1, 2).chunk(2, dim=1)               # [b,d,L] each
        y = self._scan(u, z, "")
        if self.bidirectional:
            y = y + self._scan(u.flip(-1), z.flip(-1), "_b").flip(-1)
        y = y.transpose(1, 2)                                                 # [b,L,d]
        if not torch.is_autocast_enabled(y.device.type):
            y = y.to(self.out_proj.weight.dtype)
        return self.out_proj(y)


class MambaBlock(nn.Module):
    """VideoMamba's block: residual = residual + drop_path(hidden); hidden = mixer(norm(residual)).

    forward(hidden [b,L,C], residual [b,L,C] | None) -> (hidden, residual); the first block gets
    residual=None (the stream starts at its input). After the last block the caller finishes the
    stream itself: residual + drop_path(hidden), then its final norm."""

    def __init__(self, dim: int, *, norm: str = "rms", norm_eps: float = 1e-5, drop_path: float = 0.0,
                 residual_in_fp32: bool = True, d_state: int = 16, d_conv: int = 4, expand: float = 2,
                 dt_rank: int | str = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, bidirectional: bool = False):
        super().__init__()
        self.norm = make_norm(norm, dim, norm_eps)
        self.mixer = Mamba(dim, d_state=d_state, d_conv=d_conv, expand=expand, dt_rank=dt_rank,
                           dt_min=dt_min, dt_max=dt_max, dt_init_floor=dt_init_floor,
                           bidirectional=bidirectional)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.residual_in_fp32 = residual_in_fp32

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor | None = None):
        residual = hidden if residual is None else residual + self.drop_path(hidden)
        hidden = self.norm(residual.to(self.norm.weight.dtype))
        if self.residual_in_fp32:
            residual = residual.float()
        return self.mixer(hidden), residual


def make_norm(kind: str, dim: int, eps: float) -> nn.Module:
    if kind == "rms":
        return nn.RMSNorm(dim, eps=eps)                 # weight only, as mamba-ssm's RMSNorm
    if kind == "layer":
        return nn.LayerNorm(dim, eps=eps)
    raise ValueError(f"norm must be 'rms' or 'layer', got {kind!r}")
