"""Frozen-feature cache: training epoch time from the store vs from pixels, and what the backbone costs.

    python -m pks4_lit.bench.cache            # or: pks4 bench cache [--videos-per-class 10 --epochs 3]

epochs: the configured model and datamodule (`--config`, default conf/synthetic/pks4.yaml, built by
  the project's LightningCLI; a configured backbone weights file is replaced by random init, which
  costs the same) train `--epochs` epochs on a synthetic set written to a temporary folder (or
  `--data`), once from pixels and once from a store written by `pks4 cache`'s writer, each with a
  plain Lightning Trainer (no validation, logger or checkpoints). Per epoch, from on_train_epoch_start
  to on_train_epoch_end: wall time and this process' CPU time (all its threads; with the default
  `--num-workers 0` decoding runs in-process, so CPU time is the whole cost and is much less disturbed
  by other jobs on a shared machine than wall time). The first epoch is reported but left out of the
  medians. `speedup_*` = median pixel epoch / median store epoch; `write_s` is the one-off
  cost of writing the store (K training views + the validation views).
flops: forward FLOPs of the frozen backbone per view vs forward+backward FLOPs of the temporal head
  per view, counted by torch.utils.flop_counter (a multiply-add counts 2), with the head's selective
  scan and correlation volume added analytically (pks4_lit.bench.heads.count_flops):
  paper setting: CLIP ViT-B/16 (`--flop-backbone`, built on the meta device: no weights, no
    download) at 224 px and 8 frames, the pks4 head with its defaults (= conf/ssv2/pks4.yaml) on its
    14x14x768 map;
  configured: the same two counts for the `--config` model at its own clip size.
  `step_ratio` = (backbone forward + head train step) / head train step: the compute a training step
  saves by reading features instead of pixels.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn as nn
import yaml
from lightning.pytorch.callbacks import Callback

from pks4_lit.command import script_main

NUM_CLASSES = 174  # SSv2, for the paper-setting head


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="conf/synthetic/pks4.yaml")
    parser.add_argument("--data", default=None, help="existing synthetic set (default: write one to a temp folder)")
    parser.add_argument("--videos-per-class", type=int, default=10, help="synthetic set size (14 classes)")
    parser.add_argument("--size", type=int, default=128, help="synthetic frame side")
    parser.add_argument("--frames", type=int, default=16, help="synthetic frames per video")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--views", type=int, default=1, help="K training views in the store")
    parser.add_argument("--num-workers", type=int, default=0,
                        help="DataLoader workers for both runs (0: decoding shows in this process' CPU time)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--dtype", default="float16", choices=("float16", "bfloat16", "float32"))
    parser.add_argument("--flop-backbone", default="vit_base_patch16_clip_224")
    parser.add_argument("--flop-frames", type=int, default=8)
    parser.add_argument("--flop-img-size", type=int, default=224)
    parser.add_argument("--no-epochs", action="store_true", help="skip the epoch timing")
    parser.add_argument("--no-flops", action="store_true", help="skip the FLOP count")


# ---- configuration ------------------------------------------------------------------------------
def _random_init(node):
    """Drop backbone weight files / hub downloads anywhere in a model config (whatever its shape)."""
    if isinstance(node, dict):
        return {k: (None if k == "checkpoint_path" else False if k == "pretrained" else _random_init(v))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_random_init(v) for v in node]
    return node


def bench_config(config: str, folder: Path) -> str:
    cfg = yaml.safe_load(Path(config).read_text())
    cfg["model"] = _random_init(cfg.get("model", {}))
    path = folder / Path(config).name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


class EpochTimer(Callback):
    """Wall and process CPU time of every training epoch."""

    def __init__(self):
        self.times: list[tuple[float, float]] = []  # (wall, CPU of this process) seconds

    def on_train_epoch_start(self, trainer, module):
        self.t0 = (time.perf_counter(), time.process_time())

    def on_train_epoch_end(self, trainer, module):
        self.times.append((time.perf_counter() - self.t0[0], time.process_time() - self.t0[1]))


def time_epochs(module, datamodule, epochs: int) -> list[tuple[float, float]]:
    timer = EpochTimer()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[timer])
    trainer.fit(module, datamodule)
    return timer.times


def _summary(times: list[tuple[float, float]]) -> dict:
    out = {}
    for n, kind in enumerate(("wall", "cpu")):
        every = [round(t[n], 3) for t in times]
        steady = every[1:] or every
        out[kind] = {"epoch_s": every, "median_s": round(statistics.median(steady), 3), "min_s": min(steady)}
    return out


def bench_epochs(args, folder: Path, root: Path) -> dict:
    from pks4_lit.cache.command import build
    from pks4_lit.cache.model import check_cacheable
    from pks4_lit.cache.write import write_store

    config = bench_config(args.config, folder)
    overrides = ["--data.root", str(root), "--data.num_workers", str(args.num_workers)]
    module, dm, trainer = build([config], overrides)
    t0 = time.perf_counter()
    summary = write_store(check_cacheable(module), dm, folder / "store", views=args.views, dtype=args.dtype,
                          precision=trainer.precision, autocast=trainer.precision_plugin.forward_context,
                          splits=("train", "val"), progress=False)  # only training is timed
    write_s = time.perf_counter() - t0
    pixels = _summary(time_epochs(module, dm, args.epochs))
    module, dm, _ = build([config], overrides + ["--data.features", str(folder / "store")])
    store = _summary(time_epochs(module, dm, args.epochs))
    return {"config": args.config, "train_videos": summary["splits"]["train"]["videos"],
            "batch_size": dm.batch_size, "num_workers": dm.num_workers, "views": args.views, "dtype": args.dtype,
            "store_MB": round(summary["bytes"] / 2**20, 2), "write_s": round(write_s, 2),
            "pixels": pixels, "store": store, "speedup_wall": round(pixels["wall"]["median_s"] / store["wall"]["median_s"], 1),
            "speedup_cpu": round(pixels["cpu"]["median_s"] / store["cpu"]["median_s"], 1)}


# ---- FLOPs --------------------------------------------------------------------------------------
class FeaturesToLogits(nn.Module):
    """A classifier's temporal head + pooling + linear layer: its work per training step from a store."""

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier

    def forward(self, features):
        from pks4_lit.cache.model import logits_from_features

        return logits_from_features(self.classifier, features)


def backbone_flops(backbone: nn.Module, video: torch.Tensor) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        backbone(video)
    return int(fc.get_total_flops())


def _ratio(backbone_fwd: int, head_train: int) -> dict:
    return {"backbone_fwd_GFLOPs": round(backbone_fwd / 1e9, 3), "head_train_GFLOPs": round(head_train / 1e9, 4),
            "backbone_over_head": round(backbone_fwd / head_train, 1),
            "step_ratio": round((backbone_fwd + head_train) / head_train, 1)}


def bench_flops(args, folder: Path, root: Path) -> dict:
    from pks4_lit.bench.heads import HeadStep, count_flops
    from pks4_lit.cache.command import build
    from pks4_lit.cache.model import find_classifier
    from pks4_lit.models.backbone import FrameBackbone

    T, S = args.flop_frames, args.flop_img_size
    with torch.device("meta"):
        vit = FrameBackbone(args.flop_backbone, img_size=S)
    vit_fwd = backbone_flops(vit, torch.zeros(1, T, 3, S, S, device="meta"))
    grid = S // vit.reduction
    head = HeadStep("pks4", vit.out_dim)
    x = torch.randn(1, T, vit.out_dim, grid, grid)
    head_train = count_flops(head, x, torch.zeros(1, dtype=torch.long))["total"]
    out = {"paper": {"backbone": args.flop_backbone, "frames": T, "img_size": S,
                     "feature_map": [T, vit.out_dim, grid, grid], **_ratio(vit_fwd, head_train)}}

    module, dm, _ = build([bench_config(args.config, folder)], ["--data.root", str(root)])
    classifier = find_classifier(module).eval()
    kw = dm.clip_kw
    video = torch.zeros(1, kw["num_frames"], 3, kw["crop_size"], kw["crop_size"], dtype=torch.uint8)
    fwd = backbone_flops(lambda v: classifier.backbone(classifier.normalize(v)), video)
    feats = classifier.backbone(classifier.normalize(video))
    head_train = count_flops(FeaturesToLogits(classifier), feats, torch.zeros(1, dtype=torch.long))["total"]
    out["configured"] = {"backbone": classifier.backbone.name, "frames": kw["num_frames"], "img_size": kw["crop_size"],
                         "feature_map": list(feats.shape[1:]), **_ratio(fwd, head_train)}
    return out


def run(args) -> dict:
    if args.threads:
        torch.set_num_threads(args.threads)
    result = {"machine": {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "torch": torch.__version__}}
    with tempfile.TemporaryDirectory(prefix="pks4_bench_cache_") as tmp:
        root = Path(args.data) if args.data else Path(tmp) / "synthetic"
        if not args.data:
            from pks4_lit.data.synthetic import write_synthetic_dataset

            write_synthetic_dataset(root, videos_per_class=args.videos_per_class, size=args.size, frames=args.frames)
        if not args.no_flops:
            result["flops"] = bench_flops(args, Path(tmp), root)
        if not args.no_epochs:
            result["epochs"] = bench_epochs(args, Path(tmp), root)
    return result


def main(argv=None) -> None:
    script_main(__name__, "pks4 bench cache", argv)


if __name__ == "__main__":
    main()
