"""The model side of the feature store: VideoClassifier without its backbone, and what may use a store.

    features [N,T,C,h,w] ──temporal head──▶ [N,T,C,h,w] ──mean over T,h,w──▶ norm ──▶ dropout ──▶ fc ──▶ logits [N,K]

which is `VideoClassifier.forward` after `backbone(normalize(video))`. A store is only valid for a
backbone that nothing trains: freeze="all" and no adapters inside it (no backbone parameter
requires grad). Mixup/cutmix blend pixels, which a store of unmixed clips cannot replay.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from pks4_lit.cache.store import StoreError


def find_classifier(module: nn.Module) -> nn.Module:
    """The VideoClassifier inside a LightningModule (or the module itself)."""
    from pks4_lit.models.classifier import VideoClassifier

    found = next((m for m in module.modules() if isinstance(m, VideoClassifier)), None)
    if found is None:
        raise StoreError(f"{type(module).__name__} holds no VideoClassifier: a feature store needs one")
    return found


def logits_from_features(classifier: nn.Module, features: torch.Tensor) -> torch.Tensor:
    """features [N,T,C,h,w] (any float dtype; the store's fp16/bf16 are cast) -> logits [N,K]."""
    x = features.to(classifier.fc.weight.dtype)
    if hasattr(classifier, "forward_from_features"):  # VideoClassifier's own tail, once it has one
        return classifier.forward_from_features(x)
    out = classifier.head(x)                                            # [N,T,C,h,w]
    return classifier.fc(classifier.dropout(classifier.norm(out.mean(dim=(1, 3, 4)))))


def check_frozen(classifier: nn.Module) -> None:
    bb = classifier.backbone
    trainable = [n for n, p in bb.named_parameters() if p.requires_grad]
    if getattr(bb, "freeze", "all") != "all" or trainable:
        what = f"freeze={bb.freeze!r}" if getattr(bb, "freeze", "all") != "all" else "adapters"
        raise StoreError(f"the backbone is not frozen ({what}; {len(trainable)} trainable backbone tensors, "
                         f"e.g. {trainable[:2]}): its features change during training, so they cannot be "
                         f"cached. A feature store needs freeze: all and no adapter")


def check_cacheable(module: nn.Module) -> nn.Module:
    """-> the classifier of `module` after checking that a feature store can stand in for its pixels."""
    classifier = find_classifier(module)
    check_frozen(classifier)
    hparams = getattr(module, "hparams", {}) or {}
    mixing = {k: hparams.get(k) for k in ("mixup_alpha", "cutmix_alpha") if (hparams.get(k) or 0) > 0}
    if mixing:
        raise StoreError(f"{mixing}: mixup/cutmix blend pixels before the backbone; a feature store holds "
                         f"features of unmixed clips. Set them to 0 or train from pixels")
    return classifier
