"""Options shared by the synthetic tables and the trial of (set, row, LR, seed) they name.

A trial's folder is runs/tables/<set>/<row>/lr<LR>/seed<S> whichever table asks for it, so the LR
sweep's runs at the winning LR are the main table's runs for those seeds, and the ablation's full
pks4 is the main table's pks4: each is trained once. The end-to-end models (`pixel_trial`: no feature
store) follow the same rule, so ST-Adapter's sweep runs at its winning LR are table-e2e's runs.
"""
from __future__ import annotations

import argparse
import shlex

from pks4_lit.tables import protocol, sets
from pks4_lit.tables.trial import Trial


def add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default="data/tables", help="where the synthetic sets are written (relative)")
    parser.add_argument("--cache-dir", default="cache/tables", help="where the feature stores are written")
    parser.add_argument("--runs-dir", default="runs/tables")
    parser.add_argument("--config-dir", default=protocol.CONFIG_DIR)
    parser.add_argument("--epochs", type=int, default=protocol.EPOCHS)
    parser.add_argument("--views", type=int, default=protocol.VIEWS)
    parser.add_argument("--seeds", type=int, default=len(protocol.SEEDS), help="seeds 0..N-1 per row (>= 5 reported)")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes (one torch thread each)")
    parser.add_argument("--extra", default="", help="more CLI overrides for every run, one string")
    parser.add_argument("--force", action="store_true", help="retrain even when a finished run matches")


def seeds(args) -> list[int]:
    return list(range(args.seeds))


def trial(args, task: str, row: str, config: str, head_args: dict, lr: float, seed: int) -> Trial:
    # no data-loader worker processes: batches are read from the store, not decoded (a worker would be a
    # second interpreter per loader, paying every import again)
    overrides = protocol.head_overrides(head_args) + protocol.lr_args(lr) + \
        ["--trainer.max_epochs", str(args.epochs), "--data.num_workers", "0"] + shlex.split(args.extra)
    return Trial(name=trial_name(task, row, lr, seed), config=protocol.config_file(config, args.config_dir),
                 data=sets.data_root(args.data_dir, task), seed=seed, overrides=overrides,
                 features=sets.store_dir(args.cache_dir, task, seed), runs_dir=args.runs_dir)


def pixel_trial(args, task: str, row: str, config: str, lr: float, seed: int) -> Trial:
    """A model trained from pixels (adapters inside the backbone, or no frozen backbone): no store; the
    config's data loader settings (decoding workers) are kept."""
    overrides = protocol.lr_args(lr) + ["--trainer.max_epochs", str(args.epochs)] + shlex.split(args.extra)
    return Trial(name=trial_name(task, row, lr, seed), config=protocol.config_file(config, args.config_dir),
                 data=sets.data_root(args.data_dir, task), seed=seed, overrides=overrides, features=None,
                 runs_dir=args.runs_dir)


def trial_name(task: str, row: str, lr: float, seed: int) -> str:
    return f"{task}/{row}/lr{lr:g}/seed{seed}"


def prepare_pixels(args, task: str, config: str) -> dict:
    """The set and the config's backbone weights (what a run from pixels needs; no store)."""
    from pks4_lit.tables.runs import ensure_backbone_weights

    ensure_backbone_weights(sets.outputs.repo_path(protocol.config_file(config, args.config_dir)))
    info = sets.ensure_set(args.data_dir, task)
    return {"set": {k: info.get(k) for k in ("root", "reused", "wall_s", "splits", "videos")}}


def prepare(args, task: str, seed_list: list[int]) -> dict:
    """The set and one feature store per seed (written once, reused); returns their timings."""
    from pks4_lit.tables.runs import ensure_backbone_weights

    config = protocol.config_file("pks4", args.config_dir)
    ensure_backbone_weights(sets.outputs.repo_path(config))
    info = sets.ensure_set(args.data_dir, task)
    stores = [sets.ensure_store(config, info["root"], s, args.views, sets.store_dir(args.cache_dir, task, s),
                                shlex.split(args.extra)) for s in seed_list]
    return {"set": {k: info.get(k) for k in ("root", "reused", "wall_s", "splits", "videos")}, "stores": stores}
