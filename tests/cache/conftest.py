"""A small synthetic set (the project's own generator: real VP9 files), also with two truncated videos."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pks4_lit.data.synthetic import write_synthetic_dataset


@pytest.fixture(scope="session")
def synth(tmp_path_factory) -> Path:
    """8 temporal classes x 5 videos (train 24 / val 8 / test 8), 48 px, 8 frames."""
    root = tmp_path_factory.mktemp("cache_synth") / "ssv2"
    write_synthetic_dataset(root, task="temporal", videos_per_class=5, size=48, frames=8, workers=1)
    return root


@pytest.fixture(scope="session")
def synth_bad(synth, tmp_path_factory) -> Path:
    """The same set with one truncated training video and one truncated validation video."""
    root = tmp_path_factory.mktemp("cache_synth_bad") / "ssv2"
    shutil.copytree(synth, root)
    for split in ("train", "validation"):
        vid = json.loads((root / f"{split}.json").read_text())[1]["id"]
        path = root / f"{vid}.webm"
        path.write_bytes(path.read_bytes()[:200])
    return root

