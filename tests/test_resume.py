"""A fit killed mid-epoch and resumed with `--ckpt_path last` trains on exactly the clips, in exactly
the order, that an uninterrupted run trains on (the data loader's position is in the checkpoint).

The killed run is a real process (`python -m pks4_lit.cli`), the others run in-process; a tiny
generic-CSV dataset of H.264 clips written here; a random-init timm test model. `IdRecorder`
(passed with --trainer.callbacks) writes every training batch's clip ids and can SIGKILL its own
process at a given step, right after last.ckpt was saved.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback

from tiny_config import tiny_model_yaml

SIZE, FRAMES, CLASSES = 32, 8, 4
TESTS = Path(__file__).resolve().parent

CONFIG = """\
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  precision: 32
  max_epochs: {epochs}
  log_every_n_steps: 1
  num_sanity_val_steps: 0
  enable_model_summary: false
  enable_progress_bar: false
""" + tiny_model_yaml() + """\
data:
  root: {root}
  format: csv
  num_frames: 4
  crop_size: 32
  short_side: 32
  batch_size: 2
  num_workers: 0
checkpoint:
  last_every_n_train_steps: 1
"""


class IdRecorder(Callback):
    """Appends {"step", "epoch", "ids"} per training batch to `path` (JSON lines, flushed at once);
    SIGKILLs this process when a batch starts at global step `kill_at_step` (its last.ckpt is saved)."""

    def __init__(self, path: str, kill_at_step: int = -1):
        self.path, self.kill_at_step = path, kill_at_step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.kill_at_step:
            os.kill(os.getpid(), signal.SIGKILL)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        with open(self.path, "a") as f:
            f.write(json.dumps({"step": trainer.global_step, "epoch": trainer.current_epoch,
                                "ids": batch["index"].tolist()}) + "\n")
            f.flush()
            os.fsync(f.fileno())


def write_csv_dataset(root: Path, n_train: int = 16, n_val: int = 4) -> Path:
    """train.csv / val.csv `path,label` over tiny H.264 clips: class c = a bright square moving one of 4 ways."""
    for split, n in (("train", n_train), ("val", n_val)):
        rows = ["path,label"]
        for k in range(n):
            c, rel = k % CLASSES, f"{split}/{k}.mp4"
            _write_clip(root / rel, c, seed=hash((split, k)) % 2**16)
            rows.append(f"{rel},class{c}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def _write_clip(path: Path, c: int, seed: int):
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    with av.open(str(path), "w") as out:
        s = out.add_stream("libx264", rate=8)
        s.width = s.height = SIZE
        s.pix_fmt, s.options = "yuv420p", {"threads": "1", "preset": "ultrafast"}
        for t in range(FRAMES):
            img = rng.integers(40, 80, (SIZE, SIZE, 3), dtype=np.uint8)
            x = 2 + 3 * t if c % 2 == 0 else SIZE - 10 - 3 * t
            img[12:20, x:x + 8] = 255 if c < 2 else 120
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(s.encode())


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])
    env = dict(os.environ, PYTHONWARNINGS="ignore", PYTHONPATH=path)
    return subprocess.run([sys.executable, "-m", "pks4_lit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)


def recorder(path: Path, kill_at_step: int = -1) -> str:
    return json.dumps([{"class_path": "test_resume.IdRecorder",
                        "init_args": {"path": str(path), "kill_at_step": kill_at_step}}])


def read_records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def csv_dataset(tmp_path_factory) -> Path:
    return write_csv_dataset(tmp_path_factory.mktemp("resume") / "data")


@pytest.mark.slow
def test_resume_after_sigkill_sees_the_same_clips_as_an_uninterrupted_run(tmp_path, csv_dataset, monkeypatch):
    from pks4_lit.cli import run_cli

    steps_per_epoch, epochs, kill_at = 8, 2, 11  # 16 clips / batch 2; killed in the 2nd epoch
    for run in ("straight", "killed"):
        (tmp_path / run / "conf").mkdir(parents=True)
        (tmp_path / run / "conf" / "tiny.yaml").write_text(CONFIG.format(epochs=epochs, root=csv_dataset))

    monkeypatch.chdir(tmp_path / "straight")
    run_cli(["fit", "--config", "conf/tiny.yaml", "--trainer.callbacks", recorder(tmp_path / "straight.jsonl")])
    expected = read_records(tmp_path / "straight.jsonl")
    assert [r["step"] for r in expected] == list(range(1, steps_per_epoch * epochs + 1))

    killed = cli("fit", "--config", "conf/tiny.yaml", "--trainer.callbacks",
                 recorder(tmp_path / "killed.jsonl", kill_at_step=kill_at), cwd=tmp_path / "killed")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    monkeypatch.chdir(tmp_path / "killed")
    run_cli(["fit", "--config", "conf/tiny.yaml", "--ckpt_path", "last",
             "--trainer.callbacks", recorder(tmp_path / "resumed.jsonl")])

    before, after = read_records(tmp_path / "killed.jsonl"), read_records(tmp_path / "resumed.jsonl")
    assert [r["step"] for r in before] == list(range(1, kill_at + 1))
    assert [r["step"] for r in after] == list(range(kill_at + 1, steps_per_epoch * epochs + 1))
    assert [r["ids"] for r in before + after] == [r["ids"] for r in expected]
    second_epoch = [i for r in before + after if r["epoch"] == 1 for i in r["ids"]]
    assert sorted(second_epoch) == list(range(16))  # every clip once in the interrupted epoch
