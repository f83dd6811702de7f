"""PKS4Module: the LightningModule around `VideoClassifier` (loss, metrics, optimiser, schedule, logging).

Every hyper-parameter is a constructor argument, so each one is a config key under `model:`
(LightningCLI reads the signature); none is hard-coded here.

Evaluation protocol: val/test batches carry V views per video (`[B,V,T,3,H,W]`, V = clips × crops);
the views are flattened through the model and their softmax scores averaged, so accuracy is per
video (the usual multi-view protocol: TSN, SlowFast, VideoMAE).

Metrics are torchmetrics objects, one per split, computed on every rank (they sync themselves under
DDP); figures are drawn on rank 0 only.
"""
from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from pks4_lit.cache.model import logits_from_features
from pks4_lit.models import VideoClassifier

# parameters never weight-decayed besides biases/norms/1-D tensors: the SSM's own state parameters
NO_DECAY_NAMES = ("A_log", "D", "dt_bias", "delta_bias")


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss; the message names the global step and the saved checkpoint."""


class PKS4Module(LightningModule):
    def __init__(
        self,
        num_classes: int,
        backbone: str = "resnet18",
        pretrained: bool = False,
        checkpoint_path: str | None = None,
        freeze: str = "all",
        last_n: int = 1,
        feature_index: int = -1,
        img_size: int | None = None,
        head: str = "pks4",
        head_kwargs: dict | None = None,
        dropout: float = 0.0,
        adapter: str | None = None,
        adapter_kwargs: dict | None = None,
        lr: float = 1e-3,
        backbone_lr: float = 1e-5,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
        class_names: list[str] | None = None,
    ):
        """
        Args:
            num_classes: number of classes K (linked from `data.num_classes` by the CLI).
            backbone: timm model name run on every frame.
            pretrained: load timm hub weights (needs network; prefer `checkpoint_path` offline).
            checkpoint_path: local backbone weights file loaded through timm.
            freeze: backbone freeze policy: "all" (the paper's setting), "none" or "last_n".
            last_n: number of trainable backbone stages when freeze="last_n".
            feature_index: which backbone feature map feeds the temporal head.
            img_size: input size for token (ViT) backbones built for a non-default resolution.
            head: temporal head name (pks4, tsn, attention, ssm, global_ssm).
            head_kwargs: extra keyword arguments of the temporal head.
            dropout: dropout before the linear classifier.
            adapter: baseline only: trainable adapters inside every backbone block ("st_adapter");
                they are new weights, so they train at `lr` like the head, not at `backbone_lr`.
            adapter_kwargs: extra keyword arguments of the adapter (e.g. ratio, kernel_size).
            lr: peak learning rate of the temporal head and classifier.
            backbone_lr: peak learning rate of the trainable backbone parameters (if any).
            weight_decay: AdamW weight decay (not applied to biases, norms, 1-D and SSM state params).
            betas: AdamW betas.
            warmup_epochs: linear warm-up length in epochs (fractions allowed), then cosine decay.
            min_lr_ratio: final learning rate as a fraction of the peak.
            label_smoothing: label smoothing of the training loss.
            mixup_alpha: Beta(α, α) mixup on training batches; 0 turns it off.
            cutmix_alpha: Beta(α, α) cutmix (one box for all frames of a clip); 0 turns it off.
                With both on, each batch uses one of them with probability 1/2 (as timm's Mixup).
            class_names: class names for figures and predictions (linked from `data.class_names`).
        """
        super().__init__()
        self.save_hyperparameters()
        self.model = VideoClassifier(
            num_classes=num_classes, backbone=backbone, head=head, head_kwargs=head_kwargs or {},
            pretrained=pretrained, checkpoint_path=checkpoint_path, freeze=freeze, last_n=last_n,
            feature_index=feature_index, img_size=img_size, dropout=dropout,
            adapter=adapter, adapter_kwargs=adapter_kwargs)
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        top5 = min(5, num_classes)
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.test_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.test_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.val_confusion = MulticlassConfusionMatrix(num_classes)
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.group_names: list[str] = []          # filled in setup() when the data has class groups
        self.group_metrics = nn.ModuleDict()      # "<stage>_<group>" -> top-1 accuracy on that group
        self.register_buffer("label_group", torch.full((num_classes,), -1, dtype=torch.long), persistent=False)

    # ------------------------------------------------------------------ setup
    def setup(self, stage: str) -> None:
        """Per-group accuracy (e.g. temporal vs spatial classes) when the datamodule has `class_groups`."""
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        groups = getattr(datamodule, "class_groups", None)
        if not groups or self.group_names:
            return
        unknown = set(groups) - set(self.class_names)
        if unknown:
            raise ValueError(f"class_groups names classes not in class_names: {sorted(unknown)[:5]}")
        self.group_names = sorted(set(groups.values()))
        for i, name in enumerate(self.class_names):
            if name in groups:
                self.label_group[i] = self.group_names.index(groups[name])
        for split in ("val", "test"):
            for group in self.group_names:
                self.group_metrics[f"{split}_{group}"] = MulticlassAccuracy(self.num_classes, top_k=1, average="micro")

    # ------------------------------------------------------------------ forward
    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """video [B,T,3,H,W] uint8 or float in 0..1 -> logits [B,K]."""
        return self.model(video)

    def multi_view_probs(self, video: torch.Tensor, features: bool = False) -> torch.Tensor:
        """video [B,V,T,3,H,W] (features=True: backbone features [B,V,T,C,h,w]) -> view-averaged softmax [B,K]."""
        b, v = video.shape[:2]
        x = video.flatten(0, 1)
        logits = logits_from_features(self.model, x) if features else self.model(x)  # [B*V,K]
        return logits.float().softmax(-1).view(b, v, -1).mean(1)      # [B,K]

    # ------------------------------------------------------------------ training
    def _mix(self, video: torch.Tensor, target: torch.Tensor):
        """Batch-level mixup/cutmix on the float video [B,T,3,H,W] and the soft targets [B,K]."""
        use_mixup, use_cutmix = self.hparams.mixup_alpha > 0, self.hparams.cutmix_alpha > 0
        if not (use_mixup or use_cutmix) or video.shape[0] < 2:
            return video, target
        if use_mixup and use_cutmix:
            use_mixup = bool(torch.rand(()) < 0.5)
        alpha = self.hparams.mixup_alpha if use_mixup else self.hparams.cutmix_alpha
        lam = float(torch.distributions.Beta(alpha, alpha).sample())
        perm = torch.randperm(video.shape[0], device=video.device)
        video = video.float() / 255.0 if not video.is_floating_point() else video
        if use_mixup:
            video = lam * video + (1.0 - lam) * video[perm]
        else:  # one box, the same in every frame; lam corrected to the box's true area
            h, w = video.shape[-2:]
            cut = math.sqrt(1.0 - lam)
            ch, cw = int(h * cut), int(w * cut)
            cy, cx = int(torch.randint(h, ())), int(torch.randint(w, ()))
            y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
            x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
            video = video.clone()
            video[..., y0:y1, x0:x1] = video[perm][..., y0:y1, x0:x1]
            lam = 1.0 - (y1 - y0) * (x1 - x0) / (h * w)
        return video, lam * target + (1.0 - lam) * target[perm]

    def training_step(self, batch, batch_idx):
        if batch is None:  # every video of the batch failed to decode (the datamodule logged their ids)
            return self._skip_step()
        label = batch["label"]                                        # [B]
        target = F.one_hot(label, self.num_classes).float()
        smoothing = self.hparams.label_smoothing
        target = target * (1.0 - smoothing) + smoothing / self.num_classes
        if "features" in batch:  # frozen-feature store (pks4 cache): no decoding, no backbone forward
            logits = logits_from_features(self.model, batch["features"])  # [B,T,C,h,w] -> [B,K]
        else:
            video, target = self._mix(batch["video"], target)         # [B,T,3,H,W]
            logits = self.model(video)
        loss = torch.sum(-target * F.log_softmax(logits.float(), -1), -1).mean()
        self._check_finite(loss)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=label.shape[0])
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=label.shape[0])
        return loss

    def _skip_step(self):
        if self.trainer.world_size == 1:
            return None  # Lightning skips the optimiser step
        # under DDP every rank must run backward: a zero loss that touches every trainable parameter
        return sum(p.sum() * 0.0 for p in self.parameters() if p.requires_grad)

    def _check_finite(self, loss: torch.Tensor) -> None:
        """Stop on a NaN/Inf loss: save the current (pre-update) state and name the step and the file."""
        bad = self.trainer.strategy.reduce_boolean_decision(not bool(torch.isfinite(loss)), all=False)
        if not bad:
            return
        step = self.trainer.global_step
        ckpt_dir = next((cb.dirpath for cb in self.trainer.checkpoint_callbacks if cb.dirpath), None)
        ckpt_dir = ckpt_dir or self.trainer.log_dir or self.trainer.default_root_dir
        path = os.path.join(ckpt_dir, f"nonfinite-step{step}.ckpt")
        self.trainer.save_checkpoint(path)  # collective: every rank reached this line
        weights_ok = all(torch.isfinite(p).all() for p in self.parameters())
        state = "weights are finite" if weights_ok else "WARNING: weights already contain NaN/Inf"
        raise NonFiniteLossError(
            f"non-finite training loss ({loss.item()}) at global step {step}, epoch {self.current_epoch}; "
            f"state before this step saved to {path} ({state}). Lower model.lr or check the data.")

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch, split: str):
        if batch is None:
            return
        label, features = batch["label"], "features" in batch         # [B]
        probs = self.multi_view_probs(batch["features" if features else "video"], features)  # [B,K]
        loss = F.nll_loss(probs.clamp_min(1e-12).log(), label)
        self.log(f"{split}/loss", loss, on_step=False, on_epoch=True, sync_dist=True,
                 prog_bar=split == "val", batch_size=label.shape[0])
        getattr(self, f"{split}_top1").update(probs, label)
        getattr(self, f"{split}_top5").update(probs, label)
        getattr(self, f"{split}_confusion").update(probs, label)
        groups = self.label_group[label]                             # [B], -1 = no group
        for g, group in enumerate(self.group_names):
            mask = groups == g
            if mask.any():
                self.group_metrics[f"{split}_{group}"].update(probs[mask], label[mask])

    def _eval_epoch_end(self, split: str):
        top1 = getattr(self, f"{split}_top1")
        values = {f"{split}/top1": top1.compute(), f"{split}/top5": getattr(self, f"{split}_top5").compute()}
        for group in self.group_names:
            values[f"{split}/top1_{group}"] = self.group_metrics[f"{split}_{group}"].compute()
        confusion = getattr(self, f"{split}_confusion").compute()    # all ranks: it syncs
        for metric in [top1, getattr(self, f"{split}_top5"), getattr(self, f"{split}_confusion")] + [
                self.group_metrics[f"{split}_{g}"] for g in self.group_names]:
            metric.reset()
        if self.trainer.sanity_checking:
            return
        self.log_dict(values, prog_bar=False)                         # already synced by torchmetrics
        if split == "val":
            self.log("hp_metric", values["val/top1"])
        if self.trainer.is_global_zero:
            self._log_confusion_figure(confusion, f"{split}/confusion_matrix")

    def _log_confusion_figure(self, confusion: torch.Tensor, tag: str) -> None:
        loggers = [lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        from matplotlib.figure import Figure  # no pyplot: no global backend state

        counts = confusion.cpu().float()
        rates = counts / counts.sum(1, keepdim=True).clamp_min(1)    # row-normalised: recall per class
        k = counts.shape[0]
        size = min(4 + 0.35 * k, 24)
        fig = Figure(figsize=(size, size))
        ax = fig.add_subplot()
        im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
        if k <= 60:
            ax.set_xticks(range(k), self.class_names, rotation=90, fontsize=7)
            ax.set_yticks(range(k), self.class_names, fontsize=7)
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{tag} (epoch {self.current_epoch}, row-normalised)")
        fig.colorbar(im, ax=ax, fraction=0.046)
        fig.tight_layout()
        for logger in loggers:
            logger.experiment.add_figure(tag, fig, global_step=self.global_step)

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self):
        self._eval_epoch_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def on_test_epoch_end(self):
        self._eval_epoch_end("test")

    def predict_step(self, batch, batch_idx):
        """-> dict(path=list[str], probs=[B,K]) (view-averaged softmax scores)."""
        if batch is None:
            return None
        return {"path": list(batch["path"]), "probs": self.multi_view_probs(batch["video"]).cpu()}

    # ------------------------------------------------------------------ optimisation
    def _param_groups(self) -> list[dict]:
        """AdamW groups: {head, backbone} × {decay, no decay}; frozen parameters are left out."""
        hp = self.hparams
        groups = {(part, decay): [] for part in ("head", "backbone") for decay in (True, False)}
        for name, p in self.model.named_parameters():
            if not p.requires_grad:
                continue
            pretrained = name.startswith("backbone.") and not name.startswith("backbone.st_adapters.")
            part = "backbone" if pretrained else "head"
            leaf = name.rsplit(".", 1)[-1]
            no_decay = p.ndim <= 1 or leaf == "bias" or leaf in NO_DECAY_NAMES or "norm" in name.lower()
            groups[(part, not no_decay)].append(p)
        out = []
        for (part, decay), params in groups.items():
            if params:
                out.append({"params": params, "lr": hp.backbone_lr if part == "backbone" else hp.lr,
                            "weight_decay": hp.weight_decay if decay else 0.0, "name": f"{part}{'' if decay else '_no_decay'}"})
        return out

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW(self._param_groups(), lr=hp.lr, betas=tuple(hp.betas),
                                      weight_decay=hp.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        warmup = min(int(round(hp.warmup_epochs * total / epochs)), total - 1)

        def lr_factor(step: int) -> float:  # linear warm-up, then cosine to min_lr_ratio; per optimiser step
            if step < warmup:
                return (step + 1) / warmup
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
