"""Selective-scan speed: forward+backward of our PyTorch scan against plain autograd loops
(and, on CUDA, against mamba-ssm's fused kernel).

    python -m pks4_lit.bench.scan --T 16 64            # or: pks4 bench scan --T 16 64

Implementations timed (`--impls`):
  cpu      pks4_lit's fused CPU kernel (scan_cpu.py), what `selective_scan` runs on CPU
  torch    pks4_lit's exact PyTorch scan (scan_torch.py, chunked), the fallback without a compiler
  unbind   autograd through a loop over time iterating precomputed exp(ΔA), ΔBu with `unbind`
  index    the same loop indexing `[:, :, t]` (backward quadratic in T: slow, off by default)
  ref      pks4_lit's sequential reference (selective_scan_ref)
  fused    mamba-ssm's selective_scan_fn (CUDA only, when importable)
Each figure is the median (and min: the better estimate on a machine shared with other jobs)
of `--repeats` timed runs after one warm-up run, and the least process CPU time (`cpu_min_s`: with
one thread, the run's own compute, less inflated by other jobs than wall time). The result also reports the largest output
difference of every implementation from `torch`, and an effective bandwidth: the bytes a fused
kernel must move at least (`min_io_mb`: inputs read in forward and backward, gy read, y and the
gradients written) over the time, to compare with the device's memory bandwidth.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import torch

from pks4_lit.command import script_main
from pks4_lit.ops.dispatch import optional_attr
from pks4_lit.ops.selective_scan import (_MAMBA, _call_fused, scan_backend, selective_scan_cpu,
                                         selective_scan_ref, selective_scan_torch)

IMPLS = ("torch", "cpu", "unbind", "index", "ref", "fused")


def _time_major(X: torch.Tensor, d: int) -> torch.Tensor:
    """B/C as [d,1,N] (const) or [b,1|d,L,N] (var, groups expanded) against [b,d,L,N]."""
    if X.dim() == 2:
        return X.unsqueeze(1)
    if X.dim() == 3:
        return X.transpose(-1, -2).unsqueeze(1)
    return X.repeat_interleave(d // X.shape[1], dim=1).transpose(-1, -2)


def _plain_loop(u, delta, A, B, C, use_unbind: bool):
    """y = scan(u, Δ, A, B, C) by autograd through a Python loop over time (mamba's ref style)."""
    b, d, L = u.shape
    dA = torch.exp(delta.unsqueeze(-1) * A.unsqueeze(1))                 # [b,d,L,N]
    dBu = (delta * u).unsqueeze(-1) * _time_major(B, d)                  # [b,d,L,N]
    Cs = _time_major(C, d)                                               # [d,1,N] | [b,1|d,L,N]
    if use_unbind:
        steps = zip(dA.unbind(2), dBu.unbind(2), [C] * L if C.dim() == 2 else Cs.unbind(2))
    else:
        steps = ((dA[:, :, t], dBu[:, :, t], C if C.dim() == 2 else Cs[:, :, t]) for t in range(L))
    x = u.new_zeros(b, d, A.shape[1])
    ys = []
    for a_t, bu_t, c_t in steps:
        x = a_t * x + bu_t                                               # [b,d,N]
        ys.append((x * c_t).sum(-1))                                     # [b,d]
    return torch.stack(ys, dim=-1)


def _make_inputs(batch, dim, d_state, T, bc, groups, device, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    shape_bc = {"const": (dim, d_state), "var": (batch, d_state, T),
                "group": (batch, groups, d_state, T)}[bc]
    u = torch.randn(batch, dim, T, generator=g)
    delta = torch.rand(batch, dim, T, generator=g) * 0.5 + 0.01
    A = -torch.rand(dim, d_state, generator=g) - 0.5
    B = torch.randn(*shape_bc, generator=g)
    C = torch.randn(*shape_bc, generator=g)
    gy = torch.randn(batch, dim, T, generator=g)
    cast = lambda x, dt: x.to(device=device, dtype=dt)
    return ([cast(u, dtype), cast(delta, dtype), cast(A, torch.float32), cast(B, dtype),
             cast(C, dtype)], cast(gy, dtype))


def _fn(impl):
    if impl == "torch":
        return selective_scan_torch
    if impl == "cpu":
        return selective_scan_cpu
    if impl == "ref":
        return selective_scan_ref
    if impl in ("unbind", "index"):
        return lambda u, delta, A, B, C: _plain_loop(u, delta, A, B, C, use_unbind=impl == "unbind")
    fn, why = optional_attr(*_MAMBA)
    if fn is None:
        raise RuntimeError(why)
    return lambda u, delta, A, B, C: _call_fused(fn, u, delta, A, B, C, None, None, None, False, False)


def _time_one(fn, inputs, gy, repeats, sync):
    leaves = [x.detach().requires_grad_() for x in inputs]
    times, cpu, y = [], [], None
    for i in range(repeats + 1):                                         # first run = warm-up
        for x in leaves:
            x.grad = None
        sync()
        c0, t0 = time.process_time(), time.perf_counter()
        y = fn(*leaves)
        y.backward(gy)
        sync()
        if i:
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return statistics.median(times), times, min(cpu), y.detach().float()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batch", type=int, default=392, help="sequences (clips·h·w)")
    parser.add_argument("--dim", type=int, default=96)
    parser.add_argument("--d-state", type=int, default=16)
    parser.add_argument("--T", type=int, nargs="+", default=[16, 64], help="sequence lengths")
    parser.add_argument("--bc", choices=("var", "group", "const"), default="var",
                        help="B/C form: [b,N,T], [b,G,N,T] or [d,N]")
    parser.add_argument("--groups", type=int, default=4, help="G for --bc group")
    parser.add_argument("--impls", nargs="+", choices=IMPLS, default=None,
                        help="default: torch unbind, + cpu on CPU, + fused on CUDA; add index/ref explicitly")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", choices=("float32", "bfloat16", "float16"), default="float32")


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {os.cpu_count()} cores"


def run(args) -> dict:
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    is_cuda = device.type == "cuda"
    sync = torch.cuda.synchronize if is_cuda else (lambda: None)
    impls = args.impls or (["fused", "torch", "unbind"] if is_cuda else ["cpu", "torch", "unbind"])
    dtype = getattr(torch, args.dtype)
    result = {
        "bench": "scan", "device": _device_name(device), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "batch": args.batch, "dim": args.dim,
        "d_state": args.d_state, "bc": args.bc, "groups": args.groups if args.bc == "group" else None,
        "dtype": args.dtype, "repeats": args.repeats, "pass": "forward+backward",
        "auto_backend": None, "results": [],
    }
    try:                                              # what selective_scan picks for these inputs
        probe = torch.empty(args.batch, args.dim, 1, device=device, dtype=dtype)
        result["auto_backend"] = scan_backend(probe, args.d_state)
    except (RuntimeError, ValueError) as e:           # e.g. PKS4_SCAN_IMPL=cuda without CUDA
        result["auto_backend"] = f"error: {e}"
    for T in args.T:
        inputs, gy = _make_inputs(args.batch, args.dim, args.d_state, T, args.bc, args.groups,
                                  device, dtype)
        # bytes a fused fwd+bwd must move at least: read inputs (twice) and gy, write y and grads
        io = sum(x.numel() * x.element_size() for x in inputs)
        io_bytes = 3 * io + 2 * gy.numel() * gy.element_size()
        row, outs = {"T": T, "min_io_mb": round(io_bytes / 2**20, 1)}, {}
        for impl in impls:
            try:
                if is_cuda:
                    torch.cuda.reset_peak_memory_stats(device)
                med, times, cpu_min, outs[impl] = _time_one(_fn(impl), inputs, gy, args.repeats, sync)
            except Exception as e:                                       # e.g. fused unavailable
                row[impl] = {"error": f"{type(e).__name__}: {e}"}
                continue
            row[impl] = {"median_s": round(med, 4), "min_s": round(min(times), 4),
                         "cpu_min_s": round(cpu_min, 4),
                         "runs_s": [round(t, 4) for t in times],
                         "effective_gb_s": round(io_bytes / med / 1e9, 2)}
            if is_cuda:
                row[impl]["peak_mem_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        if "torch" in outs:
            ref, t_ref = outs["torch"], row["torch"]["median_s"]
            scale = ref.abs().max().item() or 1.0
            for impl, y in outs.items():
                if impl != "torch":
                    row[impl]["max_rel_diff_vs_torch"] = float((y - ref).abs().max() / scale)
                    row[impl]["time_vs_torch"] = round(row[impl]["median_s"] / t_ref, 2)
        result["results"].append(row)
    return result


def main(argv=None) -> None:
    script_main(__name__, "pks4 bench scan", argv)


if __name__ == "__main__":
    main()
