"""A quick CPU training of a config's head on cached frozen-backbone features, for the streaming demo.

    python scripts/stream_demo_train.py --config conf/synthetic/pks4.yaml --epochs 16 --views 4 \
        --out runs/stream_demo/pks4_cached.ckpt

`pks4 fit` decodes and runs the frozen backbone on every clip in every epoch; on a busy 2-core
machine that is ~20 min per epoch. Here the backbone runs once per training view: `--views`
augmented views per training clip (the datamodule's own train pipeline, views = its epochs
0..V-1), then the head, LayerNorm and classifier train on those features with the config's recipe
(AdamW, `lr`, `weight_decay`, warm-up + cosine, label smoothing, dropout; epoch e reads view
e mod V; the features are kept next to `--out` and reused by a re-run). Same model, same
checkpoint format as `pks4 fit` (hyper-parameters = the config's `model:` section, rebuilt by
Lightning's CLI instantiator), so `pks4 stream`/`pks4 test` load it.
The difference from `pks4 fit`: only V augmentations per clip instead of a new one every epoch.
Prints val/test top-1 (1 clip × centre crop) and the time taken.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import lightning
import torch
import torch.nn.functional as F
import yaml
from lightning.pytorch.cli import instantiate_module

from pks4_lit.data.datamodule import VideoDataModule
from pks4_lit.lit_module import PKS4Module
from pks4_lit.optim import param_groups, warmup_cosine


def features(net, dataset, views: int, batch: int = 8):
    """Backbone features of every item: [V,N,T,C,h,w] (train: view v = epoch v) and labels [N]."""
    out, labels = [], None
    with torch.no_grad():
        for v in range(views):
            feats, labs = [], []
            for start in range(0, len(dataset), batch):
                items = [dataset[(i, v)] for i in range(start, min(start + batch, len(dataset)))]
                video = torch.stack([it["video"] if it["video"].dim() == 4 else it["video"][0] for it in items])
                feats.append(net.backbone(net.normalize(video)))                  # [b,T,C,h,w]
                labs += [it["label"] for it in items]
            out.append(torch.cat(feats))
            labels = torch.tensor(labs)
    return torch.stack(out), labels


def logits(net, X):                                                               # X [B,T,C,h,w]
    return net.fc(net.dropout(net.norm(net.head(X).mean(dim=(1, 3, 4)))))


def accuracy(net, X, y) -> float:
    net.eval()
    with torch.no_grad():
        return float((torch.cat([logits(net, X[i:i + 16]) for i in range(0, len(X), 16)]).argmax(-1) == y)
                     .float().mean())


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="conf/synthetic/pks4.yaml")
    p.add_argument("--epochs", type=int, default=16)
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--out", default="runs/stream_demo/pks4_cached.ckpt")
    p.add_argument("--threads", type=int, default=0)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    cfg = yaml.safe_load(Path(args.config).read_text())
    torch.manual_seed(cfg.get("seed_everything", 0))
    dm = VideoDataModule(**{**cfg["data"], "num_workers": 0})
    dm.setup("fit")
    dm.setup("test")
    hparams = {**cfg["model"], "num_classes": dm.num_classes, "class_names": dm.class_names}
    module = instantiate_module(PKS4Module, hparams)
    net = module.model
    cache = Path(args.out).with_suffix(".features.pt")        # reused by a re-run with the same settings
    key = dict(config=cfg["data"], backbone=cfg["model"]["net"]["init_args"]["backbone"], views=args.views)
    saved = torch.load(cache, weights_only=False) if cache.is_file() else None
    if saved is not None and saved["key"] == key:
        train_X, train_y, val_X, val_y, test_X, test_y = saved["tensors"]
    else:
        train_X, train_y = features(net, dm.datasets["train"], args.views)      # [V,N,T,C,h,w]
        val_X, val_y = features(net, dm.datasets["val"], 1)
        test_X, test_y = features(net, dm.datasets["test"], 1)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(dict(key=key, tensors=(train_X, train_y, val_X, val_y, test_X, test_y)), cache)
    t_features = time.perf_counter() - t0

    m = cfg["model"]
    batch = cfg["data"].get("batch_size", 8)
    steps_per_epoch = -(-train_X.shape[1] // batch)
    opt = torch.optim.AdamW(param_groups(net, m["lr"], m.get("backbone_lr", 0.0), m.get("weight_decay", 0.05)),
                            betas=tuple(m.get("betas", (0.9, 0.999))))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(
        args.epochs * steps_per_epoch, int(m.get("warmup_epochs", 1.0) * steps_per_epoch), m.get("min_lr_ratio", 0.01)))
    smoothing, K = m.get("label_smoothing", 0.0), dm.num_classes
    history = []
    for epoch in range(args.epochs):
        net.train()
        X, perm = train_X[epoch % args.views], torch.randperm(train_X.shape[1])
        for start in range(0, len(perm), batch):
            idx = perm[start:start + batch]
            target = F.one_hot(train_y[idx], K).float() * (1 - smoothing) + smoothing / K
            loss = torch.sum(-target * F.log_softmax(logits(net, X[idx]), -1), -1).mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.get("trainer", {}).get("gradient_clip_val") or 1e9)
            opt.step()
            sched.step()
        history.append(round(accuracy(net, val_X[0], val_y), 4))
    summary = dict(config=args.config, epochs=args.epochs, views=args.views, train_clips=int(train_X.shape[1]),
                   val_top1_per_epoch=history, val_top1=history[-1], test_top1=round(accuracy(net, test_X[0], test_y), 4),
                   feature_seconds=round(t_features), total_seconds=round(time.perf_counter() - t0), out=args.out)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": module.state_dict(), "epoch": args.epochs,
                "hyper_parameters": {**hparams, "_instantiator": "lightning.pytorch.cli.instantiate_module"},
                "datamodule_hyper_parameters": cfg["data"], "pytorch-lightning_version": lightning.__version__,
                "stream_demo_train": summary}, args.out)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
