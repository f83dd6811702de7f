"""`make table-e2e`: the end-to-end rows of the main table (ST-Adapter, VideoMamba), trained FROM PIXELS.

Not part of `make tables`: no feature store can serve them (ST-Adapter's adapters sit inside the
backbone; VideoMamba has no frozen backbone), so every epoch decodes every clip and runs the whole
network. Same sets, seeds, epochs, selection on validation and paired tests vs the main table's pks4
runs (same seeds and test clips) as `make table-main`. LRs: each model's config value (VideoMamba's
chosen by its own sweep, said in conf/synthetic/videomamba.yaml; ST-Adapter at the tsn config's LR,
not swept here: the table says so). Raw: results/e2e.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import shlex

import yaml

from pks4_lit.tables import outputs, plan, protocol, sets
from pks4_lit.tables.aggregate import group_summary, paired
from pks4_lit.tables.markdown import machine_line, md_table, write_block
from pks4_lit.tables.pool import run_trials
from pks4_lit.tables.table_main import fmt_ci, fmt_delta, winners
from pks4_lit.tables.trial import Trial

MODELS = {  # name: (config, overrides, note)
    "st_adapter": ("tsn", ["--model.net.adapter", "st_adapter"], "ST-Adapter in the frozen backbone + mean pooling"),
    "videomamba": ("videomamba", [], "VideoMamba (small CPU variant), all weights trained from pixels"),
}


def e2e_trial(args, task: str, name: str, seed: int) -> Trial:
    config, extra, _ = MODELS[name]
    overrides = extra + ["--trainer.max_epochs", str(args.epochs)] + shlex.split(args.extra)
    return Trial(name=f"{task}/{name}/config-lr/seed{seed}", config=protocol.config_file(config, args.config_dir),
                 data=sets.data_root(args.data_dir, task), seed=seed, overrides=overrides, features=None,
                 runs_dir=args.runs_dir)


def e2e_table(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables e2e")
    plan.add_options(parser)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--sets", nargs="+", default=list(sets.SETS), choices=list(sets.SETS))
    args = parser.parse_args(argv)
    lrs = winners(args, protocol.HEADS, command)
    ref = protocol.HEAD_BY_NAME[protocol.REFERENCE]
    out = {"command": command, "machine": machine_line(), "date": datetime.datetime.now().isoformat(timespec="minutes"),
           "epochs": args.epochs, "seeds": plan.seeds(args), "sets": {}, "notes": {m: MODELS[m][2] for m in args.models},
           "lr": {m: yaml.safe_load(outputs.repo_path(protocol.config_file(MODELS[m][0], args.config_dir)).read_text())
                  ["model"]["lr"] for m in args.models}}
    for task in args.sets:
        plan.prepare(args, task, plan.seeds(args))
        trials = {m: [e2e_trial(args, task, m, s) for s in plan.seeds(args)] for m in args.models}
        trials[ref.name] = [plan.trial(args, task, ref.name, ref.config, ref.head_args, lrs[ref.name], s)
                            for s in plan.seeds(args)]
        flat = [t for ts in trials.values() for t in ts]
        res = dict(zip((t.name for t in flat), run_trials(flat, args.jobs, force=args.force)))
        groups = {m: [res[t.name] for t in ts] for m, ts in trials.items()}
        rows = {m: dict(group_summary(g), vs_ref=paired(g, groups[ref.name]),
                        cpu_s=sum(r.get("cpu_s", 0) for r in g)) for m, g in groups.items() if m != ref.name}
        out["sets"][task] = {"rows": rows}
        outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
        (outputs.RAW_DIR / "e2e.json").write_text(json.dumps(out, indent=1))
    write_block("e2e", render(out))
    return out


def render(out: dict) -> str:
    sets_ = list(out["sets"])
    rows = [[m, f"{out['lr'][m]:g}"] + [c for t in sets_ for c in (fmt_ci(out["sets"][t]["rows"][m]["test"]),
                                                                    fmt_delta(out["sets"][t]["rows"][m]["vs_ref"]))]
            for m in out["lr"]]
    return "\n".join([
        "### End-to-end baselines from pixels (`make table-e2e`)\n",
        f"Command: `{out['command']}`  \nMachine: {out['machine']}  \nDate: {out['date']}\n",
        f"Trained from pixels, {out['epochs']} epochs, seeds {', '.join(map(str, out['seeds']))}, checkpoint chosen "
        f"on validation; Δ vs the main table's pks4 runs on the same seeds and test clips (paired bootstrap, * = "
        f"significant). LR: the config's (ST-Adapter: the tsn config's, not swept). "
        + "; ".join(f"`{m}`: {n}" for m, n in out["notes"].items()) + ".\n",
        md_table(["model", "LR"] + [c for t in sets_ for c in (f"{t} test top-1 (%)", "Δ vs pks4")], rows) + "\n"])
