"""VideoClassifier: frames → timm backbone → one temporal head → pooled logits. A plain nn.Module.

    video [B,T,3,H,W] uint8 (0..255) or float (0..1)
      ──/255, (x − mean)/std──▶ FrameBackbone ──▶ X [B,T,C,h,w] ──temporal head──▶ Y [B,T,C,h,w]
      ──mean over T,h,w──▶ LayerNorm ──▶ dropout ──▶ Linear ──▶ logits [B,K]

The data pipeline keeps clips uint8 until here; normalisation uses the backbone's own pretrained
mean/std (registered as buffers so they follow the module's device).
"""
from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from pks4_lit.models.backbone import FrameBackbone
from pks4_lit.models.heads import build_temporal_head


class VideoClassifier(nn.Module):
    def __init__(self, num_classes: int, backbone: str = "resnet18", head: str = "pks4",
                 head_kwargs: dict | None = None, pretrained: bool = False,
                 checkpoint_path: str | None = None, freeze: str = "all", last_n: int = 1,
                 feature_index: int = -1, img_size: int | tuple[int, int] | None = None,
                 dropout: float = 0.0, adapter: str | None = None,
                 adapter_kwargs: dict | None = None):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.backbone = FrameBackbone(backbone, pretrained=pretrained, checkpoint_path=checkpoint_path,
                                      freeze=freeze, last_n=last_n, feature_index=feature_index,
                                      img_size=img_size)
        if adapter:   # baseline only (e.g. "st_adapter"): trainable adapters inside the frozen backbone
            from pks4_lit.models.st_adapter import add_adapters
            add_adapters(adapter, self.backbone, **(adapter_kwargs or {}))
        dim = self.backbone.out_dim
        self.head = build_temporal_head(head, dim, **(head_kwargs or {}))
        self.head_name = head
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(dim, num_classes)
        self.register_buffer("mean", torch.tensor(self.backbone.mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.backbone.std).view(1, 1, 3, 1, 1), persistent=False)
        self._head_has_internals = "return_internals" in inspect.signature(self.head.forward).parameters

    def normalize(self, video: torch.Tensor) -> torch.Tensor:          # [B,T,3,H,W] → float
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"VideoClassifier expects video [B,T,3,H,W], got {tuple(video.shape)}")
        if video.dtype == torch.uint8:
            video = video.float() / 255.0
        elif not video.is_floating_point():
            raise TypeError(f"video must be uint8 (0..255) or float (0..1), got {video.dtype}")
        return (video.float() - self.mean) / self.std

    def forward_features(self, video: torch.Tensor) -> dict:
        feats = self.backbone(self.normalize(video))                   # [B,T,C,h,w]
        internals = None
        if self._head_has_internals:
            out, internals = self.head(feats, return_internals=True)
        else:
            out = self.head(feats)                                      # [B,T,C,h,w]
        pooled = out.mean(dim=(1, 3, 4))                                # [B,C]
        return dict(features=feats, head=out, pooled=pooled, internals=internals)

    def forward(self, video: torch.Tensor) -> torch.Tensor:            # → logits [B,K]
        out = self.head(self.backbone(self.normalize(video)))           # [B,T,C,h,w]
        return self.fc(self.dropout(self.norm(out.mean(dim=(1, 3, 4)))))
