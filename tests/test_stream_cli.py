"""`pks4 stream`: a small PyAV-written video through a checkpoint, per-frame predictions."""
import csv
import json

import av
import lightning
import numpy as np
import pytest
import torch
from lightning.pytorch.cli import instantiate_module

from pks4_lit.cli import main
from pks4_lit.data.decode import read_frames
from pks4_lit.data.transforms import eval_crops
from pks4_lit.lit_module import PKS4Module

FRAMES, FPS = 23, 10
CLASSES = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"]


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "moving.mp4"
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (80, 96, 3), dtype=np.uint8)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=FPS)
        s.width, s.height, s.pix_fmt = 96, 80, "yuv420p"
        for t in range(FRAMES):
            img = background.copy()
            img[20:50, 4 * t:4 * t + 24] = (255, 40, 40)                 # a red box moving right
            for packet in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    return path


def write_checkpoint(path, head="PKS4"):
    """A checkpoint in the format `pks4 fit` writes: the model's typed config as hyper-parameters,
    rebuilt by Lightning's CLI instantiator; weights moved off their initial values."""
    init = dict(d_state=4, prior_dim=8, radius=1) if head == "PKS4" else {}
    hparams = dict(
        net=dict(class_path="pks4_lit.models.VideoClassifier", init_args=dict(
            backbone=dict(class_path="pks4_lit.models.FrameBackbone",
                          init_args=dict(name="test_resnet", checkpoint_path="nowhere/weights.pth")),
            head=dict(class_path=f"pks4_lit.models.{head}", init_args=init))),
        num_classes=len(CLASSES), class_names=CLASSES, lr=0.01)
    torch.manual_seed(0)
    module = instantiate_module(PKS4Module, {**hparams, "net": _no_file(hparams["net"])})
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.2 * torch.randn_like(p) * (p.abs().mean() + 0.1))
    torch.save({"state_dict": module.state_dict(),
                "hyper_parameters": {**hparams, "_instantiator": "lightning.pytorch.cli.instantiate_module"},
                "datamodule_hyper_parameters": {"crop_size": 48, "short_side": 56},
                "pytorch-lightning_version": lightning.__version__}, path)
    return module


def _no_file(net):      # the weights file named in the config does not exist: build without it
    backbone = dict(net["init_args"]["backbone"], init_args=dict(name="test_resnet"))
    return dict(net, init_args=dict(net["init_args"], backbone=backbone))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("ckpt")
    module = write_checkpoint(root / "pks4.ckpt")
    config = root / "stream.yaml"
    config.write_text("data:\n  sampler: dense\n  frame_stride: 2\n  crop_size: 64\n  short_side: 64\n")
    return root / "pks4.ckpt", config, module.model.eval()


def offline_probs(model, video, indices):
    """The test pipeline on frames 0..t (read_frames + eval_crops + forward) for every t."""
    frames = torch.from_numpy(read_frames(video, indices, mode="linear", short_side=64)).permute(0, 3, 1, 2)
    clip = eval_crops(frames, 64, 64, 1)[0][None]                        # [1,T,3,64,64]
    with torch.no_grad():
        return torch.cat([model(clip[:, :t + 1]).softmax(-1) for t in range(len(indices))])  # [T,K]


def test_csv_matches_the_offline_model_on_every_prefix(video, checkpoint, tmp_path, capsys):
    ckpt, config, model = checkpoint
    out = tmp_path / "pred.csv"
    assert main(["stream", "--config", str(config), "--ckpt_path", str(ckpt), str(video), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    indices = list(range(0, FRAMES, 2))                                  # config: dense, stride 2
    assert [int(r["frame"]) for r in rows] == indices
    assert [float(r["time"]) for r in rows] == pytest.approx([i / FPS for i in indices])
    assert all(float(r["latency_ms"]) > 0 for r in rows)
    probs = offline_probs(model, video, indices)
    top = probs.topk(5)
    for t, r in enumerate(rows):
        assert [r[f"class{k}"] for k in range(1, 6)] == [CLASSES[i] for i in top.indices[t]]
        assert [float(r[f"prob{k}"]) for k in range(1, 6)] == pytest.approx(top.values[t].tolist(), abs=1e-4)
    summary = json.loads(capsys.readouterr().out)
    assert summary["frames"] == len(indices) and summary["stride"] == 2 and summary["crop_size"] == 64


def test_text_output_every_n_and_jsonl(video, checkpoint, tmp_path, capsys):
    ckpt, config, _ = checkpoint
    assert main(["stream", "-c", str(config), "--ckpt_path", str(ckpt), str(video), "--stride", "1",
                 "--every", "10", "--topk", "3"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.strip().splitlines()
    assert [int(line.split()[1]) for line in lines] == [9, 19, 22]       # every 10th, and the last
    assert sum(name in lines[0] for name in CLASSES) == 3 and "ms" in lines[0]
    assert json.loads(captured.err.strip().splitlines()[-1])["frames"] == FRAMES
    out = tmp_path / "pred.jsonl"
    assert main(["stream", "-c", str(config), "--ckpt_path", str(ckpt), str(video), "--out", str(out)]) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(records) == 12 and records[-1]["frame"] == 22 and len(records[0]["top"]) == 5
    assert {t["name"] for t in records[0]["top"]} <= set(CLASSES)


def test_window_option(video, checkpoint, tmp_path, capsys):
    ckpt, config, model = checkpoint
    out = tmp_path / "w.csv"
    assert main(["stream", "-c", str(config), "--ckpt_path", str(ckpt), str(video), "--window", "2",
                 "--out", str(out)]) == 0
    assert json.loads(capsys.readouterr().out)["window"] == 2
    rows = list(csv.DictReader(out.open()))
    indices = list(range(0, FRAMES, 2))
    frames = torch.from_numpy(read_frames(video, indices, mode="linear", short_side=64)).permute(0, 3, 1, 2)
    with torch.no_grad():
        per_frame = model.forward_features(eval_crops(frames, 64, 64, 1)[0][None])["head"].mean(dim=(3, 4))
        probs = model.fc(model.norm(per_frame[:, -2:].mean(1))).softmax(-1)[0]    # the last two frames
    assert float(rows[-1]["prob1"]) == pytest.approx(probs.max().item(), abs=1e-4)
    assert rows[-1]["class1"] == CLASSES[probs.argmax()]


def test_settings_fall_back_to_the_checkpoint(video, checkpoint, tmp_path, capsys):
    ckpt, _, _ = checkpoint
    bare = tmp_path / "bare.yaml"
    bare.write_text("trainer:\n  max_epochs: 1\n")                      # no data: section
    assert main(["stream", "-c", str(bare), "--ckpt_path", str(ckpt), str(video), "--out", str(tmp_path / "p.csv")]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["crop_size"] == 48 and summary["stride"] == 1         # segment sampler by default


def test_clear_errors(video, checkpoint, tmp_path, capsys):
    ckpt, config, _ = checkpoint
    base = ["stream", "-c", str(config), "--ckpt_path", str(ckpt)]
    assert main(base + [str(tmp_path / "missing.mp4")]) == 2
    assert "missing.mp4: file not found" in capsys.readouterr().err
    (tmp_path / "junk.mp4").write_bytes(b"not a video at all" * 10)
    assert main(base + [str(tmp_path / "junk.mp4")]) == 2
    assert "junk.mp4: cannot open" in capsys.readouterr().err
    assert main(base + [str(video), "--device", "gpu"]) == 2
    assert "--device gpu" in capsys.readouterr().err
    assert main(base + [str(video), "--window", "0"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
    assert main(base + [str(video), "--out", str(tmp_path / "p.txt")]) == 2
    assert "use a .csv or .jsonl file" in capsys.readouterr().err
    assert main(["stream", "-c", str(config), "--ckpt_path", str(tmp_path / "no.ckpt"), str(video)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    write_checkpoint(tmp_path / "attention.ckpt", head="TemporalAttention")
    assert main(["stream", "-c", str(config), "--ckpt_path", str(tmp_path / "attention.ckpt"), str(video)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'attention' cannot stream" in err[0]


def test_an_end_to_end_video_model_cannot_stream(video, checkpoint, tmp_path, capsys):
    _, config, _ = checkpoint
    net = dict(class_path="pks4_lit.models.videomamba.VideoMamba",
               init_args=dict(img_size=64, patch_size=16, num_frames=4, embed_dim=32, depth=1, d_state=4))
    hparams = dict(net=net, num_classes=len(CLASSES), class_names=CLASSES, lr=0.01)
    module = instantiate_module(PKS4Module, hparams)
    torch.save({"state_dict": module.state_dict(),
                "hyper_parameters": {**hparams, "_instantiator": "lightning.pytorch.cli.instantiate_module"},
                "pytorch-lightning_version": lightning.__version__}, tmp_path / "vm.ckpt")
    assert main(["stream", "-c", str(config), "--ckpt_path", str(tmp_path / "vm.ckpt"), str(video)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "VideoMamba cannot stream" in err[0], err
