"""`make table-lr`: every head's own learning-rate sweep, chosen on VALIDATION (issue 9 §2).

Each head trains at every LR of protocol.LR_GRID for the sweep seeds on the sweep set; the winner is
the LR with the highest mean best-val top-1 (the val score of the checkpoint each run selects); the
test split plays no part. The winner is written into conf/synthetic/<head>.yaml (`lr:` with a comment
saying how it was chosen) for heads with a config of their own; the global_ssm variants take theirs
as `--model.lr` in their commands. Raw: results/lr_sweep.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import re

from pks4_lit.tables import outputs, plan, protocol
from pks4_lit.tables.aggregate import lr_winner
from pks4_lit.tables.markdown import md_table, write_block
from pks4_lit.tables.pool import run_trials

LR_LINE = re.compile(r"^  lr: [^\n]*$", re.M)


def sweep_trials(args, heads: list[protocol.Head]) -> list:
    return [plan.trial(args, protocol.SWEEP_SET, h.name, h.config, h.head_args, lr, s)
            for h in heads for lr in protocol.LR_GRID for s in protocol.SWEEP_SEEDS]


def lr_sweep(args, command: str, heads: list[protocol.Head] | None = None) -> dict:
    heads = [h for h in (heads or protocol.SWEPT) if h.lr_from is None]
    prep = plan.prepare(args, protocol.SWEEP_SET, list(protocol.SWEEP_SEEDS))
    trials = sweep_trials(args, heads)
    results = dict(zip((t.name for t in trials), run_trials(trials, args.jobs, force=args.force)))
    out = {"set": protocol.SWEEP_SET, "seeds": list(protocol.SWEEP_SEEDS), "grid": list(protocol.LR_GRID),
           "epochs": args.epochs, "command": command, "date": datetime.date.today().isoformat(),
           "prepare": prep, "heads": {}}
    for h in heads:
        by_lr = {}
        for lr in protocol.LR_GRID:
            rs = [results[plan.trial(args, protocol.SWEEP_SET, h.name, h.config, h.head_args, lr, s).name]
                  for s in protocol.SWEEP_SEEDS]
            by_lr[lr] = [r["best_val"] for r in rs]
        out["heads"][h.name] = {"best_val": {repr(lr): v for lr, v in by_lr.items()}, "winner": lr_winner(by_lr),
                                "config": h.config, "own_config": h.config == h.name,
                                "commands": [t.command for t in trials if t.name.startswith(f"{protocol.SWEEP_SET}/{h.name}/")]}
    save(out)
    for name, h in out["heads"].items():
        if h["own_config"]:
            write_config_lr(outputs.repo_path(protocol.config_file(h["config"], args.config_dir)), h["winner"], out)
    write_block("lr", render(out))
    return out


def path() -> "outputs.Path":
    return outputs.RAW_DIR / "lr_sweep.json"


def save(out: dict) -> None:
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    path().write_text(json.dumps(out, indent=1))


def load_winners() -> dict[str, float] | None:
    f = path()
    return {k: v["winner"] for k, v in json.loads(f.read_text())["heads"].items()} if f.is_file() else None


def lr_comment(out: dict) -> str:
    grid = "/".join(f"{lr:g}" for lr in out["grid"])
    seeds = ",".join(map(str, out["seeds"]))
    return (f"chosen on validation by `{out['command']}` ({out['date']}): highest mean best-val top-1 over "
            f"seeds {seeds} on the {out['set']} set, grid {grid}")


def write_config_lr(config, lr: float, out: dict) -> None:
    text = config.read_text()
    if len(LR_LINE.findall(text)) != 1:
        raise ValueError(f"{config}: expected exactly one `  lr:` line under model")
    config.write_text(LR_LINE.sub(f"  lr: {lr:g}                 # {lr_comment(out)}", text))


def sweep_cells(h: dict, grid) -> list[str]:
    """One swept row's cells: mean best-val per LR of `grid` (the winner in bold), then the winner."""
    means = {lr: sum(h["best_val"][repr(lr)]) / len(h["best_val"][repr(lr)]) for lr in grid}
    return [("**%.3f**" if lr == h["winner"] else "%.3f") % means[lr] for lr in grid] + [f"{h['winner']:g}"]


def render(out: dict) -> str:
    """The Markdown block, a function of the JSON only."""
    grid = out["grid"]
    rows = [[name] + sweep_cells(h, grid) + [f"conf/synthetic/{h['config']}.yaml" if h["own_config"] else "`--model.lr`"]
            for name, h in out["heads"].items()]
    return "\n".join([
        "### Learning rate per head (chosen on validation)\n",
        f"Command: `{out['command']}`  \nDate: {out['date']}\n",
        f"Mean best val top-1 over seeds {', '.join(map(str, out['seeds']))} on the {out['set']} set's validation "
        f"split ({out['epochs']} epochs from the feature store); the winner (bold) is each head's LR in every table. "
        f"Test is not read. Raw: `{outputs.relative(path())}`.\n",
        md_table(["head"] + [f"lr {lr:g}" for lr in grid] + ["winner", "where"], rows) + "\n",
        edge_note(out)])


def edge_note(out: dict) -> str:
    """Which winners sit at an end of the grid (the optimum may lie beyond it)."""
    lo, hi = min(out["grid"]), max(out["grid"])
    top = [n for n, h in out["heads"].items() if h["winner"] == hi]
    bottom = [n for n, h in out["heads"].items() if h["winner"] == lo]
    notes = []
    if top:
        notes.append(f"{', '.join(top)} won at the grid's largest LR ({hi:g}): a larger one was not tried")
    if bottom:
        notes.append(f"{', '.join(bottom)} won at the grid's smallest LR ({lo:g}): a smaller one was not tried")
    variants = ", ".join(h.name for h in protocol.HEADS if h.lr_from)
    return ("; ".join(notes) + ". " if notes else "") + (
        f"Not swept (time): {variants}, which run at their base head's winner.\n" if variants else "")


def main(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables lr")
    plan.add_options(parser)
    parser.add_argument("--heads", nargs="+", default=[h.name for h in protocol.SWEPT],
                        choices=[h.name for h in protocol.SWEPT])
    args = parser.parse_args(argv)
    return lr_sweep(args, command, [protocol.HEAD_BY_NAME[h] for h in args.heads])
