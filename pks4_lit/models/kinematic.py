"""KinematicPriorEncoder: motion cues between consecutive frames' feature maps → priors P.

    X [B,T,C,h,w] ──▶ P [B,T,prior_dim,h,w]

Only the PKS⁴ abstract is public ("kinematic priors from inter-frame feature correlations and
differences"); the components below are our design, each behind a switch:

  use_correlation:
    (a) local correlation volume of X_t against X_{t-1}: cosine similarity (L2-normalised
        channels) for every displacement d in a (2r+1)² window with the given dilation:
        M_t(p, d) = <x_t(p), x_{t-1}(p − d)>. Offsets whose source p − d lies outside the map are
        masked: they take no part in the soft-argmax (−inf before the softmax) and enter the
        fused cues as 0.
    (b) displacement (dx, dy) in feature cells — the motion from t-1 to t: content at p − d in
        X_{t-1} is at p in X_t — as a soft-argmax with a learnable temperature τ (kept positive
        through its log), measured against a static baseline:
            disp_t(p) = softargmax_d M_t(p, ·) − softargmax_e S_t(p, ·),
            S_t(p, e) = <x_t(p), x_t(p − e)>   (the frame's self-correlation, same window and mask).
        Why the baseline: a soft-argmax over a window is 0 for a static clip only if its weights
        are symmetric, and they are not: feature maps are self-similar, so neighbours correlate
        strongly and unevenly (and the window is cut at the borders): issue 10 measured the plain
        soft-argmax reading up to 0.32 cells (r=1) / 0.65 cells (r=3) on a still video. For a static
        clip M_t = S_t, so disp is exactly 0 at every cell, border cells included. For content
        translated by s (x_t(p) = x_{t-1}(p − s)) one has M_t(p, d) = S_t(p, d − s): the motion
        volume is the self-volume moved by s, so its soft-argmax is s plus the same self-
        similarity bias that the baseline subtracts (exact up to the window cutting off
        different tails of the two volumes). The confidence is the max probability of M.
    (c) motion boundaries: spatial gradient magnitude of the displacement field
        (central differences, replicated border); exactly 0 where disp is 0 everywhere.
  use_difference:
    (d) feature difference X_t − X_{t-1}, projected down to `diff_dim` channels by a 1×1 conv,
        plus its L2 magnitude (one scale-free channel).
All cues are concatenated per location and fused by a small per-location MLP
(Linear → GELU → Linear) to `prior_dim` channels.

First frame: X_{-1} := X_0, so frame 0 is a static pair like any repeated frame: its feature
difference, displacement and boundaries are exactly 0 by the same rule as every other frame (no
special case, so no fake motion onset at t=1); its volume and confidence are the self-comparison's.

Computation: S_t and D_t(p, d) = <x_t(p), (x_t − x_{t-1})(p − d)> (normalised maps), and
M_t = S_t − D_t. For a static pair D_t is exactly 0, so M_t equals S_t bit for bit and the two
soft-argmaxes cancel exactly (two separately computed volumes would differ in the last bits).
Both volumes come from one batched matmul of per-frame Gram matrices x_t · [x_t; x_t − x_{t-1}]ᵀ
over all h·w positions, from which the (2r+1)² window is gathered. That costs h·w instead of
(2r+1)² products per location, but it is one BLAS call instead of (2r+1)² strided passes, and it
won on every map measured (`pks4 bench correlation`: 6×6 to 14×14, r = 1 and 3, 1.8–127× faster
than shifted products, forward + backward, fp32 CPU). Maps with h·w > GRAM_MAX_POSITIONS (not
measured; the Gram grows as (h·w)²) use (2r+1)² shifted products over zero-padded maps.

Spatial reach: an output cell depends on inputs within radius·dilation cells of it (correlation),
plus one more cell through the boundary's central differences: radius·dilation + 1 in total.
Causal in time: P_t depends on X_t and X_{t-1} only.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

GRAM_MAX_POSITIONS = 196  # Gram when h·w ≤ this: measured faster on every map up to 14×14 (bench correlation)


class _FrameDifference(torch.autograd.Function):
    """v [B,T,...] → v_t − v_{t−1} with v_{−1} := v_0 (frame 0 exactly 0): one pass each way, where
    `v − cat([v_0, v_{:-1}])` costs a copy, a subtraction, and in the backward zero-filled slices."""

    @staticmethod
    def forward(ctx, v):
        out = torch.empty_like(v, memory_format=torch.contiguous_format)
        out[:, :1] = 0
        torch.sub(v[:, 1:], v[:, :-1], out=out[:, 1:])
        return out

    @staticmethod
    def backward(ctx, g):                       # ∂/∂v_s = g_s·[s ≥ 1] − g_{s+1}·[s ≤ T−2]
        gv = torch.empty_like(g, memory_format=torch.contiguous_format)
        torch.sub(g[:, 1:-1], g[:, 2:], out=gv[:, 1:-1])
        gv[:, -1:] = g[:, -1:]
        if g.shape[1] > 1:
            torch.neg(g[:, 1:2], out=gv[:, :1])
        else:
            gv[:, :1] = 0
        return gv


def frame_difference(v: torch.Tensor) -> torch.Tensor:
    """v [B,T,...] → [B,T,...]: v_t − v_{t−1}, frame 0 exactly 0 (differentiable)."""
    return _FrameDifference.apply(v)


class KinematicPriorEncoder(nn.Module):
    def __init__(self, dim: int, prior_dim: int = 64, radius: int = 3, dilation: int = 1,
                 use_correlation: bool = True, use_difference: bool = True, diff_dim: int = 8,
                 temperature: float = 0.1, learn_temperature: bool = True, use_boundaries: bool = True):
        super().__init__()
        if not (use_correlation or use_difference):
            raise ValueError("KinematicPriorEncoder needs use_correlation or use_difference; "
                             "with both off, use PKS4(use_priors=False) instead")
        if radius < 0 or dilation < 1:
            raise ValueError(f"need radius >= 0 and dilation >= 1, got radius={radius}, dilation={dilation}")
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.dim, self.prior_dim = dim, prior_dim
        self.radius, self.dilation = radius, dilation
        self.use_correlation, self.use_difference = use_correlation, use_difference
        self.use_boundaries = use_correlation and use_boundaries
        self._windows: dict = {}

        in_dim = 0
        if use_correlation:
            r = torch.arange(-radius, radius + 1, dtype=torch.float32) * dilation
            dy, dx = torch.meshgrid(r, r, indexing="ij")
            self.register_buffer("offsets", torch.stack([dx.flatten(), dy.flatten()], 1), persistent=False)  # [K,2]
            self.register_buffer("steps", r, persistent=False)               # [2r+1] offsets along x (and y)
            log_tau = torch.tensor(math.log(temperature))
            if learn_temperature:
                self.log_temperature = nn.Parameter(log_tau)
            else:
                self.register_buffer("log_temperature", log_tau)
            in_dim += (2 * radius + 1) ** 2 + 2 + 1 + int(self.use_boundaries)  # volume, (dx,dy), confidence, boundary
        if use_difference:
            self.diff_proj = nn.Conv2d(dim, diff_dim, kernel_size=1)
            in_dim += diff_dim + 1                               # projected difference, its magnitude
        self.in_dim = in_dim
        self.fuse = nn.Sequential(nn.Linear(in_dim, prior_dim), nn.GELU(), nn.Linear(prior_dim, prior_dim))

    # ------------------------------------------------------------------------------ correlation
    def window(self, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor]:
        """Source index and validity of every window offset: idx, valid [h·w,K]; idx[p,k] is the
        flat position of p − d_k (clamped into the map where invalid)."""
        key = (h, w, str(device))
        if key not in self._windows:
            ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
            off = self.offsets.to("cpu", torch.long)                                  # [K,2] (dx,dy)
            sy = ys.reshape(-1, 1) - off[:, 1]                                         # [hw,K]
            sx = xs.reshape(-1, 1) - off[:, 0]
            valid = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
            idx = sy.clamp(0, h - 1) * w + sx.clamp(0, w - 1)
            self._windows[key] = (idx.to(device), valid.to(device))
        return self._windows[key]

    def uses_gram(self, h: int, w: int) -> bool:
        """Whether volumes() on an h×w map is one Gram matmul (a FLOP counter sees it: 2·2·N·(hw)²·C
        forward) or (2r+1)² shifted products (pointwise work: 2·2·N·hw·(2r+1)²·C, not seen)."""
        return h * w <= GRAM_MAX_POSITIONS

    def volumes(self, cur: torch.Tensor, delta: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """cur, delta [N,h·w,C] → [2,N,h·w,K]: S(p,d) = <cur(p), cur(p − d)> and
        D(p,d) = <cur(p), delta(p − d)>; 0 at invalid offsets."""
        idx, valid = self.window(h, w, cur.device)
        N = cur.shape[0]
        if self.uses_gram(h, w):                         # one Gram per frame, window gathered from it
            G = torch.stack([torch.matmul(cur, cur.transpose(-1, -2)),
                             torch.matmul(cur, delta.transpose(-1, -2))])             # [2,N,hw,hw]
            vol = G.gather(3, idx.expand(2, N, -1, -1))                              # [2,N,hw,K]
        else:
            vol = self._shifted_products(cur, torch.stack([cur, delta]), h, w)
        return vol.masked_fill(~valid, 0.0)

    def _shifted_products(self, cur, keys, h, w):
        r, dil = self.radius, self.dilation
        pad = r * dil
        g = F.pad(keys.unflatten(2, (h, w)), (0, 0, pad, pad, pad, pad))              # [2,N,h+2p,w+2p,C]
        f = cur.unflatten(1, (h, w))                                                  # [N,h,w,C]
        vols = []
        for i in range(2 * r + 1):                                                   # dy = (i - r)·dil
            for j in range(2 * r + 1):                                               # dx = (j - r)·dil
                y0, x0 = (2 * r - i) * dil, (2 * r - j) * dil
                vols.append((f * g[:, :, y0:y0 + h, x0:x0 + w]).sum(-1))              # <f(p), g(p - d)>
        return torch.stack(vols, -1).flatten(2, 3)                                    # [2,N,hw,K]

    def soft_argmax(self, vol: torch.Tensor, valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """vol [...,hw,K] → displacement [...,hw,2] (dx,dy) and probabilities [...,hw,K]."""
        prob = torch.softmax((vol / self.log_temperature.exp()).masked_fill(~valid, float("-inf")), dim=-1)
        # the window is a (2r+1)² grid, offset k = (i,j) ↦ (dx,dy) = (steps[j], steps[i]): the expected
        # offset is the marginals' expectation. Row-wise sums only: equal rows give the same bits.
        grid = prob.unflatten(-1, (len(self.steps), len(self.steps)))           # [...,hw,2r+1,2r+1]
        dx = (grid.sum(-2) * self.steps).sum(-1)
        dy = (grid.sum(-1) * self.steps).sum(-1)
        return torch.stack([dx, dy], -1), prob

    @staticmethod
    def boundaries(disp: torch.Tensor) -> torch.Tensor:
        """disp [N,2,h,w] → |∇disp| [N,1,h,w] (central differences, replicated border)."""
        p = F.pad(disp, (1, 1, 1, 1), mode="replicate")
        gx = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2
        gy = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2
        return torch.linalg.vector_norm(torch.cat([gx, gy], 1), dim=1, keepdim=True)  # grad 0 at 0

    # ------------------------------------------------------------------------------ forward
    def forward(self, X: torch.Tensor, return_internals: bool = False):
        if X.dim() != 5 or X.shape[2] != self.dim:
            raise ValueError(f"KinematicPriorEncoder(dim={self.dim}) expects [B,T,{self.dim},h,w], got {tuple(X.shape)}")
        B, T, C, h, w = X.shape
        N, hw = B * T, h * w
        x = X.permute(0, 1, 3, 4, 2).reshape(B, T, hw, C)                       # [B,T,hw,C] (a view if channel-last)
        cues, internals = [], {}
        if self.use_correlation:
            _, valid = self.window(h, w, X.device)
            xn = F.normalize(x, dim=-1)
            cur = xn.reshape(N, hw, C)
            # M = S − D with D built on the difference of the normalised frames: a static pair has
            # D == 0 exactly, hence M == S bit for bit and a displacement of exactly 0
            S, D = self.volumes(cur, frame_difference(xn).reshape(N, hw, C), h, w)  # [N,hw,K] each
            M = S - D                                                           # <x_t(p), x_{t-1}(p−d)>
            disp_ms, probs = self.soft_argmax(torch.stack([M, S]), valid)       # both in one pass
            disp, prob = disp_ms[0] - disp_ms[1], probs[0]                      # [N,hw,2]: 0 when static
            conf = prob.amax(-1, keepdim=True)                                  # [N,hw,1]
            cues += [M, disp, conf]
            internals.update(correlation=M, displacement=disp, confidence=conf)
            if self.use_boundaries:
                bnd = self.boundaries(disp.transpose(1, 2).unflatten(2, (h, w)))  # [N,1,h,w]
                bnd = bnd.flatten(2).transpose(1, 2)                              # [N,hw,1]
                cues.append(bnd)
                internals.update(boundaries=bnd)
        if self.use_difference:
            diff = frame_difference(x).reshape(N, hw, C)                       # [N,hw,C], exactly 0 at t=0
            mag = torch.linalg.vector_norm(diff, dim=-1, keepdim=True)
            cues += [F.linear(diff, self.diff_proj.weight.flatten(1), self.diff_proj.bias), mag]
            internals.update(difference_magnitude=mag)
        P = self.fuse(torch.cat(cues, -1))                                      # [N,hw,prior_dim]
        P = P.unflatten(0, (B, T)).unflatten(2, (h, w)).permute(0, 1, 4, 2, 3)  # [B,T,prior_dim,h,w]
        if not return_internals:
            return P
        return P, {k: v.unflatten(0, (B, T)).unflatten(2, (h, w)).permute(0, 1, 4, 2, 3)
                   for k, v in internals.items()}                               # each [B,T,·,h,w]
