"""The prose readings under the tables, generated from their JSON (so they cannot drift from the numbers).

Each reading states a claim of the paper's abstract as we test it at synthetic scale, the paired
difference that decides it (points, 95 % paired-bootstrap interval over the same test clips pooled over
seeds) and the verdict: holds (interval above 0), reversed (interval below 0) or not decided (interval
contains 0), whichever way it falls.
"""
from __future__ import annotations

# (set, other head, claim that pks4 is better than it there)
MAIN_CLAIMS = [
    ("temporal", "tsn", "order matters on temporal-heavy data: pks4 beats order-blind pooling (tsn)"),
    ("kinematic", "tsn", "fine motion: pks4 beats order-blind pooling (tsn) on the kinematic set"),
    ("temporal", "attention", "pks4 beats temporal attention on temporal-heavy data"),
    ("kinematic", "attention", "pks4 beats temporal attention on fine motion"),
    ("kinematic", "ssm", "the kinematic priors help: pks4 beats the same scanners without priors (ssm)"),
    ("temporal", "ssm", "the priors help on temporal-heavy data too (pks4 vs ssm)"),
    ("kinematic", "global_ssm", "per-location scanners beat one global scan (global_ssm) on fine motion"),
    ("kinematic", "global_ssm_bi", "... and its bidirectional variant at the same budget"),
    ("kinematic", "global_ssm_bi_2l", "... and its two-layer bidirectional variant at the same budget"),
    ("spatial", "tsn", "on spatial-heavy data pks4 is at least as good as pooling (tsn)"),
]


def verdict(lo: float, hi: float, non_inferiority: bool = False) -> str:
    if lo > 0:
        return "**holds**"
    if hi < 0:
        return "**does not hold** (the other way round, significantly)"
    return "**holds** (no significant difference)" if non_inferiority else "**not decided** at this scale (interval contains 0)"


def pks4_minus(d: dict) -> tuple[float, float, float]:
    """vs_ref is other − pks4: flip it to pks4 − other (points)."""
    return -100 * d["delta"], -100 * d["hi"], -100 * d["lo"]


def main_readings(out: dict) -> str:
    lines = ["**Readings** (generated from the raw JSON; Δ = pks4 − other, points, 95 % paired-bootstrap interval):\n"]
    for task, other, claim in MAIN_CLAIMS:
        row = out["sets"].get(task, {}).get("rows", {}).get(other)
        if not row or "vs_ref" not in row:
            continue
        d, lo, hi = pks4_minus(row["vs_ref"])
        ref = out["sets"][task]["rows"][out["reference"]]["test"]["mean"]
        lines.append(f"- {claim}: {verdict(lo, hi, non_inferiority=task == 'spatial')} — Δ = {d:+.1f} "
                     f"[{lo:+.1f}, {hi:+.1f}] (pks4 {100 * ref:.1f} %, {other} {100 * row['test']['mean']:.1f} %; "
                     f"McNemar p = {row['vs_ref']['mcnemar_p']:.2g}).")
    if len(lines) == 1:
        return ""
    lines.append("")
    return "\n".join(lines)


def ablation_readings(out: dict) -> str:
    lines = ["**Readings** (generated; Δ = variant − full pks4, points, 95 % paired-bootstrap interval):\n"]
    for name, r in out["rows"].items():
        d = r.get("vs_full")
        if d is None:
            continue
        lo, hi = 100 * d["lo"], 100 * d["hi"]
        if lo > 0:
            what = "significantly **better** than full pks4"
        elif hi < 0:
            what = "significantly **worse** than full pks4 (the switch matters)"
        else:
            what = "not distinguishable from full pks4 at this scale"
        lines.append(f"- {name}: {what} — Δ = {100 * d['delta']:+.1f} [{lo:+.1f}, {hi:+.1f}], "
                     f"McNemar p = {d['mcnemar_p']:.2g}.")
    lines.append("")
    return "\n".join(lines)
