"""`make table-e2e`: ST-Adapter's own LR sweep (validation only, from pixels, written into its config), the
e2e trials at each model's own LR, and a block that says the LRs, how they were chosen and the sets not run.
Trials are faked (no training): the pool is replaced by a function of the trial's name."""
import re
import shutil

import pytest
import yaml

from pks4_lit.tables import outputs, plan, protocol, sweep_e2e, table_e2e

VAL = {0.00025: 0.30, 0.001: 0.50, 0.004: 0.70, 0.016: 0.60}     # best val per LR: 0.004 wins on validation


class ValidationOnly(dict):
    """A sweep trial's result whose test part must not be read."""

    def __getitem__(self, key):
        if key.startswith("test"):
            raise AssertionError(f"the sweep read {key!r}")
        return super().__getitem__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


def lr_of(t) -> float:
    return float(re.search(r"/lr([^/]+)/", t.name).group(1))


@pytest.fixture
def fake(tmp_path, monkeypatch, trial):
    """Outputs and configs in tmp_path; pools that record their trials and return made-up results."""
    monkeypatch.setattr(outputs, "RESULTS_MD", tmp_path / "docs" / "RESULTS.md")
    monkeypatch.setattr(outputs, "RAW_DIR", tmp_path / "docs" / "results")
    conf = tmp_path / "conf"
    conf.mkdir()
    for name in ("st_adapter", "videomamba"):
        shutil.copy(outputs.REPO / "conf" / "synthetic" / f"{name}.yaml", conf / f"{name}.yaml")
    seen = {"sweep": [], "table": []}

    def result(t):
        lr = lr_of(t)
        val = VAL.get(lr, 0.4) + 0.01 * t.seed
        # on TEST the sweep's largest LR would win: 100 % vs 50 %
        preds = [0] * 200 if lr == 0.016 else [0] * 100 + [1] * 100
        return dict(trial(t.seed, preds, val=(val - 0.1, val)), name=t.name, command=t.command)

    def sweep_pool(trials, jobs=2, force=False):
        seen["sweep"].append(list(trials))
        return [ValidationOnly(result(t)) for t in trials]

    def table_pool(trials, jobs=2, force=False):
        seen["table"].append(list(trials))
        return [result(t) for t in trials]

    monkeypatch.setattr(sweep_e2e, "run_trials", sweep_pool)
    monkeypatch.setattr(table_e2e, "run_trials", table_pool)
    monkeypatch.setattr(plan, "prepare_pixels", lambda args, task, config: {"set": {"root": task}})
    monkeypatch.setattr(plan, "prepare", lambda args, task, seeds: {})
    monkeypatch.setattr(table_e2e, "winners", lambda args, heads, command: {h.name: 0.016 for h in heads})
    monkeypatch.setattr(table_e2e, "machine_line", lambda: "m")
    argv = ["--config-dir", str(conf), "--data-dir", "data/tables", "--seeds", "2", "--epochs", "3", "--jobs", "0"]
    return type("F", (), dict(conf=conf, seen=seen, argv=argv))()


def test_sweep_picks_the_lr_on_validation_and_writes_it_into_the_config(fake):
    before = yaml.safe_load((fake.conf / "st_adapter.yaml").read_text())
    out = table_e2e.e2e_table(fake.argv + ["--sets", "kinematic", "--models", "st_adapter"], "make table-e2e")
    sw = out["sweep"]
    assert sw["models"]["st_adapter"]["winner"] == 0.004            # not 0.016, which test accuracy favours
    assert sw["grid"] == list(protocol.ADAPTER_LR_GRID) and sw["set"] == protocol.SWEEP_SET
    assert sw["models"]["st_adapter"]["best_val"][repr(0.004)] == pytest.approx([0.70, 0.71])
    swept = fake.seen["sweep"][0]
    assert len(swept) == len(protocol.ADAPTER_LR_GRID) * len(protocol.SWEEP_SEEDS)
    assert all(t.features is None and f"--config {fake.conf}/st_adapter.yaml" in t.command for t in swept)
    assert {lr_of(t) for t in swept} == set(protocol.ADAPTER_LR_GRID)
    text = (fake.conf / "st_adapter.yaml").read_text()
    assert re.search(r"^  lr: 0.004 +# chosen on validation by `make table-e2e` \(\d{4}-\d\d-\d\d\): highest mean "
                     r"best-val top-1 over seeds 0,1 on the kinematic set, grid 0.00025/0.001/0.004/0.016$", text, re.M)
    after = yaml.safe_load(text)
    assert after["model"]["lr"] == 0.004
    after["model"]["lr"] = before["model"]["lr"]
    assert after == before                                          # nothing else in the config changed


def test_e2e_trials_run_each_model_at_its_own_lr_and_reuse_the_sweep_runs(fake):
    out = table_e2e.e2e_table(fake.argv + ["--sets", "kinematic"], "make table-e2e")
    sweep = {t.name: t.command for t in fake.seen["sweep"][0]}
    table = [t for ts in fake.seen["table"] for t in ts]
    st = [t for t in table if "/st_adapter/" in t.name]
    vm = [t for t in table if "/videomamba/" in t.name]
    assert [t.name for t in st] == ["kinematic/st_adapter/lr0.004/seed0", "kinematic/st_adapter/lr0.004/seed1"]
    for t in st:
        assert t.features is None and t.command.startswith(f"pks4 fit --config {fake.conf}/st_adapter.yaml ")
        assert "--model.lr 0.004" in t.command and "--model.net.adapter" not in t.command
        assert sweep[t.name] == t.command                           # the sweep's winner runs: same folder, reused
    vm_lr = yaml.safe_load((fake.conf / "videomamba.yaml").read_text())["model"]["lr"]
    assert vm and all(f"--model.lr {float(vm_lr)!r}" in t.command and f"/lr{vm_lr:g}/" in t.name for t in vm)
    assert out["lr"] == {"st_adapter": 0.004, "videomamba": vm_lr}
    assert "validation" in out["lr_how"]["st_adapter"] and "table-compute" in out["lr_how"]["videomamba"]
    assert len(fake.seen["sweep"]) == 1                              # VideoMamba is not re-swept


def test_render_names_each_lr_how_it_was_chosen_and_the_sets_not_run(fake):
    out = table_e2e.e2e_table(fake.argv + ["--sets", "kinematic"], "make table-e2e TABLE_ARGS='--sets kinematic'")
    md = outputs.RESULTS_MD.read_text()
    block = table_e2e.render(out)
    assert block.strip() in md
    assert "**Sets not run by this command: temporal, spatial**" in block
    assert re.search(r"^\| st_adapter \| 0.004 \(val sweep\) \|", block, re.M)
    assert re.search(r"^\| videomamba \| 0.003 \(config\) \|", block, re.M)
    assert "`st_adapter` 0.004: chosen on validation by this table's sweep" in block
    assert "**0.705**" in block and "**0.605**" not in block    # the winner's mean best-val is marked
    full = dict(out, sets=dict(out["sets"], temporal=out["sets"]["kinematic"], spatial=out["sets"]["kinematic"]))
    assert "Sets not run" not in table_e2e.render(full)


def test_a_stored_sweep_is_reused_and_a_changed_grid_reruns_it(fake):
    table_e2e.e2e_table(fake.argv + ["--sets", "kinematic", "--models", "st_adapter"], "make table-e2e")
    written = (fake.conf / "st_adapter.yaml").read_text()
    (fake.conf / "st_adapter.yaml").write_text(written.replace("highest mean", "HIGHEST MEAN"))
    table_e2e.e2e_table(fake.argv + ["--sets", "kinematic", "--models", "st_adapter"], "make table-e2e")
    assert len(fake.seen["sweep"]) == 1                              # read from results/e2e.json
    assert "HIGHEST MEAN" in (fake.conf / "st_adapter.yaml").read_text()   # and the config left alone
    out = table_e2e.e2e_table(fake.argv + ["--sets", "kinematic", "--models", "st_adapter", "--lr-grid", "0.001",
                                           "0.016"], "make table-e2e")
    assert len(fake.seen["sweep"]) == 2 and out["lr"]["st_adapter"] == 0.016
    assert out["sweep"]["grid_note"] == "given by --lr-grid"
    assert "HIGHEST MEAN" not in (fake.conf / "st_adapter.yaml").read_text()
