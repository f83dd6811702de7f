"""Features from the store are the features of the very clips the pixel path builds.

The store is written by `write_store` from the datamodule's own datasets; the pixel side here calls
those datasets directly (`dataset[(index, epoch)]`, eval items with all views) and runs the whole
VideoClassifier. fp32 store: logits equal to 1e-5."""
from __future__ import annotations

import pytest
import torch

from cache_helpers import classifier, datamodule
from pks4_lit.cache.dataset import FeatureDataset
from pks4_lit.cache.model import logits_from_features
from pks4_lit.cache.store import FeatureStore
from pks4_lit.cache.write import write_store

K = 2


@pytest.fixture(scope="module")
def stored(synth_bad, tmp_path_factory):
    """(classifier, datamodule, store dir): fp32, K=2, on the set with two truncated videos."""
    dm = datamodule(synth_bad)
    model = classifier(dm.num_classes)
    out = tmp_path_factory.mktemp("store") / "fp32"
    write_store(model, dm, out, views=K, dtype="float32", progress=False, batch_size=3)
    return model, dm, out


@torch.no_grad()
def test_train_views_give_the_logits_of_epochs_0_to_k_minus_1(stored):
    model, dm, out = stored
    pixels = dm.datasets["train"]
    cached = FeatureDataset(FeatureStore.open(out).split("train"), train=True)
    substituted = 0
    for i in range(len(pixels)):
        per_epoch = []
        for epoch in range(K):
            item, hit = pixels[(i, epoch)], cached[(i, epoch)]
            assert (hit["label"], hit["index"]) == (item["label"], item["index"])
            expected = model(item["video"][None])                               # [1,K]
            got = logits_from_features(model, hit["features"][None])
            torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
            per_epoch.append(got)
        substituted += item["index"] != i
        assert not torch.allclose(per_epoch[0], per_epoch[1], atol=1e-4)  # epochs draw different clips
    assert substituted == 1  # the truncated training video was replaced, as in a pixel epoch


@torch.no_grad()
@pytest.mark.parametrize("split", ["val", "test"])
def test_eval_views_give_the_pixel_logits_and_bad_videos_are_dropped(stored, split):
    model, dm, out = stored
    pixels = dm.datasets[split]
    reader = FeatureStore.open(out).split(split)
    assert reader.views == pixels.num_views == (2 if split == "test" else 1)
    dropped = 0
    for i in range(len(pixels)):
        item = pixels[i]
        if item is None:
            dropped += 1
            assert (reader.index_table()[i] == -1).all()
            continue
        feats, labels, index = reader.row(i)                                   # [V,T,C,h,w]
        assert int(labels[0]) == item["label"] and int(index[0]) == i
        expected = model(item["video"])                                        # views as a batch
        torch.testing.assert_close(logits_from_features(model, feats), expected, rtol=0, atol=1e-5)
    assert dropped == (1 if split == "val" else 0)


@torch.no_grad()
def test_half_precision_store_is_close(synth, tmp_path):
    dm = datamodule(synth)
    model = classifier(dm.num_classes)
    write_store(model, dm, tmp_path / "fp16", views=1, dtype="float16", splits=("val",), progress=False)
    reader = FeatureStore.open(tmp_path / "fp16").split("val")
    feats, _, _ = reader.row(0)
    assert feats.dtype == torch.float16
    expected = model(dm.datasets["val"][0]["video"])
    torch.testing.assert_close(logits_from_features(model, feats), expected, rtol=0, atol=1e-2)
