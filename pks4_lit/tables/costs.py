"""Costs per clip of a trained model, rebuilt from its checkpoint (pks4_lit.bench.heads' counters)."""
from __future__ import annotations


def model_costs(ckpt: str) -> dict:
    """Train FLOPs/clip, tunable params, saved-for-backward MB at the training batch."""
    import torch

    from pks4_lit.bench.heads import count_flops, saved_bytes, tunable_params
    from pks4_lit.lit_module import PKS4Module

    torch.set_num_threads(1)
    blob = torch.load(ckpt, map_location="cpu", weights_only=False)
    dm = blob.get("datamodule_hyper_parameters", {})
    module = PKS4Module.load_from_checkpoint(ckpt, map_location="cpu")
    model = module.model.train()
    T, S, B = dm.get("num_frames", 8), dm.get("crop_size", 112), dm.get("batch_size", 8)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, 256, (1, T, 3, S, S), dtype=torch.uint8, generator=g)
    y1 = torch.zeros(1, dtype=torch.long)
    flops = count_flops(model, x1, y1)
    xb = torch.randint(0, 256, (B, T, 3, S, S), dtype=torch.uint8, generator=g)
    yb = torch.zeros(B, dtype=torch.long)
    return dict(train_GFLOPs_per_clip=flops["total"] / 1e9, tunable_params=tunable_params(model),
                saved_MB=saved_bytes(model, xb, yb) / 2 ** 20, batch_size=B, num_frames=T, crop_size=S)
