"""Selective scan (Mamba's S6 recurrence) with mamba-ssm's `selective_scan_fn` contract.

    x_t = exp(Δ_t A) x_{t-1} + Δ_t B_t u_t        y_t = C_t x_t + D u_t        out = y * silu(z)

TEMPORARY: a plain sequential implementation so that the rest of the package can be written
against the final signature. To be replaced by the fast fallback + fused-kernel dispatch.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _expand_bc(X: torch.Tensor, dim: int) -> tuple[torch.Tensor, str]:
    """Return B or C in one of two canonical forms: constant `[d,N]` or variable `[b,d,N,L]`."""
    if X.dim() == 2:                       # [d,N] constant
        return X, "const"
    if X.dim() == 3:                       # [b,N,L] shared by all channels
        return X.unsqueeze(1), "var"       # [b,1,N,L] broadcasts over d
    b, G, N, L = X.shape                   # [b,G,N,L], channel d uses group d // (dim // G)
    if dim % G:
        raise ValueError(f"groups G={G} must divide dim={dim}")
    return X.repeat_interleave(dim // G, dim=1), "var"


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                       delta_softplus=False, return_last_state=False):
    """Sequential reference in float64-or-float32 (computes in the promoted float dtype of
    its inputs, at least float32). u, delta, z: [b,d,L]; A: [d,N]; B, C: [d,N] | [b,N,L] |
    [b,G,N,L]; D, delta_bias: [d]. Returns out [b,d,L] in u's dtype (and last state [b,d,N])."""
    dtype_in = u.dtype
    work = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta = u.to(work), delta.to(work)
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, L = u.shape
    A = A.to(work)
    B, b_kind = _expand_bc(B.to(work), d)
    C, c_kind = _expand_bc(C.to(work), d)
    x = u.new_zeros(b, d, A.shape[1])
    ys = []
    for t in range(L):
        dt = delta[:, :, t, None]                                        # [b,d,1]
        Bt = B if b_kind == "const" else B[..., t]                       # [d,N] | [b,d|1,N]
        Ct = C if c_kind == "const" else C[..., t]
        x = torch.exp(dt * A) * x + dt * Bt * u[:, :, t, None]           # [b,d,N]
        ys.append((x * Ct).sum(-1))                                      # [b,d]
    out = torch.stack(ys, dim=-1)                                        # [b,d,L]
    if D is not None:
        out = out + u * D.to(work)[:, None]
    if z is not None:
        out = out * F.silu(z.to(work))
    out = out.to(dtype_in)
    return (out, x.float()) if return_last_state else out


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=False, return_last_state=False):
    return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
