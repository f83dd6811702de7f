import json

import numpy as np
import pytest

from pks4_lit.data import VideoDataModule, read_frames
from pks4_lit.data import synthetic_kinematic as K
from pks4_lit.data.synthetic import class_group, class_templates, main, write_synthetic_dataset, write_webm

ALL = K.class_templates("kinematic") + K.class_templates("kinematic_long")


def test_classes_and_groups():
    assert len(K.class_templates("kinematic")) == 8 and len(K.class_templates("kinematic_long")) == 6
    assert len(set(ALL)) == len(ALL)
    assert not set(ALL) & set(class_templates("mixed"))
    assert {class_group(t) for t in K.class_templates("kinematic")} == {"order", "dynamics"}
    assert {class_group(t) for t in K.class_templates("kinematic_long")} == {"long_order"}
    assert class_templates("kinematic") == K.class_templates("kinematic")


@pytest.mark.parametrize("a,b", K.reversal_pairs("kinematic") + K.reversal_pairs("kinematic_long"))
def test_reversed_class_is_the_clip_played_backwards(a, b):
    frames = 24 if class_group(a) == "long_order" else 6
    for seed in ([0, 1, 2], [4, 0, 9]):
        fa, fb = K.render_clip(a, seed, 32, frames), K.render_clip(b, seed, 32, frames)
        assert np.array_equal(fb, fa[::-1])
        assert not np.array_equal(fa, fa[::-1])


@pytest.mark.parametrize("template", K.class_templates("kinematic")[::2] + K.class_templates("kinematic_long")[:1])
def test_decoded_reversed_clip_is_the_reversed_decoded_clip(template, tmp_path):
    """Lossless VP9: decoding does not depend on where a frame sits in the file."""
    clip = K.render_clip(template, [0, 3, 1], 48)
    write_webm(tmp_path / "a.webm", clip)
    write_webm(tmp_path / "b.webm", clip[::-1].copy())
    fa = read_frames(tmp_path / "a.webm", range(len(clip)))
    fb = read_frames(tmp_path / "b.webm", range(len(clip)))
    assert fa.shape == clip.shape and np.array_equal(fb, fa[::-1])


@pytest.mark.parametrize("template", ALL)
def test_every_motion_is_sub_cell(template):
    """No object or distractor moves more than half a feature cell per frame on screen."""
    steps = np.stack([K.screen_steps(K.plan_clip(template, [1, 2, s], 32)) for s in range(25)])
    assert steps.max() <= 0.5
    if "two" in template.lower():                                     # both objects move in the two-object classes
        assert steps[:, :2].min() > 0.02


def test_pass_and_bounce_keep_the_same_distance_law():
    """Same seed: the distance between the objects is the same in every frame (no single frame tells
    passing from bouncing), the motions differ (they cross, or they turn back)."""
    a, b = K.class_templates("kinematic")[4:6]
    for s in range(5):
        pa, pb = K.plan_clip(a, [0, 0, s], 32), K.plan_clip(b, [0, 0, s], 32)
        da = np.linalg.norm(pa["centres"][:, 0] - pa["centres"][:, 1], axis=-1)
        db = np.linalg.norm(pb["centres"][:, 0] - pb["centres"][:, 1], axis=-1)
        np.testing.assert_allclose(da, db, atol=1e-9)
        assert not np.allclose(pa["centres"], pb["centres"])
        axis = pa["centres"][-1, 0] - pa["centres"][0, 0]              # object 1's travel when passing
        proj_a = (pa["centres"][:, 0] - pa["centres"][:, 1]) @ axis
        proj_b = (pb["centres"][:, 0] - pb["centres"][:, 1]) @ axis
        assert proj_a[0] < 0 < proj_a[-1]                              # passing: they change sides
        assert proj_b.max() < 1e-9                                     # bouncing: never


def test_approach_closes_and_shaking_speed_differs():
    approach = K.plan_clip(K.class_templates("kinematic")[0], [0, 0, 0], 32)["centres"]
    d = np.linalg.norm(approach[:, 0] - approach[:, 1], axis=-1)
    assert np.all(np.diff(d) < 0)
    slow, fast = K.class_templates("kinematic")[6:8]
    for s in range(10):                                               # same seed: same swing and phase
        cs, cf = (K.plan_clip(t, [0, 0, s], 16)["centres"][:, 0] for t in (slow, fast))
        ss, sf = (np.linalg.norm(np.diff(c, axis=0), axis=-1) for c in (cs, cf))
        assert ss.max() <= 0.23 and sf.max() <= 0.43 and sf.mean() > 1.25 * ss.mean()
        assert np.allclose(cf[4:], cf[:-4])                             # period 4 (and 8 for the slow one)
        assert np.allclose(cs[8:], cs[:-8]) if len(cs) > 8 else not np.allclose(cs[4:], cs[:-4])


@pytest.mark.parametrize("frames", [32, 64])
def test_long_events_are_far_apart(frames):
    for template in K.class_templates("kinematic_long"):
        c = K.plan_clip(template, [0, 1, 2], 32, frames)["centres"][:, 0]
        moving = np.nonzero(np.linalg.norm(np.diff(c, axis=0), axis=-1) > 1e-9)[0]
        first, last = moving.min(), moving.max()
        gaps = np.diff(moving)
        assert first <= 3 and last >= frames - 5
        assert gaps.max() >= frames - 23                                # a still stretch between the events


def test_frame_counts():
    assert len(K.render_clip(ALL[0], 0, 32)) == 8 and len(K.render_clip(ALL[-1], 0, 32)) == 32
    with pytest.raises(ValueError, match="at least 24"):
        K.render_clip(ALL[-1], 0, 32, 16)
    with pytest.raises(ValueError, match="unknown kinematic class"):
        K.render_clip("Showing a cat", 0, 32)


def test_dataset_with_split_sizes_through_the_reader(tmp_path):
    info = write_synthetic_dataset(tmp_path, task="kinematic", split_sizes=(2, 1, 3), size=32, workers=1)
    assert info["classes"] == 8 and info["videos"] == 48 and info["frames"] == 8 and info["crf"] is None
    counts = {s: len(json.loads((tmp_path / f"{s}.json").read_text())) for s in ("train", "validation", "test")}
    assert counts == {"train": 16, "validation": 8, "test": 24}
    groups = json.loads((tmp_path / "groups.json").read_text())
    assert sorted(set(groups.values())) == ["dynamics", "order"]
    dm = VideoDataModule(tmp_path, format="ssv2", num_frames=8, crop_size=24, short_side=28, batch_size=4,
                         num_workers=0, test_split="test")
    dm.setup("test")
    assert len(dm.datasets["test"]) == 24 and dm.num_classes == 8
    e = json.loads((tmp_path / "test.json").read_text())[0]
    assert read_frames(tmp_path / f"{e['id']}.webm", range(8)).shape == (8, 32, 32, 3)
    assert write_synthetic_dataset(tmp_path, task="kinematic", split_sizes=(2, 1, 3), size=32, workers=1)["reused"]


def test_bad_split_sizes():
    with pytest.raises(ValueError, match="split_sizes"):
        write_synthetic_dataset("unused", task="kinematic", split_sizes=(2, 0, 3))


def test_cli_long_task(tmp_path, capsys):
    main([str(tmp_path / "k"), "--task", "kinematic_long", "--split-sizes", "1", "1", "1", "--size", "32",
          "--frames", "24", "--workers", "1"])
    out = json.loads(capsys.readouterr().out)
    assert out["classes"] == 6 and out["videos"] == 18 and out["frames"] == 24
