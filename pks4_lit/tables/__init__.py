"""The paper's tables at our scale: run the experiments, read the metrics back, write docs/RESULTS.md.

    python -m pks4_lit.tables efficiency [bench options]           (make table-efficiency)
    python -m pks4_lit.tables lr       [options]                   (make table-lr: each head's LR on validation)
    python -m pks4_lit.tables main     [options]                   (make table-main)
    python -m pks4_lit.tables ablation [options]                   (make table-ablation)
    python -m pks4_lit.tables e2e      [options]                   (make table-e2e: ST-Adapter, VideoMamba from pixels,
                                                                    ST-Adapter's LR swept on validation first)
    python -m pks4_lit.tables ssv2 --data DIR                      (make table-ssv2 DATA=DIR)
    python -m pks4_lit.tables k400 --data DIR                      (make table-k400 DATA=DIR)
    python -m pks4_lit.tables compute  [options]                   (make table-compute: compute to a val target)

Claims of the abstract and where they are checked:
  * accuracy on temporal-heavy (SSv2-like), spatial-heavy (K400-like) and fine-motion data: `main`
    trains every frozen-backbone head on `pks4 synth --task temporal|spatial|kinematic` from feature
    stores, 5 seeds, checkpoints chosen on validation, paired tests vs pks4 on the same test clips;
    `ssv2`/`k400` run the conf/ssv2 and conf/k400 recipes on the real data.
  * the priors and design choices: `ablation` (kinematic set), the same statistics vs full pks4.
  * linear in frames: `efficiency` (pks4_lit.bench.heads), time/memory/FLOPs as T grows.
  * ~10x less training compute than video SSMs: `compute`, FLOPs and wall time to a val top-1 target.

One job per file:
    protocol.py  heads, seeds, epochs, LR grid, ablation switches of the synthetic tables
    sets.py      the synthetic sets (>= 200 test clips each) and one feature store per (set, seed)
    plan.py      shared options; the trial of (set, row, LR, seed), one folder whichever table asks
    trial.py     one `pks4 fit` in-process: select on validation, per-clip test predictions, results.json
    pool.py      trials in long-lived worker processes (imports paid once per worker)
    aggregate.py mean ± CI over seeds, paired bootstrap + McNemar on the same clips, LR winner
    sweep_e2e.py ST-Adapter's own LR sweep on validation, from pixels (make table-e2e runs it first)
    readings.py  generated prose verdicts under the tables
    runs.py      `pks4 fit` + `pks4 test` of one run in a subprocess (the dataset tables)
    events.py    scalars read back from TensorBoard event files
    costs.py     train FLOPs, tunable parameters, saved bytes of a trained checkpoint
    summary.py   one run's numbers (accuracy, convergence, throughput, costs)
    plots.py     figures (docs/figures/)
    markdown.py  Markdown blocks in docs/RESULTS.md, with command, machine and date
    outputs.py   where tables write (docs/RESULTS.md, docs/figures/, docs/results/)
    table_*.py   the tables: efficiency, lr, main, e2e, ablation, datasets (ssv2, k400), compute
"""
from __future__ import annotations

import os
import shlex
import sys


def _tables() -> dict:
    from pks4_lit.tables import (table_ablation, table_compute, table_datasets, table_e2e, table_efficiency, table_lr,
                                 table_main)

    return {"efficiency": table_efficiency.efficiency, "lr": table_lr.main, "main": table_main.main_table,
            "e2e": table_e2e.e2e_table,
            "ablation": table_ablation.ablation_table,
            "ssv2": lambda a, c: table_datasets.dataset_table("ssv2", a, c),
            "k400": lambda a, c: table_datasets.dataset_table("k400", a, c),
            "compute": table_compute.compute_table}


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
