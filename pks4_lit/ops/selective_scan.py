"""Selective scan (Mamba's S6 recurrence) with mamba-ssm's `selective_scan_fn` contract.

    Δ = softplus(delta + delta_bias)   (bias and softplus optional)
    h_t = exp(Δ_t A) h_{t-1} + Δ_t B_t u_t        y_t = C_t h_t + D u_t        out = y * silu(z)

Shapes (as mamba-ssm): u, delta, z `[b,d,L]`; A `[d,N]` (real); B and C, each independently,
`[d,N]` (constant), `[b,N,L]` (one per step, shared by all channels) or `[b,G,N,L]` (G groups,
channel c uses group c // (d // G)); D, delta_bias `[d]`. The output has u's dtype; the last
state `[b,d,N]` is fp32 (float64 when the PyTorch paths compute in float64) and carries no
gradient, as in mamba-ssm.

Dispatch (`PKS4_SCAN_IMPL=auto|cuda|cpu|torch|ref`, default auto):
- cuda: mamba-ssm's fused kernel, used by `auto` for CUDA tensors when `mamba_ssm` imports,
  u is fp32/fp16/bf16, N ≤ 256 and b·d·N < 2³¹ (its 32-bit offsets; upstream issue #884).
  Forcing it when any of these fails raises RuntimeError.
- cpu: the fused CPU kernel of `scan_cpu.py` (built on first use by the system C++ compiler),
  used by `auto` for CPU tensors when it builds; same numbers as `torch`, several times faster.
- torch: the exact PyTorch scan of `scan_torch.py` (any device; fp32, or float64 when given
  float64; bf16/fp16 inputs are computed in fp32). `auto`'s choice on CPU without a compiler.
- ref: `selective_scan_ref`, the plain sequential loop differentiated by autograd.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pks4_lit.ops.dispatch import choose_backend, log_once, optional_attr, requested_impl
from pks4_lit.ops.scan_cpu import available as cpu_kernel_available
from pks4_lit.ops.scan_cpu import selective_scan_cpu_kernel
from pks4_lit.ops.scan_torch import selective_scan_chunked

SCAN_IMPLS = ("auto", "cuda", "cpu", "torch", "ref")
_MAMBA = ("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")
_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_inputs(u, delta, A, B, C, D=None, z=None, delta_bias=None) -> None:
    if u.dim() != 3:
        raise ValueError(f"u must be [batch, dim, L], got shape {tuple(u.shape)}")
    b, d, L = u.shape
    if delta.shape != u.shape:
        raise ValueError(f"delta must have u's shape {tuple(u.shape)}, got {tuple(delta.shape)}")
    if A.is_complex():
        raise ValueError("complex A is not supported (only real-valued A [dim, N])")
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"A must be [dim={d}, N], got shape {tuple(A.shape)}")
    N = A.shape[1]
    for name, X in (("B", B), ("C", C)):
        shape = tuple(X.shape)
        ok = ((X.dim() == 2 and shape == (d, N)) or (X.dim() == 3 and shape == (b, N, L))
              or (X.dim() == 4 and shape[0] == b and shape[2:] == (N, L) and shape[1] > 0
                  and d % shape[1] == 0))
        if not ok:
            raise ValueError(f"{name} must be [dim, N]=({d}, {N}), [batch, N, L]=({b}, {N}, {L}) or "
                             f"[batch, G, N, L] with G dividing dim={d}; got shape {shape}")
    for name, X in (("D", D), ("delta_bias", delta_bias)):
        if X is not None and tuple(X.shape) != (d,):
            raise ValueError(f"{name} must be [dim={d}], got shape {tuple(X.shape)}")
    if z is not None and z.shape != u.shape:
        raise ValueError(f"z must have u's shape {tuple(u.shape)}, got {tuple(z.shape)}")


def _work_dtype(*tensors) -> torch.dtype:
    return torch.float64 if any(t is not None and t.dtype == torch.float64 for t in tensors) \
        else torch.float32


# ---------------------------------------------------------------- reference

def _expand_bc(X: torch.Tensor, dim: int) -> torch.Tensor:
    """B or C as constant `[d,N]` or per-channel variable `[b,d|1,N,L]`."""
    if X.dim() == 2:                       # [d,N] constant
        return X
    if X.dim() == 3:                       # [b,N,L] shared by all channels
        return X.unsqueeze(1)              # [b,1,N,L] broadcasts over d
    return X.repeat_interleave(dim // X.shape[1], dim=1)   # [b,G,N,L] → [b,d,N,L]


def selective_scan_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                       delta_softplus=False, return_last_state=False, *, initial_state=None):
    """Plain sequential loop, differentiated by autograd. Computes in float64 when any input is
    float64, else in float32. `initial_state` [b,d,N] (keyword only; not part of mamba's
    contract) starts the recurrence from h_0 instead of zeros."""
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    work = _work_dtype(u, delta, A, B, C, D, z, delta_bias)
    dtype_in = u.dtype
    u, delta = u.to(work), delta.to(work)
    if delta_bias is not None:
        delta = delta + delta_bias.to(work)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, L = u.shape
    A = A.to(work)
    B, C = _expand_bc(B.to(work), d), _expand_bc(C.to(work), d)
    x = u.new_zeros(b, d, A.shape[1]) if initial_state is None else initial_state.to(work)
    ys = []
    for t in range(L):
        dt = delta[:, :, t, None]                                        # [b,d,1]
        Bt = B if B.dim() == 2 else B[..., t]                            # [d,N] | [b,d|1,N]
        Ct = C if C.dim() == 2 else C[..., t]
        x = torch.exp(dt * A) * x + dt * Bt * u[:, :, t, None]           # [b,d,N]
        ys.append((x * Ct).sum(-1))                                      # [b,d]
    out = torch.stack(ys, dim=-1)                                        # [b,d,L]
    if D is not None:
        out = out + u * D.to(work)[:, None]
    if z is not None:
        out = out * F.silu(z.to(work))
    out = out.to(dtype_in)
    return (out, x.detach()) if return_last_state else out


# ---------------------------------------------------------------- PyTorch fallback

def _internal_bc(X: torch.Tensor, work: torch.dtype) -> torch.Tensor:
    """Public B/C layout → scan_torch's: const `[d,N]` or time-major var `[L,b,G,N]`."""
    X = X.to(work)
    if X.dim() == 2:
        return X.contiguous()
    if X.dim() == 3:                                                     # [b,N,L] → [L,b,1,N]
        return X.permute(2, 0, 1).unsqueeze(2).contiguous()
    return X.permute(3, 0, 1, 2).contiguous()                            # [b,G,N,L] → [L,b,G,N]


def _run_cpu_path(core, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state,
                  initial_state, chunk):
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    work = _work_dtype(u, delta, A, B, C, D, z, delta_bias)
    cast = lambda x: None if x is None else x.to(work)                     # noqa: E731
    out, last = core(cast(u), cast(delta), cast(A), _internal_bc(B, work), _internal_bc(C, work),
                     cast(D), cast(z), cast(delta_bias), delta_softplus, cast(initial_state), chunk)
    out = out.to(u.dtype)
    return (out, last) if return_last_state else out


def selective_scan_torch(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                         delta_softplus=False, return_last_state=False, *, initial_state=None,
                         chunk=None):
    """The exact PyTorch scan (see scan_torch.py). Same contract as `selective_scan`, plus the
    keyword-only `initial_state` [b,d,N] (differentiable) for scanning a sequence in pieces and
    `chunk` (steps per chunk; None: `scan_torch.default_chunk`)."""
    return _run_cpu_path(selective_scan_chunked, u, delta, A, B, C, D, z, delta_bias, delta_softplus,
                         return_last_state, initial_state, chunk)


def selective_scan_cpu(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                       delta_softplus=False, return_last_state=False, *, initial_state=None,
                       chunk=None):
    """The fused CPU kernel (see scan_cpu.py), same contract and extras as `selective_scan_torch`
    (`chunk` default: scan_cpu.DEFAULT_CHUNK). RuntimeError when the kernel is not available."""
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    devices = {t.device.type for t in (u, delta, A, B, C, D, z, delta_bias, initial_state) if t is not None}
    if devices != {"cpu"}:
        raise RuntimeError(f"the fused CPU scan kernel takes CPU tensors only, got {sorted(devices)}")
    ok, why = cpu_kernel_available()
    if not ok:
        raise RuntimeError(f"the fused CPU scan kernel is not available: {why}")
    work = _work_dtype(u, delta, A, B, C, D, z, delta_bias)
    cast = lambda x: None if x is None else x.to(work)                     # noqa: E731
    out, last = selective_scan_cpu_kernel(cast(u), cast(delta), cast(A), cast(B), cast(C), cast(D), cast(z),
                                          cast(delta_bias), delta_softplus, cast(initial_state), chunk)
    out = out.to(u.dtype)
    return (out, last) if return_last_state else out


# ---------------------------------------------------------------- fused kernel

def _last_contiguous(x: torch.Tensor) -> torch.Tensor:
    return x if x.stride(-1) == 1 else x.contiguous()


def _call_fused(fn, u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
    """Call mamba-ssm's selective_scan_fn with the dtypes its kernel checks: delta, z and
    variable B/C in u's dtype; A, D, delta_bias and constant B/C in fp32; last dim contiguous."""
    dt = u.dtype

    def bc(X):
        return _last_contiguous(X.to(dt) if X.dim() >= 3 else X.float())

    res = fn(_last_contiguous(u), _last_contiguous(delta.to(dt)), A.float().contiguous(), bc(B), bc(C),
             None if D is None else D.float().contiguous(),
             None if z is None else _last_contiguous(z.to(dt)),
             None if delta_bias is None else delta_bias.float().contiguous(),
             delta_softplus, return_last_state)
    if return_last_state:
        out, last = res
        return out, last.detach()
    return res


def _fused_limits(batch: int, dim: int, d_state: int, dtype: torch.dtype) -> str | None:
    """Why the fused kernel cannot take these sizes/dtype (None when it can)."""
    if dtype not in _FUSED_DTYPES:
        return f"the kernel has no {dtype} version"
    if d_state > 256:
        return f"N={d_state} > 256, the kernel's maximum state size"
    if dim > 65535:   # the kernel launches a (batch, dim) grid; grid.y is capped at 65535
        return f"dim={dim} > 65535, the kernel's grid limit"
    if batch * dim * d_state >= 2 ** 31:
        return f"batch·dim·N = {batch * dim * d_state} ≥ 2³¹ overflows the kernel's 32-bit offsets"
    return None


def _fused_problem(u: torch.Tensor, d_state: int | None) -> str | None:
    """Why the fused kernel cannot run on these inputs (None when it can)."""
    if not u.is_cuda:
        return f"inputs are on {u.device.type}, not CUDA"
    fn, why = optional_attr(*_MAMBA)
    if fn is None:
        return why
    return _fused_limits(u.shape[0], u.shape[1], d_state or 1, u.dtype)


def scan_backend(u: torch.Tensor, d_state: int | None = None) -> str:
    """Which implementation `selective_scan` would run for `u` [b,d,L] and state size N=d_state:
    "cuda" (mamba-ssm fused kernel), "cpu" (our fused CPU kernel), "torch" (our exact PyTorch
    scan) or "ref" (sequential reference). Raises RuntimeError when PKS4_SCAN_IMPL=cuda cannot
    be honoured."""
    impl = choose_backend("selective scan", "PKS4_SCAN_IMPL", SCAN_IMPLS,
                          lambda: _fused_problem(u, d_state), u.is_cuda)
    if impl == "torch" and u.device.type == "cpu" and requested_impl("PKS4_SCAN_IMPL", SCAN_IMPLS) == "auto":
        ok, why = cpu_kernel_available()
        if ok:
            return "cpu"
        log_once(f"selective scan: using the PyTorch scan on CPU because {why}")
    return impl


def selective_scan(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                   delta_softplus=False, return_last_state=False):
    """mamba-ssm's `selective_scan_fn`, dispatched as described in the module docstring."""
    _check_inputs(u, delta, A, B, C, D, z, delta_bias)
    impl = scan_backend(u, A.shape[1])
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if impl == "cuda":
        return _call_fused(optional_attr(*_MAMBA)[0], *args)
    if impl == "ref":
        return selective_scan_ref(*args)
    if impl == "cpu":
        return selective_scan_cpu(*args)
    return selective_scan_torch(*args)
