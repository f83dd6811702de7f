"""`make table-efficiency`: training cost per head as T grows (pks4_lit.bench.heads)."""
from __future__ import annotations

import argparse
import json

from pks4_lit.tables import outputs
from pks4_lit.tables.markdown import md_table, provenance, write_block
from pks4_lit.tables.plots import plot_efficiency


def efficiency(argv: list[str], command: str) -> dict:
    from pks4_lit.bench import heads as bench

    parser = argparse.ArgumentParser(prog="tables efficiency")
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    res = bench.run(args)
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    (outputs.RAW_DIR / "efficiency.json").write_text(json.dumps(res, indent=1))
    png = outputs.FIG_DIR / "efficiency.png"
    plot_efficiency(res, png)

    modes = [m for m in ("head", "e2e") if any(r["mode"] == m for r in res["results"])]
    md = [provenance(command), f"![training cost vs T]({outputs.relative(png)})  ",
          f"Raw numbers: `{outputs.relative(outputs.RAW_DIR / 'efficiency.json')}`. Batch {args.batch}; "
          f"head mode: features {args.dim}×{args.size}×{args.size}; e2e: {args.backbone} at {args.img_size} px "
          f"(feature_index {args.feature_index}); step time = fastest of {args.repeats} steps, {args.threads} thread(s).\n"]
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
    write_block("efficiency", "### Efficiency: training cost as T grows\n\n" + "\n".join(md))
    return res
