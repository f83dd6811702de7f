"""AdamW parameter groups and the learning-rate schedule of PKS4Module.

Weight decay follows timm's convention, from one source: a parameter is not decayed when it is
1-D or a bias, or when a module's `no_weight_decay()` names it (names relative to that module,
fnmatch patterns allowed, as timm's `param_groups_weight_decay` reads them). timm models declare
theirs (ViT: `pos_embed`, `cls_token`, ...), the PKS4 scanners declare `A_log`, `D`, `dt_proj.bias`,
the Mamba mixer (models/mamba_block.py: global_ssm, VideoMamba) its `A_log`/`A_b_log`/`D`/`D_b`, VideoMamba
its embeddings. mamba-ssm's per-parameter `_no_weight_decay` attribute is not used anywhere here.

Groups: {head, backbone} × {decay, no decay}. "backbone" is the pretrained backbone (at
`backbone_lr`); everything else — temporal head, classifier, adapters inside the backbone — is
new and trains at `lr`. Frozen parameters are left out.
"""
from __future__ import annotations

import fnmatch
import math

import torch.nn as nn


def no_weight_decay_patterns(model: nn.Module) -> set[str]:
    """Full-name patterns from every submodule's `no_weight_decay()`."""
    patterns = set()
    for prefix, module in model.named_modules():
        declared = getattr(module, "no_weight_decay", None)
        if callable(declared):
            patterns |= {f"{prefix}.{name}" if prefix else name for name in declared()}
    return patterns


def is_pretrained_backbone(name: str) -> bool:
    return name.startswith("backbone.") and ".st_adapters." not in f".{name}"


def param_groups(model: nn.Module, lr: float, backbone_lr: float, weight_decay: float) -> list[dict]:
    patterns = no_weight_decay_patterns(model)
    groups = {(part, decay): [] for part in ("head", "backbone") for decay in (True, False)}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        part = "backbone" if is_pretrained_backbone(name) else "head"
        no_decay = p.ndim <= 1 or name.endswith(".bias") or any(fnmatch.fnmatchcase(name, pat) for pat in patterns)
        groups[(part, not no_decay)].append(p)
    return [{"params": params, "lr": backbone_lr if part == "backbone" else lr,
             "weight_decay": weight_decay if decay else 0.0, "name": part + ("" if decay else "_no_decay")}
            for (part, decay), params in groups.items() if params]


def warmup_cosine(total_steps: int, warmup_steps: int, min_lr_ratio: float):
    """LR factor per optimiser step: linear warm-up to 1, then cosine down to `min_lr_ratio`."""
    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min((step - warmup_steps) / max(total_steps - warmup_steps, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return factor
