"""Intervals and paired tests for the tables: accuracy over seeds, differences over the same test clips.

    correct [S,N] bool: seed s got test clip n right (the same N clips, in the same order, for every seed)

* `mean_ci(values)`: mean with a Student-t 95 % interval over seeds (the seed changes initialisation and
  sampling; test clips are fixed, so this is the run-to-run spread, not the test-set sampling error).
* `paired_bootstrap(a, b)`: the accuracy difference a − b pooled over seeds, with a percentile interval
  from a two-level bootstrap: every replicate redraws the seeds AND the test clips with replacement (the
  same drawn clips for every drawn seed and both models: the pairing), so the interval carries both the
  run-to-run spread and the test-set sampling error. (Resampling clips alone, seeds held fixed, ignores
  the seed spread: with 5 seeds one collapsed run can look "significant" to it.)
* `seed_t(a, b)`: paired t-test over seeds on the per-seed accuracy differences (S − 1 degrees of
  freedom); conservative with few seeds, where a percentile bootstrap over 5 seeds is too narrow.
  A difference is called significant only when both agree (`paired_bootstrap(...)["significant"]`).
* `mcnemar(a, b)`: exact McNemar test on the discordant (seed, clip) pairs, pooled over seeds. It treats
  the S copies of a clip as independent, so it is reported for reference, never used to decide.

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
    """{delta, lo, hi, p, seed_t_p, significant}: accuracy(a) − accuracy(b), seeds and clips resampled.

    significant: the bootstrap interval excludes 0 and, with >= 2 seeds, the paired t-test over seeds
    has p < 1 − confidence (with one seed only the clip bootstrap is possible)."""
    a, b = _paired(a, b)
    diff = a.astype(np.float64) - b.astype(np.float64)               # [S,N]
    S, n = diff.shape
    rng = np.random.default_rng(seed)
    boot = np.empty(n_boot)
    for i in range(0, n_boot, 1000):                                 # chunks keep memory at 1000·S·N
        k = min(1000, n_boot - i)
        seeds = rng.integers(0, S, size=(k, S)) if S > 1 else np.zeros((k, 1), dtype=np.int64)
        clips = rng.integers(0, n, size=(k, 1, n))
        boot[i:i + k] = np.take_along_axis(diff[seeds], clips, axis=2).mean((1, 2))
    alpha = 1 - confidence
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    delta = float(diff.mean())
    # two-sided p: how often the resampled difference lands on the other side of 0 (doubled), >= 1/n_boot
    p = min(1.0, 2 * max(min((boot <= 0).mean(), (boot >= 0).mean()), 1 / n_boot)) if delta != 0 else 1.0
    t_p = seed_t(a, b)["p"]
    significant = bool((lo > 0 or hi < 0) and (t_p is None or t_p < alpha))
    return {"delta": delta, "lo": float(lo), "hi": float(hi), "p": float(p), "seed_t_p": t_p,
            "significant": significant}


def seed_t(a, b) -> dict:
    """{per_seed, p}: per-seed accuracy differences a − b and the two-sided paired t-test p over seeds
    (None with one seed; with zero spread, 0 for a non-zero difference and 1 for none)."""
    a, b = _paired(a, b)
    d = a.mean(1) - b.mean(1)                                        # [S]
    if d.size < 2:
        return {"per_seed": d.tolist(), "p": None}
    if np.allclose(d, d[0]):
        return {"per_seed": d.tolist(), "p": 0.0 if d[0] != 0 else 1.0}
    return {"per_seed": d.tolist(), "p": float(st.ttest_1samp(d, 0.0).pvalue)}


def mcnemar(a, b) -> dict:
    """{a_only, b_only, p}: exact two-sided McNemar over the (seed, clip) pairs where a and b disagree."""
    a, b = _paired(a, b)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    n = a_only + b_only
    p = 1.0 if n == 0 else float(st.binomtest(a_only, n, 0.5).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p": p}
