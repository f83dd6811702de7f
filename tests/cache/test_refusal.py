"""A store is refused when it does not belong to the configuration, naming exactly what differs,
and no store is written or read for a backbone that trains (or with pixel-mixing augmentation)."""
from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch.nn as nn

from cache_helpers import classifier, datamodule
from pks4_lit.cache.dataset import feature_loader
from pks4_lit.cache.fingerprint import StoreMismatchError
from pks4_lit.cache.model import check_cacheable
from pks4_lit.cache.store import StoreError
from pks4_lit.cache.write import write_store


def attach(dm, model: nn.Module, precision: str = "32-true", hparams: dict | None = None, rank: int = 0,
           world_size: int = 1):
    """What a Trainer gives the datamodule: the LightningModule, its precision, rank and world size."""
    module = nn.ModuleDict({"model": model})
    module.hparams = hparams or {}
    dm.trainer = SimpleNamespace(lightning_module=module, precision=precision, global_rank=rank, world_size=world_size)
    return dm


@pytest.fixture(scope="module")
def store(synth, tmp_path_factory):
    dm = datamodule(synth)
    out = tmp_path_factory.mktemp("refusal") / "store"
    write_store(classifier(dm.num_classes), dm, out, views=1, splits=("val",), progress=False)
    return out


def test_the_matching_configuration_reads_the_store(synth, store):
    dm = datamodule(synth, features=str(store))
    attach(dm, classifier(dm.num_classes))
    batch = next(iter(dm.val_dataloader()))
    assert set(batch) == {"features", "label", "index"} and batch["features"].shape == (4, 1, 4, 32, 4, 4)


def test_ddp_ranks_get_disjoint_shards_through_the_datamodule(synth, store):
    seen = []
    for rank in range(2):
        dm = attach(datamodule(synth, features=str(store)), classifier(8), rank=rank, world_size=2)
        loader = dm.val_dataloader()
        assert loader.sampler.rank == rank and loader.sampler.num_replicas == 2
        seen.append([i for batch in loader for i in batch["index"].tolist()])
    assert not set(seen[0]) & set(seen[1]) and sorted(seen[0] + seen[1]) == list(range(8))


@pytest.mark.parametrize("change, field", [
    (dict(data=dict(crop_size=28)), "data.crop_size (store 32, config 28)"),
    (dict(data=dict(num_frames=3)), "data.num_frames (store 4, config 3)"),
    (dict(data=dict(max_missing_fraction=0.0)), "data.max_missing_fraction (store 0.25, config 0.0)"),
    (dict(model=dict(seed=1)), "model.backbone_weights"),
    (dict(model=dict(feature_index=1)), "model.tap"),
    (dict(precision="bf16-mixed"), "trainer.precision (store 32-true, config bf16-mixed)"),
])
def test_a_different_configuration_is_refused_naming_the_difference(synth, store, change, field):
    dm = datamodule(synth, features=str(store), **change.get("data", {}))
    attach(dm, classifier(dm.num_classes, **change.get("model", {})), change.get("precision", "32-true"))
    with pytest.raises(StoreMismatchError) as err:
        feature_loader(dm, "val", False, 4)
    message = str(err.value)
    assert field in message and "\n" not in message
    named = [part.split(" (")[0] for part in message.split(": ", 1)[1].split(". Write")[0].split("; ")]
    assert all(name.split(".")[0] in ("model", "data", "trainer") for name in named)
    assert field.split(" (")[0] in named and len(named) <= 2, named  # the tap moves the weights too, nothing else


def test_changed_annotations_are_refused(synth, store, tmp_path):
    root = tmp_path / "ssv2"
    shutil.copytree(synth, root)
    entries = json.loads((root / "validation.json").read_text())
    (root / "validation.json").write_text(json.dumps(entries[:-1]))
    dm = datamodule(root, features=str(store))
    attach(dm, classifier(dm.num_classes))
    with pytest.raises(StoreMismatchError, match=r"data\.annotations\.val \(store "):
        feature_loader(dm, "val", False, 4)


@pytest.mark.parametrize("kw, why", [
    (dict(freeze="last_n"), "freeze='last_n'"),
    (dict(freeze="none"), "freeze='none'"),
    (dict(adapter="st_adapter"), "adapters"),
])
def test_a_backbone_that_trains_is_refused_for_writing_and_reading(synth, store, tmp_path, kw, why):
    dm = datamodule(synth)
    model = classifier(dm.num_classes, **kw)
    with pytest.raises(StoreError, match="backbone is not frozen") as err:
        write_store(model, dm, tmp_path / "never", views=1, splits=("val",), progress=False)
    assert why in str(err.value) and not (tmp_path / "never").exists()
    reading = attach(datamodule(synth, features=str(store)), model)
    with pytest.raises(StoreError, match="backbone is not frozen"):
        feature_loader(reading, "val", False, 4)


def test_pixel_mixing_is_refused(synth):
    dm = datamodule(synth)
    module = attach(dm, classifier(dm.num_classes), hparams={"mixup_alpha": 0.2}).trainer.lightning_module
    with pytest.raises(StoreError, match="mixup"):
        check_cacheable(module)
