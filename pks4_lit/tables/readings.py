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


NON_INFERIORITY_MARGIN = 1.0   # points: "at least as good" = the interval's lower end above −1 point


def verdict(d: dict, non_inferiority: bool = False) -> str:
    """Verdict on pks4 − other (points) from a vs_ref dict (other − pks4)."""
    delta, lo, hi = pks4_minus(d)
    if non_inferiority:
        if lo > -NON_INFERIORITY_MARGIN:
            return f"**holds** (pks4 − other > −{NON_INFERIORITY_MARGIN:g} point at the interval's lower end)"
        return f"**not shown** (the interval reaches below −{NON_INFERIORITY_MARGIN:g} point)"
    if d["significant"]:
        return "**holds**" if delta > 0 else "**does not hold** (the other way round, significantly)"
    return "**not decided** at this scale (not significant over seeds and clips)"


def pks4_minus(d: dict) -> tuple[float, float, float]:
    """vs_ref is other − pks4: flip it to pks4 − other (points)."""
    return -100 * d["delta"], -100 * d["hi"], -100 * d["lo"]


def main_readings(out: dict) -> str:
    lines = ["**Readings** (generated from the raw JSON; Δ = pks4 − other, points, 95 % two-level paired-bootstrap "
             "interval over seeds and test clips). " + CAVEAT + "\n"]
    for task, other, claim in MAIN_CLAIMS:
        row = out["sets"].get(task, {}).get("rows", {}).get(other)
        if not row or "vs_ref" not in row:
            continue
        d, lo, hi = pks4_minus(row["vs_ref"])
        ref = out["sets"][task]["rows"][out["reference"]]["test"]["mean"]
        lines.append(f"- {claim}: {verdict(row['vs_ref'], non_inferiority=task == 'spatial')} — Δ = {d:+.1f} "
                     f"[{lo:+.1f}, {hi:+.1f}] (pks4 {100 * ref:.1f} %, {other} {100 * row['test']['mean']:.1f} %; "
                     f"{seed_t_words(row['vs_ref'])}).")
    still = still_improving(out)
    if still:
        lines.append(f"- Training budget: every head trains {out['epochs']} epochs; " + "; ".join(still)
                     + ". Where that holds, a 'not decided' compares learning speed within this budget, not "
                     "converged models.")
    if len(lines) == 1:
        return ""
    lines.append("")
    return "\n".join(lines)


def seed_t_words(d: dict) -> str:
    p = d.get("seed_t_p")
    return "one seed: no test over seeds" if p is None else f"paired t over seeds p = {p:.2g}"


def still_improving(out: dict) -> list[str]:
    """Rows whose checkpoint is one of the last two epochs in most seeds (validation still rising)."""
    found = []
    for task, s in out["sets"].items():
        late = [h for h, r in s["rows"].items()
                if sum(e >= out["epochs"] - 2 for e in r["best_epoch"]) > len(r["best_epoch"]) / 2]
        if late:
            found.append(f"on the {task} set {', '.join(late)} chose one of the last two epochs in most seeds "
                         f"(still improving)")
    return found


CAVEAT = ("Each bootstrap replicate redraws the seeds and the test clips (the same clips for both rows), so the "
          "interval carries the run-to-run spread as well as the test-set sampling error; with 5 seeds it is still "
          "narrow, hence the paired t over seeds must agree before a difference is called significant.")


def ablation_readings(out: dict) -> str:
    lines = ["**Readings** (generated; Δ = variant − full pks4, points, 95 % two-level paired-bootstrap interval "
             "over seeds and test clips; significant = that interval and the paired t over seeds agree). " + CAVEAT + "\n"]
    for name, r in out["rows"].items():
        d = r.get("vs_full")
        if d is None:
            continue
        if d["significant"]:
            what = ("significantly **better** than full pks4" if d["delta"] > 0
                    else "significantly **worse** than full pks4 (the switch matters)")
        else:
            what = "not distinguishable from full pks4 at this scale"
        lines.append(f"- {name}: {what} — Δ = {100 * d['delta']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}], "
                     f"{seed_t_words(d)}; per seed {', '.join(f'{100 * v:+.1f}' for v in per_seed(r, out))}.")
    lines.append("")
    return "\n".join(lines)


def per_seed(row: dict, out: dict) -> list[float]:
    full = (out["rows"].get("pks4 (full)") or next(iter(out["rows"].values())))["test_top1"]
    return [a - b for a, b in zip(row["test_top1"], full)]


README_START, README_END = "<!-- tables:readme:start -->", "<!-- tables:readme:end -->"


def readme_summary(main: dict | None, ablation: dict | None) -> str:
    """The README's 'what our numbers say' paragraph, from results/main.json and results/ablation.json."""
    parts = []
    if main and main.get("sets"):
        for task, s in main["sets"].items():
            cells = ", ".join(f"{h} {100 * r['test']['mean']:.1f} ± {100 * r['test']['half']:.1f}"
                              for h, r in s["rows"].items())
            parts.append(f"{task} set ({s['n_test']} test clips): {cells}")
        text = (f"**What our numbers say** (generated from docs/results/main.json by `{main['command']}`, "
                f"{main['date'][:10]}; mean test top-1 % ± 95 % CI over seeds {', '.join(map(str, main['seeds']))}, "
                f"frozen backbone, heads trained from feature stores, checkpoints chosen on validation): "
                + "; ".join(parts) + ".")
    else:
        text = "**What our numbers say**: the synthetic tables have not been regenerated yet (`make tables`)."
    if ablation and ablation.get("rows"):
        sig = [f"{n} {100 * r['vs_full']['delta']:+.1f}" for n, r in ablation["rows"].items()
               if r.get("vs_full") and r["vs_full"]["significant"]]
        text += (f" Ablation on the {ablation['set']} set (Δ vs full pks4 in points, significant only): "
                 + (", ".join(sig) if sig else "no switch changes accuracy significantly") + ".")
    return text + " docs/RESULTS.md has the tables, the readings of each paper claim, and the commands."


def write_readme_block(readme, main: dict | None, ablation: dict | None) -> None:
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise ValueError(f"{readme}: no {README_START} ... {README_END} block")
    head, rest = text.split(README_START, 1)
    readme.write_text(head + README_START + "\n" + readme_summary(main, ablation) + "\n" + README_END
                      + rest.split(README_END, 1)[1])


def update_readme() -> None:
    """Rewrite the README block from whatever main.json / ablation.json hold (new format only)."""
    import json

    from pks4_lit.tables import outputs

    def load(name):
        f = outputs.RAW_DIR / name
        data = json.loads(f.read_text()) if f.is_file() else None
        return data if data and ("sets" in data or "rows" in data) and isinstance(data, dict) else None

    if outputs.README.is_file():
        write_readme_block(outputs.README, load("main.json"), load("ablation.json"))


def efficiency_readings(res: dict) -> str:
    """What the efficiency benchmark says about linear cost in T, attention and adapters (numbers from res)."""
    rs = res["results"]
    at = {(r["mode"], r["row"], r["T"]): r for r in rs}
    lines = ["**Readings** (generated from the raw JSON; times are single CPU-thread wall times of one step):\n"]

    def ratio(mode, a, b, t, key):
        ra, rb = at.get((mode, a, t)), at.get((mode, b, t))
        return ra[key] / rb[key] if ra and rb and rb.get(key) else None

    head_T = sorted({r["T"] for r in rs if r["mode"] == "head" and r["row"] == "pks4"})
    sl = res["slopes"].get("head", {}).get("pks4")
    if sl and head_T:
        lines.append(f"- pks4 head, linear in T: FLOP slope {sl['train_GFLOPs_per_clip']['tail']:.2f}, "
                     f"saved-memory slope {sl['saved_MB']['tail']:.2f}, step-time slope {sl['step_s']['tail']:.2f} "
                     f"(log-log, last three T up to {head_T[-1]}).")
        steps = [(a, b) for a, b in ((16, 128), (128, 512)) if a in head_T and b in head_T]
        if steps:
            lines.append("- pks4 head step time grows " + ", ".join(
                f"{at[('head', 'pks4', b)]['step_s'] / at[('head', 'pks4', a)]['step_s']:.2f}× "
                f"from T={a} to T={b} ({b // a}× the frames)" for a, b in steps) + ".")
    att = res["slopes"].get("head", {}).get("attention")
    if att and head_T:
        parts = [f"T={t}: pks4 ÷ attention step time {ratio('head', 'pks4', 'attention', t, 'step_s'):.2f}×, "
                 f"saved memory {ratio('head', 'pks4', 'attention', t, 'saved_MB'):.2f}×, "
                 f"FLOPs {ratio('head', 'pks4', 'attention', t, 'train_GFLOPs_per_clip'):.2f}×"
                 for t in (128, head_T[-1]) if ratio('head', 'pks4', 'attention', t, 'step_s')]
        lines.append(f"- attention's QKᵀ/AV part grows with slope {att['quad_GFLOPs_per_clip']['tail']:.2f} (quadratic), its "
                     f"total FLOPs with slope {att['train_GFLOPs_per_clip']['tail']:.2f} at these T on a "
                     f"{res['config']['size']}×{res['config']['size']} map: " + "; ".join(dict.fromkeys(parts)) + ".")
    e2e_T = sorted({r["T"] for r in rs if r["mode"] == "e2e" and r["row"] == "st_adapter"})
    if e2e_T and ("e2e", "pks4", e2e_T[-1]) in at:
        t = e2e_T[-1]
        lines.append(f"- ST-Adapter (backpropagates through the frozen backbone) vs pks4 (frozen backbone, head only), "
                     f"full step from pixels at T={t}: saved memory {ratio('e2e', 'st_adapter', 'pks4', t, 'saved_MB'):.0f}×, "
                     f"FLOPs per clip {ratio('e2e', 'st_adapter', 'pks4', t, 'train_GFLOPs_per_clip'):.2f}×, "
                     f"step time {ratio('e2e', 'st_adapter', 'pks4', t, 'step_s'):.2f}×, tunable parameters "
                     f"{at[('e2e', 'st_adapter', t)]['tunable_params'] / at[('e2e', 'pks4', t)]['tunable_params']:.2f}×.")
    return "\n".join(lines) + "\n" if len(lines) > 1 else ""
