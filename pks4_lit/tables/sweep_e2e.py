"""The end-to-end models' own learning-rate sweep, chosen on VALIDATION, from pixels (issue 9 §2).

ST-Adapter's adapters sit inside the frozen backbone, so no feature store can serve it and the frozen
heads' sweep (`make table-lr`) says nothing about its LR. It trains at every LR of
protocol.ADAPTER_LR_GRID for protocol.SWEEP_SEEDS on protocol.SWEEP_SET from pixels; the winner is the
LR with the highest mean best-val top-1 (aggregate.lr_winner: the val score of the checkpoint each run
selects); the test split plays no part. The winner is written into conf/synthetic/<model>.yaml
(table_lr.write_config_lr: the `lr:` line and how it was chosen). Trials follow plan.py's folder rule,
so the runs at the winning LR are `make table-e2e`'s runs for the sweep seeds on the sweep set.
VideoMamba keeps its own sweep (`make table-compute`, said in its config). The result is the "sweep"
section of results/e2e.json; a stored sweep with the same settings is reused (no config rewrite).
"""
from __future__ import annotations

import datetime

from pks4_lit.tables import outputs, plan, protocol
from pks4_lit.tables.aggregate import lr_winner
from pks4_lit.tables.markdown import md_table
from pks4_lit.tables.pool import run_trials
from pks4_lit.tables.table_lr import sweep_cells, write_config_lr

SWEPT = {"st_adapter": "st_adapter"}          # model: its config under --config-dir
GRID_NOTE = ("table-lr's grid plus one ×4 step below: ST-Adapter's official LR, 7.5e-4–1e-3 "
             "(conf/synthetic/st_adapter.yaml), is that grid's lower edge")


def settings(args, grid) -> dict:
    """What a sweep's result depends on besides the code; a stored sweep is reused only if all match."""
    return {"set": protocol.SWEEP_SET, "seeds": list(protocol.SWEEP_SEEDS), "grid": [float(lr) for lr in grid],
            "epochs": args.epochs, "extra": args.extra, "config_dir": args.config_dir,
            "grid_note": GRID_NOTE if tuple(grid) == protocol.ADAPTER_LR_GRID else "given by --lr-grid"}


def sweep_trials(args, model: str, grid) -> dict:
    """{(lr, seed): Trial} of one model: from pixels, at each LR, on the sweep set."""
    return {(lr, s): plan.pixel_trial(args, protocol.SWEEP_SET, model, SWEPT[model], lr, s)
            for lr in grid for s in protocol.SWEEP_SEEDS}


def sweep(args, command: str, models: list[str], grid, stored: dict | None = None) -> dict | None:
    """The sweep of the swept models among `models`: `stored` when it matches and --force is off, else run."""
    models = [m for m in models if m in SWEPT]
    if not models:
        return None
    if (stored and not args.force and all(stored.get(k) == v for k, v in settings(args, grid).items())
            and all(m in stored.get("models", {}) for m in models)):
        return stored
    return run_sweep(args, command, models, grid)


def run_sweep(args, command: str, models: list[str], grid) -> dict:
    grid = [float(lr) for lr in grid]
    prep = {m: plan.prepare_pixels(args, protocol.SWEEP_SET, SWEPT[m]) for m in models}
    trials = {m: sweep_trials(args, m, grid) for m in models}
    flat = [t for ts in trials.values() for t in ts.values()]
    results = dict(zip((t.name for t in flat), run_trials(flat, args.jobs, force=args.force)))
    out = dict(settings(args, grid), command=command, date=datetime.date.today().isoformat(),
               prepare=prep[models[0]], models={})
    for m, ts in trials.items():
        by_lr = {lr: [results[ts[(lr, s)].name]["best_val"] for s in protocol.SWEEP_SEEDS] for lr in grid}
        out["models"][m] = {"best_val": {repr(float(lr)): v for lr, v in by_lr.items()}, "winner": lr_winner(by_lr),
                            "config": SWEPT[m], "commands": [t.command for t in ts.values()]}
    for m, h in out["models"].items():
        write_config_lr(outputs.repo_path(protocol.config_file(h["config"], args.config_dir)), h["winner"], out)
    return out


def how(sw: dict) -> str:
    """How a swept model's LR was chosen, in words."""
    return (f"chosen on validation by this table's sweep: highest mean best-val top-1 over seeds "
            f"{', '.join(map(str, sw['seeds']))} on the {sw['set']} set, from pixels, {sw['epochs']} epochs, "
            f"grid {'/'.join(f'{lr:g}' for lr in sw['grid'])}; test not read")


def render(sw: dict) -> str:
    """The sweep's Markdown (a function of its JSON section only)."""
    grid = sw["grid"]
    rows = [[name] + sweep_cells(h, grid) + [f"{sw['config_dir'].rstrip('/')}/{h['config']}.yaml"]
            for name, h in sw["models"].items()]
    lo, hi = min(grid), max(grid)
    edges = [f"{n} won at the grid's {'largest' if h['winner'] == hi else 'smallest'} LR ({h['winner']:g}): "
             f"a {'larger' if h['winner'] == hi else 'smaller'} one was not tried"
             for n, h in sw["models"].items() if h["winner"] in (lo, hi)]
    return "\n".join([
        f"LR sweep of the end-to-end models (by `{sw['command']}`, {sw['date']}): mean best val top-1 over seeds "
        f"{', '.join(map(str, sw['seeds']))} on the {sw['set']} set's validation split, trained from pixels for "
        f"{sw['epochs']} epochs; the winner (bold) is the model's LR in every set of this table, and its runs at "
        f"the winner are this table's {sw['set']} runs for those seeds. Test is not read. Grid: "
        f"{'/'.join(f'{lr:g}' for lr in grid)} ({sw['grid_note']}).\n",
        md_table(["model"] + [f"lr {lr:g}" for lr in grid] + ["winner", "written into"], rows) + "\n",
        *([("; ".join(edges) + ".\n")] if edges else [])])
