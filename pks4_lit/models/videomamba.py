"""VideoMamba: the pure video SSM baseline, end to end from pixels (Li et al. 2024, arXiv 2403.06977).

    video [B,T,3,H,W] uint8 (0..255) or float (0..1) ──/255, (x − mean)/std (ImageNet)──▶ [B,3,T,H,W]
      ──Conv3d (tubelet×16×16, stride = kernel)──▶ [B,C,T',h,w]        T' = T / tubelet_size
      ──+ spatial pos (per patch) + temporal pos (per frame)──▶ tokens [B,T'·h·w,C]  (spatial-first:
         all patches of frame 0 in row-major order, then frame 1, ...)
      ──prepend the class token (+ its own spatial pos, no temporal pos)──▶ [B,1+T'·h·w,C]
      ──depth × bidirectional Mamba block (RMSNorm, fp32 residual stream, drop path)──▶
      ──residual + drop_path(hidden), RMSNorm──▶ token 0 ──dropout, Linear──▶ logits [B,K]

Written from the official model definition (OpenGVLab/VideoMamba, `videomamba/video_sm/models/
videomamba.py`, and its `mamba/mamba_ssm/modules/mamba_simple.py` with `bimamba=True`); our code.
Facts taken from it:
  * the class token sits at index 0 of the whole sequence; `pos_embed` is [1, 1+h·w, C] (index 0
    is the class token's), `temporal_pos_embedding` [1, T', C] is added to patch tokens only;
  * Mamba mixer with expand 2, d_state 16, d_conv 4, dt_rank ⌈C/16⌉, no in/out projection bias;
    the backward scan has its own conv1d_b/x_proj_b/dt_proj_b/A_b_log/D_b (mamba_block.py);
  * block: residual += drop_path(hidden); hidden = mixer(RMSNorm(residual)); drop path i of
    [0] + linspace(0, drop_path_rate, depth); the final add uses drop_path_rate; RMSNorm eps 1e-5;
  * init: Linear weights trunc_normal(0.02) and zero biases, pos_embed
    trunc_normal(0.02), class token and temporal_pos_embedding zero, each out_proj re-drawn
    (kaiming-uniform, a=√5) and divided by √depth; the official init also zeroes dt_proj.bias (Δ starts
    at softplus(0) ≈ 0.69 from scratch), ours keeps Mamba's dt init (Δ in [1e-3, 0.1]): a difference
    from random init only, a loaded checkpoint overwrites it;
  * inputs normalised with the ImageNet mean/std; no weight decay on pos_embed, cls_token,
    temporal_pos_embedding (`no_weight_decay()`; ours adds the SSM's A_log/A_b_log/D/D_b);
  * published sizes: tiny 192/24, small 384/24, middle 576/32 (width/depth), patch 16, 224 px.

Loading an official checkpoint (`checkpoint_path=FILE` or `load_checkpoint(model, FILE)`): the
state dict may be wrapped in "model" or "module" and prefixed "module." / "backbone." / "encoder.";
parameter names are the official ones (our modules mirror them), and every tensor must match in
shape except: pos_embed (bicubic resize of the patch grid for another img_size), temporal_pos_
embedding (linear resize for another num_frames; absent in an ImageNet image checkpoint, then
left at its init), a 2D patch_embed weight (ImageNet image checkpoint: inflated to the tubelet
with the image kernel at the centre frame, as the official loader does) and head.* (dropped when
the class count differs). Anything else missing, unexpected or mis-shaped is an error. Nothing is
ever downloaded: `pretrained_cfg` names the official files, which the user fetches.
"""
from __future__ import annotations

import argparse
import logging
import math
import os
from typing import Callable

import timm.data
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint
from timm.layers import DropPath, trunc_normal_

from pks4_lit.models.mamba_block import MambaBlock

log = logging.getLogger(__name__)
IMAGENET_MEAN, IMAGENET_STD = timm.data.IMAGENET_DEFAULT_MEAN, timm.data.IMAGENET_DEFAULT_STD


class _PatchEmbed(nn.Module):
    def __init__(self, embed_dim: int, patch_size: int, tubelet_size: int):
        super().__init__()
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(3, embed_dim, kernel_size=k, stride=k)

    def forward(self, x):                                               # [B,3,T,H,W] -> [B,C,T',h,w]
        return self.proj(x)


class VideoMamba(nn.Module):
    def __init__(self, num_classes: int, *, img_size: int = 224, patch_size: int = 16, num_frames: int = 8,
                 tubelet_size: int = 1, embed_dim: int = 192, depth: int = 24, d_state: int = 16,
                 expand: float = 2, d_conv: int = 4, bidirectional: bool = True,
                 drop_path_rate: float = 0.1, drop_rate: float = 0.0, fc_drop_rate: float = 0.0,
                 norm_eps: float = 1e-5, residual_in_fp32: bool = True,
                 mean: tuple[float, float, float] = IMAGENET_MEAN, std: tuple[float, float, float] = IMAGENET_STD,
                 grad_checkpointing: bool = False, checkpoint_path: str | None = None):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if img_size % patch_size:
            raise ValueError(f"img_size={img_size} is not a multiple of patch_size={patch_size}")
        if num_frames % tubelet_size:
            raise ValueError(f"num_frames={num_frames} is not a multiple of tubelet_size={tubelet_size}")
        self.num_classes, self.img_size, self.patch_size = num_classes, img_size, patch_size
        self.num_frames, self.tubelet_size, self.embed_dim, self.depth = num_frames, tubelet_size, embed_dim, depth
        self.grad_checkpointing = grad_checkpointing
        grid = img_size // patch_size

        self.patch_embed = _PatchEmbed(embed_dim, patch_size, tubelet_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + grid * grid, embed_dim))
        self.temporal_pos_embedding = nn.Parameter(torch.zeros(1, num_frames // tubelet_size, embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = [0.0] + [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]   # linspace(0, rate, depth)
        self.layers = nn.ModuleList(
            MambaBlock(embed_dim, norm="rms", norm_eps=norm_eps, drop_path=dpr[i],
                       residual_in_fp32=residual_in_fp32, d_state=d_state, d_conv=d_conv, expand=expand,
                       bidirectional=bidirectional)
            for i in range(depth))
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.norm_f = nn.RMSNorm(embed_dim, eps=norm_eps)
        self.head_drop = nn.Dropout(fc_drop_rate)
        self.head = nn.Linear(embed_dim, num_classes)
        self.register_buffer("mean", torch.tensor(mean).view(1, 1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 1, 3, 1, 1), persistent=False)
        self.init_weights()
        if checkpoint_path is not None:
            load_checkpoint(self, checkpoint_path)

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None and not getattr(m.bias, "_no_reinit", False):
                    nn.init.zeros_(m.bias)
        trunc_normal_(self.pos_embed, std=0.02)
        for layer in self.layers:                      # GPT-2-style rescale of the residual branch
            w = layer.mixer.out_proj.weight
            nn.init.kaiming_uniform_(w, a=math.sqrt(5))
            with torch.no_grad():
                w /= math.sqrt(self.depth)

    def no_weight_decay(self) -> set[str]:
        """Names (fnmatch patterns, relative to this model) that pks4_lit.optim keeps out of weight
        decay: the official list (position embeddings, class token); every block's SSM state
        parameters (A_log / A_b_log, D / D_b) are declared by its Mamba mixer's own
        `no_weight_decay()`. The official fine-tuning script decays the 2-D A_log (its optimizer skips
        only 1-D tensors, biases and this list); we do not."""
        return {"pos_embed", "cls_token", "temporal_pos_embedding"}

    def normalize(self, video: torch.Tensor) -> torch.Tensor:          # [B,T,3,H,W] -> float
        if video.dim() != 5 or video.shape[2] != 3:
            raise ValueError(f"VideoMamba expects video [B,T,3,H,W], got {tuple(video.shape)}")
        if video.dtype == torch.uint8:
            video = video.float() / 255.0
        elif not video.is_floating_point():
            raise TypeError(f"video must be uint8 (0..255) or float (0..1), got {video.dtype}")
        T, H, W = video.shape[1], video.shape[3], video.shape[4]
        if T != self.num_frames or H != self.img_size or W != self.img_size:
            raise ValueError(f"this VideoMamba was built for {self.num_frames} frames of {self.img_size}x"
                             f"{self.img_size} px, got {T} frames of {H}x{W}: build it with num_frames={T}, "
                             f"img_size={H} (a checkpoint's position embeddings are resized on load)")
        return (video.float() - self.mean) / self.std

    def forward_tokens(self, video: torch.Tensor) -> torch.Tensor:     # -> [B,1+T'·h·w,C], final norm
        x = self.patch_embed(self.normalize(video).transpose(1, 2))    # [B,C,T',h,w]
        B, C, Tp, h, w = x.shape
        x = x.permute(0, 2, 3, 4, 1).reshape(B, Tp, h * w, C)           # [B,T',h·w,C]
        x = x + self.pos_embed[:, None, 1:] + self.temporal_pos_embedding[:, :, None]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(B, -1, -1)   # [B,1,C]
        x = self.pos_drop(torch.cat([cls, x.reshape(B, Tp * h * w, C)], dim=1))
        hidden, residual = x, None
        for layer in self.layers:
            if self.grad_checkpointing and self.training:
                hidden, residual = torch.utils.checkpoint.checkpoint(layer, hidden, residual, use_reentrant=False)
            else:
                hidden, residual = layer(hidden, residual)
        residual = residual + self.drop_path(hidden)
        return self.norm_f(residual.to(self.norm_f.weight.dtype))

    def forward(self, video: torch.Tensor) -> torch.Tensor:            # -> logits [B,K]
        return self.head(self.head_drop(self.forward_tokens(video)[:, 0]))


# ---- official checkpoints -------------------------------------------------------------------
_PREFIXES = ("module.", "backbone.", "encoder.")


def read_official_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of an official checkpoint file: unwrapped ("model" / "module") and unprefixed."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VideoMamba checkpoint_path {path!r} does not exist")
    # the official training script also pickles its argparse.Namespace next to the weights
    with torch.serialization.safe_globals([argparse.Namespace]):
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    for key in ("model", "module"):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, dict) or not all(torch.is_tensor(v) for v in ckpt.values()):
        raise ValueError(f"{path}: not a state dict (nor one wrapped in 'model' / 'module')")
    out = {}
    for k, v in ckpt.items():
        for p in _PREFIXES:
            if k.startswith(p):
                k = k[len(p):]
        out[k] = v
    return out


def _resize_pos_embed(pe: torch.Tensor, grid: int) -> torch.Tensor:   # [1,1+n²,C] -> [1,1+grid²,C]
    n = math.isqrt(pe.shape[1] - 1)
    if n * n != pe.shape[1] - 1:
        raise ValueError(f"checkpoint pos_embed has {pe.shape[1] - 1} patch positions: not a square grid")
    patches = pe[:, 1:].reshape(1, n, n, -1).permute(0, 3, 1, 2).float()
    patches = F.interpolate(patches, size=(grid, grid), mode="bicubic", align_corners=False)
    return torch.cat([pe[:, :1], patches.permute(0, 2, 3, 1).reshape(1, grid * grid, -1).to(pe.dtype)], 1)


def _resize_temporal(te: torch.Tensor, t: int) -> torch.Tensor:       # [1,T0,C] -> [1,t,C]
    return F.interpolate(te.transpose(1, 2).float(), size=t, mode="linear",
                         align_corners=False).transpose(1, 2).to(te.dtype)


def _inflate(w2d: torch.Tensor, k: int) -> torch.Tensor:              # [C,3,p,p] -> [C,3,k,p,p]
    w = w2d.new_zeros(w2d.shape[0], w2d.shape[1], k, *w2d.shape[2:])
    w[:, :, k // 2] = w2d                                               # centre-frame init
    return w


def load_checkpoint(model: VideoMamba, path: str) -> dict:
    """Load an official VideoMamba checkpoint into `model` (module doc); returns what was adapted."""
    sd = read_official_state_dict(path)
    ours = model.state_dict()
    report = dict(resized=[], inflated=[], dropped=[], kept_init=[])
    if "patch_embed.proj.weight" in sd and sd["patch_embed.proj.weight"].dim() == 4:
        sd["patch_embed.proj.weight"] = _inflate(sd["patch_embed.proj.weight"], model.tubelet_size)
        report["inflated"].append("patch_embed.proj.weight")
    if "pos_embed" in sd and sd["pos_embed"].shape != ours["pos_embed"].shape:
        sd["pos_embed"] = _resize_pos_embed(sd["pos_embed"], model.img_size // model.patch_size)
        report["resized"].append("pos_embed")
    te = "temporal_pos_embedding"
    if te in sd and sd[te].shape != ours[te].shape:
        sd[te] = _resize_temporal(sd[te], ours[te].shape[1])
        report["resized"].append(te)
    elif te not in sd:
        report["kept_init"].append(te)                                  # image checkpoint
    for k in ("head.weight", "head.bias"):
        if k in sd and sd[k].shape != ours[k].shape:
            del sd[k]
            report["dropped"].append(k)
        elif k not in sd:
            report["kept_init"].append(k)
    unexpected = sorted(set(sd) - set(ours))
    missing = sorted(set(ours) - set(sd) - set(report["kept_init"]) - set(report["dropped"]))
    bad = sorted(k for k in set(sd) & set(ours) if sd[k].shape != ours[k].shape)
    if unexpected or missing or bad:
        mismatch = [f"{k} {tuple(sd[k].shape)} vs {tuple(ours[k].shape)}" for k in bad]
        detail = "; ".join(f"{name}: {keys[:6]}{' ...' if len(keys) > 6 else ''}" for name, keys in
                           (("unexpected", unexpected), ("missing", missing), ("shape mismatch", mismatch)) if keys)
        raise ValueError(f"{path} does not fit this VideoMamba (embed_dim={model.embed_dim}, "
                         f"depth={model.depth}): {detail}")
    model.load_state_dict(sd, strict=False)
    log.info("loaded VideoMamba checkpoint %s (%s)", path,
             ", ".join(f"{k}: {v}" for k, v in report.items() if v) or "exact")
    return report


# ---- registry (timm style) ------------------------------------------------------------------
_MODELS: dict[str, Callable[..., VideoMamba]] = {}
PRETRAINED_CFGS: dict[str, dict] = {}


def _cfg(tag: str, top1: dict) -> dict:
    """Metadata of a published variant. `files` are the official checkpoints on the Hugging Face
    hub repo `hf_hub_id` (the user downloads them; nothing here does); `top1`: official model zoo,
    8 frames at 224 px, 3 crops × 4 clips."""
    return dict(hf_hub_id="OpenGVLab/VideoMamba", paper_ids="arXiv:2403.06977", license="apache-2.0",
                files=dict(in1k=f"videomamba_{tag}_in1k_res224.pth", k400_f8=f"videomamba_{tag}_k400_f8_res224.pth",
                           ssv2_f8=f"videomamba_{tag}_ssv2_f8_res224.pth"),
                input_size=(3, 224, 224), num_frames=8, tubelet_size=1, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                first_conv="patch_embed.proj", classifier="head", top1=top1)


def register_model(cfg: dict):
    """Register a constructor `fn(num_classes=400, **kw) -> VideoMamba` with its metadata."""
    def wrap(fn):
        _MODELS[fn.__name__] = fn
        PRETRAINED_CFGS[fn.__name__] = cfg
        return fn
    return wrap


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, num_classes: int = 400, **kw) -> VideoMamba:
    if name not in _MODELS:
        raise ValueError(f"unknown VideoMamba model {name!r}; available: {', '.join(list_models())}")
    return _MODELS[name](num_classes, **kw)


def _build(name: str, num_classes: int, arch: dict, kw: dict) -> VideoMamba:
    fixed = sorted(k for k in kw if k in arch)
    if fixed:
        raise ValueError(f"{name} fixes {fixed} ({arch}); build VideoMamba(...) for other sizes")
    model = VideoMamba(num_classes, **arch, **kw)
    model.pretrained_cfg = dict(PRETRAINED_CFGS[name], architecture=name)
    return model


@register_model(_cfg("t16", dict(k400=76.9, ssv2=65.1)))
def videomamba_tiny(num_classes: int = 400, **kw) -> VideoMamba:
    """VideoMamba-Ti: width 192, 24 bidirectional Mamba blocks, 16×16 patches."""
    return _build("videomamba_tiny", num_classes, dict(embed_dim=192, depth=24, patch_size=16), kw)


@register_model(_cfg("s16", dict(k400=79.3, ssv2=66.6)))
def videomamba_small(num_classes: int = 400, **kw) -> VideoMamba:
    """VideoMamba-S: width 384, 24 bidirectional Mamba blocks, 16×16 patches."""
    return _build("videomamba_small", num_classes, dict(embed_dim=384, depth=24, patch_size=16), kw)


@register_model(_cfg("m16", dict(k400=80.6, ssv2=67.3)))
def videomamba_middle(num_classes: int = 400, **kw) -> VideoMamba:
    """VideoMamba-M: width 576, 32 bidirectional Mamba blocks, 16×16 patches."""
    return _build("videomamba_middle", num_classes, dict(embed_dim=576, depth=32, patch_size=16), kw)
