"""Streaming on a long video whose action changes: test clips of different classes, one after another.

    python scripts/stream_demo.py --ckpt_path runs/synthetic/pks4/version_0/checkpoints/best.ckpt

1. takes one test clip per class in `--classes` order from the synthetic set (`pks4 synth`,
   data/synthetic), decodes all its frames and writes them back to back as one video
   (`runs/stream_demo/long.mp4`, H.264 at near-lossless quality, the clips' own frame rate);
2. runs `pks4 stream` on it (the documented command, printed), predictions to
   `runs/stream_demo/pred.jsonl`;
3. streams it again through `VideoClassifier.stream` to keep every class probability, both
   pooled over all frames so far (= the offline forward on the prefix) and over the last
   `--window` frames, and compares with the offline model on each clip alone;
4. plots the probability of each segment's true class over time (`docs/figures/streaming.png`)
   and writes a summary (`runs/stream_demo/summary.json`, also printed).
Run from the repository root (the config's paths are relative to it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av
import numpy as np
import torch

from pks4_lit import stream as stream_cli
from pks4_lit.data.decode import VideoReader

DEFAULT_CLASSES = [
    "Moving [something] from left to right", "Showing a cat", "Moving [something] from right to left",
    "Rotating [something] clockwise", "Showing a rocket", "Zooming in on [something]",
    "Rotating [something] counterclockwise", "Moving [something] up",
]


def pick_clips(root: Path, templates: list[str], split: str = "test") -> list[dict]:
    items = json.loads((root / f"{split}.json").read_text())
    labels = json.loads((root / "labels.json").read_text())
    picked = []
    for template in templates:
        found = next((x for x in items if x["template"] == template), None)
        if found is None:
            raise SystemExit(f"no {split} clip of class {template!r} under {root}")
        picked.append(dict(id=found["id"], template=template, label=int(labels[template.replace("[something]", "something")])))
    return picked


def write_long_video(root: Path, clips: list[dict], path: Path) -> tuple[list[int], float]:
    """Decode each clip, write all frames back to back; returns each clip's first frame index and fps."""
    starts, frames, fps = [], [], None
    for clip in clips:
        with VideoReader(root / f"{clip['id']}.webm") as reader:
            fps = fps or float(reader.stream.average_rate)
            starts.append(sum(len(f) for f in frames))
            frames.append(reader.decode(list(range(reader.num_frames)), mode="linear"))
    video = np.concatenate(frames)                                              # [N,H,W,3]
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=int(round(fps)), options={"crf": "4", "g": "12"})
        s.height, s.width, s.pix_fmt = video.shape[1], video.shape[2], "yuv444p"
        for img in video:
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return starts + [len(video)], fps


def stream_probs(model, video: Path, stride: int, crop: int, short: int, window: int | None):
    """(frame indices, times, probabilities [N,K]) streaming the file as `pks4 stream` does."""
    items = list(stream_cli.decode_sequential(str(video), stride, short))
    clips = [stream_cli.to_model_input(rgb, crop, short) for _, _, rgb in items]
    probs = torch.cat([lg.softmax(-1) for lg in model.stream(iter(clips), window=window)])
    return [i for i, _, _ in items], [t for _, t, _ in items], probs, clips


def plot(path: Path, times, segments, prefix, windowed, window, names, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(2, 1, figsize=(11, 6.2), sharex=True)
    for ax, probs, label in ((axes[0], windowed, f"pooled over the last {window} frames (--window {window})"),
                             (axes[1], prefix, "pooled over all frames so far (= forward on the prefix)")):
        for k, (t0, t1, cls) in enumerate(segments):
            color = colors[k % len(colors)]
            ax.axvspan(t0, t1, color=color, alpha=0.13, lw=0)
            ax.plot(times, probs[:, cls], color=color, lw=1.8, label=names[cls] if ax is axes[0] else None)
            ax.axvline(t0, color="0.6", lw=0.6, ls=":")
        ax.set_ylim(0, 1.02)
        ax.set_ylabel("probability")
        ax.set_title(label, fontsize=10, loc="left")
    axes[1].set_xlabel("time in the video (s); shaded: the true class of each segment, in its colour")
    axes[0].legend(fontsize=7.5, ncol=4, loc="upper center", bbox_to_anchor=(0.5, 1.42), frameon=False)
    fig.suptitle(title, fontsize=10, y=0.995)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--ckpt_path", required=True)
    p.add_argument("--config", default="conf/synthetic/pks4.yaml")
    p.add_argument("--synthetic", default="data/synthetic")
    p.add_argument("--classes", nargs="+", default=DEFAULT_CLASSES)
    p.add_argument("--stride", type=int, default=2, help="16-frame clips, 8 sampled in training: 2")
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--work", default="runs/stream_demo")
    p.add_argument("--figure", default="docs/figures/streaming.png")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (batch-1 streaming: 1 is enough)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    root, work = Path(args.synthetic), Path(args.work)

    clips = pick_clips(root, args.classes)
    video = work / "long.mp4"
    starts, fps = write_long_video(root, clips, video)

    command = ["--config", args.config, "--ckpt_path", args.ckpt_path, str(video), "--stride", str(args.stride),
               "--window", str(args.window), "--threads", str(args.threads), "--out", str(work / "pred.jsonl")]
    print("pks4 stream " + " ".join(command), flush=True)
    if stream_cli.main(command) != 0:
        return 1

    checkpoint = stream_cli.load_checkpoint(args.ckpt_path)
    settings = stream_cli.data_settings([args.config], checkpoint)
    model, names = stream_cli.load_model(args.ckpt_path, checkpoint, torch.device("cpu"))
    crop, short = settings["crop_size"], settings["short_side"]
    index, times, windowed, frames = stream_probs(model, video, args.stride, crop, short, args.window)
    prefix = torch.cat([lg.softmax(-1) for lg in model.stream(iter(frames))])
    seg_of = np.searchsorted(np.array(starts), np.array(index), side="right") - 1   # segment of each frame
    segments = [(starts[k] / fps, starts[k + 1] / fps, c["label"]) for k, c in enumerate(clips)]

    rows = []
    for k, clip in enumerate(clips):
        mask = torch.from_numpy(seg_of == k)
        last = int(mask.nonzero().max())
        with torch.no_grad():   # the offline model on this clip alone, the same frames
            alone = model(torch.cat([frames[i] for i in mask.nonzero()[:, 0].tolist()])[None]).softmax(-1)[0]
        rows.append(dict(
            segment=k, cls=names[clip["label"]], clip_id=clip["id"], frames=int(mask.sum()),
            window_top1_fraction=round(float((windowed[mask].argmax(-1) == clip["label"]).float().mean()), 3),
            window_correct_at_end=bool(windowed[last].argmax() == clip["label"]),
            prefix_correct_at_end=bool(prefix[last].argmax() == clip["label"]),
            clip_alone_correct=bool(alone.argmax() == clip["label"])))
    summary = dict(command="pks4 stream " + " ".join(command), video_frames=starts[-1], fps=fps,
                   streamed_frames=len(index), segments=rows,
                   window_top1_fraction=round(float(np.mean([r["window_top1_fraction"] for r in rows])), 3),
                   window_correct_at_end=sum(r["window_correct_at_end"] for r in rows),
                   prefix_correct_at_end=sum(r["prefix_correct_at_end"] for r in rows),
                   clip_alone_correct=sum(r["clip_alone_correct"] for r in rows))
    title = (f"pks4 stream on {len(clips)} synthetic test clips back to back ({len(index)} frames, stride "
             f"{args.stride}): top-1 = the segment's class at its end for {summary['window_correct_at_end']}/"
             f"{len(clips)} (window {args.window}) and {summary['prefix_correct_at_end']}/{len(clips)} (all frames)")
    plot(Path(args.figure), times, segments, prefix.numpy(), windowed.numpy(), args.window, names, title)
    (work / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
