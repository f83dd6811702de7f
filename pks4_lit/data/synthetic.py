"""The embedded dataset: small real VP9 .webm clips in the Something-Something V2 layout.

    python -m pks4_lit.data.synthetic ROOT [--task mixed|temporal|spatial|kinematic|kinematic_long]
    (also: pks4 synth ROOT)

Two groups of classes, written to groups.json:

temporal: four pairs whose two classes are the SAME motion played forwards and backwards
  ("Moving [something] from left to right" / "... from right to left", "Moving [something] up" /
  "... down", "Zooming in on [something]" / "Zooming out of [something]", "Rotating [something]
  clockwise" / "... counterclockwise"). A clip of the second class is literally a clip of the first
  class with its frames in reverse order, so the *set* of frames of both classes has the same
  distribution: a model blind to frame order (TSN's average pooling) is at chance inside each pair.
  The object is a random crop of a photo from a pool that no spatial class uses.
spatial: the class is which photo moves ("Showing a cat", "Showing an astronaut", ...); its motion
  is one of the temporal motions, in a random direction, so motion carries no information.

Every clip: a textured background (a random crop of a scikit-image photo, tinted, contrast reduced)
and a textured object (a photo crop with a thin light frame) moving several pixels per frame, large
enough (about 0.4 of the frame side) to show up on a stride-16/32 feature map; per-frame camera
shake, brightness flicker and noise, so no frame is trivially constant. Photos are the ones shipped
inside the scikit-image wheel (skimage.data: chelsea, astronaut, coffee, rocket, ...), so nothing is
downloaded. Deterministic: the same seed gives the same frames (clip seeds are (seed, class, clip)).

kinematic, kinematic_long: fine-motion classes (sub-cell motions, event order far apart), rendered
by pks4_lit.data.synthetic_kinematic (see its docstring); written here like the other tasks.

Encoding: lossless VP9 (yuv420p) by default, so decoding gives every frame independently of its
position in the file: a reversed class's *decoded* frames are exactly the reversed decoded frames
of its pair. A lossy `crf` writes ~7x smaller files, but then the quality of a frame follows its
position in the file (keyframe first), and the reversal is exact only before encoding.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
from concurrent.futures import ProcessPoolExecutor
from functools import lru_cache
from pathlib import Path

import av
import numpy as np

from pks4_lit.command import Progress, script_main

TASKS = ("mixed", "temporal", "spatial", "kinematic", "kinematic_long")
KINEMATIC_TASKS = ("kinematic", "kinematic_long")

# (class A, class B = A reversed in time, motion of A)
TEMPORAL_PAIRS = [
    ("Moving [something] from left to right", "Moving [something] from right to left", "right"),
    ("Moving [something] up", "Moving [something] down", "up"),
    ("Zooming in on [something]", "Zooming out of [something]", "zoom_in"),
    ("Rotating [something] clockwise", "Rotating [something] counterclockwise", "clockwise"),
]
MOTIONS = [m for _, _, m in TEMPORAL_PAIRS]
# spatial class template -> photo that defines it
SPATIAL_CLASSES = {
    "Showing a cat": "chelsea",
    "Showing an astronaut": "astronaut",
    "Showing a coffee cup": "coffee",
    "Showing a rocket": "rocket",
    "Showing a motorcycle": "motorcycle",
    "Showing a stained tissue sample": "immunohistochemistry",
}
TEMPORAL_OBJECTS = ["retina", "camera", "coins", "cell", "colorwheel", "checkerboard"]  # no spatial class uses these
BACKGROUNDS = ["grass", "gravel", "brick", "moon", "hubble_deep_field", "text"]
OBJECT_SIDE = 0.45  # object side as a fraction of the frame side at scale 1


def class_templates(task: str = "mixed") -> list[str]:
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS} (got {task!r})")
    if task in KINEMATIC_TASKS:
        from pks4_lit.data import synthetic_kinematic

        return synthetic_kinematic.class_templates(task)
    temporal = [c for a, b, _ in TEMPORAL_PAIRS for c in (a, b)]
    return (temporal if task != "spatial" else []) + (list(SPATIAL_CLASSES) if task != "temporal" else [])


def class_group(template: str) -> str:
    from pks4_lit.data import synthetic_kinematic

    return synthetic_kinematic.class_group(template) or ("spatial" if template in SPATIAL_CLASSES else "temporal")


def class_name(template: str) -> str:
    return template.replace("[something]", "something")


# ---------------------------------------------------------------------------------------------
# photos


@lru_cache(maxsize=None)
def photo(name: str) -> np.ndarray:
    """float32 RGB [H,W,3] in [0,1] from scikit-image's bundled data."""
    import skimage.data as d

    img = d.stereo_motorcycle()[0] if name == "motorcycle" else getattr(d, name)()
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3].astype(np.float32) / 255.0


def _resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    from skimage.transform import resize

    return resize(img, (h, w), order=1, anti_aliasing=True, preserve_range=True).astype(np.float32)


def _random_crop(img: np.ndarray, rng, lo: float, hi: float, aspect: float = 1.0, centred: bool = False) -> np.ndarray:
    """A crop of relative side in [lo, hi] of the short side, with width/height = aspect."""
    H, W = img.shape[:2]
    side = rng.uniform(lo, hi) * min(H, W)
    w, h = (side, side / aspect) if aspect >= 1 else (side * aspect, side)
    h, w = max(1, int(min(H, h))), max(1, int(min(W, w)))
    if centred:  # keep the photo's subject: jitter around the centre
        y = int(np.clip((H - h) / 2 + rng.uniform(-0.1, 0.1) * H, 0, H - h))
        x = int(np.clip((W - w) / 2 + rng.uniform(-0.1, 0.1) * W, 0, W - w))
    else:
        y, x = int(rng.integers(0, H - h + 1)), int(rng.integers(0, W - w + 1))
    return img[y:y + h, x:x + w]


def _tint(img: np.ndarray, rng, amount: float) -> np.ndarray:
    return np.clip(img * (1 + rng.uniform(-amount, amount, size=3)).astype(np.float32), 0, 1)


# ---------------------------------------------------------------------------------------------
# one clip


def _trajectory(motion: str, T: int, S: int, rng) -> np.ndarray:
    """Per-frame object state [T,4]: centre x, centre y (pixels), scale, angle (degrees, CCW)."""
    t = np.linspace(0.0, 1.0, T)
    c = S * 0.5
    wobble = rng.uniform(-1.5, 1.5) * np.sin(2 * np.pi * (t * rng.uniform(0.5, 1.5) + rng.random()))
    x = np.full(T, c + rng.uniform(-0.08, 0.08) * S)
    y = np.full(T, c + rng.uniform(-0.08, 0.08) * S)
    scale = np.full(T, rng.uniform(0.85, 1.05))
    angle = np.full(T, rng.uniform(-12, 12))
    if motion == "right":
        start, travel = rng.uniform(0.18, 0.3) * S, rng.uniform(0.42, 0.6) * S
        x = start + travel * t
        y = y + wobble
    elif motion == "up":
        start, travel = rng.uniform(0.7, 0.82) * S, rng.uniform(0.42, 0.6) * S
        y = start - travel * t
        x = x + wobble
    elif motion == "zoom_in":
        s0 = rng.uniform(0.45, 0.6)
        scale = s0 * rng.uniform(2.2, 2.8) ** t
        x, y = x + wobble, y + wobble[::-1]
    elif motion == "clockwise":
        a0, turn = rng.uniform(0, 180), rng.uniform(120, 180)
        angle = a0 - turn * t  # decreasing counter-clockwise angle: a clockwise turn on screen
        scale = scale * 1.1
    else:
        raise ValueError(f"unknown motion {motion!r}")
    return np.stack([x, y, scale, angle], axis=1)


def _object_patch(template: str, motion: str, rng) -> np.ndarray:
    """float32 RGBA patch with a thin light frame; rotation objects are 3:2 rectangles."""
    aspect = 1.5 if motion == "clockwise" else rng.uniform(0.8, 1.25)
    if template in SPATIAL_CLASSES:
        img = _tint(_random_crop(photo(SPATIAL_CLASSES[template]), rng, 0.75, 1.0, aspect, centred=True), rng, 0.1)
    else:
        src = photo(TEMPORAL_OBJECTS[rng.integers(len(TEMPORAL_OBJECTS))])
        img = _tint(_random_crop(src, rng, 0.5, 0.9, aspect), rng, 0.4)
    h = 96
    img = _resize(img, h, int(round(h * aspect)))
    img[:3], img[-3:], img[:, :3], img[:, -3:] = (rng.uniform(0.8, 1.0),) * 4  # the frame
    return np.concatenate([img, np.ones_like(img[..., :1])], axis=2)


def _background(S: int, rng) -> np.ndarray:
    bg = _random_crop(photo(BACKGROUNDS[rng.integers(len(BACKGROUNDS))]), rng, 0.4, 1.0)
    bg = _tint(_resize(bg, S + 4, S + 4), rng, 0.4)  # 2 px margin for camera shake
    mean = bg.mean(axis=(0, 1), keepdims=True)
    return mean + rng.uniform(0.35, 0.6) * (bg - mean)  # lower contrast than the object


def render_clip(template: str, seed, size: int = 128, frames: int = 16) -> np.ndarray:
    """uint8 RGB [frames,size,size,3] of one clip of class `template`.

    For every temporal pair (A, B): render_clip(B, s) == render_clip(A, s)[::-1] exactly.
    """
    from skimage.transform import AffineTransform, warp

    from pks4_lit.data import synthetic_kinematic

    if synthetic_kinematic.class_group(template) is not None:
        return synthetic_kinematic.render_clip(template, seed, size, frames)
    rng = np.random.default_rng(seed)
    reverse = False
    if template in SPATIAL_CLASSES:
        motion, reverse = MOTIONS[rng.integers(len(MOTIONS))], bool(rng.integers(2))
    else:
        pair = [(a, b, m) for a, b, m in TEMPORAL_PAIRS if template in (a, b)]
        if not pair:
            raise ValueError(f"unknown synthetic class {template!r}")
        motion, reverse = pair[0][2], template == pair[0][1]
    S, T = size, frames
    patch = _object_patch(template, motion, rng)
    bg = _background(S, rng)
    traj = _trajectory(motion, T, S, rng)
    shake = rng.integers(-2, 3, size=(T, 2))
    gain = rng.normal(1.0, 0.03, size=T)
    noise_seed = int(rng.integers(2**31))
    ph, pw = patch.shape[:2]
    out = np.empty((T, S, S, 3), np.uint8)
    noise_rng = np.random.default_rng(noise_seed)
    for i, (cx, cy, sc, ang) in enumerate(traj):
        k = sc * OBJECT_SIDE * S / ph  # output pixels per patch pixel
        to_frame = (AffineTransform(translation=(-pw / 2, -ph / 2)).params)
        a = np.deg2rad(ang)
        rot = np.array([[np.cos(a), np.sin(a), 0], [-np.sin(a), np.cos(a), 0], [0, 0, 1]])  # CCW on screen (y down)
        M = AffineTransform(translation=(cx + shake[i, 0], cy + shake[i, 1])).params @ rot @ np.diag([k, k, 1]) @ to_frame
        obj = warp(patch, AffineTransform(matrix=np.linalg.inv(M)), output_shape=(S, S), order=1, mode="constant", cval=0.0)
        dy, dx = 2 + shake[i, 1], 2 + shake[i, 0]
        frame = bg[dy:dy + S, dx:dx + S]
        alpha = obj[..., 3:]
        frame = (frame * (1 - alpha) + obj[..., :3] * alpha) * gain[i]
        frame = frame + noise_rng.normal(0, 0.012, size=frame.shape)
        out[i] = np.clip(np.rint(frame * 255), 0, 255).astype(np.uint8)
    return out[::-1].copy() if reverse else out


# ---------------------------------------------------------------------------------------------
# encoding and the dataset


def write_webm(path: str | Path, frames: np.ndarray, fps: int = 12, crf: int | None = None):
    """Encode uint8 RGB [T,H,W,3] as VP9 in WebM (one keyframe, single-threaded: deterministic).

    crf None: lossless VP9 of the yuv420p frames, so each decoded frame is a function of that frame
    alone (the RGB→YUV 4:2:0 conversion is the only loss). An int: lossy at that crf."""
    quality = {"lossless": "1", "cpu-used": "8"} if crf is None else {"crf": str(crf), "b": "0", "cpu-used": "5"}
    with av.open(str(path), "w", format="webm") as c:
        s = c.add_stream("libvpx-vp9", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        s.options = {**quality, "deadline": "good", "threads": "1", "row-mt": "0", "g": str(len(frames))}
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


def _make_one(job):
    template, seed, path, size, frames, fps, crf = job
    write_webm(path, render_clip(template, seed, size, frames), fps, crf)
    return path


def default_frames(task: str) -> int:
    from pks4_lit.data import synthetic_kinematic

    return synthetic_kinematic.DEFAULT_FRAMES.get(task, 16)


def _split_counts(splits, n: int) -> tuple[int, int]:
    """(train, validation) clips per class: `splits` are counts (ints) or fractions of n."""
    if all(isinstance(k, int) for k in splits):
        return splits[0], splits[1]
    return round(splits[0] * n), max(1, round(splits[1] * n))


MARKER = ".pks4_synth"  # written first into every folder this writer fills: only such folders are ever replaced
_OUR_FILES = re.compile(r"\d+\.webm|(labels|train|validation|test|groups|synthetic)\.json|" + re.escape(MARKER))


def _prepare_root(root: Path, overwrite: bool) -> None:
    """Make `root` an empty folder carrying the marker. A non-empty folder is replaced only if this writer
    made it (the marker, or an older dataset: synthetic.json) and holds nothing else; anything else is refused."""
    if root.exists() and not root.is_dir():
        raise NotADirectoryError(f"{root} is a file, not a folder")
    entries = sorted(root.iterdir()) if root.is_dir() else []
    if entries:
        foreign = [p.name for p in entries if not (p.is_file() and _OUR_FILES.fullmatch(p.name))]
        ours = (root / MARKER).is_file() or (root / "synthetic.json").is_file()
        if not ours or foreign:
            what = f"holds files pks4 synth did not write ({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''})" \
                if ours else f"is not empty and was not written by pks4 synth (no {MARKER} file)"
            raise FileExistsError(f"{root} {what}: refusing to replace it, even with --overwrite; choose another folder")
        if not overwrite:
            raise FileExistsError(f"{root} holds another pks4 synth dataset (other parameters, or an unfinished "
                                  f"write); pass --overwrite (overwrite=True) to replace it")
        for path in entries:
            path.unlink()
    root.mkdir(parents=True, exist_ok=True)
    (root / MARKER).write_text("written by `pks4 synth`, which may replace this folder (--overwrite)\n")


def write_synthetic_dataset(root, task: str = "mixed", videos_per_class: int = 24, size: int = 128,
                            frames: int | None = None, seed: int = 0, fps: int = 12, crf: int | None = None,
                            splits=(0.6, 0.2, 0.2), workers: int = 0, overwrite: bool = False,
                            split_sizes: tuple[int, int, int] | None = None, progress: bool = False) -> dict:
    """Write the embedded dataset under `root` in the SSv2 layout; returns a summary dict.

    frames None: the task's default (16; kinematic 8, kinematic_long 32). crf None: lossless.
    split_sizes (train, validation, test): clips per class in each split, instead of
    videos_per_class × splits (fractions).
    Files: labels.json, train.json, validation.json, test.json (with templates, hence labels),
    groups.json {class: group}, synthetic.json (the parameters), <id>.webm.
    If `root` already holds a dataset written with the same parameters it is kept (no work);
    a different one needs overwrite=True. A non-empty folder this writer did not make is never
    replaced. workers: processes (0 = min(2, cpus)); progress: report written videos on stderr.
    """
    root = Path(root)
    templates = class_templates(task)
    frames = frames or default_frames(task)
    if split_sizes is not None:
        if len(split_sizes) != 3 or min(split_sizes) < 1:
            raise ValueError(f"split_sizes needs 3 counts >= 1 (train, validation, test), got {split_sizes}")
        videos_per_class, splits = int(sum(split_sizes)), [int(k) for k in split_sizes]
    if videos_per_class < 3:
        raise ValueError("videos_per_class must be >= 3 (one per split at least)")
    meta = dict(task=task, videos_per_class=videos_per_class, size=size, frames=frames, seed=seed, fps=fps, crf=crf,
                splits=list(splits), pairs=[[class_name(a), class_name(b)] for a, b, _ in TEMPORAL_PAIRS if a in templates])
    if (root / "synthetic.json").is_file():
        if json.loads((root / "synthetic.json").read_text()) == meta and (root / "test.json").is_file():
            return dict(meta, root=str(root), reused=True)
    _prepare_root(root, overwrite)

    t0 = time.perf_counter()
    entries = {"train": [], "validation": [], "test": []}
    jobs, next_id = [], 1
    for c, template in enumerate(templates):
        order = np.random.default_rng([seed, c, 10**6]).permutation(videos_per_class)
        n_train, n_val = _split_counts(splits, videos_per_class)
        for rank, j in enumerate(order):
            split = "train" if rank < n_train else "validation" if rank < n_train + n_val else "test"
            vid = str(next_id)
            next_id += 1
            entries[split].append({"id": vid, "label": template.replace("[something]", "a photo"),
                                   "template": template, "placeholders": ["a photo"] if "[something]" in template else []})
            jobs.append((template, [seed, c, int(j)], str(root / f"{vid}.webm"), size, frames, fps, crf))
    workers = workers or min(2, os.cpu_count() or 1)
    report = Progress("pks4 synth", len(jobs), "videos", enabled=progress)
    if workers > 1:
        with ProcessPoolExecutor(workers) as ex:
            for _ in ex.map(_make_one, jobs, chunksize=8):
                report.step()
    else:
        for job in jobs:
            _make_one(job)
            report.step()
    report.close()

    (root / "labels.json").write_text(json.dumps({class_name(t): str(i) for i, t in enumerate(templates)}, indent=1))
    for split, items in entries.items():
        items.sort(key=lambda e: int(e["id"]))
        (root / f"{split}.json").write_text(json.dumps(items, indent=1))
    (root / "groups.json").write_text(json.dumps({class_name(t): class_group(t) for t in templates}, indent=1))
    (root / "synthetic.json").write_text(json.dumps(meta, indent=1))
    return dict(meta, root=str(root), reused=False, classes=len(templates), videos=len(jobs),
                seconds=round(time.perf_counter() - t0, 1), workers=workers,
                megabytes=round(sum(f.stat().st_size for f in root.glob("*.webm")) / 2**20, 2))


# ---------------------------------------------------------------------------------------------
# command line (`pks4 synth ROOT` calls add_arguments/run)


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("root", help="output folder (SSv2 layout)")
    parser.add_argument("--task", choices=TASKS, default="mixed", help="which class groups to write")
    parser.add_argument("--videos-per-class", type=int, default=24)
    parser.add_argument("--split-sizes", type=int, nargs=3, metavar=("TRAIN", "VAL", "TEST"),
                        help="clips per class in each split (replaces --videos-per-class and the 60/20/20 split)")
    parser.add_argument("--size", type=int, default=128, help="frame side in pixels")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per clip (default: 16; kinematic 8, kinematic_long 32)")
    parser.add_argument("--crf", type=int, default=None,
                        help="lossy VP9 at this crf (default: lossless, exact reversal of decoded frames)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0, help="processes (0: min(2, cpus))")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a dataset pks4 synth wrote there before (other folders are never touched)")


def run(args) -> dict:
    return write_synthetic_dataset(args.root, task=args.task, videos_per_class=args.videos_per_class, size=args.size,
                                   frames=args.frames, seed=args.seed, workers=args.workers, overwrite=args.overwrite,
                                   crf=args.crf, split_sizes=args.split_sizes, progress=True)


def main(argv=None) -> None:
    script_main(__name__, "pks4 synth", argv)


if __name__ == "__main__":
    main()
