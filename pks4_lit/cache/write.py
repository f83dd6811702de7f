"""Write a feature store: every training clip of epochs 0..K-1 and every eval view, through the backbone.

Clips come from the datamodule's own datasets: `dataset[(index, epoch)]` for training (the decode,
frame sampling, crop and (seed, epoch, index) draws of a pixel epoch, bad videos replaced the same
way) and the eval items with all their views (bad ones dropped), so a store cannot drift from what
the pixel path feeds the model. Features are the classifier's own `backbone(normalize(video))`,
under the trainer's autocast, cast to the store dtype.
"""
from __future__ import annotations

import contextlib
import math
import shutil
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from pks4_lit.cache.fingerprint import code_sha256, fingerprint
from pks4_lit.cache.model import check_frozen
from pks4_lit.cache.store import (DTYPES, FORMAT, VERSION, ShardWriter, SplitLayout, StoreError, begin_write,
                                  finish_write, shard_path)
from pks4_lit.data.dataset import worker_init_fn

SPLITS = ("train", "val", "test")
STAGE = {"train": "fit", "val": "validate", "test": "test"}
SHARD_BYTES = 512 * 2**20   # target shard file size
MIN_SHARDS = 16             # at least this many shards per split when it has that many videos (DDP ranks)


def auto_shard_size(videos: int, bytes_per_video: int) -> int:
    return max(1, min(SHARD_BYTES // max(bytes_per_video, 1), math.ceil(videos / MIN_SHARDS)))


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}"
        n /= 1024


def _as_list(items):
    return items


def _free_bytes(path: Path) -> int:
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


@torch.no_grad()
def feature_shape(classifier, datamodule, device, autocast) -> list[int]:
    """[T,C,h,w] of one clip, from a forward of a blank clip."""
    kw = datamodule.clip_kw
    blank = torch.zeros(1, kw["num_frames"], 3, kw["crop_size"], kw["crop_size"], dtype=torch.uint8, device=device)
    with autocast():
        return list(classifier.backbone(classifier.normalize(blank)).shape[1:])


def write_store(classifier, datamodule, out, views: int = 4, dtype: str = "float16", precision="32-true",
                autocast=contextlib.nullcontext, device="cpu", splits=SPLITS, batch_size: int | None = None,
                shard_size: int | None = None, overwrite: bool = False, progress: bool = True,
                stream=None) -> dict:
    """Write (or complete) the store for `classifier` + `datamodule` at `out`; returns a summary.
    Messages and the progress bar go to `stream` (default: sys.stderr at call time)."""
    stream = stream or sys.stderr
    if views < 1:
        raise StoreError(f"--views must be >= 1 (got {views})")
    if dtype not in DTYPES:
        raise StoreError(f"dtype must be one of {list(DTYPES)} (got {dtype!r})")
    if getattr(datamodule, "features", None):
        raise StoreError("the config reads a feature store (data.features is set): unset it to write one")
    unknown = [s for s in splits if s not in SPLITS]
    if unknown:
        raise StoreError(f"unknown split(s) {unknown}; choose from {list(SPLITS)}")
    check_frozen(classifier)
    t0 = time.perf_counter()
    classifier.eval().to(device)
    for split in splits:
        if split not in datamodule.datasets:
            datamodule.setup(STAGE[split])
    datasets = {s: datamodule.datasets[s] for s in splits}

    shape = feature_shape(classifier, datamodule, device, autocast)
    item_bytes = int(np.prod(shape)) * torch.tensor([], dtype=DTYPES[dtype][0]).element_size()
    layouts = {}
    for split, ds in datasets.items():
        V = views if split == "train" else ds.num_views
        layouts[split] = SplitLayout(len(ds), V, shard_size or auto_shard_size(len(ds), V * item_bytes))
    header = {"format": FORMAT, "version": VERSION, "views": views, "dtype": dtype, "feature_shape": shape,
              "fingerprint": fingerprint(classifier, datamodule, precision, splits),
              "splits": {s: asdict(lay) for s, lay in layouts.items()}}

    total = sum(lay.videos * lay.views for lay in layouts.values()) * item_bytes
    lines = [f"  {s}: {lay.videos} videos x {lay.views} views = {human(lay.videos * lay.views * item_bytes)}"
             f" in {len(lay.shards())} shards" for s, lay in layouts.items()]
    print(f"pks4 cache: {out}: features [T,C,h,w]={shape} {dtype}, {human(item_bytes)} per view\n"
          + "\n".join(lines) + f"\n  total ≈ {human(total)} (free: {human(_free_bytes(Path(out)))})", file=stream)
    complete, done = begin_write(out, header, overwrite)
    if complete:
        print(f"pks4 cache: {out} is already complete for this configuration", file=stream)
    else:
        if total > _free_bytes(Path(out)):
            raise StoreError(f"not enough disk space under {out} for ≈ {human(total)}")
        for split, lay in layouts.items():
            _write_split(classifier, datasets[split], out, split, lay, header, done, device, autocast,
                         batch_size or (datamodule.batch_size if split == "train" else datamodule.eval_batch_size),
                         datamodule.num_workers, progress, stream)
        bad = {s: _bad_ids(out, s, lay, datasets[s]) for s, lay in layouts.items()}
        finish_write(out, header, {"bad": bad, "code_sha256": code_sha256(), "info": {
            "torch": torch.__version__, "written_s": round(time.perf_counter() - t0, 1)}})
    return {"out": str(out), "views": views, "dtype": dtype, "feature_shape": shape, "bytes": total,
            "splits": {s: {"videos": lay.videos, "views": lay.views} for s, lay in layouts.items()},
            "seconds": round(time.perf_counter() - t0, 2), "already_complete": complete}


@torch.no_grad()
def _write_split(classifier, ds, out, split, layout: SplitLayout, header, done, device, autocast, batch_size,
                 num_workers, progress, stream):
    from tqdm import tqdm

    train, shards = split == "train", layout.shards()
    todo = [(k, s, n) for k, s, n in shards if (split, k) not in done]
    # one key per clip: train (video, epoch) for epochs 0..K-1; eval the video (all its views at once)
    keys = [(i, e) if train else i for _, s, n in todo for i in range(s, s + n)
            for e in range(layout.views if train else 1)]
    loader = DataLoader(ds, batch_size=batch_size, sampler=keys, collate_fn=_as_list, num_workers=num_workers,
                        worker_init_fn=worker_init_fn)
    per_key = 1 if train else layout.views
    bar = tqdm(total=layout.videos * layout.views, initial=layout.videos * layout.views - len(keys) * per_key,
               desc=f"pks4 cache {split}", unit="clip", file=stream, disable=not progress, mininterval=1.0)
    writer, shard, pos = None, None, 0
    for items in loader:
        batch_keys, pos = keys[pos:pos + len(items)], pos + len(items)
        good = [n for n, it in enumerate(items) if it is not None]   # bad eval videos come back as None
        if good:
            video = torch.stack([items[n]["video"] for n in good]).to(device)  # [B,T,3,H,W] | [B,V,T,3,H,W]
            with autocast():
                feats = classifier.backbone(classifier.normalize(video if train else video.flatten(0, 1)))
            feats = feats if train else feats.unflatten(0, video.shape[:2])    # [B,T,C,h,w] | [B,V,T,C,h,w]
        for key, n in zip(batch_keys, range(len(items))):
            i, view = key if train else (key, slice(None))
            k = i // layout.shard_size
            if k != shard:
                if writer is not None:
                    writer.close()
                writer, shard = ShardWriter(out, split, k, shards[k][2], layout.views, header["feature_shape"],
                                            header["dtype"]), k
            if items[n] is not None:
                writer.put(i - shards[k][1], view, feats[good.index(n)], items[n]["label"], items[n]["index"])
        bar.update(len(items) * per_key)
    if writer is not None:
        writer.close()
    bar.close()


def _bad_ids(out, split, layout: SplitLayout, ds) -> list[str]:
    """Ids of videos the pixel path could not read when the store was written (from the index files)."""
    bad = []
    for k, start, count in layout.shards():
        index = np.load(shard_path(out, split, k, "index"))                # [n,V]
        for r in range(count):
            if (index[r] != start + r).any():                             # train: substituted; eval: -1
                bad.append(ds.samples[start + r].id)
    return bad
