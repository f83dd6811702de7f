"""Decode throughput: clips per second for one clip per video open, as the datasets load them.

    python -m pks4_lit.bench.decode            # or: pks4 bench decode [--frames 300 --repeats 20]

Writes its own videos (a textured pattern moving across the frame) to a temporary folder:
  h264_gop30   H.264 mp4, a keyframe every 30 frames
  h264_gop250  H.264 mp4, a keyframe every 250 frames
  vp9          VP9 webm (libvpx default keyframe interval), the SSv2 / synthetic-set codec
and, for each, times `VideoReader(path)` (demux + frame table) + `decode(indices)` for
  segment  8 segment-centre indices (sparse, TSN / SSv2 eval)
  dense    8 indices 4 apart, centred (I3D style)
with decode_mode seek (seek per group), linear (one pass from the start) and auto (per-video
choice, pks4_lit.data.decode), plus `whole`: decode and convert every frame of the file, then
pick the 8 (what torchvision.io.read_video-style loaders do).
One decode thread (as in a DataLoader worker). Figures: median (and min: the better estimate on a
shared, loaded machine) of `repeats` runs; every mode is first checked to return the same frames.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import av
import numpy as np

from pks4_lit.command import script_main
from pks4_lit.data.decode import VideoReader
from pks4_lit.data.sampling import dense_indices, segment_indices

VIDEOS = {"h264_gop30": ("libx264", 30, ".mp4"), "h264_gop250": ("libx264", 250, ".mp4"), "vp9": ("libvpx-vp9", None, ".webm")}
MODES = ("seek", "linear", "auto", "whole")


def write_bench_video(path: Path, codec: str, gop: int | None, frames: int, width: int, height: int, fps: int = 30):
    rng = np.random.default_rng(0)
    tex = (rng.random((height, 2 * width, 3)) * 80).astype(np.uint8)
    yy, xx = np.mgrid[0:height, 0:2 * width]
    base = (((xx // 16 + yy // 16) % 2)[..., None] * 120 + tex).astype(np.uint8)  # checker + noise texture
    with av.open(str(path), "w", format="webm" if path.suffix == ".webm" else None) as c:
        s = c.add_stream(codec, rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        opts = {"threads": "2"}
        if codec == "libx264":
            opts.update({"preset": "veryfast", "x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0"})
        else:
            opts.update({"deadline": "realtime", "cpu-used": "8", "crf": "32", "b": "0"})
        s.options = opts
        for t in range(frames):
            shift = (t * 3) % width
            img = np.ascontiguousarray(base[:, shift:shift + width])
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _load(path: Path, sampler: str, mode: str, T: int) -> np.ndarray:
    with VideoReader(path, threads=1) as r:
        n = r.num_frames
        idx = segment_indices(n, T) if sampler == "segment" else dense_indices(n, T, 4)
        if mode == "whole":
            return r.decode(range(n), mode="linear")[idx]
        return r.decode(idx, mode=mode)


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--frames", type=int, default=300, help="frames per bench video")
    parser.add_argument("--size", type=int, nargs=2, default=[320, 240], metavar=("W", "H"))
    parser.add_argument("--num-frames", type=int, default=8, help="frames per clip (T)")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--dir", default=None, help="where to write the videos (default: a temporary folder)")


def run(args) -> dict:
    import torch

    torch.set_num_threads(1)
    out = {"machine": f"{platform.machine()} {platform.processor() or ''}".strip(), "av": av.__version__,
           "frames": args.frames, "size": list(args.size), "T": args.num_frames, "repeats": args.repeats, "results": {}}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.dir or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for name, (codec, gop, ext) in VIDEOS.items():
            path = folder / f"{name}{ext}"
            write_bench_video(path, codec, gop, args.frames, *args.size)
            with VideoReader(path) as r:
                info = {"num_frames": r.num_frames, "keyframes": len(r.keyframes), "MB": round(path.stat().st_size / 2**20, 2)}
                for sampler in ("segment", "dense"):
                    n = r.num_frames
                    idx = segment_indices(n, args.num_frames) if sampler == "segment" else dense_indices(n, args.num_frames, 4)
                    plan = r.plan([r.frame_of(i) for i in idx])
                    info[f"auto_{sampler}"] = "linear" if len(plan) == 1 and plan[0][0] == 0 else f"seek x{len(plan)}"
            for sampler in ("segment", "dense"):
                ref = _load(path, sampler, "whole", args.num_frames)
                for mode in MODES:
                    assert np.array_equal(_load(path, sampler, mode, args.num_frames), ref), (name, sampler, mode)
                    times = []
                    for _ in range(args.repeats):
                        t0 = time.perf_counter()
                        _load(path, sampler, mode, args.num_frames)
                        times.append(time.perf_counter() - t0)
                    ms, best = statistics.median(times) * 1e3, min(times) * 1e3
                    info[f"{sampler}/{mode}"] = {"ms": round(ms, 2), "clips_per_s": round(1e3 / ms, 1), "min_ms": round(best, 2)}
            out["results"][name] = info
    return out


def main(argv=None) -> None:
    script_main(__name__, "pks4 bench decode", argv)


if __name__ == "__main__":
    main()
