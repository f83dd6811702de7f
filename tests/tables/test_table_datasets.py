"""`make table-ssv2`'s code path on a tiny SSv2-layout set: which checkpoint a row reports, and why (issue 10 §2)."""
import json
from pathlib import Path

import pytest
import yaml

from pks4_lit.data.synthetic import write_synthetic_dataset
from pks4_lit.tables import outputs, table_datasets

CONFIG = {
    "seed_everything": 0,
    "trainer": {"accelerator": "cpu", "devices": 1, "precision": 32, "max_epochs": 1, "log_every_n_steps": 1,
                "num_sanity_val_steps": 0, "enable_model_summary": False, "enable_progress_bar": False},
    "model": {"net": {"class_path": "pks4_lit.models.VideoClassifier", "init_args": {
        "backbone": {"name": "test_efficientnet", "feature_index": 2},
        "head": {"class_path": "pks4_lit.models.TSN"}}}},
    "data": {"root": "unused", "format": "ssv2", "num_frames": 4, "crop_size": 32, "short_side": 32,
             "batch_size": 4, "num_workers": 0, "test_split": None},
}


@pytest.fixture
def docs(tmp_path, monkeypatch):
    monkeypatch.setattr(outputs, "RESULTS_MD", tmp_path / "docs" / "RESULTS.md")
    monkeypatch.setattr(outputs, "FIG_DIR", tmp_path / "docs" / "figures")
    monkeypatch.setattr(outputs, "RAW_DIR", tmp_path / "docs" / "results")
    return tmp_path / "docs"


def _tested_checkpoint(run: Path) -> str:
    """The file `pks4 test` evaluated, as it saved its config into the run."""
    return Path(yaml.safe_load((run / "config_test.yaml").read_text())["ckpt_path"]).name


def test_data_settings_apply_the_runs_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(CONFIG))
    data = table_datasets.data_settings(tmp_path / "c.yaml", ["--data.test_split", "validation", "--data.split=2"])
    assert data["test_split"] == "validation" and data["split"] == 2 and data["format"] == "ssv2"


@pytest.mark.slow
def test_table_reports_best_on_a_held_out_test_split_and_last_on_validation(tmp_path, docs):
    data = tmp_path / "ssv2"
    write_synthetic_dataset(data, task="spatial", size=32, frames=8, split_sizes=(2, 1, 1))
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "tiny.yaml").write_text(yaml.safe_dump(CONFIG))
    args = ["--data", str(data), "--config-dir", str(conf), "--runs-dir", str(tmp_path / "runs")]
    run = tmp_path / "runs" / "ssv2" / "tiny" / "version_0"

    (held_out,) = table_datasets.dataset_table("ssv2", args, "make table-ssv2")["rows"]   # labelled test.json
    assert _tested_checkpoint(run) == "best.ckpt"
    trained = (run / "checkpoints" / "last.ckpt").stat().st_mtime

    # SSv2 as downloaded: test.json lists ids only, so test_split null tests on validation.json
    test = json.loads((data / "test.json").read_text())
    (data / "test.json").write_text(json.dumps([{"id": e["id"]} for e in test]))
    (row,) = table_datasets.dataset_table("ssv2", args, "make table-ssv2")["rows"]
    assert _tested_checkpoint(run) == "last.ckpt"
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime == trained       # re-tested, not retrained
    assert (held_out["checkpoint"], held_out["selection"]) == ("best.ckpt", "best on validation, reported on test")
    assert (row["checkpoint"], row["selection"]) == ("last.ckpt", "last.ckpt: validation is the reported split")
    assert row["test_top1"] is not None
    assert json.loads((docs / "results" / "ssv2.json").read_text())[0]["checkpoint"] == "last.ckpt"
    assert "last.ckpt: validation is the reported split" in outputs.RESULTS_MD.read_text()
