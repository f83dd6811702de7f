"""Trial results → table numbers: mean ± 95 % CI over seeds, paired tests on the same test clips.

A group is one row of a table on one set: the trials of one head (or ablation variant) for every
seed, in seed order. Two groups are compared only when they hold the same seeds and the same test
clip ids in the same order (`correct_matrix` refuses anything else).
"""
from __future__ import annotations

import numpy as np

from pks4_lit.tables.stats import mcnemar, mean_ci, paired_bootstrap

ALPHA = 0.05


def correct_matrix(results: list[dict], ids: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """(clip ids, correct [S,N] bool) of trials sorted by seed; every trial must list the same clips."""
    if not results:
        raise ValueError("no trials")
    ids = list(ids if ids is not None else results[0]["test"]["ids"])
    rows = []
    for r in results:
        t = r["test"]
        if list(t["ids"]) != ids:
            raise ValueError(f"{r.get('name')}: its test clips differ from the group's (ids or order)")
        rows.append([p == y for p, y in zip(t["preds"], t["labels"])])
    return ids, np.asarray(rows, dtype=bool)


def by_seed(results: list[dict]) -> list[dict]:
    seeds = [r["seed"] for r in results]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"repeated seeds in one group: {seeds}")
    return sorted(results, key=lambda r: r["seed"])


def group_summary(results: list[dict]) -> dict:
    """Accuracy over seeds of one row on one set (test of the val-selected checkpoint)."""
    results = by_seed(results)
    ids, correct = correct_matrix(results)
    test = [float(c.mean()) for c in correct]
    return {"seeds": [r["seed"] for r in results], "n_test": len(ids),
            "test_top1": test, "test": mean_ci(test),
            "best_val": mean_ci([r["best_val"] for r in results]),
            "best_epoch": [r["best_epoch"] for r in results],
            "val_curve_mean": np.mean([r["val_top1"] for r in results], 0).tolist()
            if len({len(r["val_top1"]) for r in results}) == 1 else None,
            "fit_s": mean_ci([r["fit_s"] for r in results]),
            "commands": [r["command"] for r in results]}


def paired(a: list[dict], b: list[dict]) -> dict:
    """a − b on the same seeds and test clips: two-level paired bootstrap (seeds and clips resampled) and
    the paired t-test over seeds decide `significant` (both must agree); exact McNemar on the discordant
    (seed, clip) pairs is kept for reference only (it treats a clip's S seeds as independent)."""
    a, b = by_seed(a), by_seed(b)
    if [r["seed"] for r in a] != [r["seed"] for r in b]:
        raise ValueError(f"paired test needs the same seeds: {[r['seed'] for r in a]} vs {[r['seed'] for r in b]}")
    ids, ca = correct_matrix(a)
    _, cb = correct_matrix(b, ids)
    boot, mc = paired_bootstrap(ca, cb), mcnemar(ca, cb)
    return {**boot, "mcnemar_p": mc["p"], "a_only": mc["a_only"], "b_only": mc["b_only"],
            "n_pairs": int(ca.size)}


def lr_winner(sweep: dict[float, list[float]]) -> float:
    """The LR with the highest mean best-val over seeds; the smallest such LR on ties. Reads no test."""
    return max(sorted(sweep), key=lambda lr: (float(np.mean(sweep[lr])), -lr))
