"""What determines a clip's frozen backbone features, as flat named fields, and the store check.

A store holds the features of exactly the clips the pixel path would build, so every input of
"decoded frames -> transforms -> backbone" is a field here:
  model.backbone          timm name
  model.backbone_weights  sha256 over the backbone's state dict as loaded (names, dtypes, shapes,
                          bytes): covers a checkpoint file's content, hub weights, a seeded random
                          init and a pruned tap alike, whatever the config calls them
  model.tap               the tapped stage, its channels and stride
  model.normalize         the pixel mean/std the classifier applies
  trainer.precision       the autocast the backbone runs under (bf16 features differ from fp32)
  data.<key>              every datamodule setting the clip depends on (DATA_KEYS: sampler, frames,
                          crop, short side, scale, flip, eval views, seed, format, split choice,
                          max_missing_fraction: truncated videos served or dropped)
  data.classes            the class-name list (labels index it)
  data.annotations.<split>  sha256 of the split's sample list as the annotation reader parsed it
                          (id, label, video path relative to the root): the annotation files'
                          content as it reaches the data, so a moved dataset root still matches
Not fields: batch size, workers, decode mode/threads (checked to give the same frames), the root
path itself. The sampling/transform/decode source is hashed into `code_sha256`, recorded but only
warned about: a refactor that keeps behaviour should not throw a store away.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import logging
from pathlib import Path

import torch

from pks4_lit.data.annotations import DatasetError, read_samples

log = logging.getLogger(__name__)

DATA_KEYS = ("format", "split", "test_split", "video_dir", "num_frames", "sampler", "frame_stride", "crop_size",
             "short_side", "scale", "hflip", "num_clips", "num_crops", "seed",
             "max_missing_fraction")  # decides whether a truncated video is served (repeated frames) or bad


class StoreMismatchError(DatasetError):
    """A feature store that does not belong to the current configuration (one line, names the fields)."""


def state_dict_sha256(module: torch.nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def samples_sha256(samples, root: Path) -> str:
    rows = [[s.id, int(s.label), _relative(s.path, root)] for s in samples]
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def _relative(path, root: Path) -> str:
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return str(path)


def _jsonable(v):
    if isinstance(v, (tuple, list)):
        return [_jsonable(x) for x in v]
    return v if v is None or isinstance(v, (bool, int, float, str)) else str(v)


def model_fields(classifier, precision) -> dict:
    """The model half of the fields: `classifier`'s (frozen) backbone and the autocast it runs under."""
    bb = classifier.backbone
    stage = getattr(bb, "stage_names", ["?"])[-1]
    return {
        "model.backbone": bb.name,
        "model.backbone_weights": state_dict_sha256(bb),
        "model.tap": f"{stage}: {getattr(bb, 'out_dim', '?')} channels, stride {getattr(bb, 'reduction', '?')}",
        "model.normalize": {"mean": [float(x) for x in bb.mean], "std": [float(x) for x in bb.std]},
        "trainer.precision": str(precision),
    }


def data_fields(datamodule, splits) -> dict:
    """The data half: the datamodule's clip settings, class list and the sample lists of `splits`."""
    hp = datamodule.hparams
    fp = {f"data.{key}": _jsonable(hp.get(key)) for key in DATA_KEYS}
    fp["data.classes"] = hashlib.sha256(json.dumps(list(datamodule.class_names)).encode()).hexdigest()
    for split in splits:
        samples = read_samples(datamodule.root, datamodule.format, split, datamodule.class_names,
                               datamodule.video_dir, datamodule.split, datamodule.test_split)
        fp[f"data.annotations.{split}"] = samples_sha256(samples, datamodule.root)
    return fp


def fingerprint(classifier, datamodule, precision, splits) -> dict:
    return {**model_fields(classifier, precision), **data_fields(datamodule, splits)}


def code_sha256() -> str:
    """Source of the modules that turn a file into a clip (recorded; a change only warns)."""
    from pks4_lit.data import dataset, decode, sampling, transforms

    h = hashlib.sha256()
    for module in (decode, sampling, transforms, dataset):
        h.update(inspect.getsource(module).encode())
    return h.hexdigest()


def _short(v) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s[:12] + "…" if len(s) == 64 and all(c in "0123456789abcdef" for c in s) else s


def differences(stored: dict, current: dict) -> list[str]:
    """'field (store X, config Y)' for every field that differs or exists on one side only."""
    out = []
    for key in sorted(set(stored) | set(current)):
        a, b = stored.get(key, "<absent>"), current.get(key, "<absent>")
        if json.dumps(a) != json.dumps(b):
            out.append(f"{key} (store {_short(a)}, config {_short(b)})")
    return out


def check(store_dir, stored: dict, current: dict) -> None:
    diff = differences(stored, current)
    if diff:
        raise StoreMismatchError(
            f"feature store {store_dir} was written for another configuration: {'; '.join(diff)}. "
            f"Write a store for this configuration with `pks4 cache --config ...` (or drop --data.features)")


def warn_if_code_changed(store_dir, stored_code: str | None) -> None:
    if stored_code and stored_code != code_sha256():
        log.warning("feature store %s: the decode/sampling/transform code changed since it was written; "
                    "if that changed which frames or crops a clip gets, rewrite the store", store_dir)
