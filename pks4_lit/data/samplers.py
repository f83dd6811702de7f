"""Which items each process loads, in which order, and where a resumed run picks up.

EpochSampler (training): (index, epoch) pairs; a seeded permutation per epoch (or 0..n-1). Under
  DDP rank r of R takes positions r, r+R, ... of the epoch's order, padded by wrapping to a multiple
  of R so that every rank runs the same number of steps. The item's random choices are seeded by
  (seed, epoch, index) in the dataset, so an epoch is the same whatever the number of workers.
EvalSampler (val/test/predict): rank r of R takes videos r, r+R, ...: every video exactly once over
  all ranks, no padded duplicates, so metrics under DDP equal the single-process ones (ranks may get
  one video fewer; every rank needs at least one video).
Both subclass DistributedSampler only so that Lightning does not wrap them again (it leaves a
DistributedSampler alone); they shard themselves from `num_replicas`/`rank`.

ResumableDataLoader: a DataLoader whose position inside the epoch is part of every Lightning
  checkpoint. Lightning (>= 2.3) stores `state_dict()` of each stateful training loader in the fit
  loop's state ("combined_loader") and calls `load_state_dict()` before the resumed run iterates;
  the loader then asks its sampler to skip the batches already trained. Without it, resuming from a
  mid-epoch last.ckpt replays the first batches of the epoch and never sees the rest.
  Iteration starts lazily at the first `next()`: Lightning calls `iter()` before `set_epoch()`,
  and worker processes would otherwise draw indices for a stale epoch.
"""
from __future__ import annotations

import math

import numpy as np
from torch.utils.data import DataLoader, DistributedSampler


class EpochSampler(DistributedSampler):
    """(index, epoch) pairs for this rank; see the module docstring."""

    def __init__(self, n: int, shuffle: bool, seed: int = 0, num_replicas: int = 1, rank: int = 0):
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)
        self.n = n
        self._start = 0  # items of this rank's share to skip in the next pass (a resumed epoch)

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def start_at(self, position: int):
        """The next pass starts at this rank's `position`-th item (0 = the whole epoch)."""
        self._start = position

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        epoch, start = self.epoch, self._start
        self.epoch, self._start = epoch + 1, 0  # a plain loop (no set_epoch) gets a new epoch per pass
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n) if self.shuffle else np.arange(self.n)
        mine = np.resize(order, self.total_size)[self.rank::self.num_replicas]  # resize wraps: padding
        return iter([(int(i), epoch) for i in mine[start:]])


class EvalSampler(DistributedSampler):
    """Video indices r, r+R, ... for rank r of R; no padding, no shuffling."""

    def __init__(self, n: int, num_replicas: int = 1, rank: int = 0):
        super().__init__(range(n), num_replicas=num_replicas, rank=rank, shuffle=False, drop_last=False)
        self.n = n
        self.num_samples = len(range(rank, n, num_replicas))

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        return iter(range(self.rank, self.n, self.num_replicas))


class ResumableDataLoader(DataLoader):
    """A DataLoader with `state_dict()`/`load_state_dict()`: {"epoch", "batches" done in it}."""

    _position: dict | None = None  # where the current pass is
    _resume: dict | None = None  # loaded from a checkpoint, consumed by the next pass

    def state_dict(self) -> dict:
        return dict(self._position or {"epoch": self.sampler.epoch, "batches": 0})

    def load_state_dict(self, state: dict):
        self._resume = {"epoch": int(state["epoch"]), "batches": int(state["batches"])}

    def __iter__(self):
        return self._batches()

    def _batches(self):
        epoch, done = self.sampler.epoch, 0
        if self._resume is not None and self._resume["epoch"] == epoch:
            done = min(self._resume["batches"], math.ceil(len(self.sampler) / self.batch_size))
        self._resume = None
        self.sampler.start_at(done * self.batch_size)
        self._position = {"epoch": epoch, "batches": done}
        for batch in super().__iter__():
            self._position = {"epoch": epoch, "batches": self._position["batches"] + 1}
            yield batch
