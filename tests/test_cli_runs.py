"""Runs you can find: `--ckpt_path best` across a config's runs, evaluations logged into the evaluated run,
no folders left by failed runs, a resumed run's config.yaml that re-runs cleanly."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch.callbacks.progress import ProgressBar
from test_cli import dataset, tb_scalars, workdir  # noqa: F401  (fixtures)

from pks4_lit.cli import main, run_cli

RUN = Path("runs") / "tiny"


def _fit(*extra: str):
    return run_cli(["fit", "--config", "conf/tiny.yaml", *extra])


def test_best_is_the_best_run_not_the_newest(workdir, capsys):
    config = workdir / "conf" / "tiny.yaml"  # a continuous metric, so that the two runs cannot tie
    config.write_text(config.read_text().replace("checkpoint:\n", "checkpoint:\n  monitor: val/loss\n  mode: min\n"))
    good = float(_fit().trainer.checkpoint_callback.best_model_score)                       # 2 epochs
    debug = _fit("--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1")          # a later debug run
    assert good < float(debug.trainer.checkpoint_callback.best_model_score)  # CPU runs are deterministic
    capsys.readouterr()

    test = run_cli(["test", "--config", "conf/tiny.yaml", "--ckpt_path", "best", "--data.test_split", "validation"])
    best = RUN / "version_0" / "checkpoints" / "best.ckpt"
    err = capsys.readouterr().err
    assert f"using {best} (val/loss = {good:.4f}, the min over 2 runs)" in err, err
    assert Path(test.trainer.ckpt_path).resolve() == best.resolve()
    assert float(test.trainer.callback_metrics["test/loss"]) == pytest.approx(good, abs=1e-5)


def test_evaluations_log_into_the_evaluated_run(workdir, dataset):
    fit = _fit("--trainer.max_epochs", "1")
    run_dir = workdir / RUN / "version_0"
    assert Path(fit.trainer.log_dir).resolve() == run_dir.resolve()
    bar = next(cb for cb in fit.trainer.callbacks if isinstance(cb, ProgressBar))
    shown = bar.get_metrics(fit.trainer, fit.model)
    assert shown.get("run") == "version_0" and "v_num" not in shown, shown
    config_before, hp_before = (run_dir / "config.yaml").read_text(), tb_scalars(run_dir).get("hp_metric")
    best_step = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=False)["global_step"]

    run_cli(["test", "--config", "conf/tiny.yaml", "--ckpt_path", "best", "--data.test_split", "validation"])
    run_cli(["validate", "--config", "conf/tiny.yaml", "--ckpt_path", "last"])
    video = str(dataset / "validation1.webm")
    assert main(["predict", "--config", "conf/tiny.yaml", "--ckpt_path", "last", "--data.predict_paths", video]) == 0

    assert sorted(p.name for p in (workdir / RUN).iterdir()) == ["version_0"]  # no version_N per evaluation
    assert (run_dir / "config.yaml").read_text() == config_before              # the training config is kept
    assert (run_dir / "config_test.yaml").is_file() and (run_dir / "config_validate.yaml").is_file()
    assert not (workdir / "config.yaml").exists()
    scalars = tb_scalars(run_dir)
    assert "train/loss" in scalars and "val/top1" in scalars
    assert [step for step, _ in scalars["test/top1"]] == [best_step]  # beside the training curves
    minus_one = [value for _, value in scalars.get("hp_metric", [])].count(-1.0)
    assert minus_one == [value for _, value in hp_before or []].count(-1.0)  # evaluations add no hp_metric=-1


def test_a_run_that_fails_before_training_leaves_no_folder(workdir, dataset, capsys):
    broken = workdir / "broken"
    shutil.copytree(dataset, broken)
    entries = json.loads((broken / "train.json").read_text())
    entries[0]["template"] = "Juggling [something]"  # not a class: found when setup() reads the split
    (broken / "train.json").write_text(json.dumps(entries))
    assert main(["fit", "--config", "conf/tiny.yaml", "--data.root", str(broken)]) == 2
    assert "Juggling" in capsys.readouterr().err
    assert not (workdir / RUN).exists() or not any((workdir / RUN).iterdir())


def test_config_of_a_resumed_run_reruns_as_a_fresh_run(workdir):
    _fit("--trainer.max_epochs", "1")
    resumed = _fit("--trainer.max_epochs", "2", "--ckpt_path", "last")
    run_dir = workdir / RUN / "version_0"
    assert Path(resumed.trainer.log_dir).resolve() == run_dir.resolve() and resumed.trainer.global_step == 8
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["ckpt_path"] is None and saved["trainer"]["logger"]["init_args"]["version"] is None
    assert saved["trainer"]["max_epochs"] == 2

    quick = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1"]
    assert main(["fit", "--config", str(run_dir / "config.yaml"), *quick]) == 0  # a new run beside it
    assert (workdir / RUN / "version_1").is_dir()
    assert yaml.safe_load((run_dir / "config.yaml").read_text()) == saved

    shutil.copy(run_dir / "config.yaml", workdir / "conf" / "saved.yaml")
    shutil.rmtree(workdir / "runs")  # e.g. after `make clean`, or on another machine
    assert main(["fit", "--config", "conf/saved.yaml", *quick]) == 0
    assert (workdir / RUN / "version_0" / "checkpoints" / "last.ckpt").is_file()


def test_best_compares_only_runs_of_the_same_model_and_data(workdir, capsys):
    """A run saved under the same name with another model (an ablation override) or another data.root
    never wins `--ckpt_path best`, however well it scored on its own validation set."""
    _fit("--trainer.max_epochs", "1")
    capsys.readouterr()
    v0 = RUN / "version_0"
    for version, edit in ((1, lambda c: c["model"].update(lr=c["model"]["lr"] * 10)),
                          (2, lambda c: c["data"].update(root=str(workdir / "other_data")))):
        other = RUN / f"version_{version}"
        shutil.copytree(v0, other)
        config = yaml.safe_load((other / "config.yaml").read_text())
        edit(config)
        (other / "config.yaml").write_text(yaml.safe_dump(config))
        ckpt = torch.load(other / "checkpoints" / "best.ckpt", weights_only=False)
        for state in ckpt["callbacks"].values():
            if "best_model_score" in state:
                state["best_model_score"] = torch.tensor(1.0)     # a perfect val/top1 on its own terms
        torch.save(ckpt, other / "checkpoints" / "best.ckpt")

    test = run_cli(["test", "--config", "conf/tiny.yaml", "--ckpt_path", "best", "--data.test_split", "validation"])
    assert Path(test.trainer.ckpt_path).resolve() == (v0 / "checkpoints" / "best.ckpt").resolve()
    assert "2 runs with another model or data.root left out" in capsys.readouterr().err


def test_a_checkpoint_does_not_need_the_backbone_weights_file_it_was_trained_from(workdir, capsys):
    """`pks4 test|predict --ckpt_path` on another machine: every weight is in the checkpoint."""
    import timm

    weights = workdir / "backbone.pth"
    torch.save(timm.create_model("test_efficientnet", num_classes=0).state_dict(), weights)
    fit = _fit("--trainer.max_epochs", "1", "--model.net.backbone.checkpoint_path", str(weights))
    val = float(fit.trainer.callback_metrics["val/loss"])
    weights.unlink()
    capsys.readouterr()
    assert main(["test", "--config", "conf/tiny.yaml", "--model.net.backbone.checkpoint_path", str(weights),
                 "--ckpt_path", "last", "--data.test_split", "validation"]) == 0, capsys.readouterr().err
    assert not weights.exists()
    scalars = tb_scalars(RUN / "version_0")
    assert scalars["test/loss"][-1][1] == pytest.approx(val, abs=1e-5)


def test_fast_dev_run_writes_no_checkpoint_into_the_working_directory(workdir):
    assert main(["fit", "--config", "conf/tiny.yaml", "--trainer.fast_dev_run", "true"]) == 0
    assert not (workdir / "checkpoints").exists() and not list(workdir.glob("**/*.ckpt"))
