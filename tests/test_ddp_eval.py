"""Validation under DDP counts every video exactly once: a 2-process CPU (gloo) fit validates each of
its 5 videos once over both ranks, and its val metrics equal those of a single-process `pks4 validate`
of the same checkpoint. A padding DistributedSampler would count one video twice (and val/top1 picks
best.ckpt)."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from lightning.pytorch.callbacks import Callback

from test_resume import CONFIG, cli, write_csv_dataset

N_VAL = 5  # odd: two ranks cannot hold equal shares without a duplicate


class ValIndexRecorder(Callback):
    """Appends each validation batch's video indices to `<path>.rank<r>` (one JSON list per line)."""

    def __init__(self, path: str):
        self.path = path

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        with open(f"{self.path}.rank{trainer.global_rank}", "a") as f:
            f.write(json.dumps(batch["index"].tolist()) + "\n")


def tb_scalars(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[float]] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.value for e in acc.Scalars(tag))
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One DDP fit (1 epoch, 2 processes) and one single-process validate of its last.ckpt."""
    from pks4_lit.cli import run_cli

    tmp = tmp_path_factory.mktemp("ddp_eval")
    root = write_csv_dataset(tmp / "data", n_train=8, n_val=N_VAL)
    (tmp / "conf").mkdir()
    (tmp / "conf" / "tiny.yaml").write_text(CONFIG.format(epochs=1, root=root))
    probe = json.dumps([{"class_path": "test_ddp_eval.ValIndexRecorder", "init_args": {"path": str(tmp / "val")}}])
    ddp = cli("fit", "--config", "conf/tiny.yaml", "--trainer.strategy", "ddp", "--trainer.devices", "2",
              "--trainer.callbacks", probe, cwd=tmp, timeout=600)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    run_dir = tmp / "runs" / "tiny" / "version_0"
    ddp_scalars = tb_scalars(run_dir)  # before `validate`, which logs into the checkpoint's run
    seen = [i for r in (0, 1) for line in Path(f"{tmp / 'val'}.rank{r}").read_text().splitlines() for i in json.loads(line)]

    cwd = Path.cwd()
    try:
        os.chdir(tmp)  # runs/ is relative to the working directory
        single = run_cli(["validate", "--config", "conf/tiny.yaml",
                          "--ckpt_path", str(run_dir / "checkpoints" / "last.ckpt")]).trainer.callback_metrics
    finally:
        os.chdir(cwd)
    return {"seen": seen, "ddp": ddp_scalars, "single": {k: float(v) for k, v in single.items()}}


@pytest.mark.slow
def test_every_val_video_is_evaluated_once_under_ddp(runs):
    assert sorted(runs["seen"]) == list(range(N_VAL))


@pytest.mark.slow
def test_ddp_val_accuracy_equals_single_process(runs):
    assert len(runs["ddp"]["val/top1"]) == 1  # one validation, at the end of the epoch
    for name in ("val/top1", "val/top5"):
        assert runs["single"][name] == pytest.approx(runs["ddp"][name][0], abs=1e-6), name


@pytest.mark.slow
def test_ddp_val_loss_equals_single_process(runs):
    assert runs["single"]["val/loss"] == pytest.approx(runs["ddp"]["val/loss"][0], rel=1e-4)
