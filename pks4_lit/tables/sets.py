"""The synthetic sets of the tables and their frozen-feature stores, each written once and reused.

Sets (`pks4 synth --task T --split-sizes TRAIN VAL TEST`, clips per class): test has >= 200 clips per
set, so one clip is <= 0.5 points; validation is a separate split (what selects checkpoints and LRs).
Stores (`pks4 cache`): one per (set, seed), because the seed draws the training views
(`--data.seed`) and the store holds exactly the views of epochs 0..K-1; every frozen-backbone head of
that set and seed reads the same store.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass

from pks4_lit.tables import outputs


@dataclass(frozen=True)
class SynthSet:
    task: str                   # pks4 synth --task
    split_sizes: tuple          # clips per class (train, validation, test)
    classes: int

    @property
    def test_clips(self) -> int:
        return self.split_sizes[2] * self.classes


SETS = {
    "temporal": SynthSet("temporal", (20, 10, 25), 8),     # 160 / 80 / 200 clips
    "spatial": SynthSet("spatial", (20, 10, 34), 6),       # 120 / 60 / 204
    "kinematic": SynthSet("kinematic", (20, 10, 25), 8),   # 160 / 80 / 200
}
MIN_TEST_CLIPS = 200


def data_root(data_dir: str, task: str) -> str:
    return f"{data_dir.rstrip('/')}/{task}"


def ensure_set(data_dir: str, task: str) -> dict:
    """Write (or reuse) the set; returns pks4 synth's summary (seconds when written)."""
    from pks4_lit.data.synthetic import write_synthetic_dataset

    s = SETS[task]
    if s.test_clips < MIN_TEST_CLIPS:
        raise ValueError(f"{task}: {s.test_clips} test clips < {MIN_TEST_CLIPS}")
    t0 = time.time()
    info = write_synthetic_dataset(outputs.repo_path(data_root(data_dir, task)), task=task, split_sizes=s.split_sizes)
    info = dict(info, wall_s=round(time.time() - t0, 1), root=data_root(data_dir, task))
    print(f"[tables] synthetic {task} set ({'reused' if info.get('reused') else 'written'}, {info['wall_s']} s)",
          file=sys.stderr, flush=True)
    return info


def store_dir(cache_dir: str, task: str, seed: int) -> str:
    return f"{cache_dir.rstrip('/')}/{task}/seed{seed}"


def cache_command(config: str, data: str, seed: int, views: int, out: str, extra=()) -> list[str]:
    """`pks4 cache` arguments: the runs' data settings (and `extra`, the overrides every run gets)."""
    return ["--config", config, "--data.root", data, "--seed_everything", str(seed), "--data.seed", str(seed),
            "--views", str(views), "--out", out, "--no-progress", *extra]


def ensure_store(config: str, data: str, seed: int, views: int, out: str, extra=()) -> dict:
    """`pks4 cache` for one set and seed, in this process. A complete store is reused without rebuilding
    the CLI (every `pks4 fit --data.features` refuses a store whose fingerprint differs from its config,
    naming the difference); a partial one is completed by `pks4 cache`."""
    import os

    from pks4_lit.cache.command import main as cache_main
    from pks4_lit.tables.trial import _redirected

    path = outputs.repo_path(out)
    if (path / "manifest.json").is_file():     # complete; `pks4 fit --data.features` checks its fingerprint
        return {"out": out, "reused": True}
    t0 = time.time()
    path.parent.mkdir(parents=True, exist_ok=True)
    cwd = os.getcwd()
    os.chdir(outputs.REPO)
    try:
        with _redirected(path.parent / f"{path.name}.log", True):
            rc = cache_main(cache_command(config, data, seed, views, out, extra))
    finally:
        os.chdir(cwd)
    if rc != 0:
        raise RuntimeError(f"pks4 cache {' '.join(cache_command(config, data, seed, views, out, extra))} failed "
                           f"(see {path.parent / (path.name + '.log')})")
    wall = round(time.time() - t0, 1)
    print(f"[tables] feature store {out} ready ({wall} s)", file=sys.stderr, flush=True)
    return {"out": out, "wall_s": wall}
