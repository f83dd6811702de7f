"""ST-Adapter baseline: temporal adapters inside every block of a frozen image backbone.

Pan et al., "ST-Adapter: Parameter-Efficient Image-to-Video Transfer Learning", NeurIPS 2022
(arXiv 2206.13559). Each adapter is a bottleneck with a depthwise convolution over time:

    x  ->  x + W_up · DWConv_t( W_down · x )          (kernel 3 along T, per channel, per location)

inserted at the input of every block (transformer block, or residual/inverted-residual block of a
CNN stage). W_up starts at zero, so an adapted backbone first computes exactly what the image
model computes. The paper's equation also allows an activation after the depthwise conv
(`act="gelu"` here); the default follows the plain down → conv → up recipe. For token models the
class/register tokens are left untouched, as in the paper's ViT setting.

This is the baseline PKS⁴ argues against: the backbone weights stay frozen, but the adapters sit
*inside* it, so backpropagation goes through every block after the first adapter and autograd
stores their activations for all B·T frames. PKS⁴ keeps the backbone under `no_grad` and trains one
module on top (see pks4_lit.bench.heads for the measured difference).

Usage (in place; returns the adapters):

    add_st_adapters(frame_backbone)            # FrameBackbone: T is read from its [B,T,3,H,W] input
    add_st_adapters(timm_model); set_num_frames(timm_model, T); timm_model(x_bt)   # bare timm model

Only blocks that run are adapted: FrameBackbone cuts the timm model after its feature tap
(backbone.py), so the stages after it are gone and get no adapter (an adapter there would never
receive a gradient). Blocks are found structurally: a `blocks` container (ViT, EfficientNet, MobileNet: a flat list of
blocks or a list of stages that are lists of blocks), or stage children `layer1..4` (ResNet),
`s1..4` (RegNet), `stages` / `stages_i` (ConvNeXt, ...); a stage with a `blocks` attribute
contributes its blocks. Channel-first maps [N,C,H,W] and tokens [N,L,C] are handled at run time.
"""
from __future__ import annotations

import re

import torch
import torch.nn as nn
import torch.nn.functional as F

_STAGE_NAME = re.compile(r"^(layer\d+|s\d+|stages(_\d+)?)$")


class STAdapter(nn.Module):
    """x [N=B·T, C, H, W] or [N, L, C] -> same shape; mixes each location's features over T."""

    def __init__(self, dim: int, bottleneck: int, kernel_size: int = 3, act: str | None = None,
                 num_prefix_tokens: int = 0):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"kernel_size must be odd (centred in time), got {kernel_size}")
        if act not in (None, "gelu"):
            raise ValueError(f"act must be None or 'gelu', got {act!r}")
        self.dim, self.bottleneck, self.act = dim, bottleneck, act
        self.num_prefix_tokens = num_prefix_tokens
        self.num_frames: int | None = None                  # set before each forward (see _RecordFrames)
        self.down = nn.Linear(dim, bottleneck)
        self.conv = nn.Conv2d(bottleneck, bottleneck, (kernel_size, 1), padding=(kernel_size // 2, 0),
                              groups=bottleneck)             # depthwise over T, applied to [B,r,T,S]
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)                       # identity at initialisation
        nn.init.zeros_(self.up.bias)

    def _mix(self, x: torch.Tensor) -> torch.Tensor:        # [N,S,C] channels-last -> [N,S,C]
        T = self.num_frames
        N, S, _ = x.shape
        h = self.down(x).unflatten(0, (N // T, T))           # [B,T,S,r]
        h = self.conv(h.permute(0, 3, 1, 2))                 # [B,r,T,S]
        if self.act == "gelu":
            h = F.gelu(h)
        return self.up(h.permute(0, 2, 3, 1).flatten(0, 1))  # [N,S,C]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = self.num_frames
        if T is None:
            raise RuntimeError("STAdapter does not know the number of frames: call the adapted "
                               "FrameBackbone with [B,T,3,H,W], or set_num_frames(model, T) first")
        if x.shape[0] % T:
            raise ValueError(f"STAdapter: batch {x.shape[0]} is not a multiple of T={T}")
        if x.dim() == 4:                                     # [N,C,H,W]
            if x.shape[1] != self.dim:
                raise ValueError(f"STAdapter(dim={self.dim}) got a map with {x.shape[1]} channels")
            xs = x.flatten(2).transpose(1, 2)                # [N,H*W,C]
            return x + self._mix(xs).transpose(1, 2).reshape(x.shape)
        if x.dim() == 3:                                     # [N,L,C] tokens
            if x.shape[2] != self.dim:
                raise ValueError(f"STAdapter(dim={self.dim}) got tokens with {x.shape[2]} channels")
            p = self.num_prefix_tokens
            return torch.cat([x[:, :p], x[:, p:] + self._mix(x[:, p:])], dim=1)
        raise ValueError(f"STAdapter expects [N,C,H,W] maps or [N,L,C] tokens, got {tuple(x.shape)}")


class _AdaptInput:
    """Forward pre-hook of a block: feed the block adapter(x). A class (not a closure) so that
    deepcopy/pickle of the model keep pointing at the copied adapter."""

    def __init__(self, adapter: STAdapter):
        self.adapter = adapter

    def __call__(self, module, args):
        return (self.adapter(args[0]),) + tuple(args[1:])


class _RecordFrames:
    """Forward pre-hook of a FrameBackbone: tell every adapter T from the [B,T,3,H,W] input."""

    def __init__(self, adapters: nn.ModuleDict):
        self.adapters = adapters

    def __call__(self, module, args):
        if args and torch.is_tensor(args[0]) and args[0].dim() == 5:
            for a in self.adapters.values():
                a.num_frames = args[0].shape[1]


def _timm_model(module: nn.Module) -> tuple[str, nn.Module]:
    """First submodule (pre-order) that holds a recognised block/stage container."""
    for name, m in module.named_modules():
        if isinstance(getattr(m, "blocks", None), (nn.Sequential, nn.ModuleList)):
            return name, m
        if any(_STAGE_NAME.match(n) for n, _ in m.named_children()):
            return name, m
    raise ValueError(f"add_st_adapters: no block container (blocks / layer1.. / s1.. / stages) found "
                     f"in {type(module).__name__}; this architecture is not supported")


def find_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, block) for every block of the timm model, in forward order."""
    prefix, root = _timm_model(model)
    prefix = prefix + "." if prefix else ""
    if isinstance(getattr(root, "blocks", None), (nn.Sequential, nn.ModuleList)):
        stages = [("blocks", root.blocks)]
        flat = not any(isinstance(b, (nn.Sequential, nn.ModuleList)) for b in root.blocks)
        if flat:                                             # ViT: blocks is the list of blocks
            return [(f"{prefix}blocks.{i}", b) for i, b in enumerate(root.blocks)]
        stages = [(f"blocks.{i}", s) for i, s in enumerate(root.blocks)]
    else:
        stages = []
        for n, s in root.named_children():
            if n == "stages":
                stages += [(f"stages.{i}", c) for i, c in enumerate(s)]
            elif _STAGE_NAME.match(n):
                stages.append((n, s))
    out = []
    for sname, stage in stages:
        if isinstance(getattr(stage, "blocks", None), (nn.Sequential, nn.ModuleList)):
            out += [(f"{prefix}{sname}.blocks.{i}", b) for i, b in enumerate(stage.blocks)]
        elif isinstance(stage, (nn.Sequential, nn.ModuleList)):
            out += [(f"{prefix}{sname}.{i}", b) for i, b in enumerate(stage)]
        else:                                                # a stage that is one module (RegNet)
            out.append((f"{prefix}{sname}", stage))
    # stages cut off after the backbone's tap are left as Identity / empty containers: not blocks
    return [(n, b) for n, b in out if next(b.parameters(), None) is not None]


def _in_channels(block: nn.Module) -> int:
    """Channels entering a block: read from its first layer (registration order = call order)."""
    for m in block.modules():
        if isinstance(m, nn.Conv2d):
            return m.in_channels
        if isinstance(m, nn.Linear):
            return m.in_features
        if isinstance(m, nn.LayerNorm):
            return m.normalized_shape[-1]
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            return m.num_features
    raise ValueError(f"cannot infer the input channels of block {type(block).__name__}")


def add_st_adapters(backbone: nn.Module, ratio: float = 0.5, min_bottleneck: int = 8,
                    kernel_size: int = 3, act: str | None = None) -> nn.ModuleDict:
    """Insert an STAdapter before every block of `backbone` (a FrameBackbone or a timm model), in place.

    Freezes every pre-existing backbone parameter; only the adapters train. A FrameBackbone built
    with freeze="all" is switched to freeze="adapters": weights stay frozen and frozen modules stay
    in eval mode, but its forward no longer runs under no_grad, so gradients reach the adapters.
    Returns the adapters (also stored as `backbone.st_adapters`). Bottleneck = max(min_bottleneck,
    round(ratio·C)); the paper uses 384 for ViT-B/16 (C=768), i.e. ratio 0.5.
    """
    if hasattr(backbone, "st_adapters"):
        raise ValueError("add_st_adapters: this backbone already has ST-Adapters")
    if not 0 < ratio <= 4:
        raise ValueError(f"ratio must be in (0, 4], got {ratio}")
    if getattr(backbone, "freeze", "all") != "all":
        raise ValueError(f"add_st_adapters expects a FrameBackbone built with freeze='all' (weights "
                         f"frozen, adapters trained), got freeze={backbone.freeze!r}")
    blocks = find_blocks(backbone)
    if not blocks:
        raise ValueError("add_st_adapters: found no blocks to adapt")
    prefix_tokens = 0
    for m in backbone.modules():
        if hasattr(m, "num_prefix_tokens") and hasattr(m, "blocks"):
            prefix_tokens = m.num_prefix_tokens
            break
    for p in backbone.parameters():
        p.requires_grad_(False)
    adapters = nn.ModuleDict()
    for name, block in blocks:
        dim = _in_channels(block)
        adapter = STAdapter(dim, max(min_bottleneck, round(ratio * dim)), kernel_size, act, prefix_tokens)
        adapters[name.replace(".", "_")] = adapter
        block.register_forward_pre_hook(_AdaptInput(adapter))
    backbone.st_adapters = adapters
    backbone.register_forward_pre_hook(_RecordFrames(adapters))
    if getattr(backbone, "freeze", None) == "all":          # FrameBackbone: let gradients through
        backbone.freeze = "adapters"
    return adapters


def set_num_frames(model: nn.Module, num_frames: int) -> None:
    """Tell the adapters of a bare timm model that its batch is B·T frames of T-frame clips."""
    adapters = getattr(model, "st_adapters", None)
    if adapters is None:
        raise ValueError("set_num_frames: model has no ST-Adapters (call add_st_adapters first)")
    for a in adapters.values():
        a.num_frames = int(num_frames)


# adapter registry: VideoClassifier(adapter="st_adapter", adapter_kwargs={...}) -> add_adapters(...)
ADAPTERS = {"st_adapter": add_st_adapters}


def add_adapters(name: str, backbone: nn.Module, **kw) -> nn.ModuleDict:
    if name not in ADAPTERS:
        raise ValueError(f"unknown adapter {name!r}; choose from {sorted(ADAPTERS)}")
    return ADAPTERS[name](backbone, **kw)
