"""Correlation volume of the kinematic prior encoder on CPU: which way to compute it is fastest.

    pks4 bench correlation [--N 64 256 1024] [--size 6] [--radius 1 3] [--dim 112] [--reps 9]

The encoder needs two (2r+1)²-offset volumes per frame from one query map f [N,hw,C] and two
key maps (f itself and the frame difference): vol[k](p) = <f(p), g(p − d_k)>, 0 where p − d_k is
outside the map. Candidates, all fp32, forward + backward (gradients to f and both keys):

  shifted_nchw   (2r+1)² shifted products on [N,C,h,w] maps summed over C (the original code)
  shifted_nhwc   the same on channel-last maps (sum over the contiguous last dim)
  unfold_einsum  F.unfold of the zero-padded keys → [N,C,K,hw], multiplied with f and summed over C
  unfold_bmm     the same unfolded keys as [N·hw,C,K], one bmm with f as [N·hw,1,C]
  gram           one batched matmul f·gᵀ over all h·w positions [N,hw,hw], window gathered from it
                 (what KinematicPriorEncoder uses when h·w ≤ GRAM_MAX_POSITIONS)

Each candidate is checked against a float64 shifted-products reference (max abs error of the
values and of the gradients). Times are medians over `reps` rounds, candidates interleaved inside
each round so that a noisy shared machine slows all of them alike; compare ratios, not times.
"""
from __future__ import annotations

import argparse
import functools
import sys
import time

import torch
import torch.nn.functional as F

from pks4_lit.models import KinematicPriorEncoder


def _offsets(r: int):
    return [(i - r, j - r) for i in range(2 * r + 1) for j in range(2 * r + 1)]   # (dy, dx), row-major


def shifted_nchw(f, keys, h, w, r):
    """f [N,hw,C], keys [2,N,hw,C] → [2,N,hw,K]; computed on NCHW maps."""
    N, C = f.shape[0], f.shape[-1]
    fm = f.transpose(1, 2).reshape(N, C, h, w)
    g = F.pad(keys.transpose(2, 3).reshape(2, N, C, h, w), (r, r, r, r))
    vols = [(fm * g[..., r - dy:r - dy + h, r - dx:r - dx + w]).sum(2) for dy, dx in _offsets(r)]
    return torch.stack(vols, -1).flatten(2, 3)


def shifted_nhwc(f, keys, h, w, r):
    g = F.pad(keys.unflatten(2, (h, w)), (0, 0, r, r, r, r))
    fm = f.unflatten(1, (h, w))
    vols = [(fm * g[:, :, r - dy:r - dy + h, r - dx:r - dx + w]).sum(-1) for dy, dx in _offsets(r)]
    return torch.stack(vols, -1).flatten(2, 3)


def _unfolded(keys, h, w, r):
    N, C = keys.shape[1], keys.shape[-1]
    K = (2 * r + 1) ** 2
    g = keys.transpose(2, 3).reshape(2 * N, C, h, w)
    # unfold's kernel index runs over q = p + e; our offsets are d = −e: flip the kernel order
    return F.unfold(g, 2 * r + 1, padding=r).view(2, N, C, K, h * w).flip(3)       # [2,N,C,K,hw]


def unfold_einsum(f, keys, h, w, r):
    return torch.einsum("ncp,sncKp->snpK", f.transpose(1, 2), _unfolded(keys, h, w, r))


def unfold_bmm(f, keys, h, w, r):
    gu = _unfolded(keys, h, w, r)                                                   # [2,N,C,K,hw]
    S, N, C, K, hw = gu.shape
    gu = gu.permute(0, 1, 4, 2, 3).reshape(S * N * hw, C, K)
    q = f.reshape(1, N * hw, 1, C).expand(S, -1, -1, -1).reshape(S * N * hw, 1, C)
    return torch.bmm(q, gu).view(S, N, hw, K)


@functools.lru_cache(maxsize=None)
def window(h: int, w: int, r: int):
    """The encoder's (source index, validity) [hw,K] of every offset on an h×w map."""
    return KinematicPriorEncoder(1, radius=r, use_difference=False).window(h, w, "cpu")


def gram(f, keys, h, w, r):
    idx, _ = window(h, w, r)
    G = torch.matmul(f, keys.transpose(-1, -2))                                     # [2,N,hw,hw]
    return G.gather(3, idx.expand(2, f.shape[0], -1, -1))


CANDIDATES = dict(shifted_nchw=shifted_nchw, shifted_nhwc=shifted_nhwc, unfold_einsum=unfold_einsum,
                  unfold_bmm=unfold_bmm, gram=gram)


def masked(fn, f, keys, h, w, r):
    """The candidate's volume with invalid offsets set to 0, as the encoder uses it."""
    return fn(f, keys, h, w, r).masked_fill(~window(h, w, r)[1], 0.0)


def check(fn, h: int, w: int, r: int, C: int = 16, N: int = 3) -> dict:
    """Max abs error of values and gradients against the float64 shifted-products reference."""
    g = torch.Generator().manual_seed(0)
    f64 = F.normalize(torch.randn(N, h * w, C, generator=g, dtype=torch.float64), dim=-1)
    k64 = F.normalize(torch.randn(2, N, h * w, C, generator=g, dtype=torch.float64), dim=-1)
    grad_out = torch.randn(2, N, h * w, (2 * r + 1) ** 2, generator=g, dtype=torch.float64)
    out = {}
    for name, fun, dt in (("ref", shifted_nchw, torch.float64), ("cand", fn, torch.float32)):
        f, k = f64.to(dt).detach().requires_grad_(), k64.to(dt).detach().requires_grad_()
        v = masked(fun, f, k, h, w, r)
        v.backward(grad_out.to(dt))
        out[name] = (v.detach().double(), f.grad.double(), k.grad.double())
    ref, cand = out["ref"], out["cand"]
    return dict(value_err=float((ref[0] - cand[0]).abs().max()),
                grad_err=float(max((a - b).abs().max() for a, b in zip(ref[1:], cand[1:]))))


def _step(fn, f, keys, h, w, r):
    f, keys = f.detach().requires_grad_(), keys.detach().requires_grad_()
    t = time.perf_counter()
    v = masked(fn, f, keys, h, w, r)
    v.backward(torch.ones_like(v))
    return time.perf_counter() - t


def run_config(N: int, C: int, size: int, r: int, reps: int, names, max_unfold_mb: float = 512) -> dict:
    unfold_mb = 2 * N * C * (2 * r + 1) ** 2 * size * size * 4 / 2**20              # the unfolded keys
    skipped = {n: f"unfolded keys {unfold_mb:.0f} MB > {max_unfold_mb:g} MB" for n in names
               if n.startswith("unfold") and unfold_mb > max_unfold_mb}
    names = [n for n in names if n not in skipped]
    g = torch.Generator().manual_seed(0)
    f = F.normalize(torch.randn(N, size * size, C, generator=g), dim=-1)
    keys = torch.randn(2, N, size * size, C, generator=g)
    times = {n: [] for n in names}
    for n in names:                                                                  # warm-up
        _step(CANDIDATES[n], f, keys, size, size, r)
    for _ in range(reps):
        for n in names:
            times[n].append(_step(CANDIDATES[n], f, keys, size, size, r))
    med = {n: sorted(v)[len(v) // 2] * 1e3 for n, v in times.items()}
    base = med.get("shifted_nchw")
    print(f"bench correlation: N={N} {size}x{size} r={r} " + " ".join(f"{n}={m:.2f}ms" for n, m in med.items()),
          file=sys.stderr, flush=True)
    return dict(N=N, C=C, size=size, radius=r, ms=med, skipped=skipped,
                speedup_vs_shifted_nchw={n: round(base / m, 2) for n, m in med.items()} if base else None,
                fastest=min(med, key=med.get))


def encoder_config(N: int, C: int, size: int, r: int, reps: int, T: int = 8) -> dict:
    """The whole prior encoder, forward + backward on [N/T,T,C,size,size], with each volume path."""
    from pks4_lit.models import kinematic

    g = torch.Generator().manual_seed(0)
    X = torch.randn(N // T, T, C, size, size, generator=g)
    enc = KinematicPriorEncoder(C, prior_dim=16, radius=r)
    limits = {"gram": 10**9, "shifted": 0}
    times = {p: [] for p in limits}
    saved = kinematic.GRAM_MAX_POSITIONS
    try:
        for rep in range(reps + 1):
            for p, limit in limits.items():
                kinematic.GRAM_MAX_POSITIONS = limit
                x = X.clone().requires_grad_()
                t = time.perf_counter()
                enc(x).sum().backward()
                if rep:                                                              # rep 0: warm-up
                    times[p].append(time.perf_counter() - t)
    finally:
        kinematic.GRAM_MAX_POSITIONS = saved
    med = {p: sorted(v)[len(v) // 2] * 1e3 for p, v in times.items()}
    print(f"bench correlation: encoder N={N} {size}x{size} r={r} " + " ".join(f"{p}={m:.2f}ms" for p, m in med.items()),
          file=sys.stderr, flush=True)
    return dict(N=N, T=T, C=C, size=size, radius=r, encoder_ms=med,
                default_path="gram" if size * size <= saved else "shifted")


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--N", type=int, nargs="+", default=[64, 256, 1024], help="B·T frames")
    parser.add_argument("--dim", type=int, default=112, help="channels C")
    parser.add_argument("--size", type=int, nargs="+", default=[6], help="map side h = w")
    parser.add_argument("--radius", type=int, nargs="+", default=[1, 3])
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    parser.add_argument("--candidates", nargs="+", default=list(CANDIDATES), choices=list(CANDIDATES))
    parser.add_argument("--max-unfold-mb", type=float, default=512,
                        help="skip the unfold candidates where the unfolded keys alone exceed this")


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    exact = {f"{n} r={r} {s}x{s}": check(CANDIDATES[n], s, s, r)
             for n in args.candidates for r in args.radius for s in args.size}
    rows = [run_config(N, args.dim, s, r, args.reps, args.candidates, args.max_unfold_mb)
            for s in args.size for r in args.radius for N in args.N]
    encoder = [encoder_config(N, args.dim, s, r, args.reps) for s in args.size for r in args.radius for N in args.N]
    return dict(threads=torch.get_num_threads(), exactness=exact, volumes=rows, encoder=encoder)


def main(argv=None) -> None:
    from pks4_lit.command import script_main

    script_main(__name__, "pks4 bench correlation", argv)


if __name__ == "__main__":
    main()
