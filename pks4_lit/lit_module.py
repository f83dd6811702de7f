"""PKS4Module: the LightningModule around a video model (loss, metrics, optimiser, schedule, logging).

The model is a typed nested argument, `net`: a callable `num_classes -> nn.Module` mapping
video [B,T,3,H,W] uint8|float → logits [B,K]. In a config it is `class_path`/`init_args` of the
model class (pks4_lit.models.VideoClassifier, pks4_lit.models.videomamba.VideoMamba, ...) with
that class's own arguments, and `num_classes`/`class_names` are linked from the data. Every
other hyper-parameter is a constructor argument, so a config key under `model:`.

Evaluation protocol: val/test batches carry V views per video (`[B,V,T,3,H,W]`, V = clips × crops);
the views are flattened through the model and their softmax scores averaged, so accuracy is per
video (the usual multi-view protocol: TSN, SlowFast, VideoMAE).

Metrics are torchmetrics objects, one per split, computed on every rank (they sync themselves under
DDP); figures are drawn on rank 0 only. `hp_metric` (TensorBoard's hparams view) is the best
`val/top1` of the fit so far; the hparams table also shows the flat names `head` and `backbone`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Callable

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from lightning.pytorch.loggers import TensorBoardLogger
from torch import nn
from torchmetrics import MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix

from pks4_lit.figures import confusion_figure
from pks4_lit.mixing import mix_batch
from pks4_lit.models.heads import temporal_head_name
from pks4_lit.nonfinite import NonFiniteGuard, NonFiniteLossError
from pks4_lit.optim import param_groups, warmup_cosine
from pks4_lit.cache.model import logits_from_features

__all__ = ["NonFiniteLossError", "PKS4Module", "model_names"]


def model_names(model: nn.Module) -> dict[str, str]:
    """Flat names for the hparams table: a backbone + temporal head model gives the head's registry
    name and the backbone's timm name; an end-to-end model (no `backbone`; its `head` is then
    usually its classifier) gives its class name and "none"."""
    head, backbone = getattr(model, "head", None), getattr(model, "backbone", None)
    if head is None or backbone is None:
        return {"head": type(model).__name__, "backbone": "none"}
    return {"head": temporal_head_name(head), "backbone": getattr(backbone, "name", type(backbone).__name__)}


class PKS4Module(LightningModule):
    def __init__(
        self,
        net: Callable[[int], nn.Module],
        num_classes: int,
        class_names: list[str] | None = None,
        lr: float = 1e-3,
        backbone_lr: float = 1e-5,
        weight_decay: float = 0.05,
        betas: tuple[float, float] = (0.9, 0.999),
        warmup_epochs: float = 1.0,
        min_lr_ratio: float = 0.01,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        cutmix_alpha: float = 0.0,
    ):
        """
        Args:
            net: the video model, called with num_classes: `class_path` of its class and
                `init_args` (e.g. pks4_lit.models.VideoClassifier: backbone, head, dropout, adapter).
            num_classes: number of classes K (linked from `data.num_classes` by the CLI).
            class_names: class names for figures and predictions (linked from `data.class_names`).
            lr: peak learning rate of everything new: temporal head, classifier, adapters.
            backbone_lr: peak learning rate of the trainable pretrained backbone parameters (if any).
            weight_decay: AdamW weight decay (not applied to biases, 1-D tensors and what modules
                list in `no_weight_decay()`: SSM state parameters, ViT position embeddings, ...).
            betas: AdamW betas.
            warmup_epochs: linear warm-up length in epochs (fractions allowed), then cosine decay.
            min_lr_ratio: final learning rate as a fraction of the peak.
            label_smoothing: label smoothing of the training loss.
            mixup_alpha: Beta(α, α) mixup on training batches; 0 turns it off.
            cutmix_alpha: Beta(α, α) cutmix (one box for all frames of a clip); 0 turns it off.
                With both on, each batch uses one of them with probability 1/2 (as timm's Mixup).
        """
        super().__init__()
        self.save_hyperparameters()
        if not isinstance(self.hparams["net"], Mapping):   # built in Python, not from a config
            self.hparams["net"] = f"python object {net!r}"
        if not callable(net):
            raise TypeError(f"PKS4Module: net must be a callable num_classes -> nn.Module, got {net!r}. "
                            f"A checkpoint of a module built in Python needs load_from_checkpoint(path, net=...)")
        self.model = net(num_classes)
        self.num_classes = num_classes
        self.class_names = list(class_names) if class_names else [str(i) for i in range(num_classes)]
        top5 = min(5, num_classes)
        self.val_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.val_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.test_top1 = MulticlassAccuracy(num_classes, top_k=1, average="micro")
        self.test_top5 = MulticlassAccuracy(num_classes, top_k=top5, average="micro")
        self.val_confusion = MulticlassConfusionMatrix(num_classes)
        # eval loss as a clip-weighted metric: self.log(sync_dist=True) would average per-rank means
        # and floor the batch count when ranks hold unequal numbers of clips (Lightning #21859)
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.test_confusion = MulticlassConfusionMatrix(num_classes)
        self.group_names: list[str] = []          # filled in setup() when the data has class groups
        self.group_metrics = nn.ModuleDict()      # "<stage>_<group>" -> top-1 accuracy on that group
        self.register_buffer("label_group", torch.full((num_classes,), -1, dtype=torch.long), persistent=False)
        self.best_val_top1: float | None = None   # hp_metric; kept in checkpoints
        self.finite_guard = NonFiniteGuard()

    @property
    def hparams_initial(self):
        """What loggers record: the hyper-parameters plus the flat names `head` and `backbone`."""
        hp = super().hparams_initial
        hp["net"] = self.hparams["net"]
        hp.update(model_names(self.model))
        return hp

    # ------------------------------------------------------------------ setup / checkpoints
    def setup(self, stage: str) -> None:
        """Per-group accuracy (e.g. temporal vs spatial classes) when the datamodule has `class_groups`."""
        self.finite_guard.every = max(int(self.trainer.log_every_n_steps or 1), 1)
        datamodule = getattr(self.trainer, "datamodule", None)
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

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["best_val_top1"] = self.best_val_top1
        checkpoint["num_classes"] = self.num_classes   # hyper_parameters get overridden by load kwargs

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args, **kwargs):
        """Lightning's, keeping the checkpoint's `net` config in hparams when the model was rebuilt from it
        (jsonargparse hands __init__ the built callable, not the config)."""
        module = super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
        saved = getattr(module, "_checkpoint_net", None)
        if "net" not in kwargs and isinstance(saved, Mapping):
            module.hparams["net"] = saved
        return module

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        self._checkpoint_net = (checkpoint.get("hyper_parameters") or {}).get("net")
        saved = checkpoint.get("num_classes", (checkpoint.get("hyper_parameters") or {}).get("num_classes"))
        if saved is not None and int(saved) != self.num_classes:
            raise ValueError(f"the checkpoint was trained for {saved} classes but this model (the data) has "
                             f"{self.num_classes}: use data with the checkpoint's classes")
        self.best_val_top1 = checkpoint.get("best_val_top1")

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
    def training_step(self, batch, batch_idx):
        if batch is None:
            # VideoDataModule never yields one (bad training videos are replaced); skipping a step
            # on one rank only would hang the others in backward's all-reduce
            if self.trainer.world_size > 1:
                raise RuntimeError("a training batch is None under DDP: the datamodule must not drop whole "
                                   "training batches (every rank has to run the same steps)")
            return None
        label = batch["label"]                                        # [B]
        video = batch.get("video")                                    # [B,T,3,H,W] (None from a feature store)
        hp = self.hparams
        target = F.one_hot(label, self.num_classes).float()
        target = target * (1.0 - hp.label_smoothing) + hp.label_smoothing / self.num_classes
        if "features" in batch:  # frozen-feature store (pks4 cache): no decoding, no backbone forward
            logits = logits_from_features(self.model, batch["features"])  # [B,T,C,h,w] -> [B,K]
        else:
            video, target = mix_batch(video, target, hp.mixup_alpha, hp.cutmix_alpha)
            logits = self.model(video)
        loss = torch.sum(-target * F.log_softmax(logits.float(), -1), -1).mean()
        self.finite_guard.update(self.trainer, loss)
        self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=label.shape[0])
        self.log("train/loss_epoch", loss, on_step=False, on_epoch=True, sync_dist=True, batch_size=label.shape[0])
        return loss

    # ------------------------------------------------------------------ evaluation
    def _eval_step(self, batch, split: str):
        if batch is None:
            return
        label, features = batch["label"], "features" in batch         # [B]
        probs = self.multi_view_probs(batch["features" if features else "video"], features)  # [B,K]
        loss = F.nll_loss(probs.clamp_min(1e-12).log(), label, reduction="none")   # [B]
        getattr(self, f"{split}_loss").update(loss)
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
        values = {f"{split}/loss": getattr(self, f"{split}_loss").compute(),
                  f"{split}/top1": top1.compute(), f"{split}/top5": getattr(self, f"{split}_top5").compute()}
        for group in self.group_names:
            values[f"{split}/top1_{group}"] = self.group_metrics[f"{split}_{group}"].compute()
        confusion = getattr(self, f"{split}_confusion").compute()    # all ranks: it syncs
        for metric in [top1, getattr(self, f"{split}_top5"), getattr(self, f"{split}_confusion"),
                       getattr(self, f"{split}_loss")] + [
                self.group_metrics[f"{split}_{g}"] for g in self.group_names]:
            metric.reset()
        if self.trainer.sanity_checking:
            return
        self.log_dict(values, prog_bar=False)                         # already synced by torchmetrics
        if split == "val" and self.trainer.state.fn == "fit":
            top1_value = float(values["val/top1"])
            self.best_val_top1 = max(top1_value, self.best_val_top1 if self.best_val_top1 is not None else top1_value)
            self.log("hp_metric", self.best_val_top1)
        if self.trainer.is_global_zero:
            self._log_confusion_figure(confusion, f"{split}/confusion_matrix")

    def _log_confusion_figure(self, confusion: torch.Tensor, tag: str) -> None:
        loggers = [lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers:
            return
        fig = confusion_figure(confusion, self.class_names, f"{tag} (epoch {self.current_epoch}, row-normalised)")
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
        """-> dict(path=list[str], probs=[B,K]) (view-averaged softmax scores); None when no input of
        the batch could be read."""
        if batch is None or "video" not in batch:
            return None
        return {"path": list(batch["path"]), "probs": self.multi_view_probs(batch["video"]).cpu()}

    # ------------------------------------------------------------------ optimisation
    def _param_groups(self) -> list[dict]:
        hp = self.hparams
        return param_groups(self.model, hp.lr, hp.backbone_lr, hp.weight_decay)

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW(self._param_groups(), lr=hp.lr, betas=tuple(hp.betas),
                                      weight_decay=hp.weight_decay)
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        epochs = self.trainer.max_epochs if self.trainer.max_epochs and self.trainer.max_epochs > 0 else 1
        warmup = min(int(round(hp.warmup_epochs * total / epochs)), total - 1)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total, warmup, hp.min_lr_ratio))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
