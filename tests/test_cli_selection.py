"""`pks4 test` of a best checkpoint on the split it was selected on says so, in one line (issue 10 §2)."""
from __future__ import annotations

from pathlib import Path

from test_cli import dataset, workdir  # noqa: F401  (fixtures)

from pks4_lit.cli import main, run_cli

WARNING = "the number is selected on the split it reports"


def _test(capsys, *args: str) -> list[str]:
    """stderr lines of `pks4 test --config conf/tiny.yaml ARGS` that carry the selection warning."""
    capsys.readouterr()
    assert main(["test", "--config", "conf/tiny.yaml", *args]) == 0
    return [line for line in capsys.readouterr().err.splitlines() if WARNING in line]


def test_best_tested_on_its_validation_split_warns_once(workdir, capsys):
    run_cli(["fit", "--config", "conf/tiny.yaml", "--trainer.max_epochs", "1"])
    warned = _test(capsys, "--ckpt_path", "best", "--data.test_split", "validation")
    assert len(warned) == 1, warned
    assert "chosen by val/top1 on the validation split" in warned[0] and "--ckpt_path last" in warned[0]
    assert "the test split is the validation split (4 videos)" in warned[0]
    best = Path("runs/tiny/version_0/checkpoints/best.ckpt")
    assert len(_test(capsys, "--ckpt_path", str(best), "--data.test_split", "validation")) == 1   # the file too


def test_no_warning_for_last_or_a_held_out_test_split(workdir, capsys):
    run_cli(["fit", "--config", "conf/tiny.yaml", "--trainer.max_epochs", "1"])
    assert _test(capsys, "--ckpt_path", "last", "--data.test_split", "validation") == []
    assert _test(capsys, "--ckpt_path", "best") == []             # the tiny set's labelled test.json
