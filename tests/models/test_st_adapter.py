import copy

import pytest
import timm
import torch
import torch.nn as nn

from pks4_lit.models.backbone import FrameBackbone
from pks4_lit.models.st_adapter import (ADAPTERS, STAdapter, add_adapters, add_st_adapters,
                                        find_blocks, set_num_frames)

ARCHS = [("efficientnet_lite0", {}), ("resnet18", {}), ("vit_tiny_patch16_224", {"img_size": 64})]


def _perturb(adapters, std=0.1):
    g = torch.Generator().manual_seed(0)
    for a in adapters.values():
        with torch.no_grad():
            a.up.weight.copy_(torch.randn(a.up.weight.shape, generator=g) * std)


@pytest.mark.parametrize("name,kw", ARCHS)
def test_identity_at_init_and_one_adapter_per_block(name, kw):
    torch.manual_seed(0)
    fb = FrameBackbone(name, **kw)
    x = torch.rand(2, 3, 3, 64, 64)
    with torch.no_grad():
        ref = fb(x)
    n_blocks = len(find_blocks(fb))
    adapters = add_st_adapters(fb)
    assert len(adapters) == n_blocks > 3
    assert fb.freeze == "adapters"
    out = fb(x)
    torch.testing.assert_close(out, ref)
    assert out.requires_grad


@pytest.mark.parametrize("name,kw", ARCHS)
def test_gradients_reach_every_adapter_and_no_backbone_weight(name, kw):
    torch.manual_seed(0)
    fb = FrameBackbone(name, **kw)
    adapters = add_st_adapters(fb)
    _perturb(adapters)
    fb.train()
    fb(torch.rand(2, 3, 3, 64, 64)).square().mean().backward()
    for key, a in adapters.items():
        assert a.down.weight.grad is not None and a.down.weight.grad.abs().sum() > 0, key
    trainable = {n for n, p in fb.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("st_adapters.") for n in trainable)
    assert all(p.grad is None for n, p in fb.named_parameters() if not n.startswith("st_adapters."))
    # frozen backbone modules stay in eval mode (BatchNorm statistics fixed), adapters train
    assert all(m.training for m in adapters.modules())
    assert not any(m.training for m in fb.model.modules() if isinstance(m, nn.BatchNorm2d))


@pytest.mark.parametrize("layout", ["map", "tokens"])
def test_adapter_mixes_only_neighbouring_frames_of_the_same_clip(layout):
    torch.manual_seed(0)
    B, T, C = 2, 6, 16
    a = STAdapter(C, 8, kernel_size=3, num_prefix_tokens=1 if layout == "tokens" else 0)
    nn.init.normal_(a.up.weight)
    a.num_frames = T
    x = torch.randn(B * T, C, 3, 3) if layout == "map" else torch.randn(B * T, 1 + 9, C)
    y = a(x)
    x2 = x.clone()
    x2[0] += 1.0                                   # clip 0, frame 0
    d = (a(x2) - y).flatten(1).abs().amax(1).view(B, T)
    assert d[0, 1] > 0                             # frame 1 sees frame 0
    assert d[0, 2:].max() == 0                     # kernel 3: frames >= 2 do not
    assert d[1].max() == 0                         # the other clip is untouched
    if layout == "tokens":                         # class token passes through unchanged
        torch.testing.assert_close(y[:, 0], x[:, 0])


def test_bare_timm_model_needs_num_frames():
    m = timm.create_model("resnet18", pretrained=False, num_classes=0)
    adapters = add_adapters("st_adapter", m, ratio=0.25)
    assert set(ADAPTERS) == {"st_adapter"}
    assert all(a.bottleneck == max(8, round(0.25 * a.dim)) for a in adapters.values())
    x = torch.rand(6, 3, 32, 32)
    with pytest.raises(RuntimeError, match="number of frames"):
        m(x)
    set_num_frames(m, 3)
    assert m(x).shape == (6, 512)
    set_num_frames(m, 4)
    with pytest.raises(ValueError, match="not a multiple"):
        m(x)


def test_deepcopy_keeps_its_own_adapters():
    fb = FrameBackbone("resnet18")
    adapters = add_st_adapters(fb)
    _perturb(adapters)
    fb2 = copy.deepcopy(fb)
    x = torch.rand(1, 3, 3, 32, 32)
    torch.testing.assert_close(fb2(x), fb(x))
    with torch.no_grad():
        for a in fb2.st_adapters.values():
            a.up.weight.zero_()
    assert not torch.allclose(fb2(x), fb(x))      # fb2's hooks use fb2's adapters


def test_clear_errors():
    with pytest.raises(ValueError, match="unknown adapter"):
        add_adapters("lora", FrameBackbone("resnet18"))
    with pytest.raises(ValueError, match="not supported"):
        add_st_adapters(nn.Sequential(nn.Conv2d(3, 3, 1)))
    fb = FrameBackbone("resnet18", freeze="none")
    with pytest.raises(ValueError, match="freeze='all'"):
        add_st_adapters(fb)
    fb = FrameBackbone("resnet18")
    add_st_adapters(fb)
    with pytest.raises(ValueError, match="already"):
        add_st_adapters(fb)


@pytest.mark.parametrize("name,feature_index,last_block", [
    ("efficientnet_lite0", 3, "blocks.4."),     # blocks.5 and blocks.6 follow the tap
    ("resnet18", 2, "layer2."),                 # layer3 and layer4 follow the tap
    ("regnetx_002", 2, "s2"),
])
def test_no_adapter_after_the_tap_and_every_adapter_learns(name, feature_index, last_block):
    torch.manual_seed(0)
    fb = FrameBackbone(name, feature_index=feature_index)
    adapters = add_st_adapters(fb)
    blocks = [n for n, _ in find_blocks(fb)]
    assert blocks[-1].startswith(f"model.{last_block}")
    assert len(adapters) == len(blocks)
    _perturb(adapters)
    fb.train()
    fb(torch.rand(2, 3, 3, 64, 64)).square().mean().backward()
    dead = [k for k, a in adapters.items() for n, p in a.named_parameters()
            if p.grad is None or not p.grad.abs().sum() > 0]
    assert not dead
