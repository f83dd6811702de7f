import inspect
from functools import partial

import pytest
import torch

from pks4_lit.models import PKS4, TSN, FrameBackbone, VideoClassifier
from pks4_lit.models.classifier import AdapterOptions


def make(head="pks4", **kw):
    torch.manual_seed(0)
    hk = dict(d_state=4, prior_dim=8, radius=1) if head == "pks4" else None
    return VideoClassifier.from_names(5, backbone="test_resnet", head=head, head_kwargs=hk, **kw)


def test_backbone_and_head_are_injected():
    torch.manual_seed(0)
    backbone = FrameBackbone("test_resnet")
    m = VideoClassifier(5, backbone, head=partial(PKS4, d_state=4, prior_dim=8, radius=1))
    assert m.backbone is backbone and isinstance(m.head, PKS4) and m.head.dim == backbone.out_dim
    assert m.head.priors.radius == 1 and m.fc.out_features == 5
    assert isinstance(VideoClassifier(3, FrameBackbone("test_resnet"), head=TSN).head, TSN)


def test_adapter_options_are_the_adapters_own_arguments():
    from pks4_lit.models.st_adapter import add_st_adapters

    params = list(inspect.signature(add_st_adapters).parameters.values())[1:]
    assert list(AdapterOptions.__annotations__) == [p.name for p in params]


@pytest.mark.parametrize("head", ["tsn", "attention", "ssm", "global_ssm", "pks4"])
def test_logits_shape(head):
    m = make(head)
    assert m(torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)).shape == (2, 5)


def test_uint8_and_float_inputs_agree_and_are_normalised_with_backbone_stats():
    m = make().eval()
    v = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(m(v), m(v.float() / 255))
    x = m.normalize(v)
    mean = torch.tensor(m.backbone.mean).view(1, 1, 3, 1, 1)
    std = torch.tensor(m.backbone.std).view(1, 1, 3, 1, 1)
    torch.testing.assert_close(x, (v.float() / 255 - mean) / std)


def test_forward_features():
    m = make().eval()
    v = torch.rand(2, 3, 3, 64, 64)
    out = m.forward_features(v)
    assert out["features"].shape == out["head"].shape == (2, 3, m.backbone.out_dim, 2, 2)
    assert out["internals"]["delta"].shape[:2] == (2, 3)
    torch.testing.assert_close(m.fc(m.norm(out["pooled"])), m(v))
    assert make("tsn").forward_features(v)["internals"] is None


@pytest.mark.parametrize("freeze", ["all", "last_n"])
def test_gradient_reaches_every_trainable_parameter(freeze):
    m = make(freeze=freeze, dropout=0.1).train()
    for mod in m.backbone.modules():            # timm zero-inits each block's last BN (zero_init_last),
        if isinstance(mod, torch.nn.BatchNorm2d):  # which would stop the gradient inside the block
            torch.nn.init.ones_(mod.weight)
    m(torch.rand(2, 3, 3, 64, 64)).logsumexp(-1).sum().backward()
    for n, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, n
        else:
            assert n.startswith("backbone.") and p.grad is None, n
    trainable_backbone = [n for n, p in m.backbone.named_parameters() if p.requires_grad]
    assert bool(trainable_backbone) == (freeze == "last_n")


def test_bad_input():
    m = make("tsn")
    with pytest.raises(ValueError, match=r"\[B,T,3,H,W\]"):
        m(torch.rand(2, 3, 64, 64))
    with pytest.raises(TypeError, match="uint8"):
        m(torch.zeros(1, 2, 3, 64, 64, dtype=torch.int32))
