"""Every trainable parameter of VideoClassifier gets a gradient from a training step, for every
head, with and without ST-Adapters, under every freeze policy. A trainable parameter that never
gets one is dead weight, wrong in every parameter count, and under DDP with
find_unused_parameters=False it raises at the second step. ST-Adapter's up projection starts at
zero, so its down projection's first gradient is exactly 0: the first step checks that every
gradient exists, the second (after an optimiser step) that none is zero."""
import pytest
import torch
import torch.nn.functional as F

from pks4_lit.models import VideoClassifier

HEAD_KWARGS = dict(tsn=None, attention=dict(num_heads=2), ssm=dict(d_state=4), global_ssm=dict(d_state=4),
                   pks4=dict(d_state=4, prior_dim=8, radius=1))
SETUPS = [(None, "all"), (None, "none"), (None, "last_n"), ("st_adapter", "all")]
# the tap is in the middle of the network: the stages after it must not exist (issue 9 §1)
BACKBONE = dict(backbone="test_efficientnet", feature_index=2)


def two_steps(model):
    torch.manual_seed(1)
    video = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    target = torch.tensor([0, 3])
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.SGD(params, lr=0.05)
    grads = []
    for _ in range(2):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(video), target).backward()
        grads.append({n: p.grad for n, p in model.named_parameters() if p.requires_grad})
        opt.step()
    return grads


@pytest.mark.parametrize("adapter,freeze", SETUPS, ids=lambda v: str(v))
@pytest.mark.parametrize("head", sorted(HEAD_KWARGS))
def test_every_trainable_parameter_gets_a_gradient(head, adapter, freeze):
    torch.manual_seed(0)
    model = VideoClassifier.from_names(4, head=head, head_kwargs=HEAD_KWARGS[head], freeze=freeze, last_n=1,
                            adapter=adapter, **BACKBONE).train()
    first, second = two_steps(model)
    assert not [n for n, g in first.items() if g is None]
    assert not [n for n, g in second.items() if g is None or not g.abs().sum() > 0]
    trainable_backbone = [n for n in first if n.startswith("backbone.") and ".st_adapters." not in f".{n}"]
    assert bool(trainable_backbone) == (freeze != "all")
    if adapter:
        assert any(n.startswith("backbone.st_adapters.") for n in first)


@pytest.mark.parametrize("freeze", ["none", "last_n"])
def test_adapters_need_a_frozen_backbone(freeze):
    with pytest.raises(ValueError, match="freeze='all'"):
        VideoClassifier.from_names(4, head="tsn", freeze=freeze, adapter="st_adapter", **BACKBONE)


def test_efficientnet_lite0_at_blocks4_has_no_dead_parameter():
    # the configuration of conf/synthetic: EfficientNet-Lite0 tapped at blocks.4 (feature_index 3)
    torch.manual_seed(0)
    model = VideoClassifier.from_names(4, backbone="efficientnet_lite0", feature_index=3, head="tsn", freeze="none").train()
    first, second = two_steps(model)
    assert not [n for n, g in second.items() if g is None or not g.abs().sum() > 0]
    assert not any(".blocks.5." in n or ".blocks.6." in n for n in first)
