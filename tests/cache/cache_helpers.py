"""Builders for the cache tests: a datamodule, a classifier and a config for the synthetic set (conftest.py).

Models are random-init timm test models (`test_efficientnet`): nothing is downloaded.
"""
from __future__ import annotations

from pathlib import Path

from pks4_lit.data.datamodule import VideoDataModule
from pks4_lit.models import VideoClassifier
from tiny_config import tiny_model_yaml

DATA = dict(format="ssv2", num_frames=4, crop_size=32, short_side=40, batch_size=4, num_workers=0,
            test_split="test", num_clips=2, max_bad_fraction=0.3)
MODEL = dict(backbone="test_efficientnet", feature_index=2, head="pks4",
             head_kwargs=dict(d_state=4, prior_dim=8, radius=1), dropout=0.1)

CONFIG = """\
seed_everything: 0
trainer:
  accelerator: cpu
  devices: 1
  precision: 32
  max_epochs: 2
  log_every_n_steps: 1
  num_sanity_val_steps: 0
  enable_model_summary: false
  enable_progress_bar: false
""" + tiny_model_yaml(dropout=0.1) + """\
data:
  root: {root}
  format: ssv2
  num_frames: 4
  crop_size: 32
  short_side: 40
  batch_size: 4
  num_workers: 0
  test_split: test
  num_clips: 2
  max_bad_fraction: 0.3
"""


def datamodule(root, **kw) -> VideoDataModule:
    return VideoDataModule(root=str(root), **{**DATA, **kw})


def classifier(num_classes: int, seed: int = 0, **kw) -> VideoClassifier:
    import torch

    torch.manual_seed(seed)
    return VideoClassifier.from_names(num_classes, **{**MODEL, **kw}).eval()


def write_config(path: Path, root: Path) -> Path:
    path.write_text(CONFIG.format(root=root))
    return path
