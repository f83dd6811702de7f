"""KinematicPriorEncoder: motion cues between consecutive frames' feature maps → priors P.

    X [B,T,C,h,w] ──▶ P [B,T,prior_dim,h,w]

Only the PKS⁴ abstract is public ("kinematic priors from inter-frame feature correlations and
differences"); the components below are our design, each behind a switch:

  use_correlation:
    (a) local correlation volume of X_t against X_{t-1}: cosine similarity (L2-normalised
        channels) for every displacement d in a (2r+1)² window with the given dilation, zero
        padding at the borders (a neighbour outside the map correlates 0). Computed with shifted
        products over a padded map, as in FlowNet/PWC-Net cost volumes, without custom kernels.
    (b) soft-argmax displacement (dx, dy) in feature cells — the motion from t-1 to t: content at
        p − d in X_{t-1} is at p in X_t — from softmax(corr / τ) with a learnable
        temperature τ (kept positive through its log), and its confidence = max probability.
    (c) motion boundaries: spatial gradient magnitude of the displacement field
        (central differences, replicated border).
  use_difference:
    (d) feature difference X_t − X_{t-1}, projected down to `diff_dim` channels by a 1×1 conv,
        plus its L2 magnitude (one scale-free channel).
All cues are concatenated per location and fused by a small per-location MLP
(Linear → GELU → Linear) to `prior_dim` channels.

First frame: X_{-1} := X_0. The first frame is compared with itself, so its feature difference is
exactly 0; its displacement is set to exactly 0 (the soft-argmax of a self-correlation is only
near 0, because of zero padding and self-similar neighbours) and therefore so are its motion
boundaries. Its correlation volume and confidence are those of the self-comparison.

Spatial reach: an output cell depends on inputs within radius·dilation cells of it (correlation),
plus one more cell through the boundary's central differences: radius·dilation + 1 in total.
Causal in time: P_t depends on X_t and X_{t-1} only.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class KinematicPriorEncoder(nn.Module):
    def __init__(self, dim: int, prior_dim: int = 64, radius: int = 3, dilation: int = 1,
                 use_correlation: bool = True, use_difference: bool = True, diff_dim: int = 8,
                 temperature: float = 0.1, learn_temperature: bool = True):
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

        in_dim = 0
        if use_correlation:
            r = torch.arange(-radius, radius + 1, dtype=torch.float32) * dilation
            dy, dx = torch.meshgrid(r, r, indexing="ij")
            self.register_buffer("offsets", torch.stack([dx.flatten(), dy.flatten()], 1), persistent=False)  # [K,2]
            log_tau = torch.tensor(math.log(temperature))
            if learn_temperature:
                self.log_temperature = nn.Parameter(log_tau)
            else:
                self.register_buffer("log_temperature", log_tau)
            in_dim += (2 * radius + 1) ** 2 + 2 + 1 + 1          # volume, (dx,dy), confidence, boundary
        if use_difference:
            self.diff_proj = nn.Conv2d(dim, diff_dim, kernel_size=1)
            in_dim += diff_dim + 1                               # projected difference, its magnitude
        self.in_dim = in_dim
        self.fuse = nn.Sequential(nn.Linear(in_dim, prior_dim), nn.GELU(), nn.Linear(prior_dim, prior_dim))

    def correlation(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """f, g [N,C,h,w] (L2-normalised) → [N,K,h,w]: corr[k](p) = <f(p), g(p − d_k)>, so a peak
        at d_k means the content moved by d_k from g (frame t-1) to f (frame t)."""
        r, dil = self.radius, self.dilation
        h, w = f.shape[-2:]
        pad = r * dil
        g = F.pad(g, (pad, pad, pad, pad))                                       # zeros outside
        vols = []
        for i in range(2 * r + 1):                                               # dy = (i - r)·dil
            for j in range(2 * r + 1):                                           # dx = (j - r)·dil
                y0, x0 = (2 * r - i) * dil, (2 * r - j) * dil
                vols.append((f * g[..., y0:y0 + h, x0:x0 + w]).sum(1))           # <f(p), g(p - d)>
        return torch.stack(vols, 1)

    @staticmethod
    def boundaries(disp: torch.Tensor) -> torch.Tensor:
        """disp [N,2,h,w] → |∇disp| [N,1,h,w] (central differences, replicated border)."""
        p = F.pad(disp, (1, 1, 1, 1), mode="replicate")
        gx = (p[..., 1:-1, 2:] - p[..., 1:-1, :-2]) / 2
        gy = (p[..., 2:, 1:-1] - p[..., :-2, 1:-1]) / 2
        return torch.linalg.vector_norm(torch.cat([gx, gy], 1), dim=1, keepdim=True)  # grad 0 at 0

    def forward(self, X: torch.Tensor, return_internals: bool = False):
        if X.dim() != 5 or X.shape[2] != self.dim:
            raise ValueError(f"KinematicPriorEncoder(dim={self.dim}) expects [B,T,{self.dim},h,w], got {tuple(X.shape)}")
        B, T, C, h, w = X.shape
        prev = torch.cat([X[:, :1], X[:, :-1]], 1)                              # X_{t-1}, X_{-1} := X_0
        cur, prev = X.flatten(0, 1), prev.flatten(0, 1)                         # [B*T,C,h,w]
        cues, internals = [], {}
        if self.use_correlation:
            corr = self.correlation(F.normalize(cur, dim=1), F.normalize(prev, dim=1))  # [BT,K,h,w]
            prob = torch.softmax(corr / self.log_temperature.exp(), dim=1)
            disp = torch.einsum("nkhw,kc->nchw", prob, self.offsets)             # [BT,2,h,w] (dx,dy)
            not_first = (torch.arange(T, device=X.device) > 0).to(disp.dtype)
            disp = disp * not_first.repeat(B)[:, None, None, None]              # first frame: 0 motion
            conf = prob.amax(1, keepdim=True)                                   # [BT,1,h,w]
            bnd = self.boundaries(disp)                                         # [BT,1,h,w]
            cues += [corr, disp, conf, bnd]
            internals.update(correlation=corr, displacement=disp, confidence=conf, boundaries=bnd)
        if self.use_difference:
            diff = cur - prev                                                   # exactly 0 at t=0
            mag = torch.linalg.vector_norm(diff, dim=1, keepdim=True)
            cues += [self.diff_proj(diff), mag]
            internals.update(difference_magnitude=mag)
        cues = torch.cat(cues, 1).permute(0, 2, 3, 1)                           # [BT,h,w,in_dim]
        P = self.fuse(cues).permute(0, 3, 1, 2)                                 # [BT,prior_dim,h,w]
        P = P.unflatten(0, (B, T))                                              # [B,T,prior_dim,h,w]
        if not return_internals:
            return P
        return P, {k: v.unflatten(0, (B, T)) for k, v in internals.items()}
