"""`pks4 cache` and `pks4 fit|test --data.features` end to end on CPU: the same metrics as from pixels.

The set has a truncated training video (replaced) and a truncated validation video (dropped), so the
bad-video rules of the pixel path are part of what must match."""
from __future__ import annotations

import json

import pytest

from cache_helpers import write_config
from pks4_lit.cli import main, run_cli

pytestmark = pytest.mark.slow


def metrics(cli) -> dict[str, float]:
    return {k: float(v) for k, v in cli.trainer.callback_metrics.items()}


def test_k_epochs_from_the_store_give_the_metrics_of_k_epochs_from_pixels(synth_bad, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = str(write_config(tmp_path / "tiny.yaml", synth_bad))
    assert main(["cache", "--config", cfg, "--views", "2", "--dtype", "float32", "--out", "store", "--no-progress"]) == 0
    captured = capsys.readouterr()
    assert "total ≈" in captured.err and json.loads(captured.out)["splits"]["test"] == {"videos": 8, "views": 2}

    pixels = run_cli(["fit", "--config", cfg])                                  # max_epochs: 2 = K
    cached = run_cli(["fit", "--config", cfg, "--data.features", "store"])
    a, b = metrics(pixels), metrics(cached)
    for name in ("train/loss_epoch", "val/loss", "val/top1", "val/top5", "val/top1_temporal"):
        assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-6), (name, a[name], b[name])
    assert pixels.trainer.global_step == cached.trainer.global_step == 12    # 24 train clips / 4 per batch x 2

    ckpt = pixels.trainer.checkpoint_callback.best_model_path
    test_pixels = run_cli(["test", "--config", cfg, "--ckpt_path", ckpt])   # 2 clips per test video
    test_cached = run_cli(["test", "--config", cfg, "--ckpt_path", ckpt, "--data.features", "store"])
    a, b = metrics(test_pixels), metrics(test_cached)
    for name in ("test/loss", "test/top1", "test/top5"):
        assert b[name] == pytest.approx(a[name], rel=1e-5, abs=1e-6), (name, a[name], b[name])


def test_cache_command_default_dir_is_shared_by_heads_and_refuses_a_trainable_backbone(synth, tmp_path, monkeypatch,
                                                                                      capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf" / "tiny").mkdir(parents=True)
    cfg = str(write_config(tmp_path / "conf" / "tiny" / "pks4.yaml", synth))
    args = ["cache", "--config", cfg, "--views", "1", "--splits", "val", "--no-progress"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["out"].startswith("cache/tiny/test_efficientnet-") and not first["already_complete"]
    assert main(args + ["--model.net.init_args.head", "pks4_lit.models.TSN"]) == 0  # another head: same features
    second = json.loads(capsys.readouterr().out)
    assert second["out"] == first["out"] and second["already_complete"]

    assert main(args + ["--model.net.init_args.backbone.freeze", "last_n"]) == 2
    err = capsys.readouterr().err
    assert "backbone is not frozen" in err and len(err.strip().splitlines()) == 1
