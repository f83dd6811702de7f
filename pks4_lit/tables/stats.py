"""Intervals and paired tests for the tables: accuracy over seeds, differences over the same test clips.

    correct [S,N] bool: seed s got test clip n right (the same N clips, in the same order, for every seed)

* `mean_ci(values)`: mean with a Student-t 95 % interval over seeds (the seed changes initialisation and
  sampling; test clips are fixed, so this is the run-to-run spread, not the test-set sampling error).
* `paired_bootstrap(a, b)`: the accuracy difference a − b pooled over seeds, with a percentile interval
  from resampling test clips (the same resampled clips for every seed and both models: the pairing) and
  a two-sided p-value; it carries both the seed spread and the test-set sampling error.
* `mcnemar(a, b)`: exact McNemar test on the discordant (seed, clip) pairs, pooled over seeds.

Efron & Tibshirani, *An Introduction to the Bootstrap* (1993), ch. 13 and 16; McNemar (1947).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as st


def mean_ci(values, confidence: float = 0.95) -> dict:
    """{mean, lo, hi, half, n} of `values` (one per seed); lo = hi = mean for a single value."""
    v = np.asarray(list(values), dtype=np.float64)
    if v.size == 0:
        raise ValueError("mean_ci: no values")
    mean = float(v.mean())
    half = 0.0
    if v.size > 1:
        half = float(st.t.ppf(0.5 + confidence / 2, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "half": half, "n": int(v.size)}


def _paired(a, b) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    a, b = np.atleast_2d(a), np.atleast_2d(b)                        # [S,N]
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same seeds and test clips: {a.shape} vs {b.shape}")
    return a, b


def paired_bootstrap(a, b, n_boot: int = 10000, confidence: float = 0.95, seed: int = 0) -> dict:
    """{delta, lo, hi, p, significant}: accuracy(a) − accuracy(b), clips resampled with replacement."""
    a, b = _paired(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)               # [S,N]
    per_clip = diff.mean(0)                                          # [N]: pooled over seeds
    n = per_clip.size
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for i in range(0, n_boot, 1000):                                 # chunks keep memory at 1000·N
        k = min(1000, n_boot - i)
        boot[i:i + k] = per_clip[rng.integers(0, n, size=(k, n))].mean(1)
    alpha = 1 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    delta = float(per_clip.mean())
    # two-sided p: how often the resampled difference lands on the other side of 0 (doubled), >= 1/n_boot
    p = min(1.0, 2 * max(min((boot <= 0).mean(), (boot >= 0).mean()), 1 / n_boot)) if delta != 0 else 1.0
    return {"delta": delta, "lo": float(lo), "hi": float(hi), "p": float(p), "significant": bool(lo > 0 or hi < 0)}


def mcnemar(a, b) -> dict:
    """{a_only, b_only, p}: exact two-sided McNemar over the (seed, clip) pairs where a and b disagree."""
    a, b = _paired(a, b)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    p = 1.0 if n == 0 else float(st.binomtest(a_only, n, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p": p}
