"""`pks4 stream`: online recognition of one video file, a prediction after every frame.

    pks4 stream --config conf/synthetic/pks4.yaml --ckpt_path runs/.../best.ckpt VIDEO
                [--stride N] [--window N] [--every N] [--out FILE.csv|FILE.jsonl] [--topk 5] [--device D]

One sequential PyAV pass over the file (no seeking, constant memory however long the video): every
`stride`-th frame is scaled and centre-cropped exactly as the test pipeline does (short side to
`data.short_side` in swscale, then `eval_crops(crop_size, short_side, 1)`) and fed to
`VideoClassifier.stream`, whose logits after frame t equal the offline forward on frames 0..t
(`--window N`: pooled over the head outputs of the last N frames instead, so that the prediction
follows an action that changes; the head's state still carries the whole past).

Frame selection: `--stride` (default: `data.frame_stride` when the config samples densely; 1 for the
segment sampler, whose spacing depends on each training clip's length: set it to about
clip frames / num_frames to see frames as far apart as in training).

Output per reported frame (every `--every` frames, and always the last): frame index in the file,
its presentation time in seconds, the model latency of that frame in ms (backbone + head step +
classifier; decoding excluded) and the top-k classes with probabilities; printed as text, or written
as CSV or JSON Lines when `--out` ends in .csv or .jsonl. A JSON summary (frames, latency mean /
median / p95 / max, decode time) goes to stdout at the end (stderr when the predictions go to stdout).

Settings come from, in increasing priority: VideoDataModule's defaults, the datamodule
hyper-parameters saved in the checkpoint, the `data:` section of each `--config` file (merged left
to right). The model is rebuilt from the checkpoint's own hyper-parameters
(`PKS4Module.load_from_checkpoint`; its backbone weights come from the checkpoint, so the
backbone file named in the config is not needed).
"""
from __future__ import annotations

import argparse
import csv
import inspect
import io
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

OUT_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
DATA_KEYS = ("sampler", "frame_stride", "num_frames", "crop_size", "short_side")


class StreamError(RuntimeError):
    """Bad input to `pks4 stream` (file, checkpoint, config, head): reported as one line."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("video", help="video file to recognise")
    parser.add_argument("--config", "-c", action="append", default=[], required=True,
                        help="YAML config (its data: section gives crop/short side/stride); repeatable")
    parser.add_argument("--ckpt_path", required=True, help="checkpoint written by pks4 fit")
    parser.add_argument("--stride", type=int, default=None,
                        help="use every N-th decoded frame (default: see module doc)")
    parser.add_argument("--window", type=int, default=None,
                        help="pool the head outputs of the last N frames (default: all frames so far)")
    parser.add_argument("--every", type=int, default=1, help="report every N-th frame (and the last)")
    parser.add_argument("--out", default=None, help="write predictions to FILE.csv or FILE.jsonl")
    parser.add_argument("--topk", type=int, default=5, help="classes per prediction")
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")


# ---------------------------------------------------------------------------------------- settings
def data_settings(configs: list[str], checkpoint: dict) -> dict:
    """The data keys of DATA_KEYS: defaults < checkpoint's datamodule hparams < each config's data:."""
    import yaml

    from pks4_lit.data.datamodule import VideoDataModule

    params = inspect.signature(VideoDataModule.__init__).parameters
    settings = {k: params[k].default for k in DATA_KEYS}
    saved = checkpoint.get("datamodule_hyper_parameters") or {}
    settings.update({k: saved[k] for k in DATA_KEYS if k in saved})
    for path in configs:
        try:
            loaded = yaml.safe_load(Path(path).read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise StreamError(f"cannot read config {path}: {type(e).__name__}: {e}") from None
        data = loaded.get("data") or {} if isinstance(loaded, dict) else {}
        settings.update({k: data[k] for k in DATA_KEYS if k in data})
    return settings


def load_checkpoint(path: str) -> dict:
    if not Path(path).is_file():
        raise StreamError(f"checkpoint not found: {path}")
    try:  # our own file (as pks4 test/predict load it); its hyper-parameters are not only tensors
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:
        raise StreamError(f"cannot read checkpoint {path}: {type(e).__name__}: {e}") from None


def load_model(path: str, checkpoint: dict, device: torch.device):
    """(VideoClassifier in eval mode on `device`, class names) from a `pks4 fit` checkpoint, rebuilt
    from its own hyper-parameters as `pks4 test --ckpt_path` does (typed `net` config included)."""
    from pks4_lit.lit_module import PKS4Module

    hparams = checkpoint.get("hyper_parameters")
    if not isinstance(hparams, dict) or "state_dict" not in checkpoint:
        raise StreamError(f"{path} is not a pks4 checkpoint (no hyper_parameters/state_dict)")
    # every weight is in the state dict: do not load backbone weights again from a file or the hub
    # (`checkpoint_path` cannot be a keyword override: it is load_from_checkpoint's own first argument)
    buffer = io.BytesIO()
    torch.save(dict(checkpoint, hyper_parameters=_without_weight_files(hparams)), buffer)
    buffer.seek(0)
    try:
        module = PKS4Module.load_from_checkpoint(buffer, map_location=device, weights_only=False)
    except (TypeError, ValueError) as e:
        raise StreamError(f"cannot rebuild the model of {path}: {e}") from None
    return module.model.eval(), list(module.class_names)


def _without_weight_files(config):
    """A copy of a (nested) hyper-parameter dict with every `checkpoint_path` None, `pretrained` False."""
    if isinstance(config, dict):
        out = {k: _without_weight_files(v) for k, v in config.items()}
        out.update({k: v for k, v in (("checkpoint_path", None), ("pretrained", False)) if k in out})
        return out
    if isinstance(config, list):
        return [_without_weight_files(v) for v in config]
    return config


# ---------------------------------------------------------------------------------------- frames
def decode_sequential(path: str, stride: int = 1, short_side: int | None = None):
    """One linear PyAV pass: yields (frame index, time in s, uint8 RGB [H,W,3]) for every
    `stride`-th frame in display order, downscaled in swscale to `short_side` (never upscaled),
    with the container's display rotation applied (multiples of 90°)."""
    import av

    if not Path(path).is_file():
        raise StreamError(f"{path}: file not found")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except Exception as e:
        raise StreamError(f"{path}: cannot open: {type(e).__name__}: {e}") from None
    with container:
        if not container.streams.video:
            raise StreamError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.codec_context.thread_count = 1
        fps = float(stream.average_rate) if stream.average_rate else None
        index = -1
        try:
            for frame in container.decode(stream):
                index += 1
                if index % stride:
                    continue
                seconds = frame.time if frame.time is not None else (index / fps if fps else float(index))
                yield index, float(seconds), _to_rgb(frame, short_side)
        except av.error.FFmpegError as e:
            if index < 0:
                raise StreamError(f"{path}: cannot decode: {type(e).__name__}: {e}") from None
            print(f"pks4 stream: {path}: decoding stopped after frame {index}: {e}", file=sys.stderr)
        if index < 0:
            raise StreamError(f"{path}: no frame could be decoded")


def _to_rgb(frame, short_side: int | None) -> np.ndarray:
    w, h = frame.width, frame.height
    if short_side and min(w, h) > short_side:
        s = short_side / min(w, h)
        rgb = frame.reformat(width=max(1, round(w * s)), height=max(1, round(h * s)), format="rgb24",
                             interpolation="AREA").to_ndarray()
    else:
        rgb = frame.to_ndarray(format="rgb24")
    rotation = int(round((getattr(frame, "rotation", 0) or 0) / 90.0)) % 4
    return np.ascontiguousarray(np.rot90(rgb, k=rotation)) if rotation else rgb


def to_model_input(rgb: np.ndarray, crop_size: int, short_side: int) -> torch.Tensor:
    """uint8 [H,W,3] → uint8 [1,3,crop,crop]: the test pipeline's centre view of one frame."""
    from pks4_lit.data.transforms import eval_crops

    frame = torch.from_numpy(rgb).permute(2, 0, 1)[None]                   # [1,3,H,W]
    return eval_crops(frame, crop_size, short_side, 1)[0]                   # [1,3,crop,crop]


# ---------------------------------------------------------------------------------------- run
def predictions(model, frames, device: torch.device, topk: int, window: int | None = None):
    """Streams (index, seconds, uint8 [1,3,S,S]) through `model`; yields one record per frame."""
    meta, handed = [], [0.0]

    def feed():
        for index, seconds, clip in frames:
            meta.append((index, seconds))
            x = clip.to(device)
            handed[0] = time.perf_counter()
            yield x

    for logits in model.stream(feed(), window=window):
        probs = logits.float().softmax(-1)[0]
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        latency = (time.perf_counter() - handed[0]) * 1e3
        p, i = probs.topk(min(topk, probs.numel()))
        index, seconds = meta[-1]
        yield dict(frame=index, time=round(seconds, 4), latency_ms=round(latency, 3),
                   top=[(int(c), float(q)) for c, q in zip(i, p)])


class Writer:
    """Text on stdout, or CSV / JSON Lines into a file chosen by its extension."""

    def __init__(self, out: str | None, class_names: list[str], topk: int):
        self.names, self.topk, self.kind, self.file = class_names, topk, "text", None
        if out is not None:
            self.kind = OUT_FORMATS.get(Path(out).suffix.lower())
            if self.kind is None:
                raise StreamError(f"--out {out}: use a .csv or .jsonl file")
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self.file = open(out, "w", newline="")
            if self.kind == "csv":
                self.csv = csv.writer(self.file)
                self.csv.writerow(["frame", "time", "latency_ms"] +
                                  [f"{c}{k}" for k in range(1, topk + 1) for c in ("class", "prob")])

    def write(self, rec: dict) -> None:
        named = [(self.names[c] if c < len(self.names) else str(c), p) for c, p in rec["top"]]
        if self.kind == "text":
            top = ", ".join(f"{n} {p:.3f}" for n, p in named)
            print(f"frame {rec['frame']:6d}  t={rec['time']:9.3f}s  {rec['latency_ms']:8.2f} ms  {top}", flush=True)
        elif self.kind == "csv":
            self.csv.writerow([rec["frame"], rec["time"], rec["latency_ms"]] + [x for pair in named for x in pair])
        else:
            top = [dict(index=c, name=n, prob=round(p, 6)) for (c, _), (n, p) in zip(rec["top"], named)]
            self.file.write(json.dumps(dict(frame=rec["frame"], time=rec["time"],
                                            latency_ms=rec["latency_ms"], top=top)) + "\n")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def run(args) -> dict:
    if any(v is not None and v < 1 for v in (args.stride, args.window, args.every, args.topk)):
        raise StreamError("--stride, --window, --every and --topk must be >= 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                              else "cpu" if args.device == "auto" else args.device)
    except RuntimeError as e:
        raise StreamError(f"--device {args.device}: {e}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise StreamError(f"--device {args.device}: CUDA is not available here")
    checkpoint = load_checkpoint(args.ckpt_path)
    settings = data_settings(args.config, checkpoint)
    stride = args.stride or (settings["frame_stride"] if settings["sampler"] == "dense" else 1)
    model, class_names = load_model(args.ckpt_path, checkpoint, device)
    if not hasattr(model, "check_streamable"):   # an end-to-end video model (VideoMamba): no frame recurrence
        raise StreamError(f"{type(model).__name__} cannot stream: only a VideoClassifier with a causal head "
                          f"(pks4, ssm, tsn) gives a prediction per frame")
    try:
        model.check_streamable()
    except NotImplementedError as e:
        raise StreamError(str(e)) from None
    del checkpoint

    crop, short = settings["crop_size"], settings["short_side"]
    decode_s = [0.0]

    def frames():
        it = decode_sequential(args.video, stride, short)
        while True:
            t0 = time.perf_counter()
            item = next(it, None)
            if item is None:
                return
            index, seconds, rgb = item
            clip = to_model_input(rgb, crop, short)
            decode_s[0] += time.perf_counter() - t0
            yield index, seconds, clip

    writer = Writer(args.out, class_names, args.topk)
    latencies, last, count = [], None, 0
    try:
        for rec in predictions(model, frames(), device, args.topk, args.window):
            latencies.append(rec["latency_ms"])
            if count % args.every == args.every - 1:
                writer.write(rec)
                last = None
            else:
                last = rec
            count += 1
        if last is not None:
            writer.write(last)
    finally:
        writer.close()
    lat = sorted(latencies)
    return dict(video=str(args.video), frames=count, stride=stride, window=args.window, crop_size=crop,
                device=str(device),
                out=args.out, latency_ms=dict(
                    mean=round(statistics.fmean(lat), 3), median=round(statistics.median(lat), 3),
                    p95=round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 3), max=round(lat[-1], 3),
                    first=round(latencies[0], 3)),
                decode_ms_per_frame=round(decode_s[0] * 1e3 / count, 3))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pks4 stream", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        summary = run(args)
    except StreamError as e:
        print(f"pks4 stream: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(summary), file=sys.stdout if args.out else sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
