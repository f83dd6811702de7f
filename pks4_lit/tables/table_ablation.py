"""`make table-ablation`: pks4 on the KINEMATIC set with one switch changed, against full pks4.

Every variant is conf/synthetic/pks4.yaml with typed head overrides (`--model.net.head.<arg>`) at
pks4's validation-chosen LR, for every seed, from the same feature stores as the main table (the full
pks4 runs are the main table's). "global scan" is the main table's global_ssm row (its own LR).
Δ vs full: two-level paired bootstrap (seeds and test clips) and the paired t over seeds; * = both agree.
Raw: results/ablation.json; the Markdown is rendered from it alone (render()).
"""
from __future__ import annotations

import argparse
import datetime
import json

from pks4_lit.tables import outputs, plan, protocol
from pks4_lit.tables.aggregate import group_summary, paired
from pks4_lit.tables.markdown import machine_line, md_table, write_block
from pks4_lit.tables.pool import run_trials
from pks4_lit.tables.readings import update_readme
from pks4_lit.tables.table_main import fmt_ci, fmt_delta, winners

GLOBAL_ROW = "global scan (= global_ssm)"


def slug(head_args: dict) -> str:
    return "pks4" + "".join(f"-{k}={v}" for k, v in head_args.items()).replace(" ", "")


def ablation_table(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables ablation")
    plan.add_options(parser)
    parser.add_argument("--only", nargs="*", default=None, help="subset of variant names (the full pks4 always runs)")
    args = parser.parse_args(argv)
    task = protocol.ABLATION_SET
    lrs = winners(args, protocol.HEADS, command)
    chosen = [a for a in protocol.ABLATIONS if args.only is None or a[0] in args.only or not a[1]]
    prep = plan.prepare(args, task, plan.seeds(args))
    trials = {name: [plan.trial(args, task, "pks4" if not kw else slug(kw), "pks4", kw, lrs["pks4"], s)
                     for s in plan.seeds(args)] for name, kw in chosen}
    g = protocol.HEAD_BY_NAME["global_ssm"]
    trials[GLOBAL_ROW] = [plan.trial(args, task, g.name, g.config, g.head_args, lrs[g.name], s) for s in plan.seeds(args)]
    flat = [t for ts in trials.values() for t in ts]
    res = dict(zip((t.name for t in flat), run_trials(flat, args.jobs, force=args.force)))
    groups = {name: [res[t.name] for t in ts] for name, ts in trials.items()}
    full = groups["pks4 (full)"]
    rows = {name: group_summary(gr) for name, gr in groups.items()}
    for name, gr in groups.items():
        if name != "pks4 (full)":
            rows[name]["vs_full"] = paired(gr, full)
    args_of = dict(chosen)
    out = {"command": command, "machine": machine_line(), "date": datetime.datetime.now().isoformat(timespec="minutes"),
           "set": task, "epochs": args.epochs, "views": args.views, "seeds": plan.seeds(args),
           "lr": {"pks4": lrs["pks4"], "global_ssm": lrs["global_ssm"]}, "prepare": prep,
           "head_args": {name: args_of.get(name, {}) for name in rows}, "rows": rows}
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    path().write_text(json.dumps(out, indent=1))
    write_block("ablation", render(out))
    update_readme()
    return out


def path():
    return outputs.RAW_DIR / "ablation.json"


def render(out: dict) -> str:
    """The Markdown block, a function of the JSON only."""
    from pks4_lit.tables.readings import ablation_readings

    rows = []
    for name, r in out["rows"].items():
        d = r.get("vs_full")
        rows.append([name, fmt_ci(r["test"]), fmt_delta(d),
                     "—" if d is None or d.get("seed_t_p") is None else f"{d['seed_t_p']:.3g}",
                     "—" if d is None else f"{d['mcnemar_p']:.3g}",
                     "—" if d is None else f"{d['a_only']} / {d['b_only']}"])
    head = ["variant", "test top-1 (%)", "Δ vs full [95 % CI]", "paired t p (seeds)", "McNemar p (reference)",
            "only variant right / only full right"]
    return "\n".join([
        f"### Ablations of PKS4 ({out['set']} set)\n",
        f"Command: `{out['command']}`  \nMachine: {out['machine']}  \nDate: {out['date']}\n",
        f"pks4 on the {out['set']} set with one switch changed (typed `--model.net.head.<argument>` overrides of "
        f"conf/synthetic/pks4.yaml, pks4's LR {out['lr']['pks4']:g}); global scan = the global_ssm head at its "
        f"own LR {out['lr']['global_ssm']:g}. Seeds {', '.join(map(str, out['seeds']))}, {out['epochs']} epochs "
        f"from the frozen-feature stores, checkpoint chosen on validation, {next(iter(out['rows'].values()))['n_test']} "
        f"test clips. Δ in points vs full pks4 on the same seeds and test clips: 95 % two-level paired bootstrap "
        f"(seeds and clips redrawn); * = significant: that interval excludes 0 AND the paired t-test over the "
        f"per-seed differences has p < 0.05. McNemar over the pooled (seed, clip) pairs treats a clip's seeds as "
        f"independent: reference only. Not run: {protocol.ABLATIONS_LEFT_OUT}. "
        f"Raw: `{outputs.relative(path())}`.\n",
        md_table(head, rows) + "\n",
        ablation_readings(out),
        "Commands (seed S = 0..4): `" + "`, `".join(
            r["commands"][0].replace(f"--seed_everything {r['seeds'][0]} --data.seed {r['seeds'][0]}",
                                     "--seed_everything S --data.seed S")
            .replace(f"seed{r['seeds'][0]}", "seedS") for r in out["rows"].values()) + "`\n"])
