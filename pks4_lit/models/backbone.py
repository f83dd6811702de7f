"""FrameBackbone: any timm image model run on every frame of a clip → feature maps [B,T,C,h,w].

Two ways to get a spatial feature map out of a timm model:
  * CNN-like models (and hierarchical transformers such as Swin): the model is cut at its tap.
    `feature_index` picks one of timm's `feature_info` taps; `prune_intermediate_layers` removes
    every stage after it (and the final conv/norm/classifier), and the forward is
    `forward_intermediates(x, indices=[tap], intermediates_only=True, stop_early=True)`, so nothing
    after the tap is built, run or trained. timm's `features_only=True` is NOT enough: for
    EfficientNet/MobileNet (their own feature classes) it keeps and runs every later stage and
    drops their output (efficientnet_lite0 at feature_index 3 ran blocks 5-6 for nothing: ~30 % of
    its FLOPs, and trainable parameters that never get a gradient). `features_only` remains only
    as the fallback for a model without `prune_intermediate_layers` (timm's generic wrapper, which
    stops at the last selected module).
  * token models (ViT family, recognised by `num_prefix_tokens`): `forward_features` tokens
    minus the prefix (class/register) tokens, reshaped to the patch grid. `img_size` builds the
    model for non-default inputs; `dynamic_img_size=True` is passed where the model accepts it,
    so the grid follows the input size.

Freeze policy (the paper trains only the temporal module on a frozen 2D backbone):
  * "all":    every parameter frozen; the forward runs under `torch.no_grad()` in eval mode.
  * "none":   everything trains.
  * "last_n": only the last `last_n` stages train (CNN: timm `feature_info` stages up to the
              selected one; token models: transformer blocks, plus the final norm). The frozen
              prefix stays in eval mode (BatchNorm statistics and dropout fixed) and stores no
              activations for backward: none of its inputs or parameters require grad, so
              autograd records nothing there.
`train()` is overridden so that `model.train()` never puts frozen modules back in training mode.

Weights: `pretrained=False` (random init, the default, never downloads); `pretrained=True` uses
timm's hub; `checkpoint_path=FILE` loads a local file through timm's own pretrained mechanism
(`pretrained_cfg_overlay=dict(file=FILE)`: the same key filtering/adaptation as hub weights).
"""
from __future__ import annotations

import os

import timm
import timm.data
import torch
import torch.nn as nn

from pks4_lit.models.offline_weights import resolve_checkpoint

FREEZE_POLICIES = ("all", "none", "last_n")


def _is_token_model(name: str) -> bool:
    """Build the architecture on the meta device (no memory, no weights) and look for tokens."""
    with torch.device("meta"):
        probe = timm.create_model(name, pretrained=False)
    return hasattr(probe, "num_prefix_tokens") and hasattr(probe, "blocks")


def _accepts_kwarg(name: str, **kw) -> bool:
    try:
        with torch.device("meta"):
            timm.create_model(name, pretrained=False, **kw)
        return True
    except TypeError:
        return False


class FrameBackbone(nn.Module):
    def __init__(self, name: str, pretrained: bool = False, checkpoint_path: str | None = None,
                 freeze: str = "all", last_n: int = 1, feature_index: int = -1,
                 img_size: int | tuple[int, int] | None = None):
        super().__init__()
        if freeze not in FREEZE_POLICIES:
            raise ValueError(f"freeze must be one of {FREEZE_POLICIES}, got {freeze!r}")
        if freeze == "last_n" and (not isinstance(last_n, int) or last_n < 1):
            raise ValueError(f"last_n must be a positive int with freeze='last_n', got {last_n!r}")
        if not timm.is_model(name):
            raise ValueError(f"unknown timm model {name!r} (see timm.list_models())")
        kw = {}
        if checkpoint_path is not None:
            checkpoint_path = resolve_checkpoint(checkpoint_path, name)  # a missing lite0 file: made on first use
            pretrained = True
            kw["pretrained_cfg_overlay"] = dict(file=os.fspath(checkpoint_path))
        self.name, self.freeze, self.last_n = name, freeze, last_n
        self.is_token_model = _is_token_model(name)

        if self.is_token_model:
            if feature_index not in (-1,):
                raise ValueError("token models (ViT family) give the final-block grid only: "
                                 f"feature_index must be -1, got {feature_index}")
            if img_size is not None:
                kw["img_size"] = img_size
            if _accepts_kwarg(name, dynamic_img_size=True):
                kw["dynamic_img_size"] = True
            self.model = timm.create_model(name, pretrained=pretrained, num_classes=0, **kw)
            # only forward_features is used: drop the pooling-side modules so no parameter is dead
            self.model.fc_norm = nn.Identity()
            if getattr(self.model, "attn_pool", None) is not None:
                self.model.attn_pool = None
            self.num_prefix_tokens = self.model.num_prefix_tokens
            self.out_dim = self.model.num_features
            patch = self.model.patch_embed.patch_size
            self.reduction = patch[0] if isinstance(patch, (tuple, list)) else patch
            self.stage_names = [f"blocks.{i}" for i in range(len(self.model.blocks))]
        else:
            self.model, info, self.tap, self.is_cut = self._build_cut(name, pretrained, feature_index, kw)
            self.out_dim = info[self.tap]["num_chs"]
            self.reduction = info[self.tap]["reduction"]
            self.stage_names = [i["module"] for i in info[: self.tap + 1]]

        cfg = self.model.pretrained_cfg
        self.mean = tuple(cfg.get("mean", timm.data.IMAGENET_DEFAULT_MEAN))
        self.std = tuple(cfg.get("std", timm.data.IMAGENET_DEFAULT_STD))
        self._apply_freeze()

    @staticmethod
    def _build_cut(name, pretrained, feature_index, kw):
        """(model, feature_info as a list of dicts, tap index ≥ 0, whether timm cut it after the
        tap). Weights are loaded into the full model first, so whole-model checkpoints load strictly."""
        with torch.device("meta"):
            probe = timm.create_model(name, pretrained=False)
        if hasattr(probe, "prune_intermediate_layers") and hasattr(probe, "forward_intermediates"):
            model = timm.create_model(name, pretrained=pretrained, num_classes=0, **kw)
            info = [dict(i) for i in model.feature_info]
            if not -len(info) <= feature_index < len(info):
                raise ValueError(f"{name}: feature_index {feature_index} is out of range: it has "
                                 f"{len(info)} taps ({', '.join(i['module'] for i in info)})")
            tap = feature_index % len(info)
            model.prune_intermediate_layers(indices=[tap], prune_norm=True, prune_head=True)
            return model, info, tap, True
        model = timm.create_model(name, pretrained=pretrained, features_only=True,
                                  out_indices=(feature_index,), **kw)
        info = model.feature_info
        return model, [dict(i) for i in info.info], info.out_indices[0] % len(info.info), False

    # ---- freezing -----------------------------------------------------------------------
    def _apply_freeze(self):
        names = [n for n, _ in self.model.named_modules()]
        if self.freeze == "all":
            boundary_end = len(names) - 1
        elif self.freeze == "none" or self.last_n >= len(self.stage_names):
            boundary_end = -1
        else:
            # everything up to (and inside) the stage before the last `last_n` stages is frozen;
            # named_modules is pre-order, so a module's descendants follow it contiguously
            boundary = self.stage_names[-self.last_n - 1]
            boundary_end = max(i for i, n in enumerate(names)
                               if n == boundary or n.startswith(boundary + "."))
        index = {n: i for i, n in enumerate(names)}
        last_desc = {}
        for i, n in enumerate(names):
            last_desc[n] = i
            parts = n.split(".") if n else []
            for k in range(len(parts)):
                last_desc[".".join(parts[:k])] = i   # ancestors ("" = root) extend to i
        for pname, p in self.model.named_parameters():
            owner = pname.rpartition(".")[0]
            p.requires_grad_(index[owner] > boundary_end)
        # modules whose whole subtree is frozen are kept in eval mode
        self._frozen_modules = [n for n in names if last_desc[n] <= boundary_end]
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            mods = dict(self.model.named_modules())
            for n in self._frozen_modules:
                mods[n].training = False
        return self

    # ---- forward ------------------------------------------------------------------------
    def _features(self, x: torch.Tensor) -> torch.Tensor:           # [N,3,H,W] -> [N,C,h,w]
        if not self.is_token_model:
            if self.is_cut:
                return self.model.forward_intermediates(x, indices=[self.tap], intermediates_only=True,
                                                        stop_early=True)[0]
            return self.model(x)[0]
        tokens = self.model.forward_features(x)                         # [N,prefix+h*w,C]
        pe = self.model.patch_embed
        if getattr(self.model, "dynamic_img_size", False):
            h, w = pe.dynamic_feat_size(x.shape[-2:])
        else:
            h, w = pe.grid_size
        tokens = tokens[:, self.num_prefix_tokens:]
        if tokens.shape[1] != h * w:
            raise RuntimeError(f"{self.name}: {tokens.shape[1]} patch tokens do not fill a {h}x{w} grid")
        return tokens.transpose(1, 2).reshape(x.shape[0], -1, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:             # [B,T,3,H,W] -> [B,T,C,h,w]
        if x.dim() != 5 or x.shape[2] != 3:
            raise ValueError(f"FrameBackbone expects [B,T,3,H,W], got {tuple(x.shape)}")
        B, T = x.shape[:2]
        frames = x.flatten(0, 1)                                        # [B*T,3,H,W]
        if self.freeze == "all":
            with torch.no_grad():
                f = self._features(frames)
        else:
            f = self._features(frames)
        return f.unflatten(0, (B, T))                                   # [B,T,C,h,w]
