"""`make table-main`: every frozen-backbone head on the temporal, spatial and kinematic synthetic sets.

Each head runs at its own LR (the validation sweep, table_lr) for every seed, from the feature store
of its set and seed (frozen backbone: no decoding, no backbone forward while training); each run's
checkpoint is chosen on validation and read once on test. Rows: mean test top-1 ± 95 % CI over seeds;
Δ vs pks4 with a two-level paired bootstrap (seeds and test clips) and the paired t over seeds.
The end-to-end rows (ST-Adapter, VideoMamba: from pixels) are not run here (see E2E_NOTE).
Raw: results/main.json; the Markdown is rendered from it alone (render()).
"""
from __future__ import annotations

import argparse
import datetime
import json

from pks4_lit.tables import outputs, plan, protocol, table_lr
from pks4_lit.tables.aggregate import ALPHA, group_summary, paired
from pks4_lit.tables.markdown import machine_line, md_table, write_block
from pks4_lit.tables.pool import run_trials
from pks4_lit.tables.readings import update_readme

E2E_NOTE = ("ST-Adapter and VideoMamba train end to end from pixels (no feature store can serve them: every epoch "
            "decodes every clip and runs the whole network), so they are not part of this table's 60-minute budget: "
            "their rows are in the end-to-end table (`make table-e2e`, same seeds, epochs, validation selection and "
            "test clips, paired against these pks4 runs), measured at about 6-7 min (ST-Adapter) and 2 min "
            "(VideoMamba) per trial on one core. Here they are missing, not zero.")


def winners(args, heads: list[protocol.Head], command: str) -> dict[str, float]:
    """Each head's validation-chosen LR (a variant with lr_from: that head's), running (or reusing) the sweep."""
    found = table_lr.load_winners() or {}
    if not all(h.lr_head in found for h in heads) or args.force:
        out = table_lr.lr_sweep(args, f"make table-lr (run by `{command}`)", protocol.SWEPT)
        found = {k: v["winner"] for k, v in out["heads"].items()}
    return {h.name: found[h.lr_head] for h in heads}


def main_table(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables main")
    plan.add_options(parser)
    parser.add_argument("--heads", nargs="+", default=[h.name for h in protocol.HEADS],
                        choices=[h.name for h in protocol.HEADS])
    parser.add_argument("--sets", nargs="+", default=list(protocol_sets()), choices=list(protocol_sets()))
    args = parser.parse_args(argv)
    heads = [protocol.HEAD_BY_NAME[h] for h in args.heads]
    lrs = winners(args, protocol.HEADS, command)
    out = {"command": command, "machine": machine_line(), "date": datetime.datetime.now().isoformat(timespec="minutes"),
           "epochs": args.epochs, "views": args.views, "seeds": plan.seeds(args), "reference": protocol.REFERENCE,
           "lr": {h.name: lrs[h.name] for h in heads}, "notes": {h.name: h.note for h in heads},
           "lr_from": {h.name: h.lr_from for h in heads if h.lr_from},
           "missing": {"st_adapter": E2E_NOTE, "videomamba": E2E_NOTE}, "all_sets": list(protocol_sets()), "sets": {}}
    for task in args.sets:
        prep = plan.prepare(args, task, plan.seeds(args))
        trials = {h.name: [plan.trial(args, task, h.name, h.config, h.head_args, lrs[h.name], s)
                           for s in plan.seeds(args)] for h in heads}
        flat = [t for ts in trials.values() for t in ts]
        res = dict(zip((t.name for t in flat), run_trials(flat, args.jobs, force=args.force)))
        groups = {h: [res[t.name] for t in ts] for h, ts in trials.items()}
        rows = {h: group_summary(g) for h, g in groups.items()}
        ref = protocol.REFERENCE
        if ref in groups:
            for h, g in groups.items():
                if h != ref:
                    rows[h]["vs_ref"] = paired(g, groups[ref])
        out["sets"][task] = {"prepare": prep, "rows": rows, "n_test": rows[next(iter(rows))]["n_test"]}
        save(out)                                  # after each set: a partial run still leaves its numbers
    write_block("main", render(out))
    update_readme()
    return out


def protocol_sets():
    from pks4_lit.tables.sets import SETS

    return SETS


def path():
    return outputs.RAW_DIR / "main.json"


def save(out: dict) -> None:
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    path().write_text(json.dumps(out, indent=1))


def fmt_ci(ci: dict) -> str:
    return f"{100 * ci['mean']:.1f} ± {100 * ci['half']:.1f}"


def fmt_delta(d: dict | None) -> str:
    if d is None:
        return "ref."
    mark = " *" if d["significant"] else ""
    return f"{100 * d['delta']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}]{mark}"


def render(out: dict) -> str:
    """The Markdown block, a function of the JSON only."""
    from pks4_lit.tables.readings import main_readings

    sets_ = list(out["sets"])
    heads = list(out["lr"])
    header = ["head", "LR"] + [c for t in sets_ for c in (f"{t} test top-1 (%)", f"Δ vs {out['reference']}")]
    rows = []
    for h in heads:
        cells = [h, f"{out['lr'][h]:g}" + (f" ({out['lr_from'][h]}'s)" if h in out.get("lr_from", {}) else "")]
        for t in sets_:
            r = out["sets"][t]["rows"].get(h)
            cells += [fmt_ci(r["test"]), fmt_delta(r.get("vs_ref"))] if r else ["—", "—"]
        rows.append(cells)
    for name, why in out["missing"].items():
        rows.append([name, "—"] + ["not run", "—"] * len(sets_))
    sizes = ", ".join(f"{t} {out['sets'][t]['n_test']}" for t in sets_)
    lines = [
        "### Main results: every frozen-backbone head on three synthetic sets\n",
        f"Command: `{out['command']}`  \nMachine: {out['machine']}  \nDate: {out['date']}\n",
        f"Each cell: mean test top-1 ± 95 % CI (Student t) over seeds {', '.join(map(str, out['seeds']))} "
        f"(`--seed_everything S --data.seed S`: initialisation, training views and order). Each run trains "
        f"{out['epochs']} epochs **from the frozen-feature store** of its set and seed (`pks4 cache`, "
        f"{out['views']} training views per clip, fp16; the backbone is frozen, so the model is the one pixels "
        f"would train, but epochs {out['views']}..{out['epochs'] - 1} replay those {out['views']} views where "
        f"pixels would draw new ones: the same for every head here, not for the pixel-trained e2e rows), keeps the checkpoint with the best **validation** top-1 and is read once on test. "
        f"Test clips: {sizes}. Δ: accuracy difference vs {out['reference']} in points, pooled over seeds, with a "
        f"95 % two-level paired-bootstrap interval (each replicate redraws the seeds and the test clips, the same "
        f"clips for both rows); * = significant: that interval excludes 0 AND the paired t-test over the per-seed "
        f"differences has p < 0.05 (both in the raw file, with McNemar for reference). "
        f"LR: each head's own, chosen on validation (table above); the global_ssm "
        f"variants were not swept (time) and run at global_ssm's, marked so. "
        f"Raw: `{outputs.relative(path())}`.\n",
        md_table(header, rows) + "\n",
        "Heads: " + "; ".join(f"`{h}`: {n}" for h, n in out["notes"].items()) + ".\n",
        "Missing rows: " + " ".join(dict.fromkeys(out["missing"].values())) + "\n",
        *([f"**Sets not run by this command: {', '.join(not_run)}** (their columns are missing, not zero).\n"]
          if (not_run := [t for t in out.get("all_sets", sets_) if t not in sets_]) else []),
        main_readings(out),
        "Commands (one per seed; `S` = 0..4):\n",
    ]
    for t in sets_:
        for h in heads:
            r = out["sets"][t]["rows"].get(h)
            if r:
                lines.append("    " + r["commands"][0].replace(f"seed{r['seeds'][0]}", "seedS")
                             .replace(f"--seed_everything {r['seeds'][0]} --data.seed {r['seeds'][0]}",
                                      "--seed_everything S --data.seed S"))
    return "\n".join(lines)


__all__ = ["main_table", "render", "ALPHA"]
