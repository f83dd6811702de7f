"""PKS⁴: Parallel Kinematic Selective State Space Scanners (arXiv 2604.26461), one temporal block.

    X [B,T,C,h,w] ──LayerNorm──▶ in_proj ──▶ u, z                    (per location, d_inner = expand·C)
    u ──causal depthwise conv over T──▶ SiLU ──▶ u'                    (d_conv=0: SiLU only)
    Δ, B, C = f([P, u'])   P = KinematicPriorEncoder(LN(X))           (use_priors=False: f(u') only)
    y = selective_scan(u', Δ, A, B, C, D, z)  with B·h·w independent sequences of length T
    Y = X + out_proj(y)

Only the abstract of the paper is public. From it: a 2D backbone's feature maps, one selective
SSM scanning along time independently ("parallel scanners") at every spatial location, with Δ and
B/C driven by kinematic priors from inter-frame correlations and differences; linear in T.
Everything else is our choice, mostly taken from Mamba (Gu & Dao 2023, mamba_simple.py):
  * pre-LayerNorm and residual; in_proj to (u, z), gate y·SiLU(z), out_proj back to C;
  * causal depthwise conv over time (d_conv taps) before the scan, as Mamba does;
  * the priors are computed from the LayerNormed X and *concatenated* to u' before x_proj, so they
    modulate Δ (through its low-rank projection), B and C together; u itself is not changed;
  * Δ: low-rank (dt_rank = ceil(C/16) by default) projection, dt bias initialised so that
    softplus(bias) is log-uniform in [dt_min, dt_max] (inverse softplus), applied inside the scan
    (delta_bias, delta_softplus=True); A = −exp(A_log) with S4D-real init A_n = −n; D skip = 1;
  * SSM parameters (A_log, D, dt bias) stay fp32; on CPU the scan inputs are computed in fp32
    with autocast off; on CUDA Δ/B/C/z follow u's dtype (the fused kernel's contract);
  * bidirectional=True: a second scanner runs on the time-reversed sequence with its OWN conv,
    x_proj, dt_proj, A_log and D (as Vision Mamba's bidirectional block does), sharing LayerNorm,
    in_proj, z, out_proj and the priors (time-reversed: P_t still describes motion t−1 → t);
    the two outputs are summed before out_proj;
  * use_priors=True with both use_correlation and use_difference off is the same as
    use_priors=False (no encoder): that is the `ssm` baseline head.
Cost: every part is per frame or per frame pair, and the scan is linear in T; nothing is
quadratic in T. Spatially, the block is per location except the prior encoder's correlation
window (reach radius·dilation + 1 cells, see kinematic.py).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from pks4_lit.models.kinematic import KinematicPriorEncoder
from pks4_lit.ops import causal_conv1d, causal_conv1d_update, selective_scan, selective_state_update


class _Scanner(nn.Module):
    """One scan direction: conv → SiLU → (Δ,B,C) from [u', priors] → selective scan."""

    def __init__(self, d_inner, d_state, d_conv, prior_dim, dt_rank, dt_min, dt_max, dt_init_floor):
        super().__init__()
        self.d_inner, self.d_state, self.dt_rank = d_inner, d_state, dt_rank
        self.conv1d = nn.Conv1d(d_inner, d_inner, d_conv, groups=d_inner) if d_conv > 0 else None
        self.x_proj = nn.Linear(d_inner + prior_dim, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)

        nn.init.uniform_(self.dt_proj.weight, -dt_rank ** -0.5, dt_rank ** -0.5)
        dt = torch.exp(torch.rand(d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))        # softplus⁻¹(dt)
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)  # S4D-real
        self.A_log = nn.Parameter(torch.log(A))                                 # [d_inner,N]
        self.D = nn.Parameter(torch.ones(d_inner))                              # [d_inner]

    def no_weight_decay(self) -> set[str]:
        """The SSM's own parameters (A, D, Δ's bias) are not weight-decayed, as in Mamba."""
        return {"A_log", "D", "dt_proj.bias"}

    def forward(self, u, z, p):     # u, z [b,d,L] (any strides); p [b,L,Cp] | None → y, Δ pre-bias [b,d,L]
        # compute dtype: fp32 on CPU, also under autocast (fp64 kept, for gradcheck); on CUDA u's
        # dtype, as the fused kernels expect. Autocast is off in here and every cast is explicit;
        # A_log, D and the dt bias are passed as fp32.
        # Layouts: Δ is computed channel-last ([b,L,d] memory, seen as [b,d,L]) and z stays a view of
        # in_proj's output, so neither is transposed in memory; on CPU the scan reads them strided
        # and writes y channel-last, which out_proj reads as it is.
        cdt = u.dtype if u.is_cuda or u.dtype == torch.float64 else torch.float32
        with torch.autocast(u.device.type, enabled=False):
            u, z = u.to(cdt), z.to(cdt)
            if self.conv1d is not None:
                bias = self.conv1d.bias.to(cdt)
                u = causal_conv1d(u if not u.is_cuda else u.contiguous(), self.conv1d.weight.squeeze(1).to(cdt),
                                  bias, activation="silu")              # CPU: reads the strided view
            else:
                u = F.silu(u)
            # x_proj([u', p]) without concatenating: W_u·u' (batched over b) + p·W_pᵀ
            W = self.x_proj.weight.to(cdt)                                      # [R+2N, d+Cp]
            dbc = torch.matmul(W[:, :self.d_inner], u).transpose(1, 2)          # [b,L,R+2N]
            if p is not None:
                dbc = dbc + F.linear(p.to(cdt), W[:, self.d_inner:])
            dt, Bm, Cm = dbc.split([self.dt_rank, self.d_state, self.d_state], -1)
            delta = F.linear(dt, self.dt_proj.weight.to(cdt)).transpose(1, 2)   # [b,d,L] channel-last
            y = selective_scan(u, delta, -torch.exp(self.A_log.float()), Bm.transpose(1, 2),
                               Cm.transpose(1, 2), self.D.float(), z=z,
                               delta_bias=self.dt_proj.bias.float(), delta_softplus=True)
        return y, delta


class PKS4(nn.Module):
    """The PKS⁴ temporal head: `forward(X [B,T,C,h,w]) -> Y [B,T,C,h,w]`;
    `forward_with_internals(X) -> (Y, dict)` also returns the priors and Δ (for figures)."""

    def __init__(self, dim: int, d_state: int = 16, expand: int = 1, d_conv: int = 4,
                 prior_dim: int = 64, radius: int = 3, dilation: int = 1,
                 use_correlation: bool = True, use_difference: bool = True,
                 use_priors: bool = True, bidirectional: bool = False,
                 dt_rank: int | Literal["auto"] = "auto", dt_min: float = 0.001, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, diff_dim: int = 8, temperature: float = 0.1,
                 learn_temperature: bool = True, use_boundaries: bool = True,
                 recompute_priors: bool = True):
        """
        Args:
            dim: channels C of the backbone features (given by the classifier).
            d_state: SSM state size N.
            expand: d_inner = expand·C.
            d_conv: taps of the causal depthwise conv over time before the scan (0: none).
            prior_dim: channels of the kinematic priors P.
            radius: correlation window radius in feature cells.
            dilation: correlation window dilation.
            use_correlation: priors from the local correlation volume (+ displacement, boundaries).
            use_difference: priors from the feature difference X_t − X_{t−1}.
            use_priors: False gives Δ/B/C from the input only (the `ssm` baseline).
            bidirectional: add a second scanner over reversed time (no longer causal).
            dt_rank: rank of Δ's projection ("auto": ceil(C/16)).
            dt_min: smallest initial Δ.
            dt_max: largest initial Δ.
            dt_init_floor: floor of the initial Δ.
            diff_dim: channels of the projected feature difference.
            temperature: initial soft-argmax temperature of the correlation.
            learn_temperature: learn that temperature.
            use_boundaries: feed the motion-boundary map |∇displacement| to the priors (needs use_correlation).
            recompute_priors: training keeps only the priors' input and recomputes them in the backward
                (same values and gradients; less memory, a few % more time).
        """
        super().__init__()
        if dim < 1 or d_state < 1 or expand < 1 or d_conv < 0:
            raise ValueError(f"need dim, d_state, expand >= 1 and d_conv >= 0; got dim={dim}, "
                             f"d_state={d_state}, expand={expand}, d_conv={d_conv}")
        if not 0 < dt_min <= dt_max:
            raise ValueError(f"need 0 < dt_min <= dt_max, got {dt_min}, {dt_max}")
        self.dim, self.d_inner, self.d_state = dim, expand * dim, d_state
        self.dt_rank = math.ceil(dim / 16) if dt_rank == "auto" else int(dt_rank)
        self.use_priors = use_priors and (use_correlation or use_difference)
        self.bidirectional = bidirectional
        self.recompute_priors = recompute_priors

        self.norm = nn.LayerNorm(dim)
        self.priors = KinematicPriorEncoder(
            dim, prior_dim, radius, dilation, use_correlation, use_difference, diff_dim,
            temperature, learn_temperature, use_boundaries) if self.use_priors else None
        self.in_proj = nn.Linear(dim, 2 * self.d_inner)
        p_dim = prior_dim if self.use_priors else 0
        self.scanners = nn.ModuleList(
            _Scanner(self.d_inner, d_state, d_conv, p_dim, self.dt_rank, dt_min, dt_max, dt_init_floor)
            for _ in range(2 if bidirectional else 1))
        self.out_proj = nn.Linear(self.d_inner, dim)

    def mix_with_deltas(self, xn, p=None):
        """The sequence mixer on already-normalised sequences: xn [b,L,C], p [b,L,Cp] | None →
        (out_proj(y) [b,L,C], per-direction Δ before bias and softplus, each [b,d_inner,L])."""
        u, z = (t.transpose(1, 2) for t in self.in_proj(xn).split(self.d_inner, -1))  # [b,d,L] views
        y, delta = self.scanners[0](u, z, p)                                    # [b,d,L]
        deltas = [delta]
        if self.bidirectional:                                                  # reversed time
            yb, delta_b = self.scanners[1](u.flip(-1), z.flip(-1), None if p is None else p.flip(1))
            y = y + yb.flip(-1)
            deltas.append(delta_b.flip(-1))
        y = y.transpose(1, 2)                                                   # [b,L,d]
        if not torch.is_autocast_enabled(y.device.type):
            y = y.to(self.out_proj.weight.dtype)
        return self.out_proj(y), deltas                                         # [b,L,C]

    def mix(self, xn, p=None):
        """`mix_with_deltas` without the Δs: xn [b,L,C], p [b,L,Cp] | None → [b,L,C]."""
        return self.mix_with_deltas(xn, p)[0]

    def _check(self, X):
        if X.dim() != 5 or X.shape[2] != self.dim:
            raise ValueError(f"PKS4(dim={self.dim}) expects [B,T,{self.dim},h,w], got {tuple(X.shape)}")

    def _sequences(self, X):            # X [B,T,C,h,w] → LN(X) [B,T,h,w,C], its sequences [B·h·w,T,C]
        B, T, C, h, w = X.shape
        xn = self.norm(X.permute(0, 1, 3, 4, 2))                                # [B,T,h,w,C]
        return xn, xn.permute(0, 2, 3, 1, 4).reshape(B * h * w, T, C)

    def _to_grid(self, seq, X):         # [B·h·w,T,C'] → [B,T,C',h,w]
        B, T, _, h, w = X.shape
        return seq.reshape(B, h, w, T, -1).permute(0, 3, 4, 1, 2)

    def forward(self, X: torch.Tensor) -> torch.Tensor:                        # [B,T,C,h,w] → same
        self._check(X)
        xn, seq = self._sequences(X)
        p = None
        if self.use_priors:
            P = self._priors(xn.permute(0, 1, 4, 2, 3))                         # [B,T,Cp,h,w]
            p = P.permute(0, 3, 4, 1, 2).flatten(0, 2)                          # [B·h·w,T,Cp]
        return X + self._to_grid(self.mix(seq, p), X).to(X.dtype)

    def _priors(self, xn):              # [B,T,C,h,w] → P [B,T,Cp,h,w]
        # The correlation volume, its Gram buffers and the prior MLP's activations are ~55 % of the
        # head's saved-for-backward bytes but a few % of its FLOPs: when training, keep only their input
        # and recompute them in the backward (as mamba's fused kernel does for the scan's states).
        if self.recompute_priors and torch.is_grad_enabled() and (
                xn.requires_grad or any(q.requires_grad for q in self.priors.parameters())):
            return checkpoint(self.priors, xn, use_reentrant=False)
        return self.priors(xn)

    def forward_with_internals(self, X: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """→ (Y, dict(priors=P [B,T,Cp,h,w] | None, delta=Δ [B,T,d_inner,h,w] after bias and
        softplus, delta_backward (bidirectional), and the prior encoder's own internals))."""
        self._check(X)
        xn, seq = self._sequences(X)
        P, p, kin = None, None, {}
        if self.use_priors:
            P, kin = self.priors(xn.permute(0, 1, 4, 2, 3), return_internals=True)  # [B,T,Cp,h,w]
            p = P.permute(0, 3, 4, 1, 2).flatten(0, 2)                          # [B·h·w,T,Cp]
        out, deltas = self.mix_with_deltas(seq, p)
        Y = X + self._to_grid(out, X).to(X.dtype)
        deltas = [F.softplus(d.float() + s.dt_proj.bias.float()[:, None]).transpose(1, 2)  # [B·h·w,T,d]
                  for d, s in zip(deltas, self.scanners)]
        internals = dict(priors=P, delta=self._to_grid(deltas[0], X), **kin)
        if self.bidirectional:
            internals["delta_backward"] = self._to_grid(deltas[1], X)
        return Y, internals

    # ---- streaming: one frame in, one frame out (Mamba's allocate_inference_cache / step) --------
    def check_streamable(self) -> None:
        """Raise NotImplementedError (saying why) if `step` cannot reproduce this module's forward."""
        if self.bidirectional:
            raise NotImplementedError(f"{type(self).__name__}(bidirectional=True) cannot stream: its "
                                      "backward scanner reads frames that have not arrived yet")
        if type(self).forward is not PKS4.forward:
            raise NotImplementedError(f"{type(self).__name__} replaces PKS4.forward (it scans other "
                                      "sequences than one per location), so PKS4.step does not apply")

    def allocate_state(self, batch: int, h: int, w: int, device=None, dtype=torch.float32) -> "PKS4State":
        """Zero state for `step` on frames [batch,dim,h,w]; one scanner per location, b = batch·h·w:
        conv [b,d_inner,max(d_conv−1,1)] (the last inputs of the causal conv, oldest first; width 1
        keeps one unused), ssm [b,d_inner,N] in fp32, prev = the previous frame's normalised
        features for the priors (None before the first frame). Dtypes follow forward: the conv
        state in the scan's compute dtype (fp32 on CPU unless float64, `dtype` on CUDA)."""
        self.check_streamable()
        device = torch.device(device if device is not None else self.in_proj.weight.device)
        cdt = dtype if device.type == "cuda" or dtype == torch.float64 else torch.float32
        sdt = torch.float64 if cdt == torch.float64 else torch.float32
        b, scanner = batch * h * w, self.scanners[0]
        width = scanner.conv1d.kernel_size[0] if scanner.conv1d is not None else 0
        conv = torch.zeros(b, self.d_inner, max(width - 1, 1), device=device, dtype=cdt) if width else None
        ssm = torch.zeros(b, self.d_inner, self.d_state, device=device, dtype=sdt)
        return PKS4State(conv=conv, ssm=ssm, prev=None, shape=(batch, h, w))

    def step(self, x: torch.Tensor, state: "PKS4State"):
        """x [B,C,h,w], the next frame's features → (y [B,C,h,w], state updated in place). After
        frames 0..t, y equals forward(X[:, :t+1])[:, t] (the head is causal in time)."""
        if x.dim() != 4 or x.shape[1] != self.dim:
            raise ValueError(f"PKS4(dim={self.dim}).step expects [B,{self.dim},h,w], got {tuple(x.shape)}")
        B, C, h, w = x.shape
        if (B, h, w) != state.shape:
            raise ValueError(f"PKS4.step: frame {tuple(x.shape)} does not match the state's [B,h,w]={state.shape}")
        xn = self.norm(x.permute(0, 2, 3, 1))                                   # [B,h,w,C]
        p = None
        if self.use_priors:
            cur = xn.permute(0, 3, 1, 2)                                        # [B,C,h,w]
            # the encoder's own forward on (X_{t-1}, X_t), or on X_0 alone for the first frame
            pair = cur[:, None] if state.prev is None else torch.stack([state.prev, cur], 1)
            P = self.priors(pair)[:, -1]                                        # [B,Cp,h,w]
            p = P.permute(0, 2, 3, 1).reshape(B * h * w, -1)                    # [b,Cp]
            state.prev = cur
        u, z = self.in_proj(xn.reshape(B * h * w, C)).chunk(2, -1)              # [b,d] each
        s = self.scanners[0]
        cdt = state.ssm.dtype if not x.is_cuda else (state.conv.dtype if state.conv is not None else x.dtype)
        with torch.autocast(x.device.type, enabled=False):                     # as _Scanner.forward
            u, z = u.to(cdt), z.to(cdt)
            if s.conv1d is not None:
                u = causal_conv1d_update(u, state.conv, s.conv1d.weight.squeeze(1).to(cdt),
                                         s.conv1d.bias.to(cdt), activation="silu")
            else:
                u = F.silu(u)
            feats = u if p is None else torch.cat([u, p.to(cdt)], -1)           # [b,d+Cp]
            dbc = F.linear(feats, s.x_proj.weight.to(cdt))                      # [b,R+2N]
            dt, Bm, Cm = dbc.split([self.dt_rank, self.d_state, self.d_state], -1)
            delta = F.linear(dt, s.dt_proj.weight.to(cdt))                      # [b,d]
            y = selective_state_update(state.ssm, u, delta, -torch.exp(s.A_log.float()), Bm, Cm,
                                       s.D.float(), z=z, dt_bias=s.dt_proj.bias.float(), dt_softplus=True)
        if not torch.is_autocast_enabled(y.device.type):
            y = y.to(self.out_proj.weight.dtype)
        out = self.out_proj(y)                                                  # [b,C]
        return x + out.reshape(B, h, w, C).permute(0, 3, 1, 2).to(x.dtype), state


class SSM(PKS4):
    """PKS⁴'s scanners without kinematic priors: Δ, B, C from the input only (the `ssm` head)."""

    def __init__(self, dim: int, d_state: int = 16, expand: int = 1, d_conv: int = 4,
                 bidirectional: bool = False, dt_rank: int | Literal["auto"] = "auto",
                 dt_min: float = 0.001, dt_max: float = 0.1, dt_init_floor: float = 1e-4):
        """Args: as PKS4's (the prior arguments do not exist here)."""
        super().__init__(dim, d_state=d_state, expand=expand, d_conv=d_conv, use_priors=False,
                         bidirectional=bidirectional, dt_rank=dt_rank, dt_min=dt_min, dt_max=dt_max,
                         dt_init_floor=dt_init_floor)


@dataclass
class PKS4State:
    """What `PKS4.step` carries from one frame to the next (see `PKS4.allocate_state`)."""
    conv: torch.Tensor | None           # [B·h·w, d_inner, max(d_conv−1,1)]; None when d_conv = 0
    ssm: torch.Tensor                   # [B·h·w, d_inner, N]
    prev: torch.Tensor | None           # [B,C,h,w] previous frame after LayerNorm (priors only)
    shape: tuple[int, int, int]         # (B, h, w)
