"""Is the test split the validation split? Honest selection (issue 10 §2).

`best.ckpt` is chosen on the validation split. A number reported on a test split that holds the same
videos was selected on the data it reports: SSv2 (test_split: validation, its test.json has no labels),
Kinetics without a labelled test.csv (test_split null falls back to validation), UCF101/HMDB51 (their
validation is the official test list). The splits are resolved exactly as VideoDataModule reads them.
"""
from __future__ import annotations

from pathlib import Path

from .annotations import read_class_names, read_samples


def validation_overlap(root: str | Path, format: str, split: int = 1, test_split: str | None = None,
                       video_dir: str | None = None) -> tuple[int, int]:
    """(test videos that are also validation videos, test videos); DatasetError if a split cannot be read."""
    classes = read_class_names(root, format, split)
    test = {s.path for s in read_samples(root, format, "test", classes, video_dir, split, test_split)}
    val = {s.path for s in read_samples(root, format, "val", classes, video_dir, split, test_split)}
    return len(test & val), len(test)


def overlap_words(shared: int, total: int) -> str:
    """'the test split is the validation split' or 'k of n test videos are validation videos'."""
    if shared == total:
        return f"the test split is the validation split ({total} videos)"
    return f"{shared} of {total} test videos are validation videos"
