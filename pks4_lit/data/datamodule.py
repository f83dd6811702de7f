"""`VideoDataModule`: annotation files on disk -> seeded DataLoaders of uint8 clip batches.

`num_classes`, `class_names` and `class_groups` are read from the annotation files on first access,
before `setup`, so LightningCLI can link `data.num_classes -> model.num_classes`. `setup(stage)`
reads the splits it needs and checks that their video files exist (none found -> DatasetError with
the first expected path; some missing -> a warning, they are skipped as bad videos).

Batches (see dataset.py): train `video [B,T,3,H,W]`; val `video [B,1,T,3,H,W]`; test
`video [B,V,T,3,H,W]` with V = num_clips·num_crops; predict adds `path`, and `errors` {index: why}
for its unreadable inputs. A batch whose videos were all bad is None (predict: `errors` alone, no
`video`): the LightningModule skips it.

Samplers (samplers.py) shard by the Trainer's world size and rank themselves: training shards are
padded to equal length, evaluation shards are not (every video counted once under DDP), and the
training loader's position in the epoch is saved in checkpoints, so `--ckpt_path last` resumes the
data where it stopped.
"""
from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import Optional, Union

import lightning as L
import torch
from torch.utils.data import DataLoader

from .annotations import FORMATS, DatasetError, read_class_groups, read_class_names, read_samples
from .dataset import VideoClipDataset, VideoFolderDataset, collate_videos, worker_init_fn
from .samplers import EpochSampler, EvalSampler, ResumableDataLoader
from .sampling import SAMPLERS

log = logging.getLogger(__name__)


class VideoDataModule(L.LightningDataModule):
    def __init__(
        self,
        root: str,
        format: str = "ssv2",
        num_frames: int = 8,
        sampler: str = "segment",
        frame_stride: int = 4,
        crop_size: int = 112,
        short_side: int = 128,
        scale: tuple[float, float] = (0.4, 1.0),
        hflip: bool = False,
        num_clips: int = 1,
        num_crops: int = 1,
        split: int = 1,
        test_split: Optional[str] = None,
        batch_size: int = 8,
        num_workers: int = 2,
        max_bad_fraction: float = 0.05,
        seed: int = 0,
        predict_paths: Optional[Union[str, list[str]]] = None,
        video_dir: Optional[str] = None,
        eval_batch_size: Optional[int] = None,
        decode_threads: int = 1,
        decode_mode: str = "auto",
        max_missing_fraction: float = 0.25,
        features: Optional[str] = None,
    ):
        """
        Args:
            root: dataset folder (layouts in data/README.md).
            format: annotation format: ssv2, kinetics, ucf101, hmdb51 or csv.
            num_frames: frames per clip (T).
            sampler: "segment" (TSN, one frame per equal segment) or "dense" (`frame_stride` apart).
            frame_stride: frame step of the dense sampler.
            crop_size: output side in pixels.
            short_side: the short side is resized to this before cropping (downscaled while decoding).
            scale: area range of the training random-resized-crop.
            hflip: random horizontal flips in training (off: SSv2 has left/right classes).
            num_clips: test clips per video (segment: offsets inside segments; dense: spread starts).
            num_crops: test crops per clip: 1 (centre) or 3 (along the long side).
            split: UCF101/HMDB51 official split 1, 2 or 3.
            test_split: annotation split used by `test` (e.g. "validation" for SSv2); None: the
                labelled test split if there is one, else validation (logged).
            batch_size: clips per training batch.
            num_workers: DataLoader worker processes (each decodes with `decode_threads` threads).
            max_bad_fraction: fraction of unreadable videos tolerated before raising DatasetError.
            seed: data order and augmentation seed (same seed -> same batches).
            predict_paths: video files and/or folders for `predict`.
            video_dir: folder of the videos, relative to root (default: root itself).
            eval_batch_size: videos per val/test/predict batch (default: batch_size).
            decode_threads: FFmpeg decode threads per worker.
            decode_mode: "auto" (choose seek or linear per video), "seek" or "linear".
            max_missing_fraction: a video whose clip misses more than this fraction of its frames
                (damaged or cut-off file) is a bad video; fewer are replaced by the nearest earlier
                frame, with a warning naming the video.
            features: a frozen-feature store written by `pks4 cache`: train/val/test batches carry its
                backbone `features` instead of `video` (no decoding, no backbone forward).
        """
        super().__init__()
        if format not in FORMATS:
            raise DatasetError(f"unknown dataset format {format!r}; expected one of {FORMATS}")
        if sampler not in SAMPLERS:
            raise DatasetError(f"unknown sampler {sampler!r}; expected one of {SAMPLERS}")
        if num_crops not in (1, 3):
            raise DatasetError(f"num_crops must be 1 or 3 (got {num_crops})")
        if crop_size > short_side:
            raise DatasetError(f"crop_size ({crop_size}) must not exceed short_side ({short_side})")
        if decode_mode not in ("auto", "seek", "linear"):
            raise DatasetError(f"decode_mode must be auto, seek or linear (got {decode_mode!r})")
        if not 0.0 <= max_missing_fraction <= 1.0:
            raise DatasetError(f"max_missing_fraction must be in [0, 1] (got {max_missing_fraction})")
        self.save_hyperparameters()
        self.root = Path(root).expanduser()
        self.format = format
        self.split, self.test_split, self.video_dir = split, test_split, video_dir
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size or batch_size
        self.num_workers, self.seed = num_workers, seed
        self.predict_paths = predict_paths
        self.features = features
        self.clip_kw = dict(num_frames=num_frames, sampler=sampler, frame_stride=frame_stride, crop_size=crop_size,
                            short_side=short_side, scale=tuple(scale), hflip=hflip, seed=seed,
                            max_bad_fraction=max_bad_fraction, decode_threads=decode_threads, decode_mode=decode_mode,
                            max_missing_fraction=max_missing_fraction)
        self.num_clips, self.num_crops = num_clips, num_crops
        self.datasets: dict[str, VideoClipDataset] = {}
        self._train_loader: Optional[ResumableDataLoader] = None
        self._train_state: Optional[dict] = None  # from a checkpoint, for the next training loader

    # -- read before setup --------------------------------------------------------------------
    @cached_property
    def class_names(self) -> list[str]:
        return read_class_names(self.root, self.format, self.split)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @cached_property
    def class_groups(self) -> Optional[dict[str, str]]:
        groups = read_class_groups(self.root)
        if groups is not None:
            unknown = sorted(set(groups) - set(self.class_names))
            if unknown:
                raise DatasetError(f"{self.root / 'groups.json'}: classes not in the label list: {unknown[:5]}")
        return groups

    # -- datasets ------------------------------------------------------------------------------
    def setup(self, stage: Optional[str] = None):
        wanted = {"fit": ["train", "val"], "validate": ["val"], "test": ["test"], "predict": ["predict"],
                  None: ["train", "val", "test"]}[stage]
        for name in wanted:
            if self.features and name != "predict":  # read from the feature store (pks4_lit.cache)
                continue
            if name not in self.datasets:
                self.datasets[name] = self._build(name)

    def _build(self, name: str) -> VideoClipDataset:
        if name == "predict":
            if not self.predict_paths:
                raise DatasetError("predict needs video files or folders: set --data.predict_paths")
            return VideoFolderDataset(self.predict_paths, num_clips=self.num_clips, num_crops=self.num_crops, **self.clip_kw)
        samples = read_samples(self.root, self.format, name, self.class_names, self.video_dir, self.split, self.test_split)
        missing = [s for s in samples if not s.path.is_file()]
        if len(missing) == len(samples):
            raise DatasetError(f"{self.format} '{name}' split: none of its {len(samples)} videos exist "
                               f"(first expected: {missing[0].path}); check --data.root/--data.video_dir (data/README.md)")
        if missing:
            log.warning("%s '%s' split: %d of %d videos are missing (first: %s); they will be skipped as bad videos",
                        self.format, name, len(missing), len(samples), missing[0].path)
        views = dict(num_clips=self.num_clips, num_crops=self.num_crops) if name == "test" else {}
        return VideoClipDataset(samples, train=name == "train", **views, **self.clip_kw)

    # -- loaders -------------------------------------------------------------------------------
    def _loader(self, name: str, batch_size: int) -> DataLoader:
        if self.features and name != "predict":
            from pks4_lit.cache.dataset import feature_loader
            return feature_loader(self, name, name == "train", batch_size)
        if name not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test", "predict": "predict"}[name])
        ds = self.datasets[name]
        world, rank = self._world()
        if name == "train":
            sampler = EpochSampler(len(ds), shuffle=True, seed=self.seed, num_replicas=world, rank=rank)
            loader = ResumableDataLoader
        else:
            if len(ds) < world:
                raise DatasetError(f"the {name} set has {len(ds)} videos, fewer than the {world} processes evaluating it")
            sampler, loader = EvalSampler(len(ds), num_replicas=world, rank=rank), DataLoader
        loader = loader(
            ds,
            batch_size=batch_size,
            sampler=sampler,
            collate_fn=collate_videos,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=torch.cuda.is_available(),
            worker_init_fn=worker_init_fn,
            generator=torch.Generator().manual_seed(self.seed),
        )
        if name == "train":
            self._train_loader = loader
            if self._train_state is not None:
                loader.load_state_dict(self._train_state)
                self._train_state = None
        return loader

    def _world(self) -> tuple[int, int]:
        """(processes, this one's rank): from the Trainer when attached, else torch.distributed, else (1, 0)."""
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            return trainer.world_size, trainer.global_rank
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_world_size(), torch.distributed.get_rank()
        return 1, 0

    # -- checkpoint state ------------------------------------------------------------------------
    # The training loader's place in its epoch. Lightning saves it twice: as a stateful loader (fit
    # loop state) and here. Its own restore is skipped when configure_optimizers reads
    # trainer.estimated_stepping_batches (Lightning issue #20550, open), as PKS4Module's does; this
    # one runs in every case, before the loader's first batch (iteration starts lazily).
    def state_dict(self) -> dict:
        return {"train_loader": self._train_loader.state_dict()} if self._train_loader is not None else {}

    def load_state_dict(self, state: dict) -> None:
        self._train_state = state.get("train_loader")
        if self._train_loader is not None and self._train_state is not None:
            self._train_loader.load_state_dict(self._train_state)

    def train_dataloader(self):
        return self._loader("train", self.batch_size)

    def val_dataloader(self):
        return self._loader("val", self.eval_batch_size)

    def test_dataloader(self):
        return self._loader("test", self.eval_batch_size)

    def predict_dataloader(self):
        return self._loader("predict", self.eval_batch_size)
