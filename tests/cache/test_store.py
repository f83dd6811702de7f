"""The store format and the rank-sharded reader, on hand-written stores (no backbone, no video).

Feature values encode (video, view), so every read can be checked for being the right clip."""
from __future__ import annotations

import logging
from dataclasses import asdict

import pytest
import torch

from pks4_lit.cache.dataset import FeatureDataset, ShardSampler, collate_features
from pks4_lit.cache.store import (FORMAT, VERSION, FeatureStore, ShardWriter, SplitLayout, StoreError, begin_write,
                                  finish_write)
from pks4_lit.data.dataset import EpochSampler

SHAPE = [2, 3, 1, 1]  # [T,C,h,w]


def value(i: int, view: int) -> float:
    return float(8 * i + view)  # small integers: exact in fp16 and bf16


def header(videos: int, views: int, shard_size: int, dtype: str = "float16") -> dict:
    return {"format": FORMAT, "version": VERSION, "views": views, "dtype": dtype, "feature_shape": SHAPE,
            "fingerprint": {"data.crop_size": 32},
            "splits": {"train": asdict(SplitLayout(videos, views, shard_size)),
                       "val": asdict(SplitLayout(videos, 1, shard_size))}}


def write_fake(root, videos=10, views=2, shard_size=3, dtype="float16", bad_val=(), only_shards=None):
    h = header(videos, views, shard_size, dtype)
    begin_write(root, h, overwrite=False)
    for split in ("train", "val"):
        lay = SplitLayout(**h["splits"][split])
        for k, start, count in lay.shards():
            if only_shards is not None and k not in only_shards:
                continue
            w = ShardWriter(root, split, k, count, lay.views, SHAPE, dtype)
            for r in range(count):
                i = start + r
                if split == "val" and i in bad_val:
                    continue
                for v in range(lay.views):
                    w.put(r, v, torch.full(SHAPE, value(i, v)), label=i % 3, index=i)
            w.close()
    if only_shards is None:
        finish_write(root, h, {"bad": {"val": [str(i) for i in bad_val]}})
    return h


@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32"])
def test_round_trip_every_dtype(tmp_path, dtype):
    write_fake(tmp_path, dtype=dtype)
    reader = FeatureStore.open(tmp_path).split("train")
    for i in range(10):
        f, labels, index = reader.row(i)
        assert f.dtype == {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}[dtype]
        assert f.shape == (2, *SHAPE)
        assert [float(f[v].float().mean()) for v in range(2)] == [value(i, 0), value(i, 1)]
        assert list(labels) == [i % 3] * 2 and list(index) == [i] * 2
        one, label, idx = reader.row(i, view=1)
        assert torch.equal(one, f[1]) and label == i % 3 and idx == i


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_ranks_read_disjoint_shards(tmp_path, world):
    write_fake(tmp_path, videos=10, shard_size=3, bad_val=(4,))  # 4 shards: 3+3+3+1 videos
    store = FeatureStore.open(tmp_path)
    for split, train in (("train", True), ("val", False)):
        reader = store.split(split)
        shards_of, videos_of, lengths = [], [], []
        for rank in range(world):
            sampler = ShardSampler(reader, train, shuffle=True, seed=0, rank=rank, world_size=world)
            keys = list(sampler)
            videos = [k[0] for k in keys] if train else keys
            shards_of.append({reader.shard_of(i) for i in videos})
            videos_of.append(set(videos))
            lengths.append(len(keys))
            assert len(keys) == len(sampler)
            ds = FeatureDataset(reader, train)
            batch = collate_features([ds[k] for k in keys])
            assert batch["index"].tolist() == videos  # every read is the video the sampler asked for
        for a in range(world):
            for b in range(a + 1, world):
                assert not shards_of[a] & shards_of[b], (split, world, shards_of)
        expected = set(range(10)) - ({4} if not train else set())
        assert set().union(*videos_of) == expected
        if train:
            assert len(set(lengths)) == 1  # same step count on every rank
        else:
            assert sum(lengths) == len(expected)  # eval: no padding, no duplicates, bad video dropped
    with pytest.raises(StoreError, match="4 shards for 5 ranks"):
        ShardSampler(store.split("train"), True, True, rank=0, world_size=5)


def test_one_rank_follows_the_pixel_paths_order(tmp_path):
    write_fake(tmp_path, videos=10, shard_size=3)
    sampler = ShardSampler(FeatureStore.open(tmp_path).split("train"), True, shuffle=True, seed=3)
    for epoch in range(3):
        pixel = EpochSampler(10, shuffle=True, seed=3)
        pixel.set_epoch(epoch)
        sampler.set_epoch(epoch)
        assert list(sampler) == list(pixel)


def test_epochs_past_k_cycle_the_views_and_say_so_once(tmp_path, caplog):
    write_fake(tmp_path, views=2)
    reader = FeatureStore.open(tmp_path).split("train")
    sampler, ds = ShardSampler(reader, True, shuffle=True, seed=0), FeatureDataset(reader, True)
    with caplog.at_level(logging.WARNING, logger="pks4_lit.cache.dataset"):
        for epoch in range(5):
            sampler.set_epoch(epoch)
            for i, e in sampler:
                assert float(ds[(i, e)]["features"].float().mean()) == value(i, epoch % 2)
    cycle = [r for r in caplog.records if "reuses view" in r.getMessage()]
    assert len(cycle) == 1 and "epoch 2" in cycle[0].getMessage()


def test_an_interrupted_write_is_refused_then_resumed(tmp_path):
    h = write_fake(tmp_path, videos=10, shard_size=3, only_shards={0})
    with pytest.raises(StoreError, match="did not finish"):
        FeatureStore.open(tmp_path)
    complete, done = begin_write(tmp_path, h, overwrite=False)
    assert not complete and done == {("train", 0), ("val", 0)}
    other = header(10, 3, 3)
    with pytest.raises(StoreError, match="store.views"):
        begin_write(tmp_path, other, overwrite=False)
    complete, done = begin_write(tmp_path, other, overwrite=True)
    assert not complete and done == set() and not (tmp_path / "train").exists()


def test_a_missing_shard_file_is_named(tmp_path):
    write_fake(tmp_path)
    (tmp_path / "train" / "00002.labels.npy").unlink()
    with pytest.raises(StoreError, match="train shard 2 is missing labels"):
        FeatureStore.open(tmp_path).split("train")
    with pytest.raises(StoreError, match="no 'test' split"):
        FeatureStore.open(tmp_path).split("test")
