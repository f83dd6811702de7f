"""Datasets and VideoDataModule on a tiny generic-CSV dataset of real encoded videos."""
import numpy as np
import pytest
import torch

from conftest import level_index, write_video
from pks4_lit.data import DatasetError, VideoDataModule, collate_videos
from pks4_lit.data.dataset import VideoClipDataset
from pks4_lit.data.annotations import Sample

SMALL = dict(format="csv", num_frames=4, crop_size=16, short_side=24, batch_size=4, num_workers=0)


def _csv_dataset(root, n_per_split=6, bad=()):
    """train/val/test.csv over videos of 24 grey-coded frames; `bad` names break some train files."""
    for split in ("train", "val", "test"):
        rows = ["path,label"]
        for i in range(n_per_split):
            rel = f"{split}/v{i}.mp4"
            write_video(root / rel, n=24)
            rows.append(f"{rel},{['a', 'b', 'c'][i % 3]}")
        (root / f"{split}.csv").write_text("\n".join(rows) + "\n")
    return root


def _break(path, kind):
    if kind == "missing":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not a video\n" * 20)
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:300])


def test_num_classes_before_setup(tmp_path):
    dm = VideoDataModule(_csv_dataset(tmp_path, 3), **SMALL)
    assert dm.num_classes == 3 and dm.class_names == ["a", "b", "c"] and dm.class_groups is None
    assert dm.datasets == {}  # nothing built or decoded yet


def test_missing_root_is_a_clear_error(tmp_path):
    dm = VideoDataModule(tmp_path / "nowhere", **SMALL)
    with pytest.raises(DatasetError, match="nowhere"):
        dm.num_classes


def test_all_videos_missing_fails_at_setup(tmp_path):
    (tmp_path / "train.csv").write_text("x/1.mp4,a\n")
    (tmp_path / "val.csv").write_text("x/2.mp4,a\n")
    with pytest.raises(DatasetError, match=r"none of its 1 videos exist.*x/1\.mp4"):
        VideoDataModule(tmp_path, **SMALL).setup("fit")


def test_batch_shapes_and_test_views_differ(tmp_path):
    dm = VideoDataModule(_csv_dataset(tmp_path), num_clips=3, num_crops=3, **SMALL)
    dm.setup("fit")
    dm.setup("test")
    b = next(iter(dm.train_dataloader()))
    assert b["video"].shape == (4, 4, 3, 16, 16) and b["video"].dtype == torch.uint8
    assert b["label"].dtype == torch.long and b["index"].shape == (4,)
    v = next(iter(dm.val_dataloader()))["video"]
    assert v.shape == (4, 1, 4, 3, 16, 16)
    t = next(iter(dm.test_dataloader()))
    assert t["video"].shape == (4, 9, 4, 3, 16, 16)
    views = t["video"][0].permute(0, 1, 3, 4, 2).numpy()  # [V,T,H,W,3]
    clips = [tuple(level_index(views[v])) for v in range(9)]
    assert len(set(clips[0::3])) == 3  # the 3 clips are different frames
    assert clips[0] == clips[1] == clips[2]  # crops of one clip share frames


def _epoch(dm):
    return [(b["index"].tolist(), b["video"]) for b in dm.train_dataloader()]


def _same(e1, e2):
    return all(i1 == i2 and torch.equal(v1, v2) for (i1, v1), (i2, v2) in zip(e1, e2)) and len(e1) == len(e2)


def test_same_seed_same_data_any_workers(tmp_path):
    root = _csv_dataset(tmp_path)
    first = _epoch(VideoDataModule(root, seed=3, **SMALL))
    assert _same(first, _epoch(VideoDataModule(root, seed=3, **SMALL)))
    two_workers = VideoDataModule(root, seed=3, **{**SMALL, "num_workers": 2})
    assert _same(first, _epoch(two_workers))  # workers do not change order or sampling
    assert not _same(first, _epoch(VideoDataModule(root, seed=4, **SMALL)))
    dm = VideoDataModule(root, seed=3, **SMALL)
    loader = dm.train_dataloader()
    e0 = [(b["index"].tolist(), b["video"]) for b in loader]
    e1 = [(b["index"].tolist(), b["video"]) for b in loader]
    assert _same(e0, first) and not _same(e0, e1)  # a new epoch draws anew


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "truncated"])
def test_bad_train_video_is_substituted(tmp_path, kind, caplog):
    root = _csv_dataset(tmp_path, 8)
    _break(root / "train/v2.mp4", kind)
    dm = VideoDataModule(root, max_bad_fraction=0.5, **SMALL)
    batches = list(dm.train_dataloader())
    assert [b["video"].shape[0] for b in batches] == [4, 4]  # shapes stay fixed
    indices = sum((b["index"].tolist() for b in batches), [])
    assert 2 not in indices and indices.count(3) == 2  # v2 replaced by the next one
    assert "train/v2.mp4" in caplog.text and "1 bad of" in caplog.text


def test_bad_eval_videos_are_dropped_and_all_bad_batch_is_none(tmp_path):
    root = _csv_dataset(tmp_path, 8)
    for i in (0, 1, 2, 3, 5):
        _break(root / f"val/v{i}.mp4", "text")
    dm = VideoDataModule(root, max_bad_fraction=1.0, **SMALL)
    batches = list(dm.val_dataloader())
    assert batches[0] is None  # videos 0-3 all bad: the module skips a None batch
    assert batches[1]["index"].tolist() == [4, 6, 7]
    assert collate_videos([None, None]) is None


def test_too_many_bad_videos_raise(tmp_path):
    root = _csv_dataset(tmp_path, 8)
    for i in range(6):
        _break(root / f"train/v{i}.mp4", "empty")
    dm = VideoDataModule(root, max_bad_fraction=0.05, **SMALL)
    with pytest.raises(DatasetError, match="too many bad videos"):
        list(dm.train_dataloader())


def test_audio_only_file_is_a_bad_video(tmp_path):
    import av

    path = tmp_path / "a.wav"
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_s16le", rate=8000)
        f = av.AudioFrame.from_ndarray(np.zeros((1, 400), np.int16), format="s16", layout="mono")
        f.rate = 8000
        for p in list(s.encode(f)) + list(s.encode()):
            c.mux(p)
    ds = VideoClipDataset([Sample(path, 0, "a")], train=False, num_frames=2, crop_size=16, short_side=16, max_bad_fraction=1.0)
    assert ds[0] is None and ds.counter.bad == 1


def test_predict_folder(tmp_path):
    root = _csv_dataset(tmp_path / "d", 2)
    write_video(tmp_path / "clips" / "x.webm", n=12, codec="libvpx-vp9")
    write_video(tmp_path / "clips" / "sub" / "y.mp4", n=12)
    (tmp_path / "clips" / "notes.txt").write_text("ignored")
    dm = VideoDataModule(root, predict_paths=str(tmp_path / "clips"), num_clips=2, **SMALL)
    dm.setup("predict")
    b = next(iter(dm.predict_dataloader()))
    assert b["video"].shape == (2, 2, 4, 3, 16, 16)
    assert b["path"] == [str(tmp_path / "clips" / "sub" / "y.mp4"), str(tmp_path / "clips" / "x.webm")]
    with pytest.raises(DatasetError, match="predict_paths"):
        VideoDataModule(root, **SMALL).setup("predict")


def test_lightning_sets_the_sampler_epoch(tmp_path):
    from lightning.fabric.utilities.data import _set_sampler_epoch

    dm = VideoDataModule(_csv_dataset(tmp_path, 3), **SMALL)
    loader = dm.train_dataloader()
    _set_sampler_epoch(loader, 5)  # what Lightning's fit loop calls before each epoch
    assert loader.sampler.epoch == 5 and {e for _, e in loader.sampler} == {5}


def test_cut_off_video_is_bad_unless_max_missing_fraction_allows_it(tmp_path, caplog):
    import hard_videos

    root = _csv_dataset(tmp_path, 4)
    hard_videos.cut_avi(root / "train" / "cut.avi", fraction=0.4)
    (root / "train.csv").write_text((root / "train.csv").read_text() + "train/cut.avi,a\n")
    dm = VideoDataModule(root, max_bad_fraction=1.0, **{**SMALL, "batch_size": 5})
    indices = next(iter(dm.train_dataloader()))["index"].tolist()
    assert 4 not in indices and "train/cut.avi" in caplog.text and "cut off" in caplog.text
    dm = VideoDataModule(root, max_bad_fraction=1.0, max_missing_fraction=1.0, **{**SMALL, "batch_size": 5})
    assert 4 in next(iter(dm.train_dataloader()))["index"].tolist()
