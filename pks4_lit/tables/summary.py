"""One run's numbers: accuracy, convergence, throughput (from its TensorBoard events) and costs."""
from __future__ import annotations

import json
from pathlib import Path

from pks4_lit.tables.costs import model_costs
from pks4_lit.tables.events import epochs_to, read_scalars
from pks4_lit.tables.runs import Run

TARGET_FRACTION = 0.9          # "converged": val/top1 >= 90% of its final value


def count_split(data: Path, split: str) -> int | None:
    f = Path(data) / f"{split}.json"
    return len(json.loads(f.read_text())) if f.is_file() else None


def summarize(run: Run, done: dict) -> dict:
    sc = read_scalars(run.dir)
    val = [v for _, _, v in sorted(sc.get("val/top1", []))]
    # the test of the reported checkpoint (a re-tested run holds earlier tests of another one)
    test = sorted((w, v) for _, w, v in sc.get("test/top1", []) if w >= done.get("tested_at", 0))
    s = dict(name=run.name, command=run.command, test_top1=test[-1][1] if test else None,
             val_top1=val, final_val=val[-1] if val else None, fit_s=done["fit_s"], fit_maxrss_MB=done["fit_maxrss_MB"])
    s["epochs_to_90"] = epochs_to(val, TARGET_FRACTION * val[-1]) if val else None
    n_train = count_split(run.data, "train")
    s["n_train"] = n_train
    epochs = sorted(sc.get("train/loss_epoch", []))
    if n_train and len(epochs) >= 2:                     # clips per wall second between epoch ends
        (_, w0, _), (_, w1, _) = epochs[0], epochs[-1]
        s["clips_per_s"] = n_train * (len(epochs) - 1) / max(w1 - w0, 1e-9)
    else:
        s["clips_per_s"] = n_train * len(val) / done["fit_s"] if n_train and val else None
    s.update(model_costs(done.get("ckpt") or done["best"]))
    return s


def compute_to_target(rows: list[dict], target: float) -> None:
    """Epochs and PFLOPs (train FLOPs/clip × clips × epochs) until val/top1 first reaches target."""
    for s in rows:
        e = epochs_to(s["val_top1"], target)
        s["epochs_to_target"] = e
        s["PFLOPs_to_target"] = (s["train_GFLOPs_per_clip"] * s["n_train"] * e / 1e6
                                 if e is not None and s["n_train"] else None)
