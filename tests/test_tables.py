import json
import os
from pathlib import Path

import pytest

from pks4_lit.tables import events, markdown, outputs, protocol, runs, sets, summary, table_ablation, table_datasets
from pks4_lit.tables.table_efficiency import efficiency
from pks4_lit.tables.table_main import main_table


@pytest.fixture
def docs(tmp_path, monkeypatch):
    """Point the module's outputs (RESULTS.md, figures, raw JSON) at a temporary folder."""
    monkeypatch.setattr(outputs, "RESULTS_MD", tmp_path / "docs" / "RESULTS.md")
    monkeypatch.setattr(outputs, "FIG_DIR", tmp_path / "docs" / "figures")
    monkeypatch.setattr(outputs, "RAW_DIR", tmp_path / "docs" / "results")
    monkeypatch.setattr(outputs, "README", tmp_path / "README.md")
    return tmp_path / "docs"


def test_write_block_creates_replaces_and_leaves_other_sections_alone(docs):
    md = docs / "RESULTS.md"
    docs.mkdir()
    md.write_text("# Results\n\n## Scan speed\n\nsomeone else's numbers\n")
    markdown.write_block("main", "first version", md)
    markdown.write_block("ablation", "ablation v1", md)
    markdown.write_block("main", "second version", md)
    text = md.read_text()
    assert "someone else's numbers" in text and text.count(markdown.SECTION) == 1
    assert "second version" in text and "first version" not in text and "ablation v1" in text
    assert text.index("second version") < text.index("ablation v1")      # replaced in place
    # a section written after ours by someone else stays after our blocks
    md.write_text(text + "\n## Decode speed\n\nmore numbers\n")
    markdown.write_block("efficiency", "eff", md)
    text = md.read_text()
    assert text.index("eff") < text.index("## Decode speed") and text.endswith("more numbers\n")


def test_write_block_starts_a_missing_file(docs):
    markdown.write_block("main", "hello", outputs.RESULTS_MD)
    text = outputs.RESULTS_MD.read_text()
    assert text.startswith("# Results") and "<!-- tables:main:start -->\nhello\n<!-- tables:main:end -->" in text


def test_epochs_to_and_compute_to_target():
    assert events.epochs_to([0.1, 0.5, 0.8, 0.9], 0.72) == 3
    assert events.epochs_to([0.1, 0.2], 0.9) is None
    rows = [dict(val_top1=[0.2, 0.6, 0.9], train_GFLOPs_per_clip=2.0, n_train=100),
            dict(val_top1=[0.5, 0.5], train_GFLOPs_per_clip=1.0, n_train=100)]
    summary.compute_to_target(rows, 0.6)
    assert rows[0]["epochs_to_target"] == 2 and rows[0]["PFLOPs_to_target"] == pytest.approx(2.0 * 100 * 2 / 1e6)
    assert rows[1]["PFLOPs_to_target"] is None


def test_read_scalars_from_tensorboard_events(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    for version, (tag, vals) in enumerate([("val/top1", [0.3, 0.6, 0.7]), ("test/top1", [0.65])]):
        w = SummaryWriter(str(tmp_path / f"version_{version}"))
        for step, v in enumerate(vals):
            w.add_scalar(tag, v, step * 10)
        w.close()
    sc = events.read_scalars(tmp_path)
    assert [round(v, 4) for _, _, v in sc["val/top1"]] == [0.3, 0.6, 0.7]
    assert [s for s, _, _ in sc["val/top1"]] == [0, 10, 20] and round(sc["test/top1"][0][2], 4) == 0.65


def test_overrides_are_typed_head_arguments():
    args = type("A", (), dict(epochs=3, extra="--data.num_workers 0"))()
    ov = runs.overrides(args, runs.head_overrides({"use_correlation": False, "radius": 2}))
    assert ov == ["--model.net.head.use_correlation", "false", "--model.net.head.radius", "2",
                  "--trainer.max_epochs", "3", "--data.num_workers", "0"]


def test_run_commands_carry_no_machine_paths(tmp_path):
    repo = outputs.REPO
    run = runs.Run("main", "temporal/pks4", repo / "conf" / "synthetic" / "pks4.yaml", repo / "data" / "tables" / "t",
                   [], repo / "runs" / "tables")
    assert str(repo) not in run.command and "--config conf/synthetic/pks4.yaml" in run.command
    assert "--data.root data/tables/t" in run.command and "save_dir runs/tables/main" in run.command
    outside = runs.Run("main", "x", repo / "conf" / "synthetic" / "pks4.yaml", tmp_path, [], tmp_path)
    assert f"--data.root {tmp_path}" in outside.command                 # outside the repository: as given


ROWS = [(name, "pks4", kw) for name, kw in protocol.ABLATIONS] + [(h.name, h.config, h.head_args) for h in protocol.HEADS]


@pytest.mark.parametrize("name,head,kw", ROWS, ids=[r[0] for r in ROWS])
def test_every_table_row_reaches_the_head_typed(name, head, kw, capsys):
    """Each ablation's and head variant's overrides, through the real parser, set exactly its arguments."""
    import yaml

    from pks4_lit.cli import main

    config = outputs.REPO / "conf" / "synthetic" / f"{head}.yaml"
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(config), *protocol.head_overrides(kw), "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)["model"]["net"]["init_args"]["head"]["init_args"]
    for key, value in kw.items():
        assert printed[key] == value and type(printed[key]) is type(value), (key, printed[key])


def test_dataset_tables_fail_clearly_without_data(tmp_path):
    with pytest.raises(SystemExit, match="no dataset given.*DATA="):
        table_datasets.check_dataset(None, "ssv2", "ssv2")
    with pytest.raises(SystemExit, match="not a directory"):
        table_datasets.check_dataset(str(tmp_path / "nope"), "ssv2", "ssv2")
    with pytest.raises(SystemExit, match="not a usable ssv2 dataset"):
        table_datasets.check_dataset(str(tmp_path), "ssv2", "ssv2")
    with pytest.raises(SystemExit, match="not a usable kinetics dataset"):
        table_datasets.check_dataset(str(tmp_path), "kinetics", "k400")
    (tmp_path / "labels.json").write_text(json.dumps({"Pushing something": "0"}))
    (tmp_path / "train.json").write_text(json.dumps([{"id": "1", "template": "Pushing [something]"}]))
    (tmp_path / "validation.json").write_text(json.dumps([{"id": "2", "template": "Pushing [something]"}]))
    with pytest.raises(SystemExit, match="does not exist"):           # annotations fine, videos missing
        table_datasets.check_dataset(str(tmp_path), "ssv2", "ssv2")
    (tmp_path / "1.webm").write_bytes(b"x")
    (tmp_path / "2.webm").write_bytes(b"x")
    assert table_datasets.check_dataset(str(tmp_path), "ssv2", "ssv2") == tmp_path


def test_make_table_ssv2_without_data_fails_with_the_message():
    import subprocess

    repo = outputs.REPO
    out = subprocess.run(["make", "-s", "table-ssv2", "DATA="], cwd=repo, capture_output=True, text=True)
    assert out.returncode != 0 and "no dataset given" in out.stderr


def test_efficiency_writes_table_plot_and_json(docs):
    efficiency(["--rows", "tsn", "attention", "ssm", "--modes", "head", "--T", "4", "8", "--dim", "16",
                       "--size", "3", "--repeats", "1"], "make table-efficiency")
    text = outputs.RESULTS_MD.read_text()
    assert "<!-- tables:efficiency:start -->" in text and "`make table-efficiency`" in text
    assert "| attention |" in text and "torch" in text
    assert (docs / "figures" / "efficiency.png").stat().st_size > 10_000
    raw = json.loads((docs / "results" / "efficiency.json").read_text())
    assert {r["row"] for r in raw["results"]} == {"tsn", "attention", "ssm"}


@pytest.mark.slow
def test_main_and_ablation_tables_at_tiny_scale(docs, tmp_path, monkeypatch):
    """The code path of `make table-main` / `make table-ablation` at a scale of seconds: stores, trials,
    statistics, the Markdown and the README block."""
    from pks4_lit.tables import table_lr

    monkeypatch.setattr(sets, "SETS", {"kinematic": sets.SynthSet("kinematic", (3, 2, 2), 8)})
    monkeypatch.setattr(sets, "MIN_TEST_CLIPS", 16)
    (tmp_path / "README.md").write_text("# x\n<!-- tables:readme:start -->\nold\n<!-- tables:readme:end -->\n")
    table_lr.save({"heads": {h.name: {"winner": 0.004} for h in protocol.HEADS}})   # no sweep at this scale
    tiny = ["--data-dir", str(tmp_path / "data"), "--cache-dir", str(tmp_path / "cache"),
            "--runs-dir", str(tmp_path / "runs"), "--epochs", "2", "--views", "1", "--seeds", "2", "--jobs", "0",
            "--extra", "--data.num_workers 0 --data.crop_size 64 --data.short_side 64 --data.num_frames 4 "
                       "--data.batch_size 4"]
    out = main_table(tiny + ["--sets", "kinematic", "--heads", "tsn", "pks4"], "make table-main")
    rows = out["sets"]["kinematic"]["rows"]
    assert set(rows) == {"tsn", "pks4"} and rows["pks4"]["seeds"] == [0, 1] and rows["tsn"]["n_test"] == 16
    assert "vs_ref" in rows["tsn"] and "vs_ref" not in rows["pks4"]
    text = outputs.RESULTS_MD.read_text()
    assert "from the frozen-feature store" in text and "--data.features" in text
    assert "pks4 " in (tmp_path / "README.md").read_text() and "old" not in (tmp_path / "README.md").read_text()
    trained = {p: p.stat().st_mtime for p in (tmp_path / "runs").rglob("results.json")}
    abl = table_ablation.ablation_table(tiny + ["--only", "w/o boundaries"], "make table-ablation")
    assert set(abl["rows"]) == {"pks4 (full)", "w/o boundaries", table_ablation.GLOBAL_ROW}
    assert "use_boundaries false" in abl["rows"]["w/o boundaries"]["commands"][0]
    assert abl["rows"]["w/o boundaries"]["vs_full"]["n_pairs"] == 2 * 16
    # the full pks4 rows are the main table's runs, not trained again
    assert all(p.stat().st_mtime == mtime for p, mtime in trained.items())
    assert abl["rows"]["pks4 (full)"]["test_top1"] == rows["pks4"]["test_top1"]
