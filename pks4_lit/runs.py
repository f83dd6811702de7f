"""Run folders and their checkpoints: `<save_dir>/<name>/version_N/checkpoints/{best,last}.ckpt`.

Which checkpoint `--ckpt_path best|last` means, what a checkpoint scored (read from the ModelCheckpoint
state stored inside it, with mmap: the weights are not read), which run folder a checkpoint belongs to.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

FAILED_MARKER = "FAILED"  # in a run folder whose command failed after it had started


def run_checkpoints(run_root: str, filename: str) -> list[Path]:
    return [Path(p) for p in glob.glob(os.path.join(glob.escape(run_root), "version_*", "checkpoints", filename))]


def latest_checkpoint(run_root: str, filename: str) -> Path | None:
    """The most recently written `<run_root>/version_*/checkpoints/<filename>`."""
    found = run_checkpoints(run_root, filename)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _load_lazily(path) -> dict:
    """A checkpoint's dict with its tensors memory-mapped (not read); {} if it cannot be read that way."""
    import pickle

    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, pickle.UnpicklingError):
        return {}


def checkpoint_score(path: Path, monitor: str) -> float | None:
    """The best `monitor` value a ModelCheckpoint recorded in the checkpoint's callback state (None if absent)."""
    for key, value in _load_lazily(path).get("callbacks", {}).items():
        if "ModelCheckpoint" in key and isinstance(value, dict) and value.get("monitor") == monitor:
            score = value.get("best_model_score")
            if score is not None:
                return float(score)
    return None


def _saved_config(run_dir: Path) -> dict | None:
    config = run_dir / "config.yaml"
    if not config.is_file():
        return None
    import yaml

    try:
        return yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None


def _comparable(found: list[Path], like: dict | None) -> list[Path]:
    """The best.ckpt files whose runs can be ranked against each other for a config `like`: the same
    `model` (an ablation override saved under the config's name is another experiment), and among
    those the runs on the same `data.root` when there are any (val scores of other data are not
    comparable; with none, e.g. testing on a new dataset, all same-model runs). Runs without a saved
    config.yaml count as the same."""
    if like is None:
        return found
    saved = {p: _saved_config(p.parent.parent) for p in found}
    same_model = [p for p in found if saved[p] is None or saved[p].get("model") == like.get("model")]
    root = (like.get("data") or {}).get("root")
    same_data = [p for p in same_model if saved[p] is None or (saved[p].get("data") or {}).get("root") == root]
    return same_data or same_model


def best_checkpoint(run_root: str, monitor: str, mode: str, like: dict | None = None
                    ) -> tuple[Path, float | None, int, int] | None:
    """(best.ckpt with the best recorded `monitor` across the comparable runs under run_root (see
    `_comparable`; `like` is the current config as a dict), its score, number of runs compared,
    number left out)."""
    found = run_checkpoints(run_root, "best.ckpt")
    same = _comparable(found, like)
    if not same:
        return None
    left_out = len(found) - len(same)
    scored = [(s, p) for p in same if (s := checkpoint_score(p, monitor)) is not None]
    if not scored:  # none records this metric: the newest, said so by a None score
        return max(same, key=lambda p: p.stat().st_mtime), None, len(same), left_out
    sign = 1.0 if mode == "max" else -1.0
    score, path = max(scored, key=lambda sp: (sign * sp[0], sp[1].stat().st_mtime))
    return path, score, len(same), left_out


def run_dir_of(ckpt_path: str) -> Path | None:
    """The logger run folder a checkpoint lives in (`<run>/checkpoints/x.ckpt` next to its logs), else None."""
    run = Path(ckpt_path).parent.parent
    if Path(ckpt_path).parent.name != "checkpoints":
        return None
    if (run / "hparams.yaml").is_file() or (run / "config.yaml").is_file() or any(run.glob("events.out.tfevents.*")):
        return run
    return None


def tensorboard_args(config):
    """The init_args of the configured TensorBoardLogger (None for any other logger, or none)."""
    logger = config.trainer.logger
    if not hasattr(logger, "class_path") or not logger.class_path.endswith("TensorBoardLogger"):
        return None
    return logger.init_args


def class_count_mismatch(ckpt_path: str, datamodule) -> str | None:
    """Why a checkpoint cannot be used on this data (another number of classes), or None."""
    hparams = _load_lazily(ckpt_path).get("hyper_parameters", {})
    trained, data = hparams.get("num_classes"), getattr(datamodule, "num_classes", None)
    if trained is None or data is None or int(trained) == int(data):
        return None
    root = getattr(datamodule, "root", "the data")
    return f"checkpoint {ckpt_path} has {trained} classes but {root} has {data}: use it with the dataset it was trained on"


def mark_failed(run_dir: Path, reason: str) -> None:
    (run_dir / FAILED_MARKER).write_text(reason + "\n")
