import argparse
import math

import pytest
import torch

from pks4_lit.models.videomamba import (PRETRAINED_CFGS, VideoMamba, create_model, list_models,
                                        load_checkpoint, videomamba_tiny)

SMALL = dict(img_size=32, patch_size=16, num_frames=4, embed_dim=32, depth=2, drop_path_rate=0.0)


def official_shapes(C, depth, grid, T, K, N=16, expand=2, d_conv=4, tubelet=1, patch=16):
    """Key -> shape of the official VisionMamba (videomamba/video_sm/models/videomamba.py) with
    bimamba=True, rms_norm=True: written from its definition, independently of our module."""
    d, R = expand * C, math.ceil(C / 16)
    shapes = {"patch_embed.proj.weight": (C, 3, tubelet, patch, patch), "patch_embed.proj.bias": (C,),
              "cls_token": (1, 1, C), "pos_embed": (1, grid * grid + 1, C),
              "temporal_pos_embedding": (1, T // tubelet, C), "norm_f.weight": (C,),
              "head.weight": (K, C), "head.bias": (K,)}
    for i in range(depth):
        p = f"layers.{i}."
        shapes.update({p + "norm.weight": (C,), p + "mixer.in_proj.weight": (2 * d, C),
                       p + "mixer.out_proj.weight": (C, d), p + "mixer.A_log": (d, N), p + "mixer.A_b_log": (d, N)})
        for s in ("", "_b"):
            shapes.update({p + f"mixer.conv1d{s}.weight": (d, 1, d_conv), p + f"mixer.conv1d{s}.bias": (d,),
                           p + f"mixer.x_proj{s}.weight": (R + 2 * N, d), p + f"mixer.dt_proj{s}.weight": (d, R),
                           p + f"mixer.dt_proj{s}.bias": (d,), p + f"mixer.D{s}": (d,)})
    return shapes


def official_state_dict(seed=0, **kw):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(s, generator=g) for k, s in official_shapes(**kw).items()}


@pytest.mark.parametrize("name,C,depth,millions", [("videomamba_tiny", 192, 24, 7), ("videomamba_small", 384, 24, 26),
                                                   ("videomamba_middle", 576, 32, 74)])
def test_published_variants_have_the_official_keys_shapes_and_size(name, C, depth, millions):
    with torch.device("meta"):
        m = create_model(name, num_classes=400)
    ours = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    assert ours == official_shapes(C, depth, grid=14, T=8, K=400)
    assert round(sum(p.numel() for p in m.parameters()) / 1e6) == millions   # paper: 7M / 26M / 74M
    cfg = PRETRAINED_CFGS[name]
    assert m.pretrained_cfg["architecture"] == name and cfg["mean"] == (0.485, 0.456, 0.406)
    assert cfg["files"]["k400_f8"].endswith("_k400_f8_res224.pth")


def test_registry():
    assert list_models() == ["videomamba_middle", "videomamba_small", "videomamba_tiny"]
    with pytest.raises(ValueError, match="unknown VideoMamba model 'videomamba_huge'"):
        create_model("videomamba_huge")
    with pytest.raises(ValueError, match="fixes"):
        videomamba_tiny(10, embed_dim=64)


@pytest.mark.parametrize("wrap", ["model", "module", "module-prefix", "bare"])
def test_official_checkpoint_loads_exactly(tmp_path, wrap):
    sd = official_state_dict(C=32, depth=2, grid=2, T=4, K=5)
    if wrap == "module-prefix":
        ckpt = {"model": {"module." + k: v for k, v in sd.items()}, "epoch": 3}
    elif wrap == "bare":
        ckpt = sd
    else:   # the official training script saves its argparse.Namespace beside the weights
        ckpt = {wrap: sd, "args": argparse.Namespace(model="videomamba_tiny"), "epoch": 3}
    f = tmp_path / "ckpt.pth"
    torch.save(ckpt, f)
    m = VideoMamba(5, checkpoint_path=str(f), **SMALL)
    for k, v in m.state_dict().items():
        assert torch.equal(v, sd[k]), k


def test_other_resolution_frames_and_classes_are_adapted(tmp_path):
    sd = official_state_dict(C=32, depth=2, grid=14, T=8, K=400)          # a 224 px, 8-frame K400 model
    sd["pos_embed"][:, 1:] = 0.5                                          # constant grid: resize keeps it
    sd["temporal_pos_embedding"][:] = torch.linspace(0, 1, 8)[None, :, None]
    torch.save({"model": sd}, tmp_path / "k400.pth")
    torch.manual_seed(0)
    m = VideoMamba(7, **{**SMALL, "num_frames": 16})                       # 32 px (2x2 grid), 16 frames, 7 classes
    head = m.head.weight.clone()
    report = load_checkpoint(m, str(tmp_path / "k400.pth"))
    assert set(report["resized"]) == {"pos_embed", "temporal_pos_embedding"}
    assert report["dropped"] == ["head.weight", "head.bias"] and torch.equal(m.head.weight, head)
    assert torch.equal(m.pos_embed[:, 0], sd["pos_embed"][:, 0])          # class-token position untouched
    torch.testing.assert_close(m.pos_embed[:, 1:], torch.full((1, 4, 32), 0.5))
    te = m.temporal_pos_embedding[0, :, 0]
    assert te.shape == (16,) and (te.diff() >= 0).all() and 0 <= te.min() and te.max() <= 1
    assert torch.equal(m.layers[1].mixer.A_b_log, sd["layers.1.mixer.A_b_log"])


def test_imagenet_image_checkpoint_is_inflated(tmp_path):
    sd = official_state_dict(C=32, depth=2, grid=2, T=4, K=1000, tubelet=1)
    sd["patch_embed.proj.weight"] = sd["patch_embed.proj.weight"][:, :, 0]   # Conv2d [C,3,16,16]
    del sd["temporal_pos_embedding"]                                       # image models have none
    torch.save({"model": sd}, tmp_path / "in1k.pth")
    m = VideoMamba(5, **{**SMALL, "tubelet_size": 2})
    report = load_checkpoint(m, str(tmp_path / "in1k.pth"))
    assert report["inflated"] == ["patch_embed.proj.weight"] and "temporal_pos_embedding" in report["kept_init"]
    w = m.patch_embed.proj.weight                                          # [C,3,2,16,16]: kernel at frame 1
    assert torch.equal(w[:, :, 1], sd["patch_embed.proj.weight"]) and not w[:, :, 0].any()


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    torch.save(official_state_dict(C=32, depth=3, grid=2, T=4, K=5), tmp_path / "deep.pth")
    with pytest.raises(ValueError, match=r"unexpected: \['layers.2"):
        VideoMamba(5, checkpoint_path=str(tmp_path / "deep.pth"), **SMALL)
    with pytest.raises(FileNotFoundError, match="checkpoint_path"):
        VideoMamba(5, checkpoint_path=str(tmp_path / "missing.pth"), **SMALL)


def _tokens_changed(model, t, i, j):
    x = torch.rand(1, 4, 3, 32, 32)
    x2 = x.clone()
    x2[0, t, :, 16 * i:16 * (i + 1), 16 * j:16 * (j + 1)] += 0.5            # one 16x16 patch of frame t
    with torch.no_grad():                   # a causal scan leaves earlier tokens bit-identical
        return ((model.forward_tokens(x2) - model.forward_tokens(x)).abs().amax(-1) > 0)[0]


def test_spatial_first_token_order_with_the_class_token_first():
    torch.manual_seed(0)
    causal = VideoMamba(5, **{**SMALL, "bidirectional": False}).eval()
    ch = _tokens_changed(causal, t=2, i=1, j=0)
    k = 1 + 2 * 4 + 1 * 2 + 0                                             # cls, 2 frames of 2x2, row 1
    assert ch.shape == (1 + 4 * 4,) and not ch[:k].any() and ch[k:].all()
    bi = VideoMamba(5, **SMALL).eval()
    assert _tokens_changed(bi, t=2, i=1, j=0).all()                       # backward scan reaches the cls token


def test_forward_from_pixels_and_every_parameter_learns():
    torch.manual_seed(0)
    m = VideoMamba(5, **SMALL).train()
    v = torch.randint(0, 256, (2, 4, 3, 32, 32), dtype=torch.uint8)
    logits = m(v)
    assert logits.shape == (2, 5)
    logits.logsumexp(-1).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    # the head reads token 0 only, where the last block's FORWARD scan has an empty state: its A
    # cannot matter (as in the official model); every other parameter gets a non-zero gradient
    zero = [n for n, p in m.named_parameters() if not p.grad.abs().sum() > 0]
    assert zero == [f"layers.{SMALL['depth'] - 1}.mixer.A_log"]
    m.eval()
    with torch.no_grad():
        torch.testing.assert_close(m(v), m(v.float() / 255))
    from pks4_lit.optim import no_weight_decay_patterns
    assert {"pos_embed", "cls_token", "temporal_pos_embedding", "layers.0.mixer.A_log"} <= no_weight_decay_patterns(m)


def test_bad_input_is_a_clear_error():
    m = VideoMamba(5, **SMALL)
    with pytest.raises(ValueError, match="built for 4 frames of 32x32 px, got 8 frames"):
        m(torch.rand(1, 8, 3, 32, 32))
    with pytest.raises(ValueError, match=r"\[B,T,3,H,W\]"):
        m(torch.rand(1, 3, 32, 32))
    with pytest.raises(TypeError, match="uint8"):
        m(torch.zeros(1, 4, 3, 32, 32, dtype=torch.int32))
    with pytest.raises(ValueError, match="multiple of patch_size"):
        VideoMamba(5, img_size=40)


def test_gradient_checkpointing_gives_the_same_gradients():
    grads = []
    for ckpt in (False, True):
        torch.manual_seed(0)
        m = VideoMamba(5, grad_checkpointing=ckpt, **SMALL).train()
        torch.manual_seed(1)
        m(torch.rand(2, 4, 3, 32, 32)).logsumexp(-1).sum().backward()
        grads.append({n: p.grad for n, p in m.named_parameters()})
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, msg=n)
