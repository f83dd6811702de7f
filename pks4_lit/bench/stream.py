"""Online recognition cost per frame: streaming (`VideoClassifier.stream`) vs a sliding window.

    python -m pks4_lit.bench.stream --frames 10000 --windows 8 16        # or: pks4 bench stream ...

The model is the synthetic config's (EfficientNet-Lite0 random init, `feature_index=3`: a 6×6×112
map at 96 px; pks4 head d_state 8, prior_dim 16, radius 1), batch 1, eval mode, no_grad, on CPU
with `--threads` threads (1 by default: steadier numbers on a shared machine). Frames are random
uint8 images (cost does not depend on content), cycled from a pool.

  stream      every frame goes through the backbone once and the head takes one recurrent step;
              logits after every frame. Timed against the windows (below), then alone from a fresh
              state for `--frames` frames: per-frame CPU time around T = 10, 100, 1000, 10000
              (median of the frames in [0.9·T, T)), process RSS growth at those points, and the
              bytes of state carried from frame to frame.
  window W    the usual way to get an online prediction from an offline model: at every frame run
              `forward` on the last W frames (backbone on all W, head on all W). Constant in T by
              construction, so it is timed on `--window-frames` frames once the window is full.
  window W, cached features   the same, but each frame's backbone features are computed once and
              kept for W frames: only the head (and pooling, classifier) re-runs on the window. A
              cheaper baseline than the usual one; reported so the speed-up is not only the backbone.
Per-frame cost is measured twice: CPU time of the process (`time.process_time`; with one thread
it is the work done, and barely moved by other jobs on a shared machine) and wall time. Each is
summarised by its median (and min); speed-ups are ratios of CPU-time medians from the same
process (wall-time ratios beside them). Peak RSS rise (Linux VmHWM) is measured per method.
"""
from __future__ import annotations

import argparse
import collections
import datetime
import itertools
import platform
import statistics
import time

import torch

from pks4_lit.command import script_main

MARKS = (10, 100, 1000, 10000, 100000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=10000, help="frames streamed per head")
    parser.add_argument("--windows", type=int, nargs="+", default=[8, 16], help="sliding-window lengths W")
    parser.add_argument("--window-frames", type=int, default=150, help="timed frames per sliding window")
    parser.add_argument("--heads", nargs="+", default=["pks4"], help="streamed heads: pks4, ssm, tsn")
    parser.add_argument("--size", type=int, default=96, help="frame side in pixels")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--feature-index", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: leave torch's default)")
    parser.add_argument("--seed", type=int, default=0)


def head_kwargs(head: str) -> dict:
    return {"pks4": dict(d_state=8, prior_dim=16, radius=1), "ssm": dict(d_state=8)}.get(head, {})


def build(args, head: str):
    from pks4_lit.models import VideoClassifier

    torch.manual_seed(args.seed)
    return VideoClassifier.from_names(14, backbone=args.backbone, head=head, head_kwargs=head_kwargs(head),
                                      feature_index=args.feature_index).eval()


# ---------------------------------------------------------------------------- memory (Linux)
def _status(key: str) -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024                        # kB → MB
    except OSError:
        return None
    return None


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def rss_mb() -> float | None:
    return _status("VmRSS")


def peak_mb() -> float | None:
    return _status("VmHWM")


# ---------------------------------------------------------------------------- methods
def now() -> tuple[float, float]:
    return time.process_time(), time.perf_counter()


def since(start: tuple[float, float]) -> tuple[float, float]:
    """(CPU ms, wall ms) since `start`."""
    cpu, wall = now()
    return (cpu - start[0]) * 1e3, (wall - start[1]) * 1e3


def summary(costs: list[tuple[float, float]]) -> dict:
    cpu, wall = [c for c, _ in costs], [w for _, w in costs]
    r = lambda x: round(x, 3)  # noqa: E731
    return dict(cpu_median_ms=r(statistics.median(cpu)), cpu_min_ms=r(min(cpu)),
                wall_median_ms=r(statistics.median(wall)), wall_min_ms=r(min(wall)), frames=len(costs))


class Streamer:
    """`VideoClassifier.stream` driven one frame per `step()`."""

    def __init__(self, model, pool):
        self.logits = model.stream(pool[t % len(pool)] for t in itertools.count())

    def step(self):
        next(self.logits)


class Window:
    """At every frame, the offline model on the last W frames (or, `cached`, the head on the
    last W frames' backbone features, each computed once)."""

    def __init__(self, model, pool, W: int, cached: bool):
        self.model, self.pool, self.cached = model, pool, cached
        self.window, self.t = collections.deque(maxlen=W), 0

    def step(self):
        m, x = self.model, self.pool[self.t % len(self.pool)]                    # [1,3,H,W]
        self.t += 1
        with torch.no_grad():
            if not self.cached:
                self.window.append(x)
                m(torch.stack(list(self.window), 1))                               # [1,≤W,3,H,W]
                return
            self.window.append(m.backbone(m.normalize(x[:, None])))                # [1,1,C,h,w]
            out = m.head(torch.cat(list(self.window), 1))                          # [1,≤W,C,h,w]
            m.fc(m.dropout(m.norm(out.mean(dim=(1, 3, 4)))))


def state_bytes(model, frame) -> int:
    """Bytes the stream carries between frames: the head's state plus the running sum [B,C]."""
    with torch.no_grad():
        f = model.backbone(model.normalize(frame[:, None]))[:, 0]               # [B,C,h,w]
    total = f.shape[0] * f.shape[1] * 4
    if hasattr(model.head, "allocate_state"):
        s = model.head.allocate_state(f.shape[0], *f.shape[2:], f.device, f.dtype)
        tensors = [s.conv, s.ssm] + ([f] if getattr(model.head, "use_priors", False) else [])  # prev ~ f
        total += sum(t.numel() * t.element_size() for t in tensors if t is not None)
    return total


def timed(runner) -> tuple[float, float]:
    start = now()
    runner.step()
    return since(start)


def compare(runners: dict, frames: int, warmup: int) -> dict:
    """Round robin, one frame per runner per round, so that all see the same machine load; the
    first `warmup` rounds (windows filling, caches warming) are not recorded."""
    costs = {name: [] for name in runners}
    for t in range(warmup + frames):
        for name, runner in runners.items():
            cost = timed(runner)
            if t >= warmup:
                costs[name].append(cost)
    return {name: summary(c) for name, c in costs.items()}


def flat_stream(runner: Streamer, frames: int) -> dict:
    """A fresh stream, alone, for `frames` frames: CPU ms per frame around each T (median over
    frames [0.9·T, T)), RSS growth since the first frame, late/early ratio (last tenth vs second)."""
    cpu, rss_at = [], {}
    rss0 = rss_mb()
    for t in range(1, frames + 1):
        cpu.append(timed(runner)[0])
        if t in MARKS and rss0 is not None:
            rss_at[t] = round(rss_mb() - rss0, 2)
    around = {m: round(statistics.median(cpu[int(0.9 * m):m]), 3) for m in MARKS if m <= frames}
    tenth = max(1, frames // 10)
    early, late = statistics.median(cpu[tenth:2 * tenth]), statistics.median(cpu[-tenth:])
    return dict(frames=frames, first_frame_cpu_ms=round(cpu[0], 3), cpu_median_ms_around_T=around,
                late_over_early=round(late / early, 3), rss_rise_MB_after_T=rss_at)


def peak_rise(make_runner, steps: int) -> float | None:
    """Rise of the process' peak RSS above its current RSS over `steps` frames of a fresh runner
    (indicative: the allocator may reuse memory an earlier method freed)."""
    runner = make_runner()
    rss0 = rss_mb()
    _reset_peak()
    for _ in range(steps):
        runner.step()
    peak = peak_mb()
    return None if rss0 is None or peak is None else round(peak - rss0, 2)


def held_bytes(model, frame, W: int, cached: bool) -> int:
    """What a sliding window keeps between frames: W frames, or W frames' backbone features."""
    if not cached:
        return W * frame.numel() * frame.element_size()
    with torch.no_grad():
        f = model.backbone(model.normalize(frame[:, None]))
    return W * f.numel() * f.element_size()


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(args.seed)
    pool = [torch.randint(0, 256, (1, 3, args.size, args.size), dtype=torch.uint8, generator=g) for _ in range(32)]
    warmup = max(args.windows)
    models = {head: build(args, head) for head in dict.fromkeys(["pks4", *args.heads])}
    streamers = {head: Streamer(models[head], pool) for head in args.heads}
    runners = {f"stream_{head}": r for head, r in streamers.items()}
    for W in args.windows:
        runners[f"window_{W}"] = Window(models["pks4"], pool, W, cached=False)
        runners[f"window_{W}_cached_features"] = Window(models["pks4"], pool, W, cached=True)
    memory = {}
    for head in args.heads:
        memory[f"stream_{head}"] = dict(held_bytes=state_bytes(models[head], pool[0]),
                                        peak_rss_rise_MB=peak_rise(lambda: Streamer(models[head], pool), warmup + 3))
    for cached in (True, False):
        for W in args.windows:
            name = f"window_{W}" + ("_cached_features" if cached else "")
            memory[name] = dict(held_bytes=held_bytes(models["pks4"], pool[0], W, cached),
                                peak_rss_rise_MB=peak_rise(lambda: Window(models["pks4"], pool, W, cached), W + 3))
    per_frame = compare(runners, args.window_frames, warmup)
    result = dict(
        machine=dict(platform=platform.platform(), processor=platform.processor() or platform.machine(),
                     torch=torch.__version__, threads=torch.get_num_threads(),
                     date=datetime.datetime.now().isoformat(timespec="seconds")),
        setup=dict(backbone=args.backbone, feature_index=args.feature_index, size=args.size, batch=1,
                   frames=args.frames, window_frames=args.window_frames, warmup=warmup),
        per_frame=per_frame, memory=memory)
    for head in args.heads:   # how many times cheaper streaming is per frame than each window
        s = per_frame[f"stream_{head}"]
        result[f"speedup_stream_{head}"] = {
            name: dict(cpu=round(r["cpu_median_ms"] / s["cpu_median_ms"], 2),
                       wall=round(r["wall_median_ms"] / s["wall_median_ms"], 2))
            for name, r in per_frame.items() if name.startswith("window")}
    result["stream_long"] = {head: flat_stream(Streamer(models[head], pool), args.frames) for head in args.heads}
    return result


def main(argv=None) -> None:
    script_main(__name__, "python -m pks4_lit.bench.stream", argv)


if __name__ == "__main__":
    main()
