"""Validation under DDP counts every video exactly once: the val metrics of a 2-process CPU (gloo)
fit equal those of a single-process `pks4 validate` of its checkpoint. With 5 validation videos a
padding DistributedSampler would count one of them twice (and val/top1 picks best.ckpt)."""
from __future__ import annotations

from pathlib import Path

import pytest

from test_resume import CONFIG, cli, write_csv_dataset


def tb_scalars(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


@pytest.mark.slow
def test_ddp_val_metrics_equal_single_process(tmp_path, monkeypatch):
    from pks4_lit.cli import run_cli

    root = write_csv_dataset(tmp_path / "data", n_train=8, n_val=5)
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "tiny.yaml").write_text(CONFIG.format(epochs=1, root=root))
    ddp = cli("fit", "--config", "conf/tiny.yaml", "--trainer.strategy", "ddp", "--trainer.devices", "2",
              cwd=tmp_path, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    run_dir = tmp_path / "runs" / "tiny" / "version_0"
    logged = tb_scalars(run_dir)
    assert len(logged["val/top1"]) == 1 and len(logged["val/loss"]) == 1  # one validation, at the epoch end

    monkeypatch.chdir(tmp_path)
    single = run_cli(["validate", "--config", "conf/tiny.yaml",
                      "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")]).trainer.callback_metrics
    assert float(single["val/top1"]) == pytest.approx(logged["val/top1"][0], abs=1e-6)
    assert float(single["val/loss"]) == pytest.approx(logged["val/loss"][0], rel=1e-4)
