"""`make table-main`: every temporal head (+ ST-Adapter) on the temporal- and spatial-heavy synthetic sets."""
from __future__ import annotations

import argparse
import inspect
import json

from pks4_lit.tables import outputs
from pks4_lit.tables.markdown import md_table, provenance, write_block
from pks4_lit.tables.plots import plot_curves
from pks4_lit.tables.runs import Run, add_run_options, config_path, ensure_synthetic, overrides, run_all
from pks4_lit.tables.summary import TARGET_FRACTION, compute_to_target, summarize

HEADS = ("tsn", "attention", "ssm", "global_ssm", "pks4")


def adapter_supported() -> bool:
    from pks4_lit.models import VideoClassifier

    return "adapter" in inspect.signature(VideoClassifier).parameters


def main_table(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables main")
    add_run_options(parser)
    parser.add_argument("--heads", nargs="+", default=list(HEADS) + ["st_adapter"])
    parser.add_argument("--tasks", nargs="+", default=["temporal", "spatial"], choices=["temporal", "spatial"])
    args = parser.parse_args(argv)
    config_dir = outputs.repo_path(args.config_dir or "conf/synthetic")
    data = outputs.repo_path(args.data or "data/tables")
    runs_dir = outputs.repo_path(args.runs_dir)
    notes, summaries = [], {}
    for task in args.tasks:
        root = ensure_synthetic(data / task, task, args.videos_per_class)
        runs = []
        for head in args.heads:
            if head == "st_adapter":
                if not adapter_supported():
                    notes.append("st_adapter: skipped: VideoClassifier has no `adapter` argument")
                    continue
                runs.append(Run("main", f"{task}/st_adapter", config_path(config_dir, "tsn"), root,
                                overrides(args, ["--model.net.adapter", "st_adapter"]), runs_dir))
            else:
                runs.append(Run("main", f"{task}/{head}", config_path(config_dir, head), root, overrides(args), runs_dir))
        rows = [summarize(r, done) for r, done in zip(runs, run_all(runs, args.force))]
        finals = {s["name"].split("/")[1]: s["final_val"] for s in rows}
        ref = [finals[h] for h in ("pks4", "global_ssm") if finals.get(h) is not None]
        target = TARGET_FRACTION * min(ref) if ref else None
        if target is not None:
            compute_to_target(rows, target)
        summaries[task] = dict(rows=rows, target=target)
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    (outputs.RAW_DIR / "main.json").write_text(json.dumps(summaries, indent=1))
    png = outputs.FIG_DIR / "main_val_curves.png"
    plot_curves({t: v["rows"] for t, v in summaries.items()}, png, "val top-1 per epoch (synthetic sets)")

    md = [provenance(command), f"![val curves]({outputs.relative(png)})  ",
          "Epochs to 90%: first epoch whose val top-1 reaches 90% of the run's final val top-1. "
          "Compute to target: train FLOPs/clip × training clips × epochs until val top-1 first reaches the "
          "target (90% of the lower final val top-1 of pks4 and global_ssm). Saved MB: bytes autograd keeps "
          "for backward at the training batch (deterministic); peak RSS: the whole `pks4 fit` process "
          "(data loading and Lightning included). Clips/s: training clips per wall second between the first "
          "and last epoch ends (validation and data loading included). "
          "Raw: `" + outputs.relative(outputs.RAW_DIR / "main.json") + "`.\n"]
    for task, v in summaries.items():
        rows = v["rows"]
        by = {s["name"].split("/")[1]: s for s in rows}
        md.append(f"**{task}-heavy set** (target val top-1 {v['target']:.3f}):\n" if v["target"] is not None
                  else f"**{task}-heavy set**:\n")
        header = ["head", "test top-1", "final val top-1", "epochs to 90%", "train GFLOPs/clip", "tunable params",
                  "saved MB (batch)", "peak RSS MB", "clips/s", "epochs to target", "PFLOPs to target"]
        md.append(md_table(header, [[
            s["name"].split("/")[1], s["test_top1"], s["final_val"], s["epochs_to_90"], s["train_GFLOPs_per_clip"],
            s["tunable_params"], f"{s['saved_MB']:.1f} ({s['batch_size']})", round(s["fit_maxrss_MB"]),
            s["clips_per_s"], s.get("epochs_to_target"), s.get("PFLOPs_to_target")] for s in rows]) + "\n")
        p, g = by.get("pks4", {}).get("PFLOPs_to_target"), by.get("global_ssm", {}).get("PFLOPs_to_target")
        if p and g:
            md.append(f"Training compute to target, global_ssm / pks4 = **{g / p:.2f}×** "
                      f"(the paper claims ~10× against pure video SSMs).\n")
        md.append("Commands:\n\n" + "\n".join(f"    {s['command']}" for s in rows) + "\n")
    md += [f"Note: {n}\n" for n in dict.fromkeys(notes)]
    write_block("main", "### Main results: accuracy, convergence and cost per head (synthetic)\n\n" + "\n".join(md))
    return summaries
