"""Depthwise causal 1-D convolution with causal-conv1d's `causal_conv1d_fn` contract.

    out[b,c,t] = act(bias[c] + Σ_{j<k} weight[c,j] · x[b,c,t-k+1+j])      (x[...,<0] = 0)

x `[b,d,L]`, weight `[d,k]`, bias `[d]`, activation None | "silu" | "swish"; output in x's dtype.
Dispatch (`PKS4_CONV_IMPL=auto|cuda|torch`): the fused kernel from the `causal_conv1d`
package for CUDA tensors when it imports, x is fp32/fp16/bf16 and 2 ≤ k ≤ 4 (the kernel's
widths); otherwise `F.conv1d` with groups=d and k-1 zeros of left padding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from pks4_lit.ops.dispatch import choose_backend, optional_attr

CONV_IMPLS = ("auto", "cuda", "torch")
_FUSED = ("causal_conv1d", "causal_conv1d_fn")
_ACTIVATIONS = (None, "silu", "swish")


def _check_inputs(x, weight, bias, activation) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be [batch, dim, L], got shape {tuple(x.shape)}")
    if weight.dim() != 2 or weight.shape[0] != x.shape[1]:
        raise ValueError(f"weight must be [dim={x.shape[1]}, width], got shape {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (x.shape[1],):
        raise ValueError(f"bias must be [dim={x.shape[1]}], got shape {tuple(bias.shape)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")


def _fused_problem(x: torch.Tensor, width: int) -> str | None:
    if not x.is_cuda:
        return f"inputs are on {x.device.type}, not CUDA"
    fn, why = optional_attr(*_FUSED)
    if fn is None:
        return why
    if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
        return f"the kernel has no {x.dtype} version"
    if x.shape[1] > 65535:   # (batch, dim) launch grid, grid.y capped at 65535
        return f"dim={x.shape[1]} > 65535, the kernel's grid limit"
    if not 2 <= width <= 4:
        return f"kernel width {width} is outside the fused kernel's 2..4"
    return None


def conv_backend(x: torch.Tensor, width: int = 4) -> str:
    """"cuda" or "torch": which implementation `causal_conv1d` would run. Raises RuntimeError
    when PKS4_CONV_IMPL=cuda cannot be honoured."""
    return choose_backend("causal conv1d", "PKS4_CONV_IMPL", CONV_IMPLS,
                          lambda: _fused_problem(x, width), x.is_cuda)


def causal_conv1d_torch(x, weight, bias=None, activation=None):
    """Grouped F.conv1d with k-1 zeros on the left; half precision is computed in fp32 on CPU."""
    _check_inputs(x, weight, bias, activation)
    d, k = weight.shape
    work = torch.float32 if (x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16)) \
        else x.dtype
    w = weight.to(work).unsqueeze(1)                                     # [d,1,k]
    b = None if bias is None else bias.to(work)
    out = F.conv1d(F.pad(x.to(work), (k - 1, 0)), w, b, groups=d)       # [b,d,L]
    if activation is not None:
        out = F.silu(out)
    return out.to(x.dtype)


def causal_conv1d(x, weight, bias=None, activation=None):
    """causal-conv1d's `causal_conv1d_fn(x, weight, bias, activation)`, dispatched (module doc)."""
    _check_inputs(x, weight, bias, activation)
    if conv_backend(x, weight.shape[1]) == "cuda":
        fn = optional_attr(*_FUSED)[0]
        x_ = x if (x.stride(-1) == 1 or x.stride(1) == 1) else x.contiguous()
        return fn(x_, weight.to(x.dtype).contiguous(),
                  None if bias is None else bias.to(x.dtype).contiguous(), activation=activation)
    return causal_conv1d_torch(x, weight, bias, activation)
