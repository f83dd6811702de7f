"""GlobalSSM: one causal global-scan layer on frozen features (registered as `global_ssm`).

    X [B,T,C,h,w] ──flatten to T·h·w tokens (t-major)──▶ one selective scan per clip ──▶ Y [B,T,C,h,w]

Not a pure video SSM: that is the end-to-end VideoMamba baseline.
"""
from __future__ import annotations

from pks4_lit.models.pks4 import PKS4


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
