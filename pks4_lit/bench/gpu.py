"""GPU check: mamba-ssm's fused kernels behind `pks4_lit.ops`, verified against our PyTorch path
and timed. One run gives the whole picture; see docs/GPU.md.

    python scripts/gpu_check.py --out DIR          # builds the extensions first if asked (--build)
    pks4 bench gpu [--sections verify,scan_time]   # the same checks, result dict as JSON

Sections (`--sections`, in this order; later ones are skipped when `--deadline-s` runs out):
  env         torch/CUDA/device/mamba-ssm versions, which path `auto` picks
  verify      selective_scan: candidate (fused, PKS4_SCAN_IMPL=cuda) vs baseline (PyTorch scan,
              =torch) and both vs a float64 reference; T = 8…300, fp32/bf16, B/C variable,
              grouped and constant, with and without D/z/delta_bias, last state; values and
              every gradient; relative error ‖a−b‖/‖b‖ against 1e-3 (fp32) / 3e-2 (bf16)
  conv        causal_conv1d fused vs PyTorch: channel-first x, channel-last x (PKS4's in_proj
              chunk), initial/final states, packed sequences (seq_idx); values and gradients
  stream      the streaming steps, causal_conv1d_update and selective_state_update (Triton),
              fused vs PyTorch over 16 steps: outputs and final states
  head        the PKS⁴ head forward/backward, fused vs PyTorch (fp32, and bf16 autocast)
  train       one bf16-autocast training step of the full model with the fused path forced
  bandwidth   device-to-device copy bandwidth (bytes read + written): the memory ceiling
  scan_time   fused vs PyTorch scan at head shapes (batch = B·h·w), fwd and fwd+bwd, achieved
              bandwidth of the minimal traffic (u, Δ, B, C, z read, out written once)
  fold        short-T occupancy: the standard layout [B·h·w, d, T] against folding g locations
              into channels ([B·h·w/g, g·d, T] with B/C grouped G = g: the same math)
  step        a ViT-B/16 training step (random init) at 8 and 16 frames, frozen and not: the
              head's share of the step time, fused and PyTorch scan

Method (follows /work/.library/device/METHOD.md): fresh random inputs per check (never zeros);
the caching allocator is poisoned with NaN before each verified call and every output must be
finite; timings use CUDA events (wall clock on CPU), warm-up, the median over repeats, rotating
between several input sets when one set would fit in L2.
"""
from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
import os
import statistics
import time

import torch
import torch.nn.functional as F

from pks4_lit.ops import selective_scan

TOL = {torch.float32: 1e-3, torch.bfloat16: 3e-2, torch.float16: 1e-2}
SECTIONS = ("env", "verify", "conv", "stream", "head", "train", "bandwidth", "scan_time", "fold", "step")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


# ---------------------------------------------------------------------------- error metrics

def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """‖a − b‖ / ‖b‖ in float64 (0 when both are zero, inf when only b is; NaN propagates)."""
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {tuple(a.shape)} vs {tuple(b.shape)}")
    num, den = (a - b).norm().item(), b.norm().item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return num / den


def within(err: float, tol: float) -> bool:
    """NaN and inf never pass."""
    return math.isfinite(err) and err <= tol


def all_finite(*tensors) -> bool:
    return all(t is None or bool(torch.isfinite(t).all()) for t in tensors)


def poison_allocator(device: torch.device, *nbytes: int) -> None:
    """Leave blocks of these byte sizes filled with 0xFF in the CUDA caching allocator, so the
    next outputs of those sizes reuse them: 0xFF… is NaN in fp64/fp32/fp16/bf16 alike, so an
    element a kernel forgets to write stays NaN (and fails the finiteness check)."""
    if device.type != "cuda":
        return
    blocks = [torch.full((n,), 255, dtype=torch.uint8, device=device) for n in nbytes for _ in range(2)]
    del blocks


def conv_impl(scan: str) -> str:
    """The causal_conv1d path that goes with a scan path (conv has no `ref`: it uses `torch`)."""
    return scan if scan in ("auto", "cuda") else "torch"


@contextlib.contextmanager
def impl(scan: str, conv: str | None = None):
    """Force pks4_lit.ops's paths through their environment switches (read at every call)."""
    saved = {k: os.environ.get(k) for k in ("PKS4_SCAN_IMPL", "PKS4_CONV_IMPL")}
    os.environ["PKS4_SCAN_IMPL"] = scan
    os.environ["PKS4_CONV_IMPL"] = conv if conv is not None else conv_impl(scan)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------- timing harness

def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fn(fn, device: torch.device, warmup: int = 3, repeats: int = 20, budget_s: float = 2.0,
            min_repeats: int = 5, batch_ms: float = 2.0) -> dict:
    """Median time of one `fn(i)` call in ms (i counts calls, to rotate inputs). On a GPU: CUDA
    events around back-to-back batches of `inner` calls, inner chosen so a batch takes about
    `batch_ms` (short kernels would otherwise be timed with the launch gap in front of them).
    Elsewhere: wall clock per call. Stops after `repeats` batches or when `budget_s` is spent
    (never before `min_repeats`)."""
    for i in range(warmup):
        fn(i)
    _sync(device)
    calls, inner = warmup, 1
    if device.type == "cuda":
        t0 = time.perf_counter()
        fn(calls)
        _sync(device)
        calls += 1
        inner = max(1, min(100, int(batch_ms / max((time.perf_counter() - t0) * 1e3, 1e-3))))
    times, start = [], time.perf_counter()
    for _ in range(repeats):
        if device.type == "cuda":
            e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            e0.record()
            for _ in range(inner):
                fn(calls)
                calls += 1
            e1.record()
            e1.synchronize()
            times.append(e0.elapsed_time(e1) / inner)
        else:
            t0 = time.perf_counter()
            fn(calls)
            calls += 1
            times.append((time.perf_counter() - t0) * 1e3)
        if len(times) >= min_repeats and time.perf_counter() - start > budget_s:
            break
    q = statistics.quantiles(times, n=5) if len(times) >= 2 else [times[0]] * 4
    return dict(median_ms=statistics.median(times), p20_ms=q[0], p80_ms=q[3], min_ms=min(times),
                n=len(times), inner=inner, clock="cuda_events" if device.type == "cuda" else "wall")


def n_rotations(set_bytes: int, l2_bytes: int, most: int = 8) -> int:
    """How many input sets to rotate so that the working set is ≥ 4× L2 (at least 2)."""
    return max(2, min(most, math.ceil(4 * l2_bytes / max(set_bytes, 1))))


def l2_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return getattr(torch.cuda.get_device_properties(device), "L2_cache_size", 50 * 2 ** 20)
    return 32 * 2 ** 20


# ---------------------------------------------------------------------------- scan inputs

def make_scan_inputs(batch, dim, d_state, T, *, dtype=torch.float32, bc="var", groups=1,
                     extras=True, softplus=True, device="cpu", seed=0) -> dict:
    """Random selective-scan inputs in the fused kernel's dtypes: u, Δ, z and variable B/C in
    `dtype`; A, D, Δ bias (and constant B/C) fp32. Mamba-like ranges: Δ after bias+softplus in
    roughly [1e-3, 0.5], A = −exp(N(0, 0.5²)). Never zeros. Drawn on `device` (head-sized inputs
    are hundreds of millions of numbers: too slow to draw on the CPU)."""
    device = torch.device(device)
    g = torch.Generator(device=device).manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, device=device)          # noqa: E731
    if softplus:
        delta = 0.5 * r(batch, dim, T)
        dt = torch.exp(torch.rand(dim, generator=g, device=device) * (math.log(0.1) - math.log(1e-3))
                       + math.log(1e-3))
        delta_bias = dt + torch.log(-torch.expm1(-dt))                    # softplus⁻¹(dt)
    else:
        delta = torch.rand(batch, dim, T, generator=g, device=device) * 0.2 + 1e-3
        delta_bias = None
    if bc == "var":
        B, C = r(batch, d_state, T), r(batch, d_state, T)
    elif bc == "grouped":
        B, C = r(batch, groups, d_state, T), r(batch, groups, d_state, T)
    elif bc == "const":
        B, C = r(dim, d_state), r(dim, d_state)
    else:
        raise ValueError(f"bc must be var, grouped or const, got {bc!r}")
    x = dict(u=r(batch, dim, T), delta=delta, A=-torch.exp(0.5 * r(dim, d_state)), B=B, C=C,
             D=r(dim) if extras else None, z=r(batch, dim, T) if extras else None,
             delta_bias=delta_bias if extras else None)
    low = ("u", "delta", "z") + (("B", "C") if bc != "const" else ())
    return {k: None if v is None else v.to(dtype=dtype if k in low else torch.float32)
            for k, v in x.items()}


SCAN_ARGS = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


def run_scan(fn, x: dict, softplus: bool, last_state: bool, grad_out: torch.Tensor | None):
    """out (and last state), and the gradients of <out, grad_out> w.r.t. every input given."""
    leaves = {k: v.detach().clone().requires_grad_(grad_out is not None)
              for k, v in x.items() if v is not None}
    res = fn(*[leaves.get(k) for k in SCAN_ARGS], delta_softplus=softplus, return_last_state=last_state)
    out, last = res if last_state else (res, None)
    grads = {}
    if grad_out is not None:
        gs = torch.autograd.grad(out, list(leaves.values()), grad_out, allow_unused=True)
        grads = dict(zip(leaves, gs))
    return out.detach(), last, grads


def _grad_err(a, b) -> float:
    """rel_err of two gradients; a gradient missing on one side only is an infinite error."""
    if a is None or b is None:
        return 0.0 if a is None and b is None else math.inf
    return rel_err(a, b)


def dispatched(name: str):
    """`selective_scan` with PKS4_SCAN_IMPL forced to `name` for the call."""
    def fn(*args, **kw):
        with impl(name):
            return selective_scan(*args, **kw)
    fn.__name__ = f"selective_scan[{name}]"
    return fn


def compare_scan(candidate, baseline, x: dict, *, softplus=True, last_state=False, grads=True,
                 reference=None, tol=None, seed=0) -> dict:
    """Values and gradients of `candidate` vs `baseline` on the inputs x (and both vs `reference`,
    called on float64 copies, when given). Pass = every error within tol and everything finite."""
    dtype = x["u"].dtype
    tol = TOL[dtype] if tol is None else tol
    g = torch.Generator().manual_seed(seed + 7)
    gout = torch.randn(x["u"].shape, generator=g).to(x["u"]) if grads else None
    sizes = [v.numel() * 4 for v in x.values() if v is not None]         # fp32-sized: covers bf16 too
    poison_allocator(x["u"].device, *sizes)
    c_out, c_last, c_g = run_scan(candidate, x, softplus, last_state, gout)
    poison_allocator(x["u"].device, *sizes)
    b_out, b_last, b_g = run_scan(baseline, x, softplus, last_state, gout)
    errs = {"out": rel_err(c_out, b_out)}
    if last_state:
        errs["last_state"] = rel_err(c_last, b_last)
    for k in c_g:
        errs[f"d{k}"] = _grad_err(c_g[k], b_g[k])
    finite = all_finite(c_out, c_last, *c_g.values())
    res = dict(errors=errs, finite=finite, tol=tol,
               ok=finite and all(within(e, tol) for e in errs.values()))
    if reference is not None:
        x64 = {k: None if v is None else v.double() for k, v in x.items()}
        r_out, r_last, r_g = run_scan(reference, x64, softplus, last_state,
                                      None if gout is None else gout.double())
        ref_err = {"out": (rel_err(c_out, r_out), rel_err(b_out, r_out))}
        for k in c_g:
            ref_err[f"d{k}"] = (_grad_err(c_g[k], r_g[k]), _grad_err(b_g[k], r_g[k]))
        res["vs_float64"] = {k: dict(candidate=a, baseline=b) for k, (a, b) in ref_err.items()}
        res["ok"] = res["ok"] and all(within(a, tol) for a, _ in ref_err.values())
    return res


def verify_scan(candidate, baseline, reference, device, Ts, dtypes, *, batch=3, dim=48, d_state=16,
                groups=4, seed=0, log=print) -> dict:
    """The parity grid: every T × dtype × B/C form, plus one case each without extras, without
    softplus, and returning the last state. Fresh inputs per case."""
    cases = []
    for dt_name in dtypes:
        for T in Ts:
            forms = [("var", dict(bc="var")), ("grouped", dict(bc="grouped", groups=groups)),
                     ("const", dict(bc="const"))]
            if T == Ts[0]:
                forms += [("var,no D/z/bias", dict(bc="var", extras=False)),
                          ("var,no softplus", dict(bc="var", softplus=False)),
                          ("grouped,last_state", dict(bc="grouped", groups=groups, last=True))]
            for name, kw in forms:
                seed += 1
                last = kw.pop("last", False)
                softplus = kw.get("softplus", True)
                x = make_scan_inputs(batch, dim, d_state, T, dtype=DTYPES[dt_name], device=device,
                                     seed=seed, **kw)
                r = compare_scan(candidate, baseline, x, softplus=softplus, last_state=last,
                                 reference=reference, seed=seed)
                worst = max(r["errors"].values())
                cases.append(dict(dtype=dt_name, T=T, form=name, worst=worst, **r))
                if not r["ok"]:
                    log(f"  FAIL scan {dt_name} T={T} {name}: {r['errors']}")
    return dict(ok=all(c["ok"] for c in cases), n=len(cases), n_failed=sum(not c["ok"] for c in cases),
                worst=_worst_by(cases, "dtype"), cases=cases)


def _worst_by(cases, key) -> dict:
    out = {}
    for c in cases:
        out[c[key]] = max(out.get(c[key], 0.0), c["worst"]) if math.isfinite(c["worst"]) else math.inf
    return out


# ---------------------------------------------------------------------------- fold layout

def fold_locations(x: dict, g: int) -> dict:
    """Standard head layout (batch = B·h·w sequences, dim d, B/C [batch, N, T]) → g consecutive
    locations folded into the channels: batch/g rows of g·d channels with B/C grouped [batch/g,
    g, N, T]; A, D, Δ bias tiled g times. u, Δ, z, B, C are views (no copy). Channel j·d + c of
    row r is channel c of sequence r·g + j, and its group (j·d + c) // d = j reads that
    sequence's B/C, so the scan is the same function of the same numbers."""
    b, d, T = x["u"].shape
    if b % g:
        raise ValueError(f"fold factor g={g} must divide the number of sequences {b}")
    if x["B"].dim() != 3 or x["C"].dim() != 3:
        raise ValueError("fold_locations needs variable B/C [batch, N, T]")
    N = x["B"].shape[1]
    v = lambda t: None if t is None else t.reshape(b // g, g * d, T)       # noqa: E731
    tile = lambda t: None if t is None else t.repeat(g)                    # noqa: E731
    return dict(u=v(x["u"]), delta=v(x["delta"]), z=v(x["z"]), A=x["A"].repeat(g, 1),
                B=x["B"].reshape(b // g, g, N, T), C=x["C"].reshape(b // g, g, N, T),
                D=tile(x["D"]), delta_bias=tile(x["delta_bias"]))


def unfold_output(out: torch.Tensor, g: int) -> torch.Tensor:
    """[batch/g, g·d, T] → [batch, d, T] (inverse of fold_locations for u-shaped tensors)."""
    bg, gd, T = out.shape
    return out.reshape(bg * g, gd // g, T)


def fold_factors(hw: int, dim: int, max_grid_y: int = 65535) -> list[int]:
    """Divisors g of h·w with g·dim within the kernel's grid limit (mamba launches grid(batch, dim):
    gridDim.y ≤ 65535), smallest, a middle one and the largest."""
    ok = [g for g in range(1, hw + 1) if hw % g == 0 and g * dim <= max_grid_y]
    return sorted({ok[0], ok[len(ok) // 2], ok[-1]})


# ---------------------------------------------------------------------------- sections

def section_env(args, device) -> dict:
    from pks4_lit.ops.dispatch import optional_attr
    from pks4_lit.ops.selective_scan import scan_backend
    env = dict(torch=torch.__version__, torch_cuda=torch.version.cuda, device=str(device))
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        env.update(name=p.name, capability=f"sm_{p.major}{p.minor}", sms=p.multi_processor_count,
                   memory_gib=round(p.total_memory / 2 ** 30, 1), l2_mib=round(l2_bytes(device) / 2 ** 20, 1))
    for mod in ("mamba_ssm", "causal_conv1d"):
        v, why = optional_attr(mod, "__version__")
        env[mod] = v if v is not None else why
    u = torch.empty(2, 4, 8, device=device, dtype=torch.bfloat16)
    try:
        from pks4_lit.ops import conv_backend
        with impl("auto", "auto"):
            env["scan_auto"], env["conv_auto"] = scan_backend(u, 16), conv_backend(u, 4)
    except Exception as e:                                  # a dispatch bug is a finding, not a crash
        env["scan_auto"] = f"error: {type(e).__name__}: {e}"
    return env


def section_verify(args, device, log) -> dict:
    from pks4_lit.ops.selective_scan import selective_scan_ref
    cand, base = dispatched(args.candidate), dispatched(args.baseline)
    res = verify_scan(cand, base, selective_scan_ref, device, args.T, args.dtypes, seed=args.seed, log=log)
    if args.big_batch:                              # many blocks at once (the head's regime)
        big = verify_scan(cand, base, None, device, [8, 64], args.dtypes, batch=args.big_batch,
                          dim=96, groups=8, seed=args.seed + 1000, log=log)
        res["head_sized"] = {k: big[k] for k in ("ok", "n", "n_failed", "worst")}
        res["ok"] = res["ok"] and big["ok"]
    return res


CONV_VARIANTS = ("plain", "channel_last", "states", "seq_idx")


def _conv_case(variant, L, k, bias, dtype, device, seed):
    """Inputs of one causal_conv1d check: x channel-first, or channel-last as PKS4/Mamba's
    in_proj chunk gives it, with initial/final states, or with packed sequences (seq_idx)."""
    g = torch.Generator().manual_seed(seed)
    b, d = 4, 64
    x = torch.randn(b, L, 2 * d, generator=g).transpose(1, 2)[:, :d] if variant != "plain" \
        else torch.randn(b, d, L, generator=g)
    leaves = dict(x=x, weight=torch.randn(d, k, generator=g),
                  bias=torch.randn(d, generator=g) if bias else None)
    if variant == "states":
        leaves["initial_states"] = torch.randn(b, d, k - 1, generator=g)
    leaves = {n: None if t is None else t.to(device, dtype).requires_grad_() for n, t in leaves.items()}
    kw = dict(return_final_states=variant == "states")
    if variant == "seq_idx":
        cuts = torch.randint(1, L, (b, 2), generator=g)
        kw["seq_idx"] = (torch.arange(L)[None, :, None] >= cuts[:, None, :]).sum(-1).to(device)
    return leaves, kw, torch.randn(b, d, L, generator=g).to(device, dtype)


def section_conv(args, device, log) -> dict:
    try:
        from pks4_lit.ops import causal_conv1d
    except ImportError as e:
        return dict(skipped=f"pks4_lit.ops.causal_conv1d not available ({e})")
    cases, seed = [], args.seed + 2000
    for dt_name in args.dtypes:
        dtype = DTYPES[dt_name]
        for variant in CONV_VARIANTS:
            for L in (8, 16, 64, 300):
                for k, bias, act in ((4, True, "silu"), (3, False, None)):
                    seed += 1
                    leaves, kw, gout = _conv_case(variant, L, k, bias, dtype, device, seed)
                    used = {n: t for n, t in leaves.items() if t is not None}
                    outs = {}
                    for name in (args.candidate, args.baseline):
                        with impl("torch", conv_impl(name)):
                            y = causal_conv1d(**leaves, **kw, activation=act)
                        y, fin = y if kw["return_final_states"] else (y, None)
                        loss_y = y if fin is None else y + fin.sum(-1, keepdim=True)
                        outs[name] = (y.detach(), fin, torch.autograd.grad(loss_y, list(used.values()), gout))
                    (yc, fc, gc), (yb, fb, gb) = outs[args.candidate], outs[args.baseline]
                    errs = {"out": rel_err(yc, yb), **{f"d{n}": rel_err(a, b_)
                            for n, a, b_ in zip(used, gc, gb)}}
                    if fc is not None:
                        errs["final_states"] = rel_err(fc, fb)
                    ok = all_finite(yc, *gc) and all(within(e, TOL[dtype]) for e in errs.values())
                    cases.append(dict(dtype=dt_name, variant=variant, L=L, k=k, bias=bias, act=act,
                                      ok=ok, errors=errs, worst=max(errs.values())))
                    if not ok:
                        log(f"  FAIL conv {variant} {dt_name} L={L} k={k}: {errs}")
    return dict(ok=all(c["ok"] for c in cases), n=len(cases), worst=_worst_by(cases, "dtype"), cases=cases)


def section_stream(args, device, log) -> dict:
    """The streaming steps (selective_state_update, causal_conv1d_update): candidate vs baseline
    path, run for T steps from the same states; outputs and final states."""
    from pks4_lit.ops import causal_conv1d_update, selective_state_update
    cases, seed = [], args.seed + 3000
    for dt_name in args.dtypes:
        dtype = DTYPES[dt_name]
        for b, d, N in ((3, 48, 16), (392, 96, 16)):
            seed += 1
            g = torch.Generator().manual_seed(seed)
            T = 16
            r = lambda *s: torch.randn(*s, generator=g)                          # noqa: E731
            xs, dts, zs = r(T, b, d), r(T, b, d) * 0.5, r(T, b, d)
            Bs, Cs = r(T, b, N), r(T, b, N)
            A, D, bias, w, cb = -torch.rand(d, N, generator=g) - 0.5, r(d), r(d), r(d, 4), r(d)
            res = {}
            for name in (args.candidate, args.baseline):
                state = torch.zeros(b, d, N, device=device)
                conv_state = torch.zeros(b, d, 3, device=device, dtype=dtype)
                outs = []
                with impl(name), torch.no_grad():
                    for t in range(T):
                        x = causal_conv1d_update(xs[t].to(device, dtype), conv_state, w.to(device),
                                                 cb.to(device), "silu")
                        outs.append(selective_state_update(
                            state, x, dts[t].to(device, dtype), A.to(device), Bs[t].to(device, dtype),
                            Cs[t].to(device, dtype), D.to(device), zs[t].to(device, dtype), bias.to(device),
                            dt_softplus=True))
                res[name] = (torch.stack(outs), state, conv_state)
            (oc, sc, cc), (ob, sb, cb_) = res[args.candidate], res[args.baseline]
            errs = dict(out=rel_err(oc, ob), state=rel_err(sc, sb), conv_state=rel_err(cc, cb_))
            ok = all_finite(oc, sc) and all(within(e, TOL[dtype]) for e in errs.values())
            cases.append(dict(dtype=dt_name, batch=b, dim=d, N=N, T=T, ok=ok, errors=errs,
                              worst=max(errs.values())))
            if not ok:
                log(f"  FAIL stream {dt_name} b={b} d={d}: {errs}")
    return dict(ok=all(c["ok"] for c in cases), n=len(cases), worst=_worst_by(cases, "dtype"), cases=cases)


def head_parity(head, X: torch.Tensor, candidate: str, baseline: str, autocast: bool, tol: float,
                seed: int) -> dict:
    """The head's own contribution Y − X (the residual would hide errors) and every gradient."""
    g = torch.Generator().manual_seed(seed)
    gout = torch.randn(X.shape, generator=g).to(X)
    params = [p for p in head.parameters() if p.requires_grad]
    res = {}
    for name in (candidate, baseline):
        Xl = X.detach().clone().requires_grad_()
        with impl(name), torch.autocast(X.device.type, dtype=torch.bfloat16, enabled=autocast):
            Y = head(Xl)
        grads = torch.autograd.grad(Y, [Xl] + params, gout)
        res[name] = ((Y - Xl).detach().float(), grads)
    (yc, gc), (yb, gb) = res[candidate], res[baseline]
    names = ["X"] + [n for n, p in head.named_parameters() if p.requires_grad]
    errs = {"Y-X": rel_err(yc, yb)}
    errs.update({f"d{n}": rel_err(a, b) for n, a, b in zip(names, gc, gb)})
    worst_k = max(errs, key=lambda k: errs[k] if math.isfinite(errs[k]) else math.inf)
    finite = all_finite(yc, *gc)
    return dict(ok=finite and all(within(e, tol) for e in errs.values()), finite=finite,
                worst=errs[worst_k], worst_name=worst_k, out_err=errs["Y-X"], dX_err=errs["dX"], tol=tol)


def section_head(args, device, log) -> dict:
    from pks4_lit.models import build_temporal_head
    cases = []
    for T in (8, 16):
        for bidir in (False, True):
            torch.manual_seed(args.seed + T)
            head = build_temporal_head("pks4", args.head_dim, bidirectional=bidir).to(device)
            X = torch.randn(2, T, args.head_dim, 7, 7, device=device)
            for dt_name, autocast in (("fp32", False), ("bf16", True)):
                if dt_name not in args.dtypes:
                    continue
                r = head_parity(head, X, args.candidate, args.baseline, autocast,
                                TOL[DTYPES[dt_name]], args.seed + T)
                cases.append(dict(T=T, bidirectional=bidir, dtype=dt_name, **r))
                if not r["ok"]:
                    log(f"  FAIL head T={T} bidir={bidir} {dt_name}: worst {r['worst_name']}={r['worst']:.3g}")
    return dict(ok=all(c["ok"] for c in cases), n=len(cases), worst=_worst_by(cases, "dtype"), cases=cases)


def _video(batch, T, size, device, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, T, 3, size, size), generator=g, dtype=torch.uint8).to(device)


def section_train(args, device, log) -> dict:
    """One optimiser step under bf16 autocast with the fused path forced: finite loss, finite and
    non-zero head gradients, a finite loss after the step; and the same first loss as the
    PyTorch path to bf16 tolerance."""
    from pks4_lit.models import VideoClassifier
    torch.manual_seed(args.seed)
    model = VideoClassifier.from_names(10, backbone=args.train_backbone, head="pks4", freeze="none",
                            img_size=args.train_img).to(device)
    video = _video(2, 8, args.train_img, device, args.seed)
    label = torch.tensor([1, 7], device=device)
    losses = {}
    for name in (args.baseline, args.candidate):             # candidate last: its grads are kept
        model.zero_grad(set_to_none=True)
        with impl(name), torch.autocast(device.type, dtype=torch.bfloat16):
            loss = F.cross_entropy(model(video), label)
            loss.backward()
        losses[name] = loss.item()
    grads = {n: p.grad for n, p in model.named_parameters() if p.requires_grad}
    head_grads = [g for n, g in grads.items() if n.startswith("head.")]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    opt.step()
    with impl(args.candidate), torch.autocast(device.type, dtype=torch.bfloat16), torch.no_grad():
        loss_after = F.cross_entropy(model(video), label).item()
    missing = [n for n, g in grads.items() if g is None]
    res = dict(backbone=args.train_backbone, loss=losses[args.candidate], loss_baseline=losses[args.baseline],
               loss_rel_diff=abs(losses[args.candidate] - losses[args.baseline]) / abs(losses[args.baseline]),
               loss_after_step=loss_after, grads_missing=missing[:5], n_grads_missing=len(missing),
               grads_finite=all_finite(*[g for g in grads.values() if g is not None]),
               head_grad_nonzero=bool(head_grads) and all(bool((g != 0).any()) for g in head_grads))
    res["ok"] = (math.isfinite(res["loss"]) and math.isfinite(loss_after) and res["grads_finite"]
                 and res["head_grad_nonzero"] and not missing and res["loss_rel_diff"] <= TOL[torch.bfloat16])
    return res


def section_bandwidth(args, device, log) -> dict:
    n = args.copy_mib * 2 ** 20 // 4
    src = torch.rand(n, device=device)
    dst = torch.empty_like(src)
    t = time_fn(lambda i: dst.copy_(src), device, warmup=3, repeats=30, budget_s=2.0)
    moved = 2 * src.numel() * 4                                          # read + write
    return dict(bytes=moved, gb_per_s=moved / (t["median_ms"] * 1e-3) / 1e9, **t)


def scan_bytes(batch, dim, d_state, T, elt, has_z=True) -> dict:
    """Minimal traffic of one forward: u, Δ, (z) and B, C read once, out written once; plus the
    kernel's own write of the chunk state x [batch, dim, n_chunks, N] (float2 = 8 bytes) that the
    backward needs, a floor term of its own at short T."""
    seq = batch * dim * T * elt
    minimal = seq * (3 + has_z) + 2 * batch * d_state * T * elt
    n_chunks = math.ceil(T / 2048)
    return dict(minimal=minimal, state_write=batch * dim * n_chunks * d_state * 8)


def _timed_scan(fn, sets, softplus, backward, device, budget_s):
    def call(i):
        x = sets[i % len(sets)]
        out = fn(*[x.get(k) for k in SCAN_ARGS], delta_softplus=softplus)
        if backward:
            leaves = [x[k] for k in SCAN_ARGS if x.get(k) is not None]
            torch.autograd.grad(out, leaves, x["gout"])
    return time_fn(call, device, warmup=2, repeats=50, budget_s=budget_s, min_repeats=3)


def _scan_sets(batch, dim, d_state, T, dtype, device, seed, backward, bc="var", groups=1):
    one = make_scan_inputs(batch, dim, d_state, T, dtype=dtype, device=device, seed=seed, bc=bc, groups=groups)
    set_bytes = sum(v.numel() * v.element_size() for v in one.values() if v is not None)
    k = n_rotations(set_bytes, l2_bytes(device), most=4)
    sets = [one] + [make_scan_inputs(batch, dim, d_state, T, dtype=dtype, device=device, seed=seed + j,
                                     bc=bc, groups=groups) for j in range(1, k)]
    for s in sets:
        for key in SCAN_ARGS:
            if s.get(key) is not None:
                s[key].requires_grad_(backward)
        s["gout"] = torch.randn_like(s["u"]) if backward else None
    return sets


def section_scan_time(args, device, log, copy_gbs: float | None) -> dict:
    rows = []
    batch = args.batch * args.hw * args.hw
    for dt_name in args.dtypes:
        dtype = DTYPES[dt_name]
        for T in args.time_T:
            for backward in (False, True):
                sets = _scan_sets(batch, args.dim, args.d_state, T, dtype, device, args.seed + T, backward)
                row = dict(dtype=dt_name, T=T, pass_="fwd+bwd" if backward else "fwd", batch=batch,
                           dim=args.dim, N=args.d_state)
                for name in (args.candidate, args.baseline):
                    try:
                        t = _timed_scan(dispatched(name), sets, True, backward, device, args.budget_s)
                        row[name] = t["median_ms"]
                    except torch.cuda.OutOfMemoryError:
                        row[name] = None
                        torch.cuda.empty_cache()
                c, b = row[args.candidate], row[args.baseline]
                row["speedup"] = b / c if c and b else None
                if not backward and c:
                    nb = scan_bytes(batch, args.dim, args.d_state, T, dtype.itemsize)
                    row["gb_per_s_minimal"] = nb["minimal"] / (c * 1e-3) / 1e9
                    row["gb_per_s_with_state"] = (nb["minimal"] + nb["state_write"]) / (c * 1e-3) / 1e9
                    if copy_gbs:
                        row["of_copy_bw"] = row["gb_per_s_minimal"] / copy_gbs
                rows.append(row)
                log(f"  scan {dt_name} T={T:4d} {row['pass_']:8s} {args.candidate}={_ms(c)} "
                    f"{args.baseline}={_ms(b)}")
                del sets
    return dict(rows=rows, copy_gb_per_s=copy_gbs)


def section_fold(args, device, log) -> dict:
    batch = args.batch * args.hw * args.hw
    gs = fold_factors(args.hw * args.hw, args.dim)
    rows, equal = [], []
    fn = dispatched(args.candidate)
    for dt_name in args.dtypes:
        dtype = DTYPES[dt_name]
        for T in args.time_T:
            for backward in (False, True):
                sets = _scan_sets(batch, args.dim, args.d_state, T, dtype, device, args.seed + 3 * T, backward)
                row = dict(dtype=dt_name, T=T, pass_="fwd+bwd" if backward else "fwd")
                for g in gs:
                    folded = [dict(fold_locations(s, g), gout=None if s["gout"] is None else
                                   s["gout"].reshape(batch // g, g * args.dim, T)) for s in sets]
                    if not backward:                        # same numbers both ways?
                        with torch.no_grad():
                            a = fn(*[sets[0].get(k) for k in SCAN_ARGS], delta_softplus=True)
                            b = unfold_output(fn(*[folded[0].get(k) for k in SCAN_ARGS], delta_softplus=True), g)
                        equal.append(dict(dtype=dt_name, T=T, g=g, rel_err=rel_err(b, a)))
                    row[f"g={g}"] = _timed_scan(fn, folded, True, backward, device, args.budget_s)["median_ms"]
                rows.append(row)
                log(f"  fold {dt_name} T={T:4d} {row['pass_']:8s} " +
                    " ".join(f"{k}:{_ms(v)}" for k, v in row.items() if k.startswith("g=")))
                del sets
    worst = max((e["rel_err"] for e in equal), default=0.0)
    return dict(factors=gs, rows=rows, equivalence=equal, equivalence_worst=worst,
                ok=within(worst, 1e-6))


def section_step(args, device, log) -> dict:
    """Training-step time of backbone + PKS⁴ head (bf16 autocast, AdamW) and the head's
    forward+backward alone on the same features: the head's share of the step."""
    from pks4_lit.models import VideoClassifier
    rows = []
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True                # as training would run (verify sets it off)
    try:
        return _step_rows(args, device, log, VideoClassifier, rows)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32


def _step_rows(args, device, log, VideoClassifier, rows) -> dict:
    for T in args.frames:
        for freeze in ("all", "none"):
            torch.manual_seed(args.seed)
            try:
                model = VideoClassifier.from_names(174, backbone=args.backbone, head="pks4",
                                        freeze=freeze, img_size=args.img).to(device)
            except Exception as e:
                raise RuntimeError(f"building VideoClassifier({args.backbone!r}): {type(e).__name__}: {e}") from e
            opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4,
                                    fused=device.type == "cuda")
            videos = [_video(args.step_batch, T, args.img, device, args.seed + j) for j in range(2)]
            labels = torch.randint(0, 174, (args.step_batch,), device=device)
            with torch.no_grad(), torch.autocast(device.type, dtype=torch.bfloat16):
                feats = [model.backbone(model.normalize(v)) for v in videos]    # [B,T,C,h,w]
            head_params = [p for p in model.head.parameters() if p.requires_grad]
            row = dict(T=T, freeze=freeze, batch=args.step_batch, feature_shape=list(feats[0].shape))
            for name in (args.candidate, args.baseline):
                def step(i):
                    opt.zero_grad(set_to_none=True)
                    with impl(name), torch.autocast(device.type, dtype=torch.bfloat16):
                        loss = F.cross_entropy(model(videos[i % 2]), labels)
                    loss.backward()
                    opt.step()

                def head_only(i):
                    X = feats[i % 2].detach().requires_grad_(freeze != "all")
                    with impl(name), torch.autocast(device.type, dtype=torch.bfloat16):
                        Y = model.head(X)
                    torch.autograd.grad(Y, head_params + ([X] if freeze != "all" else []), torch.ones_like(Y))
                try:
                    s = time_fn(step, device, warmup=2, repeats=20, budget_s=args.budget_s, min_repeats=3)
                    h = time_fn(head_only, device, warmup=2, repeats=20, budget_s=args.budget_s, min_repeats=3)
                    row[f"{name}_step_ms"], row[f"{name}_head_ms"] = s["median_ms"], h["median_ms"]
                    row[f"{name}_head_share"] = h["median_ms"] / s["median_ms"]
                except torch.cuda.OutOfMemoryError:
                    row[f"{name}_step_ms"] = None
                    torch.cuda.empty_cache()
                if device.type == "cuda":
                    row[f"{name}_peak_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
                    torch.cuda.reset_peak_memory_stats(device)
            rows.append(row)
            log(f"  step T={T} freeze={freeze}: " + ", ".join(
                f"{k}={v:.3g}" for k, v in row.items() if isinstance(v, float)))
            del model, opt, feats, videos
            if device.type == "cuda":
                torch.cuda.empty_cache()
    return dict(backbone=args.backbone, rows=rows)


def _ms(v):
    return "OOM" if v is None else f"{v:.3f}ms"


# ---------------------------------------------------------------------------- report

def _cell(row: dict, key: str, fmt: str) -> str:
    """A Markdown table cell: row[key] formatted, or a dash where it was not measured."""
    return format(row[key], fmt) if row.get(key) is not None else "–"



def to_markdown(res: dict) -> str:
    """A short Markdown summary of a run's result dict (what the device tool's output tail shows)."""
    L = []
    env = res.get("env", {})
    L.append(f"### GPU check on {env.get('name', env.get('device', '?'))} "
             f"(torch {env.get('torch')}, CUDA {env.get('torch_cuda')}, mamba_ssm {env.get('mamba_ssm')}, "
             f"causal_conv1d {env.get('causal_conv1d')}; auto → scan {env.get('scan_auto')}, conv {env.get('conv_auto')})")
    L.append(f"candidate `{res.get('candidate')}` vs baseline `{res.get('baseline')}`")
    L.append("")
    if any(s in res for s in ("verify", "conv", "stream", "head", "train", "fold")):
        L.append("| check | result | worst rel. error by dtype |")
        L.append("|---|---|---|")
    for sec in ("verify", "conv", "stream", "head", "train", "fold"):
        r = res.get(sec)
        if not r:
            continue
        if "skipped" in r or "error" in r:
            L.append(f"| {sec} | {r.get('skipped') or r.get('error')} | |")
            continue
        if sec == "train":
            L.append(f"| train step (bf16 autocast, {r['backbone']}) | {'ok' if r['ok'] else 'FAIL'} | "
                     f"loss {r['loss']:.4f} vs {r['loss_baseline']:.4f} (rel {r['loss_rel_diff']:.2e}) |")
            continue
        if sec == "fold":
            L.append(f"| fold layouts equal (g={r['factors']}) | {'ok' if r['ok'] else 'FAIL'} | "
                     f"{r['equivalence_worst']:.2e} |")
            continue
        worst = ", ".join(f"{k} {v:.2e}" for k, v in r.get("worst", {}).items())
        extra = f" ({r['n'] - r.get('n_failed', sum(not c['ok'] for c in r['cases']))}/{r['n']} pass)"
        L.append(f"| {sec} | {'ok' if r['ok'] else 'FAIL'}{extra} | {worst} |")
    bw = res.get("bandwidth")
    if bw:
        L.append(f"\ndevice-to-device copy: {bw['gb_per_s']:.0f} GB/s (read+write, {bw['bytes'] / 2 ** 30:.1f} GiB moved)")
    st = res.get("scan_time")
    if st:
        c, b = res["candidate"], res["baseline"]
        L.append(f"\n| scan dtype | T | pass | {c} ms | {b} ms | speedup | GB/s (min bytes) | of copy BW | GB/s incl. state |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in st["rows"]:
            f = functools.partial(_cell, r)
            L.append(f"| {r['dtype']} | {r['T']} | {r['pass_']} | {f(c, '.3f')} | {f(b, '.3f')} | "
                     f"{f('speedup', '.1f')} | {f('gb_per_s_minimal', '.0f')} | {f('of_copy_bw', '.0%')} | "
                     f"{f('gb_per_s_with_state', '.0f')} |")
    fo = res.get("fold")
    if fo and fo.get("rows"):
        keys = [f"g={g}" for g in fo["factors"]]
        L.append(f"\n| fold ({res['candidate']}) dtype | T | pass | " + " | ".join(f"{k} ms" for k in keys) + " |")
        L.append("|---|---|---|" + "---|" * len(keys))
        for r in fo["rows"]:
            L.append(f"| {r['dtype']} | {r['T']} | {r['pass_']} | " + " | ".join(f"{r[k]:.3f}" for k in keys) + " |")
    sp = res.get("step")
    if sp and sp.get("rows"):
        c, b = res["candidate"], res["baseline"]
        L.append(f"\n| step ({sp['backbone']}) | T | freeze | {c} step ms | head ms | share | {b} step ms | head ms | share |")
        L.append("|---|---|---|---|---|---|---|---|---|")
        for r in sp["rows"]:
            f = functools.partial(_cell, r)
            L.append(f"| | {r['T']} | {r['freeze']} | {f(c + '_step_ms', '.1f')} | {f(c + '_head_ms', '.1f')} | "
                     f"{f(c + '_head_share', '.0%')} | {f(b + '_step_ms', '.1f')} | {f(b + '_head_ms', '.1f')} | "
                     f"{f(b + '_head_share', '.0%')} |")
    for sec in ("bandwidth", "scan_time", "step"):
        if isinstance(res.get(sec), dict) and ("error" in res[sec] or "skipped" in res[sec]):
            L.append(f"\n{sec}: {res[sec].get('error') or res[sec].get('skipped')}")
    if res.get("skipped_sections"):
        L.append(f"\nskipped (out of time): {', '.join(res['skipped_sections'])} — run again with "
                 f"`--sections {','.join(res['skipped_sections'])}`")
    if res.get("errors"):
        L.append("\nerrors: " + "; ".join(f"{k}: {v}" for k, v in res["errors"].items()))
    L.append(f"\nverdict: {'PASS' if res.get('ok') else 'FAIL'} ({res.get('elapsed_s', 0):.0f} s)")
    return "\n".join(L)


# ---------------------------------------------------------------------------- entry points

def add_arguments(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--sections", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    a("--device", default="cuda", help="cuda (default) or cpu (the CPU run is for testing the harness)")
    a("--candidate", default="cuda", choices=("cuda", "torch", "ref"), help="PKS4_*_IMPL under test")
    a("--baseline", default="torch", choices=("cuda", "torch", "ref"), help="PKS4_*_IMPL it is compared with")
    a("--dtypes", nargs="+", default=["fp32", "bf16"], choices=sorted(DTYPES))
    a("--T", type=int, nargs="+", default=[8, 16, 32, 64, 128, 300], help="sequence lengths verified")
    a("--time-T", type=int, nargs="+", default=[8, 16, 32, 64, 128], help="sequence lengths timed")
    a("--batch", type=int, default=8, help="clips; the scan batch is batch·hw·hw")
    a("--hw", type=int, default=14, help="feature-map side (ViT-B/16 at 224: 14)")
    a("--dim", type=int, default=768, help="scan channels d_inner (ViT-B: 768 with expand=1)")
    a("--d-state", type=int, default=16)
    a("--big-batch", type=int, default=392, help="batch of the extra head-sized parity cases (0: none)")
    a("--head-dim", type=int, default=64, help="channels of the head in the parity check")
    a("--copy-mib", type=int, default=2048, help="tensor size for the copy-bandwidth ceiling")
    a("--budget-s", type=float, default=1.0, help="timing budget per measurement")
    a("--backbone", default="vit_base_patch16_224", help="timm backbone for the step timing (random init)")
    a("--img", type=int, default=224)
    a("--frames", type=int, nargs="+", default=[8, 16])
    a("--step-batch", type=int, default=8)
    a("--train-backbone", default="resnet18", help="backbone of the training-step check")
    a("--train-img", type=int, default=112)
    a("--deadline-s", type=float, default=0.0, help="skip sections that would start after this many seconds (0: none)")
    a("--seed", type=int, default=0)
    a("--out", default=None, help="directory for gpu_check.json and gpu_check.md")


def run(args: argparse.Namespace, log=print) -> dict:
    t0 = time.perf_counter()
    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        raise ValueError(f"unknown sections {bad}; choose from {SECTIONS}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        return dict(skipped="no CUDA device (run with --device cpu to exercise the harness)", ok=False)
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False                 # fp32 parity means fp32
        torch.backends.cudnn.allow_tf32 = False
    res = dict(candidate=args.candidate, baseline=args.baseline, sections=sections, errors={},
               skipped_sections=[])
    res["env"] = section_env(args, device)
    copy_gbs = None
    for sec in sections:
        if sec == "env":
            continue
        elapsed = time.perf_counter() - t0
        if args.deadline_s and elapsed > args.deadline_s:
            res["skipped_sections"].append(sec)
            continue
        log(f"[{elapsed:6.1f}s] {sec}")
        try:
            if sec == "scan_time":
                if copy_gbs is None and "bandwidth" not in res:
                    res["bandwidth"] = section_bandwidth(args, device, log)
                copy_gbs = res["bandwidth"]["gb_per_s"]
                res[sec] = section_scan_time(args, device, log, copy_gbs)
            else:
                res[sec] = globals()[f"section_{sec}"](args, device, log)
        except Exception as e:                      # record and go on: one broken part must not hide the rest
            res["errors"][sec] = f"{type(e).__name__}: {e}"
            log(f"  ERROR in {sec}: {res['errors'][sec]}")
            if device.type == "cuda":
                torch.cuda.empty_cache()
    checks = [res[s]["ok"] for s in ("verify", "conv", "stream", "head", "train", "fold") if s in res and "ok" in res[s]]
    res["ok"] = not res["errors"] and all(checks)
    res["elapsed_s"] = time.perf_counter() - t0
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "gpu_check.json"), "w") as f:
            json.dump(res, f, indent=1, default=str)
        with open(os.path.join(args.out, "gpu_check.md"), "w") as f:
            f.write(to_markdown(res) + "\n")
    return res


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    r = run(p.parse_args())
    print(to_markdown(r))
