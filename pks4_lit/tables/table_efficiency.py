"""`make table-efficiency`: training cost per head as T grows (pks4_lit.bench.heads).

Raw: results/efficiency.json (the benchmark's output plus the table command and machine line); the
Markdown block, readings included, is rendered from that JSON alone (render()).
"""
from __future__ import annotations

import argparse
import json

from pks4_lit.tables import outputs
from pks4_lit.tables.markdown import machine_line, md_table, write_block
from pks4_lit.tables.plots import plot_efficiency


def efficiency(argv: list[str], command: str) -> dict:
    from pks4_lit.bench import heads as bench

    parser = argparse.ArgumentParser(prog="tables efficiency")
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    res = dict(bench.run(args), table_command=command, machine_line=machine_line())
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    path().write_text(json.dumps(res, indent=1))
    plot_efficiency(res, png())
    write_block("efficiency", render(res))
    return res


def path():
    return outputs.RAW_DIR / "efficiency.json"


def png():
    return outputs.FIG_DIR / "efficiency.png"


def render(res: dict) -> str:
    """The Markdown block, a function of the JSON only."""
    from pks4_lit.tables.readings import efficiency_readings

    cfg = res["config"]
    modes = [m for m in ("head", "e2e") if any(r["mode"] == m for r in res["results"])]
    md = [f"Command: `{res['table_command']}`  \nMachine: {res['machine_line']}  \nDate: {res['date'][:16]}\n",
          f"![training cost vs T]({outputs.relative(png())})  ",
          f"Raw numbers: `{outputs.relative(path())}`. Batch {cfg['batch']}; "
          f"head mode: features {cfg['dim']}×{cfg['size']}×{cfg['size']}; e2e: {cfg['backbone']} at {cfg['img_size']} px "
          f"(feature_index {cfg['feature_index']}); step time = fastest of {cfg['repeats']} steps, "
          f"{cfg['threads']} thread(s).\n"]
    for mode in modes:
        rs = [r for r in res["results"] if r["mode"] == mode]
        Ts = sorted({r["T"] for r in rs})
        mem_key = "cuda_peak_MB" if any("cuda_peak_MB" in r for r in rs) else "rss_peak_MB"
        md.append(f"**{'Temporal head alone' if mode == 'head' else 'Full training step from pixels'}** "
                  f"(step time s / saved-for-backward MB / train GFLOPs per clip):\n")
        header = ["row", "tunable params"] + [f"T={t}" for t in Ts] + \
                 ["slope time", "slope memory", "slope FLOPs", "slope T² part"]
        rows = []
        for row in dict.fromkeys(r["row"] for r in rs):
            by_t = {r["T"]: r for r in rs if r["row"] == row}
            cells = [f"{by_t[t]['step_s']:.3f} / {by_t[t]['saved_MB']:.1f} / "
                     f"{by_t[t].get('train_GFLOPs_per_clip', float('nan')):.3g}" if t in by_t else "—" for t in Ts]
            sl = res["slopes"][mode][row]
            f = lambda k: sl[k]["tail"]  # noqa: E731
            rows.append([row, next(iter(by_t.values()))["tunable_params"], *cells, f("step_s"), f("saved_MB"),
                         f("train_GFLOPs_per_clip"), f("quad_GFLOPs_per_clip")])
        md.append(md_table(header, rows) + "\n")
        peaks = {r["row"]: r.get(mem_key) for r in rs if r["T"] == max(Ts)}
        md.append(f"{mem_key} at T={max(Ts)}: " + ", ".join(
            f"{k} {v:.0f}" if v is not None else f"{k} —" for k, v in peaks.items()) + "\n")
    md.append(efficiency_readings(res))
    return "### Efficiency: training cost as T grows\n\n" + "\n".join(md)
