"""The compute claim's readings (pks4_lit/tables/table_compute.py): time to target is read at the FIRST
epoch at or above the target, a run that never gets there is 'not reached', the ratio's interval holds its
point estimate (a lower bound when the baseline did not reach the target), commands carry no machine paths."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from pks4_lit.tables import outputs, table_compute as tc


def curve(val, wall=None, per_epoch=10.0, fixed=0.0, fixed_s=0.0):
    return dict(val_top1=list(val), epoch_wall_s=list(wall or [10.0 * (i + 1) for i in range(len(val))]),
                flops_per_epoch=per_epoch, fixed_flops=fixed, fixed_s=fixed_s)


def test_time_to_target_is_the_first_epoch_at_or_above_it_not_the_best():
    c = curve([0.2, 0.81, 0.6, 0.95], wall=[5.0, 9.0, 14.0, 20.0], fixed=100.0, fixed_s=3.0)
    t = tc.to_target(c, 0.8)
    assert t["epoch"] == 2                                   # not 4, the best epoch
    assert t["flops"] == 100.0 + 2 * 10.0                    # the store's cost + 2 epochs
    assert t["wall_s"] == 3.0 + 9.0
    assert tc.to_target(curve([0.5, 0.8]), 0.8)["epoch"] == 2   # "at or above"


def test_not_reached_is_reported_as_such_with_what_it_spent():
    t = tc.to_target(curve([0.1, 0.3, 0.79]), 0.8)
    assert t["epoch"] is None and t["flops"] is None and t["wall_s"] is None
    assert t["spent_flops"] == 30.0 and t["spent_s"] == 30.0
    summary = tc.summarize(dict(runs={"videomamba": [dict(t, seed=0)], "pks4_cache": []}))
    assert summary["videomamba"]["reached"] == 0 and summary["videomamba"]["flops"] is None


def per_seed(flops):
    return [dict(flops=f, wall_s=f, spent_flops=999.0, spent_s=999.0) for f in flops]


def test_ratio_interval_contains_the_point_estimate_and_pairs_seeds():
    r = tc.ratio_ci(per_seed([30.0, 50.0, 20.0, 80.0, 40.0]), per_seed([3.0, 4.0, 2.5, 6.0, 5.0]), "flops")
    assert r["lo"] < r["ratio"] < r["hi"] and r["bound"] == "=" and r["n"] == 5
    per = [30 / 3, 50 / 4, 20 / 2.5, 80 / 6, 40 / 5]
    assert r["ratio"] == pytest.approx(math.exp(sum(map(math.log, per)) / 5))   # geometric mean of paired ratios
    same = tc.ratio_ci(per_seed([10.0] * 3), per_seed([2.0] * 3), "flops")
    assert same["ratio"] == pytest.approx(5.0) and same["lo"] == pytest.approx(5.0) == same["hi"]


def test_a_baseline_that_never_reaches_the_target_gives_a_lower_bound():
    num = per_seed([30.0, None, 20.0])
    r = tc.ratio_ci(num, per_seed([3.0, 4.0, 2.0]), "flops")
    assert r["bound"] == ">=" and r["n"] == 3                # its spent compute (999) stands in
    assert r["ratio"] > tc.ratio_ci(per_seed([30.0, 20.0]), per_seed([3.0, 2.0]), "flops")["ratio"]
    dropped = tc.ratio_ci(per_seed([30.0, 20.0]), per_seed([None, 2.0]), "flops")
    assert dropped["dropped"] == 1 and dropped["n"] == 1 and dropped["ratio"] == pytest.approx(10.0)
    md = tc._fmt_ratio(r)
    assert md.startswith("≥ ")


def test_commands_have_no_absolute_paths():
    repo = outputs.REPO
    store = repo / "runs" / "tables" / "compute" / "store" / "seed3"
    run = tc.method_run("pks4_cache", 3, repo / "conf/synthetic/pks4.yaml", repo / "data/compute/temporal", 10,
                        repo / "runs/tables", store)
    cache = tc.cache_cmd(repo / "conf/synthetic/pks4.yaml", repo / "data/compute/temporal", store, 3, 4)
    assert cache[:3] == [sys.executable, "-m", "pks4_lit.cli"]
    for text in (run.command, "pks4 " + " ".join(cache[3:])):
        assert str(repo) not in text and not any(tok.startswith("/") for tok in text.split()), text
    assert "--data.features runs/tables/compute/store/seed3" in run.command
    assert "--seed_everything 3 --data.seed 3" in run.command


def test_the_section_is_appended_once_and_replaced(tmp_path):
    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\n## Other\n\nkept\n")
    tc.write_section("first", md)
    tc.write_section("second", md)
    text = md.read_text()
    assert text.count(tc.SECTION) == 1 and "second" in text and "first" not in text and "kept" in text
    assert text.index("## Other") < text.index(tc.SECTION)


def test_markdown_is_generated_from_the_results_and_says_not_reached():
    vm = [dict(curve([0.1, 0.3], per_epoch=40.0), seed=s, command="pks4 fit vm", **tc.to_target(curve([0.1, 0.3]), 0.8))
          for s in (0, 1)]
    pk = [dict(curve([0.5, 0.9]), seed=s, command="pks4 fit pks4", cache_command="pks4 cache x",
               **tc.to_target(curve([0.5, 0.9]), 0.8)) for s in (0, 1)]
    result = dict(target=0.8, epochs=2, vm_epochs=2, views=4, n_train=10, threads=1, data="data/x", machine="m",
                  machine_s=60.0, costs={"pks4": dict(pixels=2e9, features=1e8, backbone_forward=1.9e9)},
                  runs={"pks4_cache": pk, "videomamba": vm})
    result["summary"] = tc.summarize(result)
    md = tc.render(result, "make table-compute")
    assert "| videomamba | 0/2 | — |" in md and "| pks4_cache | 2/2 |" in md
    assert "FLOPs ≥ " in md                                   # a lower bound, not a measured ratio
    assert "pks4 cache x" in md and "make table-compute" in md


def test_the_store_charges_its_training_views_only_to_the_flops():
    summary = {"splits": {"train": {"videos": 10, "views": 4}, "val": {"videos": 5, "views": 1},
                          "test": {"videos": 5, "views": 1}}}
    assert tc.cached_clips(summary) == 40
    assert tc.cached_clips(summary, splits=("train", "val", "test")) == 50


def test_another_target_is_read_from_the_same_curves():
    runs = {"pks4_cache": [dict(curve([0.5, 0.9]), seed=0, **tc.to_target(curve([0.5, 0.9]), 0.8))],
            "videomamba": [dict(curve([0.1, 0.35], per_epoch=40.0), seed=0, **tc.to_target(curve([0.1, 0.35]), 0.8))]}
    low = tc.summarize(tc.at_target(dict(runs=runs, target=0.8), 0.3))
    assert low["videomamba"]["reached"] == 1 and low["videomamba"]["epoch"]["mean"] == 2
    assert low["ratio"]["flops"]["bound"] == "=" and low["ratio"]["flops"]["ratio"] == pytest.approx(80 / 10)
    assert tc.summarize(dict(runs=runs))["ratio"]["flops"]["bound"] == ">="


def test_the_verdict_follows_the_interval_and_the_bound():
    r = lambda ratio, lo, hi, bound="=": dict(ratio=ratio, lo=lo, hi=hi, bound=bound, n=5, dropped=0)  # noqa: E731
    assert tc.verdict(r(3.0, 2.0, 4.0)).startswith("not supported")
    assert tc.verdict(r(9.0, 6.0, 14.0)).startswith("consistent")
    assert tc.verdict(r(20.0, 15.0, 30.0)).startswith("exceeded")
    assert tc.verdict(r(1.9, 1.8, 2.0, ">=")).startswith("not decided")
    assert tc.verdict(r(12.0, 11.0, 13.0, ">=")).startswith("supported as a lower bound")


def test_compute_is_a_table_of_python_m_pks4_lit_tables(monkeypatch, capsys):
    from pks4_lit import tables

    calls = []
    monkeypatch.setattr(tc, "compute_table", lambda argv, command: calls.append((argv, command)))
    monkeypatch.delenv("PKS4_TABLES_COMMAND", raising=False)
    assert tables.main(["compute", "--seeds", "0", "1", "--target", "0.5"]) == 0
    assert calls == [(["--seeds", "0", "1", "--target", "0.5"],
                      "python -m pks4_lit.tables compute --seeds 0 1 --target 0.5")]
    monkeypatch.setenv("PKS4_TABLES_COMMAND", "make table-compute")
    tables.main(["compute"])
    assert calls[-1] == ([], "make table-compute")
    monkeypatch.undo()
    with pytest.raises(SystemExit) as done:                                # the real parser, nothing run
        tables.main(["compute", "--help"])
    assert done.value.code == 0 and "usage: tables compute" in capsys.readouterr().out


def test_make_table_compute_runs_the_registered_table_niced():
    import subprocess

    # under `make test` the parent make's MAKEFLAGS (w) adds "Entering/Leaving directory" lines: pick the recipe
    lines = subprocess.run(["make", "--no-print-directory", "-n", "table-compute", "COMPUTE_ARGS=--seeds 0 --target 0.8"],
                           cwd=outputs.REPO, capture_output=True, text=True, check=True).stdout.splitlines()
    out = next(line for line in lines if "pks4_lit.tables compute" in line)
    assert out.startswith("PKS4_TABLES_COMMAND=\"make table-compute COMPUTE_ARGS='--seeds 0 --target 0.8'\" nice -n 10 ")
    assert out.endswith(" -m pks4_lit.tables compute --seeds 0 --target 0.8"), out
