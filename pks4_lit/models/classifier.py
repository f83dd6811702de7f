"""VideoClassifier: frames → timm backbone → one temporal head → pooled logits. A plain nn.Module.

    video [B,T,3,H,W] uint8 (0..255) or float (0..1)
      ──/255, (x − mean)/std──▶ FrameBackbone ──▶ X [B,T,C,h,w] ──temporal head──▶ Y [B,T,C,h,w]
      ──mean over T,h,w──▶ LayerNorm ──▶ dropout ──▶ Linear ──▶ logits [B,K]

The data pipeline keeps clips uint8 until here; normalisation uses the backbone's own pretrained
mean/std (registered as buffers so they follow the module's device).

Construction is dependency injection, so every option is typed by its own class's signature:
the backbone is a built `FrameBackbone`, the head a callable `dim -> nn.Module` (a head class, or a
partial of one). In a config both are `class_path`/`init_args` (conf/synthetic/pks4.yaml);
in Python, `VideoClassifier.from_names(K, "resnet18", head="pks4", head_kwargs=..., freeze=...)`
is the short form.
"""
from __future__ import annotations

from typing import Callable, TypedDict

import torch
import torch.nn as nn

from pks4_lit.models.backbone import FrameBackbone
from pks4_lit.models.heads import build_temporal_head
from pks4_lit.models.pks4 import PKS4


class AdapterOptions(TypedDict, total=False):
    """Typed keyword arguments of `pks4_lit.models.st_adapter.add_st_adapters` (a test keeps them equal)."""
    ratio: float
    min_bottleneck: int
    kernel_size: int
    act: str | None


class VideoClassifier(nn.Module):
    def __init__(self, num_classes: int, backbone: FrameBackbone, head: Callable[[int], nn.Module] = PKS4,
                 dropout: float = 0.0, adapter: str | None = None, adapter_kwargs: AdapterOptions | None = None):
        """
        Args:
            num_classes: number of classes K (given by PKS4Module from the data).
            backbone: the per-frame timm backbone (its own options: name, weights, freeze policy, tap).
            head: temporal head, called with the backbone's channels: a head class (pks4_lit.models.PKS4,
                SSM, TSN, TemporalAttention, GlobalSSM) with its own arguments.
            dropout: dropout before the linear classifier.
            adapter: baseline only: trainable adapters inside the frozen backbone ("st_adapter").
            adapter_kwargs: the adapter's options (ratio, min_bottleneck, kernel_size, act).
        """
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = backbone
        if adapter:   # new weights inside the backbone; they train at the head's lr (PKS4Module)
            from pks4_lit.models.st_adapter import add_adapters
            add_adapters(adapter, self.backbone, **(adapter_kwargs or {}))
        dim = self.backbone.out_dim
        self.head = head(dim)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)
        self.register_buffer("mean", torch.tensor(self.backbone.mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.backbone.std).view(1, 1, 3, 1, 1), persistent=False)

    @classmethod
    def from_names(cls, num_classes: int, backbone: str = "resnet18", head: str = "pks4",
                   head_kwargs: dict | None = None, dropout: float = 0.0, adapter: str | None = None,
                   adapter_kwargs: dict | None = None, **backbone_kwargs) -> VideoClassifier:
        """Python shorthand: backbone by timm name (`backbone_kwargs` go to FrameBackbone), head by
        registry name (`head_kwargs` go to its class)."""
        return cls(num_classes, FrameBackbone(backbone, **backbone_kwargs),
                   head=lambda dim: build_temporal_head(head, dim, **(head_kwargs or {})),
                   dropout=dropout, adapter=adapter, adapter_kwargs=adapter_kwargs)

    def normalize(self, video: torch.Tensor) -> torch.Tensor:          # [B,T,3,H,W] → float
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"VideoClassifier expects video [B,T,3,H,W], got {tuple(video.shape)}")
        if video.dtype == torch.uint8:
            video = video.float() / 255.0
        elif not video.is_floating_point():
            raise TypeError(f"video must be uint8 (0..255) or float (0..1), got {video.dtype}")
        return (video.float() - self.mean) / self.std

    def forward_features(self, video: torch.Tensor) -> dict:
        """→ dict(features X, head output Y [B,T,C,h,w], pooled [B,C], internals: the head's
        `forward_with_internals` dict, or None for heads without one)."""
        feats = self.backbone(self.normalize(video))                   # [B,T,C,h,w]
        internals = None
        if hasattr(self.head, "forward_with_internals"):
            out, internals = self.head.forward_with_internals(feats)
        else:
            out = self.head(feats)                                      # [B,T,C,h,w]
        pooled = out.mean(dim=(1, 3, 4))                                # [B,C]
        return dict(features=feats, head=out, pooled=pooled, internals=internals)

    def forward(self, video: torch.Tensor) -> torch.Tensor:            # → logits [B,K]
        out = self.head(self.backbone(self.normalize(video)))           # [B,T,C,h,w]
        return self.fc(self.dropout(self.norm(out.mean(dim=(1, 3, 4)))))
