"""`pks4` end to end on a tiny SSv2-layout set written here: fit, test, predict, resume, DDP, errors.

Every run uses a random-init timm test model (`test_efficientnet`, 32 px, 4 frames): nothing is
downloaded. In-process runs go through `pks4_lit.cli.main`/`run_cli`; kill/resume and DDP need
real processes (`python -m pks4_lit.cli`).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from pks4_lit.cli import main, run_cli
from tiny_config import tiny_model_yaml

# two temporal classes (same frames, opposite order) and two spatial ones (which colour moves)
CLASSES = {
    "Moving [something] left": "temporal", "Moving [something] right": "temporal",
    "Showing [something] red": "spatial", "Showing [something] blue": "spatial",
}
SIZE, FRAMES = 32, 8


def _clip(c: int, k: int) -> np.ndarray:
    rng = np.random.default_rng([c, k])
    video = np.full((FRAMES, SIZE, SIZE, 3), 60, np.uint8) + rng.integers(0, 20, (FRAMES, SIZE, SIZE, 3), dtype=np.uint8)
    colour = [(255, 255, 255), (255, 255, 255), (255, 40, 40), (40, 40, 255)][c]
    for t in range(FRAMES):
        x = 2 + 3 * t if c != 1 else SIZE - 10 - 3 * t
        video[t, 12:20, x:x + 8] = colour
    return video


def write_tiny_ssv2(root: Path, n_train: int = 8, n_val: int = 4, n_test: int = 4) -> Path:
    """SSv2 layout: labels.json, {train,validation,test}.json, groups.json, <id>.webm (VP9)."""
    root.mkdir(parents=True, exist_ok=True)
    names = [t.replace("[something]", "something") for t in CLASSES]
    (root / "labels.json").write_text(json.dumps({n: str(i) for i, n in enumerate(names)}))
    (root / "groups.json").write_text(json.dumps({n: g for n, g in zip(names, CLASSES.values())}))
    for split, n in (("train", n_train), ("validation", n_val), ("test", n_test)):
        entries = []
        for k in range(n):
            c, vid = k % len(CLASSES), f"{split}{k}"
            entries.append({"id": vid, "label": names[c], "template": list(CLASSES)[c], "placeholders": ["x"]})
            with av.open(str(root / f"{vid}.webm"), "w") as out:
                stream = out.add_stream("libvpx-vp9", rate=8)
                stream.width = stream.height = SIZE
                stream.pix_fmt = "yuv420p"
                for frame in _clip(c, k):
                    out.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
                out.mux(stream.encode())
        (root / f"{split}.json").write_text(json.dumps(entries))
    return root


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
""" + tiny_model_yaml() + """\
data:
  root: {root}
  format: ssv2
  num_frames: 4
  crop_size: 32
  short_side: 32
  batch_size: 2
  num_workers: 0
checkpoint:
  last_every_n_train_steps: {every}
"""


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_tiny_ssv2(tmp_path_factory.mktemp("tiny") / "ssv2")


@pytest.fixture
def workdir(tmp_path, monkeypatch, dataset):
    """A working directory (runs/ lands here) holding conf/tiny.yaml."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    write_config(tmp_path / "conf" / "tiny.yaml", dataset, every=2)  # step saves coincide with epoch ends
    return tmp_path


def write_config(path: Path, root: Path, epochs: int = 2, every: int = 0) -> Path:
    path.write_text(CONFIG.format(root=root, epochs=epochs, every=every))
    return path


def tb_scalars(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list] = {}
    for events in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.value) for e in acc.Scalars(tag))
        for tag in acc.Tags()["images"]:
            out.setdefault(tag, []).append((-1, float("nan")))
    return out


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "pks4_lit.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


# ------------------------------------------------------------------------------------ fit / test
def test_fit_then_test_best_reproduces_val_and_logs_exact_names(workdir):
    cli = run_cli(["fit", "--config", "conf/tiny.yaml"])
    run_dir = Path(cli.trainer.log_dir).resolve()
    assert run_dir == workdir.resolve() / "runs" / "tiny" / "version_0"
    best = run_dir / "checkpoints" / "best.ckpt"
    assert best.is_file() and (run_dir / "checkpoints" / "last.ckpt").is_file()
    best_val = float(cli.trainer.checkpoint_callback.best_model_score)

    scalars = tb_scalars(run_dir)
    for name in ("train/loss", "val/loss", "val/top1", "val/top5", "val/top1_temporal", "val/top1_spatial"):
        assert name in scalars, (name, sorted(scalars))
    assert "val/confusion_matrix" in scalars  # an image
    assert any(tag.startswith("lr-AdamW") for tag in scalars), sorted(scalars)
    assert max(v for _, v in scalars["val/top1"]) == pytest.approx(best_val)

    test = run_cli(["test", "--config", "conf/tiny.yaml", "--ckpt_path", "best", "--data.test_split", "validation"])
    metrics = test.trainer.callback_metrics
    for name in ("test/top1", "test/top5", "test/top1_temporal", "test/top1_spatial"):
        assert name in metrics, sorted(metrics)
    assert float(metrics["test/top1"]) == pytest.approx(best_val, abs=1e-6)


def test_same_seed_same_metrics(workdir):
    runs = [run_cli(["fit", "--config", "conf/tiny.yaml", "--trainer.max_epochs", "1"]) for _ in range(2)]
    a, b = (r.trainer.callback_metrics for r in runs)
    for name in ("val/top1", "val/loss", "train/loss"):
        assert float(a[name]) == float(b[name]), name
    third = run_cli(["fit", "--config", "conf/tiny.yaml", "--trainer.max_epochs", "1", "--seed_everything", "1",
                     "--data.seed", "1"]).trainer.callback_metrics
    assert float(third["val/loss"]) != float(a["val/loss"])  # the seed does reach the run


# ------------------------------------------------------------------------------------ predict
def test_predict_prints_top_classes(workdir, dataset, capsys):
    run_cli(["fit", "--config", "conf/tiny.yaml", "--trainer.max_epochs", "1"])
    capsys.readouterr()
    video = dataset / "validation1.webm"
    assert main(["predict", "--config", "conf/tiny.yaml", "--ckpt_path", "last", "--data.predict_paths", str(video)]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(str(video))]
    assert len(lines) == 1, lines
    ranked = lines[0].split(": ", 1)[1].split(", ")
    assert len(ranked) == 4  # top-5 clamped to the 4 classes
    probs = [float(item.rsplit(" ", 1)[1]) for item in ranked]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1.0, abs=0.01)
    assert {item.rsplit(" ", 1)[0] for item in ranked} == {t.replace("[something]", "something") for t in CLASSES}


def test_predict_out_writes_every_input_and_skips_the_unreadable(workdir, dataset, capsys):
    import csv
    import json
    run_cli(["fit", "--config", "conf/tiny.yaml", "--trainer.max_epochs", "1"])
    bad = workdir / "broken.webm"
    bad.write_bytes(b"not a video")
    videos = [dataset / "validation1.webm", bad, dataset / "validation2.webm"]
    for out in (workdir / "p.csv", workdir / "p.jsonl"):
        assert main(["predict", "--config", "conf/tiny.yaml", "--ckpt_path", "last",
                     "--data.predict_paths", json.dumps([str(v) for v in videos]), "--out", str(out)]) == 0
        if out.suffix == ".csv":
            rows = {r["path"]: r for r in csv.DictReader(out.open())}
            assert rows[str(bad)]["error"].startswith("cannot open: ") and not rows[str(videos[0])]["error"]
            assert rows[str(videos[2])]["class_1"] in {t.replace("[something]", "something") for t in CLASSES}
        else:
            rows = {r["path"]: r for r in map(json.loads, out.read_text().splitlines())}
            assert rows[str(bad)]["error"].startswith("cannot open: ") and len(rows[str(videos[0])]["top"]) == 4
        assert set(rows) == {str(v) for v in videos}
    assert str(bad) in capsys.readouterr().err


# ------------------------------------------------------------------------------------ errors
def test_unknown_key_exits_2_naming_it(workdir, capsys):
    with pytest.raises(SystemExit) as err:
        main(["fit", "--config", "conf/tiny.yaml", "--model.d_modle", "3"])
    assert err.value.code == 2
    assert "d_modle" in capsys.readouterr().err


def test_unknown_key_in_config_file_exits_2(workdir, dataset, capsys):
    bad = workdir / "conf" / "bad.yaml"
    bad.write_text((workdir / "conf" / "tiny.yaml").read_text().replace("  lr: 0.003", "  lr: 0.003\n  lrr: 1"))
    with pytest.raises(SystemExit) as err:
        main(["fit", "--config", str(bad)])
    assert err.value.code == 2
    assert "lrr" in capsys.readouterr().err


@pytest.mark.parametrize("sub", ["test", "validate", "predict"])
def test_eval_without_checkpoint_refuses(workdir, capsys, sub):
    with pytest.raises(SystemExit) as err:
        main([sub, "--config", "conf/tiny.yaml"])
    assert err.value.code == 2
    assert "random weights" in capsys.readouterr().err


def test_eval_best_without_a_run_is_a_clear_error(workdir, capsys):
    with pytest.raises(SystemExit) as err:
        main(["test", "--config", "conf/tiny.yaml", "--ckpt_path", "best"])
    assert err.value.code == 2
    assert "no best.ckpt under runs/tiny" in capsys.readouterr().err


def test_dataset_error_is_one_line_exit_2(workdir, capsys):
    code = main(["fit", "--config", "conf/tiny.yaml", "--data.root", str(workdir / "missing")])
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("pks4: dataset error:") and "missing" in err[-1]
    assert not any("Traceback" in line for line in err)


def test_nonfinite_loss_stops_with_step_and_checkpoint(workdir, capsys, monkeypatch):
    from pks4_lit.models import VideoClassifier

    forward = VideoClassifier.forward
    calls = {"n": 0}

    def nan_from_third_call(self, video):
        calls["n"] += 1
        out = forward(self, video)
        return out * float("nan") if calls["n"] >= 3 and self.training else out

    monkeypatch.setattr(VideoClassifier, "forward", nan_from_third_call)
    assert main(["fit", "--config", "conf/tiny.yaml"]) == 1
    err = capsys.readouterr().err
    assert "global step 2" in err, err
    saved = workdir / "runs" / "tiny" / "version_0" / "checkpoints" / "nonfinite-step2.ckpt"
    assert str(saved.relative_to(workdir)) in err
    state = torch.load(saved, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    assert "NonFiniteLossError" in (saved.parent.parent / "FAILED").read_text()  # the run is marked, not removed
    assert all(torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point())


# ------------------------------------------------------------------------------------ synth / bench
def test_bench_without_name_lists_benchmarks(capsys):
    assert main(["bench"]) == 0
    assert "benchmarks:" in capsys.readouterr().out
    assert main(["bench", "no_such_bench"]) == 2


def test_synth_dispatches_to_the_data_writer(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "s"), "--videos-per-class", "3", "--size", "32", "--frames", "4",
                 "--workers", "1"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["classes"] == len(json.loads((tmp_path / "s" / "labels.json").read_text()))


# ------------------------------------------------------------------------------------ processes
def _global_step(path: Path) -> int:
    return torch.load(path, map_location="cpu", weights_only=False)["global_step"]


@pytest.mark.slow
def test_resume_after_sigkill_continues_from_saved_step(workdir, dataset):
    write_config(workdir / "conf" / "tiny.yaml", dataset, epochs=4, every=1)  # last.ckpt after every step
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.Popen([sys.executable, "-m", "pks4_lit.cli", "fit", "--config", "conf/tiny.yaml"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    last = workdir / "runs" / "tiny" / "version_0" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if last.is_file() and _global_step(last) >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = _global_step(last)  # atomic writes: the file is complete even after SIGKILL
    steps_per_epoch, total = 4, 16  # 8 videos / batch 2, 4 epochs
    assert 3 <= saved < total

    resumed = _cli("fit", "--config", "conf/tiny.yaml", "--ckpt_path", "last")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resuming from {Path('runs/tiny/version_0/checkpoints/last.ckpt')}" in resumed.stderr
    assert not (workdir / "runs" / "tiny" / "version_1").exists()  # same run directory
    assert _global_step(last) == total
    assert (last.parent / "best.ckpt").is_file()
    # the resumed process logged its first training loss after the saved step, not from 0
    events = sorted((workdir / "runs" / "tiny" / "version_0").glob("events.out.tfevents.*"))
    assert len(events) == 2
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[-1]))
    acc.Reload()
    steps = [e.step for e in acc.Scalars("train/loss")]
    assert min(steps) >= saved and max(steps) == total - 1, (saved, steps)
    assert steps_per_epoch * 4 == total


@pytest.mark.slow
def test_ddp_two_cpu_processes(workdir):
    done = _cli("fit", "--config", "conf/tiny.yaml", "--trainer.strategy", "ddp", "--trainer.devices", "2",
                "--trainer.max_epochs", "1", timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    run_dir = workdir / "runs" / "tiny" / "version_0"
    assert not (workdir / "runs" / "tiny" / "version_1").exists()  # one logger, on rank 0
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert ckpt["global_step"] == 2  # 8 videos / (batch 2 x 2 processes)
    scalars = tb_scalars(run_dir)
    assert "val/top1" in scalars and "val/top1_temporal" in scalars
