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

import collections
from typing import Callable, TypedDict

import torch
import torch.nn as nn

from pks4_lit.models.backbone import FrameBackbone
from pks4_lit.models.heads import build_temporal_head, temporal_head_name
from pks4_lit.models.pks4 import PKS4
from pks4_lit.models.tsn import TSN


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

    # ---- streaming: logits after every frame ---------------------------------------------------
    def check_streamable(self) -> None:
        """Raise NotImplementedError naming the part that cannot run one frame at a time, and why."""
        from pks4_lit.models.st_adapter import STAdapter

        if any(isinstance(m, STAdapter) for m in self.backbone.modules()):
            raise NotImplementedError("VideoClassifier with ST-Adapters cannot stream: the adapters' "
                                      "temporal convolution inside the backbone needs the clip's other frames")
        if isinstance(self.head, _FRAMEWISE):
            return
        name = temporal_head_name(self.head)
        why = _NOT_STREAMABLE.get(name)
        if why is None and not (hasattr(self.head, "step") and hasattr(self.head, "allocate_state")):
            why = f"{type(self.head).__name__} has no step()/allocate_state()"
        if why is None and hasattr(self.head, "check_streamable"):
            try:
                self.head.check_streamable()
            except NotImplementedError as e:
                why = str(e)
        if why is not None:
            raise NotImplementedError(f"temporal head {name!r} cannot stream: {why}. "
                                      "Heads that stream: pks4 and ssm (causal) and tsn")

    def stream(self, video, window: int | None = None):
        """Online recognition: yields logits [B,K] after every frame. `video` is a tensor
        [B,T,3,H,W] or any iterable of frame batches [B,3,H,W] (uint8 0..255 or float 0..1, as
        `forward`). The backbone runs on one frame, the head takes one recurrent step, and the
        mean over time is a running sum, so every frame costs the same however long the stream.
        window=None: the logits after frame t equal `forward(video[:, :t+1])` (mean over all frames
        so far). window=N: the mean over the head outputs of the last N frames only (the head's
        state still carries everything before), so the prediction can follow an action that
        changes. Inference only (no gradients); call it in eval mode. A head that cannot stream
        raises NotImplementedError here, before any frame."""
        self.check_streamable()
        if window is not None and window < 1:
            raise ValueError(f"VideoClassifier.stream: window must be None or >= 1, got {window}")
        if torch.is_tensor(video):
            if video.dim() != 5:
                raise ValueError(f"VideoClassifier.stream expects video [B,T,3,H,W] or an iterable of "
                                 f"frames [B,3,H,W], got a tensor of shape {tuple(video.shape)}")
            video = video.unbind(1)
        return self._stream(iter(video), window)

    def _stream(self, frames, window):
        state, total, shape = None, None, None
        recent = collections.deque(maxlen=window) if window else None
        for t, frame in enumerate(frames):
            if not torch.is_tensor(frame) or frame.dim() != 4 or frame.shape[1] != 3:
                raise ValueError(f"VideoClassifier.stream: frame {t} must be a tensor [B,3,H,W], got "
                                 f"{tuple(frame.shape) if torch.is_tensor(frame) else type(frame).__name__}")
            if shape is not None and frame.shape != shape:
                raise ValueError(f"VideoClassifier.stream: frame {t} has shape {tuple(frame.shape)}, "
                                 f"the stream started with {tuple(shape)}")
            shape = frame.shape
            with torch.no_grad():                     # entered and left within one frame, never across a yield
                f = self.backbone(self.normalize(frame[:, None]))[:, 0]              # [B,C,h,w]
                if isinstance(self.head, _FRAMEWISE):
                    y = f
                else:
                    if state is None:
                        state = self.head.allocate_state(f.shape[0], *f.shape[2:], f.device, f.dtype)
                    y, state = self.head.step(f, state)                                   # [B,C,h,w]
                pooled = y.mean(dim=(2, 3))                                           # [B,C]
                if recent is None:
                    total = pooled if total is None else total + pooled
                    mean = total / (t + 1)
                else:                                 # exact sum of at most `window` vectors: no drift
                    recent.append(pooled)
                    mean = torch.stack(tuple(recent)).mean(0)
                logits = self.fc(self.dropout(self.norm(mean)))                        # [B,K]
            yield logits


_FRAMEWISE = (TSN, nn.Identity)          # heads that leave every frame as it is: nothing to carry
# why the other registered heads cannot run one frame at a time
_NOT_STREAMABLE = {
    "attention": "temporal self-attention re-reads every frame of the window at each step and keeps "
                 "no recurrent state",
    "global_ssm": "it scans the clip's T·h·w tokens as one flattened sequence (streaming that scan is "
                  "not implemented)",
}
