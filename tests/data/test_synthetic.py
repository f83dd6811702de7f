import json

import numpy as np
import pytest

from pks4_lit.data import VideoDataModule, read_frames
from pks4_lit.data.synthetic import (SPATIAL_CLASSES, TEMPORAL_PAIRS, class_templates, main, render_clip,
                                     write_synthetic_dataset, write_webm)

TINY = dict(videos_per_class=3, size=48, frames=6, workers=1)


@pytest.mark.parametrize("a,b,_", TEMPORAL_PAIRS)
def test_second_class_is_the_first_reversed(a, b, _):
    for seed in ([0, 1, 2], [5, 0, 7]):
        fa, fb = render_clip(a, seed, 48, 8), render_clip(b, seed, 48, 8)
        assert np.array_equal(fb, fa[::-1])
        assert not np.array_equal(fa, fa[::-1])  # the motion is not a palindrome


@pytest.mark.parametrize("a,b,_", TEMPORAL_PAIRS[:2])
def test_decoded_second_class_is_the_decoded_first_reversed(a, b, _, tmp_path):
    """The files are lossless: decoding a frame does not depend on its position in the file, so the
    reversal holds for the frames a model reads, not only for the pixels before encoding."""
    clip = render_clip(a, [0, 1, 2], 64, 8)
    write_webm(tmp_path / "a.webm", clip)
    write_webm(tmp_path / "b.webm", render_clip(b, [0, 1, 2], 64, 8))
    fa, fb = read_frames(tmp_path / "a.webm", range(8)), read_frames(tmp_path / "b.webm", range(8))
    assert np.array_equal(fb, fa[::-1])


def test_frames_vary_and_objects_move():
    clip = render_clip(TEMPORAL_PAIRS[0][0], [0, 0, 0], 96, 16).astype(np.float32)
    assert all(np.abs(clip[t + 1] - clip[t]).mean() > 1 for t in range(15))  # no frame repeats
    # the mean column of what differs from the median frame (mostly the object) moves right
    fg = np.abs(clip - np.median(clip, axis=0)).sum(-1) > 60
    cols = np.array([np.nonzero(f)[1].mean() for f in fg])
    slope = np.polyfit(np.arange(16), cols, 1)[0]  # an underestimate: the mask also holds the old position
    assert cols[-1] - cols[0] > 0.2 * 96 and slope > 1.0


def test_spatial_motion_is_random_direction():
    tpl = next(iter(SPATIAL_CLASSES))
    clips = [render_clip(tpl, [1, 2, s], 32, 4) for s in range(3)]
    assert not np.array_equal(clips[0], clips[1])


def test_write_read_deterministic(tmp_path):
    info = write_synthetic_dataset(tmp_path / "a", task="mixed", **TINY)
    assert info["classes"] == 14 and info["videos"] == 42 and not info["reused"]
    again = write_synthetic_dataset(tmp_path / "a", task="mixed", **TINY)
    assert again["reused"]
    write_synthetic_dataset(tmp_path / "b", task="mixed", **TINY)
    for name in ("labels.json", "train.json", "validation.json", "test.json", "groups.json"):
        assert (tmp_path / "a" / name).read_text() == (tmp_path / "b" / name).read_text()
    test = json.loads((tmp_path / "a" / "test.json").read_text())
    assert all("template" in e for e in test)  # labelled test split
    for e in test[:4]:
        fa = read_frames(tmp_path / "a" / f"{e['id']}.webm", range(6))
        assert fa.shape == (6, 48, 48, 3)
        assert np.array_equal(fa, read_frames(tmp_path / "b" / f"{e['id']}.webm", range(6)))
    with pytest.raises(FileExistsError):
        write_synthetic_dataset(tmp_path / "a", task="temporal", **TINY)


def test_groups_and_tasks_through_the_ssv2_reader(tmp_path):
    write_synthetic_dataset(tmp_path, task="temporal", **TINY)
    dm = VideoDataModule(tmp_path, format="ssv2", num_frames=4, crop_size=32, short_side=48, batch_size=4, num_workers=0)
    assert dm.num_classes == 8 and set(dm.class_groups.values()) == {"temporal"}
    assert dm.class_names[:2] == ["Moving something from left to right", "Moving something from right to left"]
    dm.setup("fit")
    assert len(dm.datasets["train"]) == 8 * 2 and len(dm.datasets["val"]) == 8
    b = next(iter(dm.train_dataloader()))
    assert b["video"].shape == (4, 4, 3, 32, 32)
    assert len(class_templates("spatial")) == len(SPATIAL_CLASSES)


def test_cli(tmp_path, capsys):
    main([str(tmp_path / "s"), "--task", "spatial", "--videos-per-class", "3", "--size", "32", "--frames", "4",
          "--workers", "1"])
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == len(SPATIAL_CLASSES) and (tmp_path / "s" / "groups.json").is_file()
