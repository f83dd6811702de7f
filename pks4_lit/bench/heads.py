"""Training cost of each temporal head as the clip grows: time, memory, FLOPs, tunable parameters.

    python -m pks4_lit.bench.heads --T 8 16 32 64 128          # or: pks4 bench heads ...

Rows: the temporal heads of `pks4_lit.models` (tsn, attention, ssm, global_ssm, pks4) and the
ST-Adapter baseline (adapters inside a frozen backbone, `pks4_lit.models.st_adapter`, TSN pooling).
Two modes (`--modes`):
  head  the temporal module alone on random features X [B,T,C,h,w] (default 2×T×112×7×7), then
        mean-pool, LayerNorm, linear, cross-entropy: what grows with T inside the head.
  e2e   a full training step from uint8 pixels through `VideoClassifier` (default EfficientNet-Lite0
        at 112 px, `feature_index=-2`: a 7×7×112 map). The backbone is frozen under no_grad for the
        heads; ST-Adapter backpropagates through it (that is its cost). st_adapter is e2e only.

Per (mode, row, T), one training step = zero_grad, forward, cross-entropy, backward (`--interleave`:
the cases' timed steps alternate round-robin, so that load from other jobs falls on all of them alike;
the output records the load average at start and end):
  step_s        fastest of `--repeats` timed steps after one warm-up step (the least disturbed by
                other jobs on a shared machine; the median is kept as step_s_median)
  step_cpu_s    the least process CPU time of those steps (on CPU with --threads 1: the step's own
                compute, less inflated than wall time when other jobs share the cores)
  saved_MB      bytes autograd stores for backward during the forward (saved_tensors_hooks; each
                storage counted once, parameters excluded): deterministic, and what dominates
                training memory; on CUDA also `cuda_peak_MB` (max_memory_allocated above the start)
  rss_peak_MB   Linux only: rise of the process' peak RSS (VmHWM, reset via /proc/self/clear_refs)
                during one step above the RSS before it; allocator caching makes it indicative only
  train_GFLOPs_per_clip  forward+backward FLOPs / batch, counted by torch.utils.flop_counter
                (matmuls, convolutions; sdpa forced to its math path so attention's bmm are seen) plus
                two analytic terms for work the counter does not see (it ignores pointwise ops):
                  selective scan: 9·b·d·N·L FLOPs forward (mamba-ssm issue #110, as in VMamba's
                    flops_selective_scan_fn), ×3 for forward+backward; counted per call, the scan
                    replaced during the count by a pointwise stand-in (nothing double-counted)
                  correlation volume: 2·C·K FLOPs per location and frame forward (K=(2r+1)² shifted
                    dot products of C channels), ×3 for forward+backward
  quad_GFLOPs_per_clip  the attention-score part (bmm of QKᵀ and AV, forward+backward): the term
                that grows as T²
  tunable_params parameters with requires_grad
  time_embed_resampled_from  (attention, T > its max_frames only) the head's max_frames: its time
                embedding is resampled linearly to T rows. The head warns about that (per instance and T);
                here its warning is silenced and said once per run, one line per row, at the end.
Slopes are least-squares fits of log(metric) against log(T): over all T, and over the largest
three T ("tail", closer to the asymptotic order).
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from pks4_lit.command import script_main
from pks4_lit.models import KinematicPriorEncoder, VideoClassifier, build_temporal_head
from pks4_lit.models.attention import TemporalAttention
from pks4_lit.models.st_adapter import add_st_adapters

HEADS = ("tsn", "attention", "ssm", "global_ssm", "pks4")
ROWS = HEADS + ("st_adapter",)
MODES = ("head", "e2e")
NUM_CLASSES = 10
RESAMPLED_WARNING = r"attention head: T=\d+ frames exceed max_frames"   # TemporalAttention.time_embedding
# the package re-exports the function `selective_scan`, which shadows the submodule's name
scan_module = importlib.import_module("pks4_lit.ops.selective_scan")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--T", nargs="+", type=int, default=[8, 16, 32, 64, 128], help="frames per clip")
    parser.add_argument("--extra-T", nargs="*", type=int, default=[],
                        help="further T for head mode only (e.g. 256 512 to see attention's T²)")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--dim", type=int, default=112, help="head mode: feature channels C")
    parser.add_argument("--size", type=int, default=7, help="head mode: feature map h = w")
    parser.add_argument("--backbone", default="efficientnet_lite0", help="e2e mode: timm model")
    parser.add_argument("--feature-index", type=int, default=-2, help="e2e mode: backbone stage")
    parser.add_argument("--img-size", type=int, default=112, help="e2e mode: frame side in pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--interleave", action="store_true",
                        help="time the (row, T) cases round-robin, one step each per round, so that a load "
                             "change on a shared machine hits every case alike (memory/FLOPs unchanged)")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu or cuda")
    parser.add_argument("--max-step-s", type=float, default=60.0,
                        help="skip larger T for a row once one step takes longer than this")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="also write the JSON to this file")


# ---- models and inputs ------------------------------------------------------------------------
class HeadStep(nn.Module):
    """Temporal head + the classifier's pooling and linear layer, on features [B,T,C,h,w]."""

    def __init__(self, head: str, dim: int):
        super().__init__()
        self.head = build_temporal_head(head, dim)
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, NUM_CLASSES)

    def forward(self, X):                                              # [B,T,C,h,w] -> [B,K]
        return self.fc(self.norm(self.head(X).mean(dim=(1, 3, 4))))


def build(mode: str, row: str, args) -> nn.Module:
    if mode == "head":
        if row == "st_adapter":
            raise ValueError("st_adapter lives inside the backbone: it has no head-only mode")
        return HeadStep(row, args.dim)
    model = VideoClassifier.from_names(NUM_CLASSES, backbone=args.backbone, head="tsn" if row == "st_adapter" else row,
                            feature_index=args.feature_index, freeze="all")
    if row == "st_adapter":
        add_st_adapters(model.backbone)
    return model


def make_batch(mode: str, T: int, args, device, gen: torch.Generator):
    B = args.batch
    if mode == "head":
        x = torch.randn(B, T, args.dim, args.size, args.size, generator=gen)
    else:
        x = torch.randint(0, 256, (B, T, 3, args.img_size, args.img_size), generator=gen, dtype=torch.uint8)
    y = torch.randint(0, NUM_CLASSES, (B,), generator=gen)
    return x.to(device), y.to(device)


def train_step(model: nn.Module, x, y) -> None:
    model.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()


# ---- measurements -----------------------------------------------------------------------------
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def time_steps(model, x, y, repeats: int, device) -> tuple[list[float], list[float]]:
    """Wall-clock and process CPU times of `repeats` steps."""
    wall, cpu = [], []
    for _ in range(repeats):
        _sync(device)
        c0, t0 = time.process_time(), time.perf_counter()
        train_step(model, x, y)
        _sync(device)
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return wall, cpu


def saved_bytes(model, x, y) -> int:
    """Bytes autograd keeps for backward in one step: each storage once, parameters excluded.
    Counted over the forward only: what is held between forward and backward (ops that
    recompute in their backward pack transient tensors there; RSS/CUDA peaks see those)."""
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        try:
            s = t.untyped_storage()
        except (RuntimeError, NotImplementedError):                   # no plain storage (subclass)
            return t
        if s.data_ptr() not in params:
            seen[s.data_ptr()] = max(seen.get(s.data_ptr(), 0), s.nbytes())
        return t

    model.zero_grad(set_to_none=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = F.cross_entropy(model(x), y)
    loss.backward()
    return sum(seen.values())


def _status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def rss_peak_bytes(model, x, y) -> int | None:
    """Rise of peak RSS during one step (Linux: VmHWM reset by writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        return None
    before = _status_kb("VmRSS")
    train_step(model, x, y)
    peak = _status_kb("VmHWM")
    return None if before is None or peak is None else max(0, peak - before) * 1024


def cuda_peak_bytes(model, x, y, device) -> int:
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats(device)
    start = torch.cuda.memory_allocated(device)
    train_step(model, x, y)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated(device) - start


def scan_flops(b: int, d: int, N: int, L: int) -> int:
    """Forward FLOPs of one selective scan (mamba-ssm issue #110): 9·b·d·N·L."""
    return 9 * b * d * N * L


@contextlib.contextmanager
def _analytic_counts(model: nn.Module):
    """Count the work FlopCounterMode cannot see (forward FLOPs; caller multiplies by 3)."""
    counts = {"scan": 0, "correlation": 0, "forward": True}
    real_ref = scan_module.selective_scan_ref

    def counting_ref(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                     return_last_state=False):
        # Stand-in with the scan's shapes and gradient paths built from pointwise ops and
        # reductions only, which FlopCounterMode does not count (nor would it count the real
        # scan's: it is pointwise too). Every counted op around it sees the same shapes, so the
        # count is the real model's, without a Python loop over L = T·h·w steps for global_ssm.
        b, d, L = u.shape
        counts["scan"] += scan_flops(b, d, A.shape[1], L)
        y = u * delta + (A.sum() + B.sum() + C.sum()) * 0
        if D is not None:
            y = y + u * D[:, None]
        if z is not None:
            y = y * F.silu(z)
        return (y, u.new_zeros(b, d, A.shape[1])) if return_last_state else y

    def on_encoder(mod, inputs):
        # forward passes only: a recompute of the priors during the backward (PKS4's
        # recompute_priors) is not a second forward of the model
        if mod.use_correlation and counts["forward"]:
            B, T, C, h, w = inputs[0].shape
            counts["correlation"] += 2 * C * (2 * mod.radius + 1) ** 2 * B * T * h * w

    hooks = [m.register_forward_pre_hook(on_encoder) for m in model.modules()
             if isinstance(m, KinematicPriorEncoder)]
    old_env = os.environ.get("PKS4_SCAN_IMPL")
    os.environ["PKS4_SCAN_IMPL"] = "ref"
    scan_module.selective_scan_ref = counting_ref
    try:
        yield counts
    finally:
        scan_module.selective_scan_ref = real_ref
        if old_env is None:
            os.environ.pop("PKS4_SCAN_IMPL", None)
        else:
            os.environ["PKS4_SCAN_IMPL"] = old_env
        for h in hooks:
            h.remove()


def count_flops(model, x, y) -> dict:
    """Training FLOPs of one step, split into counted matmul-type work, the attention-score bmm and
    the analytic scan / correlation terms (see module docstring)."""
    with _analytic_counts(model) as extra, sdpa_kernel(SDPBackend.MATH), \
            FlopCounterMode(display=False) as fc:
        model.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        extra["forward"] = False
        loss.backward()
    per_op = {str(k): int(v) for k, v in fc.get_flop_counts()["Global"].items()}
    has_scan = any(n.endswith("A_log") for n, _ in model.named_parameters())
    if has_scan and extra["scan"] == 0:
        raise RuntimeError("the model has SSM parameters but no selective scan was counted: "
                           "it does not go through pks4_lit.ops.selective_scan")
    counted = int(fc.get_total_flops())
    scan, corr = 3 * extra["scan"], 3 * extra["correlation"]
    return dict(total=counted + scan + corr, counted=counted, scan=scan, correlation=corr,
                quadratic=per_op.get("aten.bmm", 0) if has_attention(model) else 0, per_op=per_op)


def has_attention(model) -> bool:
    return any(type(m).__name__ == "TemporalAttention" for m in model.modules())


def resampled_from(model, T: int) -> int | None:
    """max_frames of an attention head in `model` whose time embedding is resampled to T rows, else None."""
    return next((m.max_frames for m in model.modules() if isinstance(m, TemporalAttention) and T > m.max_frames),
                None)


def resampled_note(results: list[dict]) -> list[str]:
    """One line per (mode, row) whose attention head resampled its time embedding, with every such T."""
    found = {}
    for r in results:
        if r.get("time_embed_resampled_from"):
            found.setdefault((r["mode"], r["row"], r["time_embed_resampled_from"]), []).append(r["T"])
    return [f"[bench heads] {mode} {row}: at T={', '.join(map(str, Ts))} (> the head's max_frames={m}) its time "
            f"embedding was resampled linearly to T rows (max_frames >= T learns one row per frame)"
            for (mode, row, m), Ts in found.items()]


def tunable_params(model) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def fit_slope(Ts, values) -> float | None:
    pts = [(t, v) for t, v in zip(Ts, values) if v is not None and v > 0]
    if len(pts) < 2:
        return None
    lt, lv = np.log([p[0] for p in pts]), np.log([p[1] for p in pts])
    return float(np.polyfit(lt, lv, 1)[0])


def machine_info(device) -> dict:
    info = dict(platform=platform.platform(), machine=platform.machine(), cpu_count=os.cpu_count(),
                torch=torch.__version__, threads=torch.get_num_threads(), device=str(device))
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def prepare(mode: str, row: str, T: int, args, device):
    """(model in train mode, x, y) after one warm-up step."""
    gen = torch.Generator().manual_seed(args.seed)
    torch.manual_seed(args.seed)
    model = build(mode, row, args).to(device).train()
    x, y = make_batch(mode, T, args, device, gen)
    train_step(model, x, y)                                            # warm-up
    return model, x, y


def measure(mode: str, row: str, T: int, args, device, timed=None) -> dict:
    """One case's results; `timed` = (model, x, y, wall times, CPU times) from an interleaved run."""
    if timed is None:
        model, x, y = prepare(mode, row, T, args, device)
        times, cpu_times = time_steps(model, x, y, args.repeats, device)
    else:
        model, x, y, times, cpu_times = timed
    res = dict(mode=mode, row=row, T=T, batch=args.batch, tunable_params=tunable_params(model))
    max_frames = resampled_from(model, T)
    if max_frames:
        res["time_embed_resampled_from"] = max_frames
    # best of N: on a shared machine the fastest step is the least disturbed one
    res.update(step_s=min(times), step_s_median=statistics.median(times), step_s_all=times,
               clips_per_s=args.batch / min(times), step_cpu_s=min(cpu_times))
    res["saved_MB"] = saved_bytes(model, x, y) / 2 ** 20
    if device.type == "cuda":
        res["cuda_peak_MB"] = cuda_peak_bytes(model, x, y, device) / 2 ** 20
    else:
        rss = rss_peak_bytes(model, x, y)
        res["rss_peak_MB"] = None if rss is None else rss / 2 ** 20
    if not args.no_flops:
        fl = count_flops(model, x, y)
        B = args.batch
        res.update(train_GFLOPs_per_clip=fl["total"] / B / 1e9, counted_GFLOPs_per_clip=fl["counted"] / B / 1e9,
                   scan_GFLOPs_per_clip=fl["scan"] / B / 1e9, corr_GFLOPs_per_clip=fl["correlation"] / B / 1e9,
                   quad_GFLOPs_per_clip=fl["quadratic"] / B / 1e9)
    return res


def slopes(results: list[dict]) -> dict:
    out = {}
    keys = ("step_s", "step_cpu_s", "saved_MB", "train_GFLOPs_per_clip", "quad_GFLOPs_per_clip")
    for mode in sorted({r["mode"] for r in results}):
        for row in dict.fromkeys(r["row"] for r in results if r["mode"] == mode):
            rs = sorted((r for r in results if r["mode"] == mode and r["row"] == row), key=lambda r: r["T"])
            Ts = [r["T"] for r in rs]
            out.setdefault(mode, {})[row] = {
                k: dict(all=fit_slope(Ts, [r.get(k) for r in rs]),
                        tail=fit_slope(Ts[-3:], [r.get(k) for r in rs[-3:]]))
                for k in keys}
    return out


def time_interleaved(cases, args, device) -> dict:
    """Wall and CPU times of every (mode, row, T) case, one step per case per round."""
    prepared = {c: prepare(*c, args, device) for c in cases}
    times = {c: ([], []) for c in cases}
    for _ in range(args.repeats):
        for c, (model, x, y) in prepared.items():
            wall, cpu = time_steps(model, x, y, 1, device)
            times[c][0].extend(wall)
            times[c][1].extend(cpu)
    return {c: (*prepared[c], *times[c]) for c in cases}


def measure_all(args, device) -> tuple[list[dict], list[dict]]:
    """(results, skipped) of every (mode, row, T) case, each result printed as it comes."""
    results, skipped = [], []
    timed = {}
    if getattr(args, "interleave", False):                  # (--max-step-s does not apply then)
        timed = time_interleaved([(mode, row, T) for mode in args.modes
                                  for T in sorted(set(args.T) | (set(args.extra_T) if mode == "head" else set()))
                                  for row in args.rows if not (mode == "head" and row == "st_adapter")],
                                 args, device)
    for mode in args.modes:
        Ts = sorted(set(args.T) | (set(args.extra_T) if mode == "head" else set()))
        for row in args.rows:
            if mode == "head" and row == "st_adapter":
                continue
            for T in Ts:
                if any(s["mode"] == mode and s["row"] == row for s in skipped):
                    skipped.append(dict(mode=mode, row=row, T=T, why="a smaller T exceeded --max-step-s"))
                    continue
                r = measure(mode, row, T, args, device, timed.pop((mode, row, T), None))
                results.append(r)
                print(f"[bench heads] {mode:4s} {row:10s} T={T:4d} step={r['step_s']:.3f}s "
                      f"cpu={r['step_cpu_s']:.3f}s "
                      f"saved={r['saved_MB']:.1f}MB GFLOPs/clip={r.get('train_GFLOPs_per_clip', float('nan')):.3f}",
                      file=sys.stderr, flush=True)
                if r["step_s"] > args.max_step_s:
                    skipped.append(dict(mode=mode, row=row, T=T, why="step exceeded --max-step-s"))
    return results, skipped


def run(args) -> dict:
    if any(t < 2 for t in args.T + list(args.extra_T)):
        raise ValueError("every T must be >= 2")
    torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    load_start = os.getloadavg() if hasattr(os, "getloadavg") else None
    with warnings.catch_warnings():                         # said once, by resampled_note
        warnings.filterwarnings("ignore", message=RESAMPLED_WARNING, category=UserWarning)
        results, skipped = measure_all(args, device)
    for line in resampled_note(results):
        print(line, file=sys.stderr, flush=True)
    out = dict(bench="heads", date=datetime.datetime.now().isoformat(timespec="seconds"),
               command=" ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
               machine=machine_info(device),
               load_average=dict(start=load_start, end=os.getloadavg() if load_start else None),
               config={k: v for k, v in vars(args).items() if k != "func"},
               results=results, skipped=[s for s in skipped if s["why"].startswith("a smaller")],
               slopes=slopes(results))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    return out


def main(argv=None) -> None:
    script_main(__name__, "pks4 bench heads", argv)


if __name__ == "__main__":
    main()
