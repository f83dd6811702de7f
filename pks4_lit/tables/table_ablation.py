"""`make table-ablation`: PKS4's switches, each a typed override of the head in conf/synthetic/<head>.yaml."""
from __future__ import annotations

import argparse
import json

from pks4_lit.tables import outputs
from pks4_lit.tables.markdown import md_table, provenance, write_block
from pks4_lit.tables.plots import plot_curves
from pks4_lit.tables.runs import (Run, add_run_options, config_path, ensure_synthetic, head_overrides, overrides,
                                  run_all)
from pks4_lit.tables.summary import summarize

ABLATIONS = [  # (name, config <head>.yaml, arguments of that head's class)
    ("pks4 (full)", "pks4", {}),
    ("w/o correlation", "pks4", {"use_correlation": False}),
    ("w/o difference", "pks4", {"use_difference": False}),
    ("w/o priors (= ssm)", "pks4", {"use_priors": False}),
    ("global scan (= global_ssm)", "global_ssm", {}),
    ("bidirectional", "pks4", {"bidirectional": True}),
    ("radius 1", "pks4", {"radius": 1}),
    ("radius 3", "pks4", {"radius": 3}),
]


def ablation_table(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables ablation")
    add_run_options(parser)
    parser.add_argument("--task", default="temporal", choices=["temporal", "spatial"])
    parser.add_argument("--only", nargs="*", default=None, help="subset of ablation names")
    args = parser.parse_args(argv)
    config_dir = outputs.repo_path(args.config_dir or "conf/synthetic")
    data = outputs.repo_path(args.data or "data/tables")
    root = ensure_synthetic(data / args.task, args.task, args.videos_per_class)
    slug = lambda n: "".join(c if c.isalnum() else "_" for c in n).strip("_")  # noqa: E731
    chosen = [a for a in ABLATIONS if args.only is None or a[0] in args.only]
    runs = [Run("ablation", f"{args.task}/{slug(name)}", config_path(config_dir, head), root,
                overrides(args, head_overrides(kw)), outputs.repo_path(args.runs_dir))
            for name, head, kw in chosen]
    rows = [summarize(r, done) for r, done in zip(runs, run_all(runs, args.force))]
    for (name, _, kw), s in zip(chosen, rows):
        s["label"], s["head_args"] = name, kw
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    (outputs.RAW_DIR / "ablation.json").write_text(json.dumps(rows, indent=1))
    png = outputs.FIG_DIR / "ablation_val_curves.png"
    for s in rows:
        s["name"] = s["label"]
    plot_curves({f"{args.task}-heavy set": rows}, png, "PKS4 ablations: val top-1 per epoch")
    full = next((s for s in rows if s["label"] == "pks4 (full)"), None)
    header = ["variant", "test top-1", "Δ vs full", "final val top-1", "epochs to 90%", "train GFLOPs/clip",
              "tunable params", "saved MB (batch)"]
    table = md_table(header, [[
        s["label"], s["test_top1"],
        (s["test_top1"] - full["test_top1"]) if full and s["test_top1"] is not None and full["test_top1"] is not None else None,
        s["final_val"], s["epochs_to_90"], s["train_GFLOPs_per_clip"], s["tunable_params"],
        f"{s['saved_MB']:.1f} ({s['batch_size']})"] for s in rows])
    md = [provenance(command), f"![ablation curves]({outputs.relative(png)})  ",
          f"{args.task}-heavy synthetic set; every variant is `conf/synthetic/<head>.yaml` with the typed head "
          f"overrides (`--model.net.head.<argument>`) shown in the commands. "
          f"Raw: `{outputs.relative(outputs.RAW_DIR / 'ablation.json')}`.\n",
          table + "\n", "Commands:\n\n" + "\n".join(f"    {s['command']}" for s in rows) + "\n"]
    write_block("ablation", "### Ablations of PKS4 (synthetic, temporal-heavy)\n\n" + "\n".join(md))
    return {"rows": rows}
