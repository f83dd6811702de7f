"""Torch datasets of video clips, the epoch-seeded sampler and the collate function.

Items (dicts, uint8 video):
  train: video [T,3,H,W], label, index
  eval:  video [V,T,3,H,W] with V = num_clips·num_crops (clip-major: v = clip·num_crops + crop),
         label, index; predict items also carry `path`.

Determinism: `EpochSampler` (samplers.py) yields (index, epoch) pairs and every random choice for
an item (frame positions, crop, flip) comes from numpy's Generator seeded with (seed, epoch, index).
So the same seed gives the same data order and the same clips whatever the number of workers or
their scheduling; a new epoch gives new draws, and a resumed epoch the same ones.

Bad videos (missing, empty, truncated, not a video, no video stream) never stop an epoch:
  train: logged by id with a running count and replaced by the next index (deterministic), so
         batch shapes stay fixed;
  eval: the item is None and `collate_videos` drops it; a batch in which every video is bad
         collates to None, and the LightningModule must skip a None batch;
  predict: the item is {"index", "error": the reason}; `collate_videos` keeps the reasons as the
         batch's `errors` {index: reason}, and a batch in which every input is bad is {"errors"} alone
         (no `video`): the LightningModule must skip it as it skips None.
Counts are per process (each DataLoader worker counts what it loads). Once a process has seen more
than `max_bad_fraction` bad videos (over max(videos seen, MIN_SEEN) loads), it raises DatasetError.
"""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .annotations import DatasetError, Sample
from .decode import MAX_MISSING_FRACTION, BadVideoError, VideoReader
from .samplers import EpochSampler  # noqa: F401  (re-exported: it used to live here)
from .sampling import sample_indices
from .transforms import eval_crops, train_transform

log = logging.getLogger(__name__)

MIN_SEEN = 20  # bad-fraction check denominator floor: one bad file among the first few is not "too many"
MAX_SUBSTITUTES = 100  # consecutive bad videos tolerated while looking for a substitute
VIDEO_EXTENSIONS = (".mp4", ".webm", ".mkv", ".avi", ".mov", ".m4v", ".mpg", ".mpeg", ".ogv", ".flv", ".gif")


class BadVideoCounter:
    """Per-process count of loads and bad loads; raises DatasetError past `max_bad_fraction`."""

    def __init__(self, max_bad_fraction: float):
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction must be in [0, 1] (got {max_bad_fraction})")
        self.max_bad_fraction = max_bad_fraction
        self.seen = 0
        self.bad = 0

    def ok(self):
        self.seen += 1

    def failed(self, sample_id: str, err: BadVideoError):
        self.seen += 1
        self.bad += 1
        log.warning("bad video %s (%s) skipped [%d bad of %d loaded in this process]", sample_id, err, self.bad, self.seen)
        if self.bad > self.max_bad_fraction * max(self.seen, MIN_SEEN):
            raise DatasetError(
                f"too many bad videos: {self.bad} of {self.seen} loaded (max_bad_fraction={self.max_bad_fraction}); "
                f"last: {err}. Check the dataset layout (data/README.md) or raise max_bad_fraction.")


class VideoClipDataset(Dataset):
    """Clips from a list of `Sample(path, label, id)`; see the module docstring for items."""

    def __init__(self, samples: list[Sample], train: bool, num_frames: int = 8, sampler: str = "segment",
                 frame_stride: int = 4, crop_size: int = 112, short_side: int = 128, scale=(0.4, 1.0),
                 hflip: bool = False, num_clips: int = 1, num_crops: int = 1, seed: int = 0,
                 max_bad_fraction: float = 0.05, decode_threads: int = 1, decode_mode: str = "auto",
                 max_missing_fraction: float = MAX_MISSING_FRACTION, return_path: bool = False):
        self.samples = list(samples)
        self.train = train
        self.num_frames, self.sampler, self.frame_stride = num_frames, sampler, frame_stride
        self.crop_size, self.short_side, self.scale, self.hflip = crop_size, short_side, tuple(scale), hflip
        self.num_clips, self.num_crops = num_clips, num_crops
        self.seed, self.decode_threads, self.decode_mode = seed, decode_threads, decode_mode
        self.max_missing_fraction = max_missing_fraction
        self.return_path = return_path
        self.counter = BadVideoCounter(max_bad_fraction)

    def __len__(self):
        return len(self.samples)

    @property
    def num_views(self) -> int:
        return 1 if self.train else self.num_clips * self.num_crops

    def __getitem__(self, key):
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        if not self.train:
            return self._eval_item(index)
        for attempt in range(MAX_SUBSTITUTES):
            j = (index + attempt) % len(self.samples)
            rng = np.random.default_rng([self.seed, epoch, index, attempt])
            try:
                video = self.load_train(self.samples[j], rng)
            except BadVideoError as err:
                self.counter.failed(self.samples[j].id, err)
                continue
            self.counter.ok()
            return {"video": video, "label": self.samples[j].label, "index": j}
        raise DatasetError(f"{MAX_SUBSTITUTES} bad videos in a row after index {index} ({self.samples[index].path})")

    def _eval_item(self, index: int):
        s = self.samples[index]
        try:
            video = self.load_eval(s)
        except BadVideoError as err:
            self.counter.failed(s.id, err)
            return self._unreadable(index, err)
        self.counter.ok()
        item = {"video": video, "label": s.label, "index": index}
        if self.return_path:
            item["path"] = str(s.path)
        return item

    def _unreadable(self, index: int, err: BadVideoError):
        return None

    # ------------------------------------------------------------------------------------------
    def _open(self, s: Sample) -> VideoReader:
        return VideoReader(s.path, threads=self.decode_threads, video_id=s.id, max_missing_fraction=self.max_missing_fraction)

    def load_train(self, s: Sample, rng: np.random.Generator) -> torch.Tensor:
        """[T,3,crop,crop] uint8."""
        with self._open(s) as r:
            idx = sample_indices(self.sampler, r.num_frames, self.num_frames, self.frame_stride, rng=rng)
            frames = r.decode(idx, mode=self.decode_mode, short_side=self.short_side)
        return train_transform(_to_tchw(frames), self.crop_size, self.scale, self.hflip, rng)

    def load_eval(self, s: Sample) -> torch.Tensor:
        """[V,T,3,crop,crop] uint8: every clip decoded in one pass, then cropped."""
        T, K = self.num_frames, self.num_clips
        with self._open(s) as r:
            idx = np.concatenate([sample_indices(self.sampler, r.num_frames, T, self.frame_stride, clip=k, num_clips=K)
                                  for k in range(K)])
            frames = _to_tchw(r.decode(idx, mode=self.decode_mode, short_side=self.short_side))
        views = []
        for k in range(K):
            views += eval_crops(frames[k * T:(k + 1) * T], self.crop_size, self.short_side, self.num_crops)
        return torch.stack(views)


class VideoFolderDataset(VideoClipDataset):
    """Unlabelled videos for `pks4 predict`: files and/or folders (searched recursively by extension).

    Predicting is not training: no bad-video limit, every unreadable input is skipped (logged, and
    listed at the end by PredictionPrinter with its reason, which the item carries: the DataLoader
    workers that read it are other processes). A named file that does not exist is such an input.
    """

    def __init__(self, paths, **kw):
        files = list_videos(paths)
        kw["max_bad_fraction"] = 1.0
        super().__init__([Sample(p, -1, str(p)) for p in files], train=False, return_path=True, **kw)

    def _unreadable(self, index: int, err: BadVideoError) -> dict:
        return {"index": index, "error": " ".join(err.reason.split())}  # the logged message less the path


def list_videos(paths) -> list[Path]:
    """Files named, and video files (by extension) under folders named; missing names are kept (and logged)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files, missing = [], []
    for p in map(Path, paths):
        if p.is_dir():
            files += sorted(f for f in p.rglob("*") if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file())
        else:
            files.append(p)
            if not p.exists():
                missing.append(p)
    if missing and len(missing) == len(files):
        raise DatasetError(f"predict: none of the given paths exists (first: {missing[0]})")
    if missing:
        log.warning("predict: %d of the given paths do not exist (first: %s); they are listed as unreadable", len(missing), missing[0])
    if not files:
        raise DatasetError(f"no video files ({', '.join(VIDEO_EXTENSIONS)}) in {list(map(str, paths))}")
    return files


def _to_tchw(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()  # [T,H,W,3] -> [T,3,H,W]


# ---------------------------------------------------------------------------------------------


def collate_videos(items: list):
    """Stack items into a batch dict; drops None (bad eval videos); all None -> None (skip the batch).
    Unreadable predict inputs ({"index", "error"}) go to `errors` {index: reason}; none readable ->
    {"errors"} alone."""
    errors = {it["index"]: it["error"] for it in items if it is not None and "error" in it}
    items = [it for it in items if it is not None and "error" not in it]
    if not items:
        return {"errors": errors} if errors else None
    batch = {
        "video": torch.stack([it["video"] for it in items]),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
    }
    if "path" in items[0]:
        batch["path"] = [it["path"] for it in items]
    if errors:
        batch["errors"] = errors
    return batch


def worker_init_fn(worker_id: int):
    """One intra-op thread per worker (decode threads are set per reader); seed Python/numpy globals."""
    import random

    torch.set_num_threads(1)
    seed = torch.initial_seed() % 2**32
    random.seed(seed)
    np.random.seed(seed)
