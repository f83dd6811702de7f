"""Depthwise causal conv1d (+ SiLU) for training on the CPU, in the scan's C++ library
(csrc/scan_cpu.cpp, built on first use: see scan_cpu.py).

    pre[b,c,t] = bias[c] + Σ_{j<k} weight[c,j] · x[b,c,t-k+1+j]      out = silu(pre) | pre

x `[b,d,L]` with any strides (e.g. a transposed view of a `[b,L,d]` projection: no copy),
weight `[d,k]`, bias `[d]` | None. The output is laid out as x when x is dense, else
`[b,d,L]` contiguous. Only x is kept for the backward, which recomputes pre (as
causal_conv1d.py's `_ConvRecompute` does, without F.conv1d's padded copy and separate SiLU).
Covers the training call without initial/final states or seq_idx; causal_conv1d.py uses it
on CPU when the library is available and falls back to F.conv1d otherwise.
"""
from __future__ import annotations

import ctypes

import torch
from torch.autograd.function import once_differentiable

from pks4_lit.ops.first_order import first_order_only
from pks4_lit.ops.scan_cpu import _load, _grad_like, _Strides


class _ConvArgs(ctypes.Structure):
    _fields_ = ([(n, ctypes.c_void_p) for n in ("x", "w", "bias", "gout", "out", "dx", "dw", "dbias")]
                + [(n, ctypes.c_int64) for n in ("b", "d", "L", "k", "silu", "threads")]
                + [("s_" + n, _Strides) for n in ("x", "out", "gout", "dx")])


def _call(kind, x, weight, bias, silu, **tensors):
    b, d, L = x.shape
    a = _ConvArgs(b=b, d=d, L=L, k=weight.shape[1], silu=int(silu), threads=torch.get_num_threads())
    tensors.update(x=x, w=weight, bias=bias)
    for name, t in tensors.items():
        if t is not None:
            setattr(a, name, t.data_ptr())
            if hasattr(a, "s_" + name):
                setattr(a, "s_" + name, _Strides(*t.stride()))
    suffix = "f64" if x.dtype == torch.float64 else "f32"
    getattr(_load()[0], f"pks4_conv_{kind}_{suffix}")(ctypes.byref(a))


class CausalConv1dCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, silu):
        out = _grad_like(x)
        _call("fwd", x, weight, bias, silu, out=out)
        ctx.save_for_backward(x, weight, bias)
        ctx.silu = silu
        return out

    @staticmethod
    @first_order_only
    @once_differentiable
    def backward(ctx, gout):
        x, weight, bias = ctx.saved_tensors
        need = ctx.needs_input_grad
        dx = _grad_like(x, gout) if need[0] else None
        dw = torch.zeros_like(weight)
        dbias = torch.zeros_like(bias) if bias is not None else None
        _call("bwd", x, weight, bias, ctx.silu, gout=gout, dx=dx, dw=dw, dbias=dbias)
        return dx, dw if need[1] else None, dbias if need[2] else None, None


def causal_conv1d_cpu(x, weight, bias, silu: bool):
    """x [b,d,L] (any strides), weight [d,k], bias [d] | None, all fp32 or all float64, CPU."""
    return CausalConv1dCPU.apply(x, weight.contiguous(), None if bias is None else bias.contiguous(), silu)
