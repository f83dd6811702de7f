"""One step of the selective scan for streaming, with mamba-ssm's `selective_state_update` contract
(mamba_ssm/ops/triton/selective_state_update.py):

    Δ = softplus(dt + dt_bias)    state ← exp(Δ A) ⊙ state + Δ B x    out = (C·state + D x) ⊙ silu(z)

Shapes, without heads: state `[b,d,N]` (updated in place), x, dt, z `[b,d]`, A `[d,N]`, B, C `[b,N]`,
D, dt_bias `[d]`. With heads: state `[b,h,d,N]`, x, dt, z `[b,h,d]`, A `[h,d,N]`, B, C `[b,G,N]`
(G groups, head i reads group i // (h // G)), D, dt_bias `[h,d]`. Returns out like x, in x's dtype.
The same recurrence as `selective_scan`: one update per step reproduces the scan step for step.

Dispatch (`PKS4_SCAN_IMPL`, as selective_scan): mamba-ssm's Triton kernel for CUDA tensors when it
imports and x is fp32/fp16/bf16 (its launch grid puts batch and heads on grid axes y and z, capped
at 65535); otherwise PyTorch (in fp32, float64 when the state is float64; "ref" means the same).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pks4_lit.ops.dispatch import choose_backend, optional_attr
from pks4_lit.ops.selective_scan import SCAN_IMPLS

_TRITON = ("mamba_ssm.ops.triton.selective_state_update", "selective_state_update")
_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _with_heads(state, x, dt, A, B, C, D, z, dt_bias):
    """Everything in the heads form: state [b,h,d,N], x/dt/z [b,h,d], A [h,d,N], B/C [b,G,N],
    D/dt_bias [h,d]; raises ValueError on inconsistent shapes."""
    if state.dim() not in (3, 4):
        raise ValueError(f"state must be [batch, dim, N] or [batch, heads, dim, N], got {tuple(state.shape)}")
    if state.dim() == 3:                                                   # one head
        up = lambda t, n, at: t if t is None or t.dim() != n else t.unsqueeze(at)   # noqa: E731
        state, x, dt, z, B, C = state.unsqueeze(1), up(x, 2, 1), up(dt, 2, 1), up(z, 2, 1), \
            up(B, 2, 1), up(C, 2, 1)
        A, D, dt_bias = up(A, 2, 0), up(D, 1, 0), up(dt_bias, 1, 0)
    b, h, d, N = state.shape
    expect = dict(x=(x, (b, h, d)), dt=(dt, (b, h, d)), z=(z, (b, h, d)), A=(A, (h, d, N)),
                  D=(D, (h, d)), dt_bias=(dt_bias, (h, d)))
    for name, (t, shape) in expect.items():
        if t is not None and tuple(t.shape) != shape:
            raise ValueError(f"{name} must be {shape} for state {tuple(state.shape)}, got {tuple(t.shape)}")
    for name, t in (("B", B), ("C", C)):
        if t.dim() != 3 or t.shape[0] != b or t.shape[2] != N or t.shape[1] < 1 or h % t.shape[1]:
            raise ValueError(f"{name} must be [batch, N]=({b}, {N}) or [batch, G, N] with G dividing "
                             f"heads={h}, got {tuple(t.shape)}")
    if B.shape != C.shape:
        raise ValueError(f"B and C must have one shape, got {tuple(B.shape)} and {tuple(C.shape)}")
    return state, x, dt, A, B, C, D, z, dt_bias


def selective_state_update_torch(state, x, dt, A, B, C, D=None, z=None, dt_bias=None,
                                 dt_softplus=False):
    """The PyTorch update (see module doc); computes in fp32, or float64 for a float64 state."""
    heads = state.dim() == 4
    s, x_, dt_, A_, B_, C_, D_, z_, bias = _with_heads(state, x, dt, A, B, C, D, z, dt_bias)
    work = torch.float64 if state.dtype == torch.float64 else torch.float32
    delta = dt_.to(work) + (0 if bias is None else bias.to(work))
    if dt_softplus:
        delta = F.softplus(delta)                                          # threshold 20, as mamba
    rep = s.shape[1] // B_.shape[1]
    Bh = B_.to(work).repeat_interleave(rep, 1).unsqueeze(2)                # [b,h,1,N]
    Ch = C_.to(work).repeat_interleave(rep, 1).unsqueeze(2)
    xw = x_.to(work)
    new = s.to(work) * torch.exp(delta.unsqueeze(-1) * A_.to(work)) + (delta * xw).unsqueeze(-1) * Bh
    s.copy_(new)
    out = (new * Ch).sum(-1)                                               # [b,h,d]
    if D_ is not None:
        out = out + xw * D_.to(work)
    if z_ is not None:
        out = out * F.silu(z_.to(work))
    out = out.to(x.dtype)
    return out if heads else out.squeeze(1)


def _fused_problem(state, x, heads_form) -> str | None:
    if not (x.is_cuda and state.is_cuda):
        return f"inputs are on {x.device.type}, not CUDA"
    fn, why = optional_attr(*_TRITON)
    if fn is None:
        return why
    if x.dtype not in _FUSED_DTYPES or state.dtype not in _FUSED_DTYPES:
        return f"the kernel has no {x.dtype}/{state.dtype} version"
    b, h = heads_form
    if b > 65535 or h > 65535:        # grid (dim blocks, batch, heads): axes y and z are capped
        return f"batch={b} or heads={h} > 65535, the kernel's grid limit"
    return None


def state_update_backend(state: torch.Tensor, x: torch.Tensor) -> str:
    """"cuda" (mamba-ssm's Triton kernel) or "torch": what `selective_state_update` would run."""
    heads = (state.shape[0], state.shape[1] if state.dim() == 4 else 1)
    impl = choose_backend("selective state update", "PKS4_SCAN_IMPL", SCAN_IMPLS,
                          lambda: _fused_problem(state, x, heads), x.is_cuda)
    return "torch" if impl == "ref" else impl


def selective_state_update(state, x, dt, A, B, C, D=None, z=None, dt_bias=None, dt_softplus=False):
    """mamba-ssm's `selective_state_update`, dispatched (module doc). Updates `state` in place and
    returns out `[b,d]` (or `[b,h,d]`)."""
    _with_heads(state, x, dt, A, B, C, D, z, dt_bias)                      # shape checks
    if state_update_backend(state, x) == "cuda":
        fn = optional_attr(*_TRITON)[0]
        return fn(state, x, dt, A, B, C, D=D, z=z, dt_bias=dt_bias, dt_softplus=dt_softplus)
    return selective_state_update_torch(state, x, dt, A, B, C, D, z, dt_bias, dt_softplus)
