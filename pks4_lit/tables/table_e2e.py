"""`make table-e2e`: the end-to-end rows of the main table (ST-Adapter, VideoMamba), trained FROM PIXELS.

Not part of `make tables`: no feature store can serve them (ST-Adapter's adapters sit inside the
backbone; VideoMamba has no frozen backbone), so every epoch decodes every clip and runs the whole
network. Same sets, seeds, epochs, selection on validation and paired tests vs the main table's pks4
runs (same seeds and test clips) as `make table-main`. Each model at its own LR: ST-Adapter's is chosen
first by its own validation sweep (sweep_e2e.py: run, or reused from this table's JSON), VideoMamba's
is its config's (chosen by its own sweep in `make table-compute`, said in conf/synthetic/videomamba.yaml).
`--sets kinematic` runs one set; the block names the sets not run. Raw: results/e2e.json (the sweep
is its "sweep" section); the Markdown is rendered from it alone (render()).
"""
from __future__ import annotations

import argparse
import datetime
import json

import yaml

from pks4_lit.tables import outputs, plan, protocol, sets, sweep_e2e
from pks4_lit.tables.aggregate import group_summary, paired
from pks4_lit.tables.markdown import machine_line, md_table, write_block
from pks4_lit.tables.pool import run_trials
from pks4_lit.tables.table_main import fmt_ci, fmt_delta, winners
from pks4_lit.tables.trial import Trial

MODELS = {  # name: (config, note)
    "st_adapter": ("st_adapter", "ST-Adapter before every block of the frozen EfficientNet-Lite0 + mean pooling "
                                 "(conf/synthetic/st_adapter.yaml)"),
    "videomamba": ("videomamba", "VideoMamba (small CPU variant), all weights trained from pixels "
                                 "(conf/synthetic/videomamba.yaml)"),
}
CONFIG_LR_HOW = {"videomamba": "its config's, chosen on validation by its own sweep in `make table-compute` "
                               "(conf/synthetic/videomamba.yaml says how) under another protocol than this "
                               "table's: the compute set (temporal), seed 0 only, final-epoch val top-1 after 16 "
                               "epochs, grid 1e-4/3e-4/1e-3/3e-3 with the winner at its top edge; not swept here"}


def e2e_trial(args, task: str, name: str, lr: float, seed: int) -> Trial:
    """One model on one set and seed, from pixels; the folder rule of plan.py (<set>/<model>/lr<LR>/seed<S>)."""
    return plan.pixel_trial(args, task, name, MODELS[name][0], lr, seed)


def config_lr(args, name: str) -> float:
    config = outputs.repo_path(protocol.config_file(MODELS[name][0], args.config_dir))
    return float(yaml.safe_load(config.read_text())["model"]["lr"])


def model_lrs(args, models: list[str], sweep: dict | None) -> tuple[dict, dict]:
    """({model: LR}, {model: how it was chosen}): a swept model's sweep winner, else its config's LR."""
    lrs, how = {}, {}
    for m in models:
        if m in sweep_e2e.SWEPT:
            lrs[m], how[m] = sweep["models"][m]["winner"], sweep_e2e.how(sweep)
        else:
            lrs[m], how[m] = config_lr(args, m), CONFIG_LR_HOW[m]
    return lrs, how


def path():
    return outputs.RAW_DIR / "e2e.json"


def load() -> dict | None:
    f = path()
    return json.loads(f.read_text()) if f.is_file() else None


def save(out: dict) -> None:
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    path().write_text(json.dumps(out, indent=1))


def e2e_table(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables e2e")
    plan.add_options(parser)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sets", nargs="+", default=list(sets.SETS), choices=list(sets.SETS))
    parser.add_argument("--lr-grid", nargs="+", type=float, default=list(protocol.ADAPTER_LR_GRID),
                        help="ST-Adapter's LR sweep grid (default protocol.ADAPTER_LR_GRID)")
    args = parser.parse_args(argv)
    stored = load()
    sweep = sweep_e2e.sweep(args, command, args.models, args.lr_grid, (stored or {}).get("sweep"))
    lrs, how = model_lrs(args, args.models, sweep)
    ref = protocol.HEAD_BY_NAME[protocol.REFERENCE]
    ref_lr = winners(args, [ref], command)[ref.name]
    out = {"command": command, "machine": machine_line(), "date": datetime.datetime.now().isoformat(timespec="minutes"),
           "epochs": args.epochs, "seeds": plan.seeds(args), "reference": ref.name, "reference_lr": ref_lr,
           "notes": {m: MODELS[m][1] for m in args.models}, "lr": lrs, "lr_how": how, "sweep": sweep,
           "all_sets": list(sets.SETS), "sets": {}}
    save(out)
    for task in args.sets:
        plan.prepare(args, task, plan.seeds(args))
        trials = {m: [e2e_trial(args, task, m, lrs[m], s) for s in plan.seeds(args)] for m in args.models}
        trials[ref.name] = [plan.trial(args, task, ref.name, ref.config, ref.head_args, ref_lr, s)
                            for s in plan.seeds(args)]
        flat = [t for ts in trials.values() for t in ts]
        res = dict(zip((t.name for t in flat), run_trials(flat, args.jobs, force=args.force)))
        groups = {m: [res[t.name] for t in ts] for m, ts in trials.items()}
        rows = {m: dict(group_summary(g), vs_ref=paired(g, groups[ref.name]),
                        cpu_s=sum(r.get("cpu_s", 0) for r in g)) for m, g in groups.items() if m != ref.name}
        out["sets"][task] = {"rows": rows, "n_test": rows[next(iter(rows))]["n_test"]}
        save(out)                                  # after each set: a partial run still leaves its numbers
    write_block("e2e", render(out))
    return out


def render(out: dict) -> str:
    """The Markdown block, a function of the JSON only."""
    sets_ = list(out["sets"])
    ref = out.get("reference", protocol.REFERENCE)
    rows = []
    for m in out["lr"]:
        cells = [m, f"{out['lr'][m]:g}" + (" (val sweep)" if (out.get("sweep") or {}).get("models", {}).get(m)
                                            else " (config)")]
        for t in sets_:
            r = out["sets"][t]["rows"].get(m)
            cells += [fmt_ci(r["test"]), fmt_delta(r["vs_ref"])] if r else ["—", "—"]
        rows.append(cells)
    not_run = [t for t in out.get("all_sets", sets_) if t not in sets_]
    lines = [
        "### End-to-end baselines from pixels (`make table-e2e`)\n",
        f"Command: `{out['command']}`  \nMachine: {out['machine']}  \nDate: {out['date']}\n",
        f"Trained from pixels, {out['epochs']} epochs, seeds {', '.join(map(str, out['seeds']))}, checkpoint chosen "
        f"on validation; Δ vs the main table's {ref} runs (LR {out.get('reference_lr', 0):g}, from table-lr) on the "
        f"same seeds and test clips (two-level paired bootstrap over seeds and clips; * = it and the paired t over seeds agree). Each model runs at its own LR, named in "
        f"the LR column; no model runs at another model's LR. The {ref} reference trains from its frozen-feature "
        f"stores ({out.get('views', protocol.VIEWS)} training views replayed over the epochs), these rows from "
        f"pixels (a new view every epoch): a difference in augmentation that favours these rows, if anything. "
        f"Raw: `{outputs.relative(path())}`.\n",
        md_table(["model", "LR"] + [c for t in sets_ for c in (f"{t} test top-1 (%)", f"Δ vs {ref}")], rows) + "\n",
        "LR of each model: " + "; ".join(f"`{m}` {out['lr'][m]:g}: {h}" for m, h in out["lr_how"].items()) + ".\n",
        "Models: " + "; ".join(f"`{m}`: {n}" for m, n in out["notes"].items()) + ".\n",
    ]
    if out.get("sweep"):
        lines.append(sweep_e2e.render(out["sweep"]))
    if not_run:
        lines.append(f"**Sets not run by this command: {', '.join(not_run)}** (their columns are missing, not zero).\n")
    if sets_:
        lines.append("Commands (one per seed; `S` = the seed):\n")
        for t in sets_:
            for m, r in out["sets"][t]["rows"].items():
                s0 = r["seeds"][0]
                lines.append("    " + r["commands"][0].replace(f"seed{s0}", "seedS")
                             .replace(f"--seed_everything {s0} --data.seed {s0}", "--seed_everything S --data.seed S"))
    return "\n".join(lines)
