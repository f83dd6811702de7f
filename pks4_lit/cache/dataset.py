"""Training and evaluation from a feature store: dataset, rank-sharded sampler, loader for the datamodule.

Items (dicts, features in the stored dtype):
  train: features [T,C,h,w] of view (epoch mod K), label, index (the video actually read)
  eval:  features [V,T,C,h,w], label, index
so batches are `features [B,T,C,h,w]` (train) and `features [B,V,T,C,h,w]` (eval) where the pixel
path has `video`. Epoch e < K reads exactly the clip the pixel path would draw at epoch e, in the
same order (the pixel path's own EpochSampler permutation); epochs >= K reuse the views cyclically
(logged once). Bad videos are as the pixel path left them when the store was written: a train video's
substitute is stored in its place; bad eval videos are dropped.

DDP: `ShardSampler` gives rank r of W the shards r, r+W, r+2W, ... (disjoint, so no two ranks read
the same file); each rank shuffles its own videos per epoch. Training pads every rank by wrap-around
to the longest rank's count (equal step counts; at most one shard of repeats), evaluation does not
pad (torchmetrics syncs uneven ranks). One rank (W = 1) is exactly the pixel path's order.
"""
from __future__ import annotations

import logging

import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from pks4_lit.cache.fingerprint import check, data_fields, model_fields, warn_if_code_changed
from pks4_lit.cache.model import check_cacheable
from pks4_lit.cache.store import FeatureStore, SplitReader, StoreError
from pks4_lit.data.dataset import EpochSampler, worker_init_fn

log = logging.getLogger(__name__)


class FeatureDataset(Dataset):
    """Map-style: train keys are (video, epoch), eval keys are video indices."""

    def __init__(self, reader: SplitReader, train: bool):
        self.reader, self.train = reader, train

    def __len__(self) -> int:
        return len(self.reader)

    def __getitem__(self, key):
        if self.train:
            i, epoch = key
            features, label, index = self.reader.row(i, view=epoch % self.reader.views)
            return {"features": features, "label": int(label), "index": int(index)}
        features, label, index = self.reader.row(key)
        return {"features": features, "label": int(label[0]), "index": int(index[0])}


def collate_features(items: list) -> dict:
    return {
        "features": torch.stack([it["features"] for it in items]),
        "label": torch.tensor([it["label"] for it in items], dtype=torch.long),
        "index": torch.tensor([it["index"] for it in items], dtype=torch.long),
    }


class ShardSampler(DistributedSampler):
    """Rank-sharded, epoch-seeded order over a split's videos (module docstring).

    A DistributedSampler subclass so that Lightning adds no sampler of its own; its __init__ is not
    called (it would look for a process group): rank and world size come from the caller."""

    def __init__(self, reader: SplitReader, train: bool, shuffle: bool, seed: int = 0, rank: int = 0,
                 world_size: int = 1):
        shards = reader.shards
        if len(shards) < world_size:
            raise StoreError(f"feature store {reader.root}: '{reader.split}' has {len(shards)} shards for "
                             f"{world_size} ranks; rewrite it with a smaller pks4 cache --shard-size")
        self.num_replicas, self.rank, self.shuffle, self.seed = world_size, rank, shuffle, seed
        self.epoch, self.drop_last, self.train, self.views = 0, False, train, reader.views
        self.shards = [k for k, _, _ in shards[rank::world_size]]
        videos = np.concatenate([np.arange(s, s + n) for _, s, n in shards[rank::world_size]])
        if not train:  # bad eval videos were dropped by the pixel path: leave them out
            videos = videos[reader.index_table()[videos, 0] >= 0]
        self.videos = videos
        self.total = max(sum(n for _, _, n in shards[r::world_size]) for r in range(world_size)) if train \
            else len(videos)
        self._told_cycle = False

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.total

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1  # advance when nobody calls set_epoch (as EpochSampler does)
        order = EpochSampler(len(self.videos), shuffle=self.shuffle, seed=self.seed)
        order.set_epoch(epoch)
        videos = self.videos[[i for i, _ in order]]
        if not self.train:
            return iter(videos.tolist())
        if epoch >= self.views and not self._told_cycle and self.rank == 0:
            log.warning("feature store holds K=%d views per training video: epoch %d reuses view %d, and from "
                        "here on epoch e reads view e mod %d (the pixel path would draw new clips)",
                        self.views, epoch, epoch % self.views, self.views)
            self._told_cycle = True
        videos = np.resize(videos, self.total)  # wrap-around padding to the longest rank
        return iter([(int(i), epoch) for i in videos])


# ---------------------------------------------------------------------------------------- datamodule
def open_checked_store(datamodule) -> FeatureStore:
    """The datamodule's store (`datamodule.features`), opened once and checked against the current
    configuration: the model half when a trainer (hence the LightningModule) is attached."""
    store = getattr(datamodule, "_feature_store", None)
    if store is not None:
        return store
    store = FeatureStore.open(datamodule.features)
    current = data_fields(datamodule, store.splits)
    trainer = getattr(datamodule, "trainer", None)
    module = trainer.lightning_module if trainer is not None else None
    if module is not None:
        current.update(model_fields(check_cacheable(module), trainer.precision))
    else:
        log.warning("feature store %s: no trainer attached, only the data settings were checked", store.root)
    stored = store.manifest["fingerprint"]
    check(store.root, stored if module is not None else {k: v for k, v in stored.items() if k in current}, current)
    warn_if_code_changed(store.root, store.manifest.get("code_sha256"))
    bad = store.manifest.get("bad", {})
    summary = ", ".join(f"{len(ids)} {split}" for split, ids in bad.items() if ids)
    rank_zero_info(f"reading backbone features from {store.root} (K={store.views} train views, {store.manifest['dtype']})"
                   + (f"; bad videos when written (train: replaced, eval: dropped): {summary}" if summary else ""))
    datamodule._feature_store = store
    return store


def feature_loader(datamodule, name: str, shuffle: bool, batch_size: int) -> DataLoader:
    """A DataLoader over split `name` of the datamodule's store, built like the pixel path's."""
    reader = open_checked_store(datamodule).split(name)
    trainer = getattr(datamodule, "trainer", None)
    rank, world = (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)
    train = name == "train"
    return DataLoader(
        FeatureDataset(reader, train),
        batch_size=batch_size,
        sampler=ShardSampler(reader, train, shuffle, seed=datamodule.seed, rank=rank, world_size=world),
        collate_fn=collate_features,
        num_workers=datamodule.num_workers,
        persistent_workers=datamodule.num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        worker_init_fn=worker_init_fn,
        generator=torch.Generator().manual_seed(datamodule.seed),  # as the pixel loader: same global RNG use
    )
