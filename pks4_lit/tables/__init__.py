"""The paper's tables at our scale: run the experiments, read the metrics back, write docs/RESULTS.md.

    python -m pks4_lit.tables efficiency [bench options]           (make table-efficiency)
    python -m pks4_lit.tables main     [--data DIR] [--epochs E]   (make table-main)
    python -m pks4_lit.tables ablation [--data DIR] [--epochs E]   (make table-ablation)
    python -m pks4_lit.tables ssv2 --data DIR                      (make table-ssv2 DATA=DIR)
    python -m pks4_lit.tables k400 --data DIR                      (make table-k400 DATA=DIR)

Claims of the abstract and where they are checked:
  * accuracy on temporal-heavy (SSv2-like) and spatial-heavy (K400-like) data: `main` trains every
    temporal head (and the ST-Adapter baseline) on the embedded `pks4 synth --task temporal` and
    `--task spatial` sets; `ssv2`/`k400` run the conf/ssv2 and conf/k400 recipes on the real data.
  * convergence in few epochs: epochs until val/top1 first reaches 90% of its final value.
  * ~10× less training compute than pure video SSMs: FLOPs/clip × clips seen until val/top1 first
    reaches a common target, pks4 against `global_ssm` (one scan over the flattened clip).
  * linear in frames: `efficiency` (pks4_lit.bench.heads), time/memory/FLOPs as T grows.

One job per file:
    runs.py      `pks4 fit` + `pks4 test` of one run in a subprocess (CLI overrides, reuse, peak RSS)
    events.py    scalars read back from TensorBoard event files
    costs.py     train FLOPs, tunable parameters, saved bytes of a trained checkpoint
    summary.py   one run's numbers (accuracy, convergence, throughput, costs)
    plots.py     figures (docs/figures/)
    markdown.py  Markdown blocks in docs/RESULTS.md, with command, machine and date
    outputs.py   where tables write (docs/RESULTS.md, docs/figures/, docs/results/)
    table_*.py   the tables: efficiency, main, ablation, datasets (ssv2, k400)
"""
from __future__ import annotations

import os
import shlex
import sys


def _tables() -> dict:
    from pks4_lit.tables import table_ablation, table_datasets, table_efficiency, table_main

    return {"efficiency": table_efficiency.efficiency, "main": table_main.main_table,
            "ablation": table_ablation.ablation_table,
            "ssv2": lambda a, c: table_datasets.dataset_table("ssv2", a, c),
            "k400": lambda a, c: table_datasets.dataset_table("k400", a, c)}


def main(argv: list[str] | None = None) -> int:
    from pks4_lit.tables import outputs

    argv = list(sys.argv[1:] if argv is None else argv)
    tables = _tables()
    if not argv or argv[0] not in tables:
        print(f"usage: python -m pks4_lit.tables {{{','.join(tables)}}} [options]", file=sys.stderr)
        return 2
    command = os.environ.get("PKS4_TABLES_COMMAND") or "python -m pks4_lit.tables " + shlex.join(argv)
    tables[argv[0]](argv[1:], command)
    print(f"[tables] wrote {argv[0]} into {outputs.RESULTS_MD}", file=sys.stderr)
    return 0
