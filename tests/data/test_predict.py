"""`predict` over inputs some of which cannot be read: every readable one is predicted, the others
are skipped and listed, PredictionPrinter(out=FILE) writes CSV or JSON Lines; none readable -> error."""
import csv
import json
from pathlib import Path

import lightning as L
import pytest
import torch

from conftest import write_video
from pks4_lit.callbacks import PredictionPrinter
from pks4_lit.data import DatasetError, VideoDataModule

CLASSES = ["left", "right", "still"]


class MeanColour(L.LightningModule):
    """Stands in for PKS4Module's predict contract: dict(path, probs [B,K]) per batch, None for a batch
    without videos (None, or only the `errors` of unreadable inputs)."""

    def __init__(self):
        super().__init__()
        self.num_classes, self.class_names = len(CLASSES), CLASSES
        self.proj = torch.nn.Linear(3, len(CLASSES))

    def predict_step(self, batch, batch_idx):
        if batch is None or "video" not in batch:
            return None
        x = batch["video"].float().mean(dim=(1, 2, 4, 5)) / 255  # [B,V,T,3,H,W] -> [B,3]
        return {"path": list(batch["path"]), "probs": self.proj(x).softmax(-1)}


def _inputs(tmp_path, n_good=19, bad=("text", "empty", "missing")):
    paths = [str(write_video(tmp_path / f"v{i:02d}.mp4", n=6, step=9)) for i in range(n_good)]
    for k, kind in enumerate(bad):
        p = tmp_path / f"bad{k}.mp4"
        if kind == "text":
            p.write_text("not a video\n" * 30)
        elif kind == "empty":
            p.write_bytes(b"")
        paths.insert(4 * k + 1, str(p))  # spread among the good ones
    return paths


def _bad(path: str) -> bool:
    return Path(path).name.startswith("bad")


# what VideoReader says about each kind of bad input made by _inputs (the path is in its own column)
WHY = {"text": "cannot open: InvalidDataError", "empty": "empty file (0 bytes)", "missing": "file not found"}


def _why(path: str, bad=("text", "empty", "missing")) -> str:
    return WHY[bad[int(Path(path).stem[3:])]]


def _predict(tmp_path, paths, out, num_workers=0):
    dm = VideoDataModule(tmp_path, format="csv", predict_paths=paths, num_frames=2, crop_size=16, short_side=16,
                         batch_size=4, num_workers=num_workers)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, callbacks=[PredictionPrinter(top_k=2, out=str(out))])
    trainer.predict(MeanColour(), datamodule=dm, return_predictions=False)


def test_bad_inputs_are_skipped_and_listed_csv(tmp_path, capsys):
    paths = _inputs(tmp_path)
    assert len(paths) == 22
    _predict(tmp_path, paths, tmp_path / "out" / "pred.csv")
    captured = capsys.readouterr()
    with open(tmp_path / "out" / "pred.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == paths  # every input, in order
    bad = [r for r in rows if r["error"]]
    assert [r["path"] for r in bad] == [p for p in paths if _bad(p)]
    for r in bad:                                      # the reason, not "see the log"
        assert r["error"].startswith(_why(r["path"])) and "\n" not in r["error"], r
    good = [r for r in rows if not r["error"]]
    assert len(good) == 19 and all(r["class_1"] in CLASSES and 0 < float(r["prob_1"]) <= 1 for r in good)
    assert all(float(r["prob_1"]) >= float(r["prob_2"]) for r in good)
    assert sum(line.startswith(str(tmp_path / "v")) for line in captured.out.splitlines()) == 19
    skipped = [line for line in captured.err.splitlines() if line.startswith("pks4 predict: skipped")]
    assert len(skipped) == 3 and "19 of 22 inputs predicted, 3 skipped" in captured.err
    assert skipped[1] == f"pks4 predict: skipped {paths[5]}: empty file (0 bytes)"


@pytest.mark.parametrize("num_workers", [0, 1])
def test_predictions_as_json_lines(tmp_path, num_workers):
    """With a worker, the reason comes from another process: it travels in the batch."""
    paths = _inputs(tmp_path, n_good=5, bad=("text", "missing"))
    _predict(tmp_path, paths, tmp_path / "pred.jsonl", num_workers)
    rows = [json.loads(line) for line in (tmp_path / "pred.jsonl").read_text().splitlines()]
    assert [r["path"] for r in rows] == paths
    assert [("error" in r) for r in rows] == [_bad(p) for p in paths]
    for r in rows:
        assert "error" not in r or r["error"].startswith(_why(r["path"], ("text", "missing"))), r
    top = next(r["top"] for r in rows if "top" in r)
    assert len(top) == 2 and top[0][0] in CLASSES and top[0][1] >= top[1][1]


def test_nothing_readable_is_an_error(tmp_path):
    paths = _inputs(tmp_path, n_good=0)
    with pytest.raises(DatasetError, match="none of the 3 inputs could be read"):
        _predict(tmp_path, paths, tmp_path / "pred.csv")
    with open(tmp_path / "pred.csv", newline="") as f:   # a batch of only bad inputs keeps their reasons
        rows = list(csv.DictReader(f))
    assert [r["path"] for r in rows] == paths
    assert all(r["error"].startswith(_why(r["path"])) for r in rows), rows


def test_out_must_be_csv_or_jsonl():
    with pytest.raises(ValueError, match="csv or .jsonl"):
        PredictionPrinter(out="pred.txt")
