import pytest
import torch

from pks4_lit.models import PKS4, build_temporal_head
from pks4_lit.models.global_ssm import GlobalSSM
from pks4_lit.models.mamba_block import Mamba


def _changed_tokens(head, T=4, h=3, w=3, t=1, i=1, j=1):
    X = torch.randn(1, T, 16, h, w)
    X2 = X.clone()
    X2[0, t, :, i, j] += torch.randn(16)
    with torch.no_grad():
        return ((head(X2) - head(X)).abs().amax(2) > 1e-6)[0].flatten()   # [T·h·w], t-major


@pytest.mark.parametrize("depth", [1, 2])
def test_causal_scan_over_the_clip_in_t_major_order(depth):
    torch.manual_seed(0)
    ch = _changed_tokens(GlobalSSM(16, depth=depth, d_state=4))
    k = 1 * 9 + 1 * 3 + 1                                         # token (t=1, i=1, j=1)
    assert not ch[:k].any() and ch[k:].all()


def test_bidirectional_reaches_every_token():
    torch.manual_seed(0)
    assert _changed_tokens(GlobalSSM(16, d_state=4, bidirectional=True)).all()


def test_one_layer_is_x_plus_mamba_of_layernorm_and_not_pks4():
    torch.manual_seed(0)
    head = GlobalSSM(16, d_state=4)
    assert not isinstance(head, PKS4) and len(head.blocks) == 1
    block = head.blocks[0]
    assert isinstance(block.norm, torch.nn.LayerNorm) and isinstance(block.mixer, Mamba)
    X = torch.randn(2, 3, 16, 2, 2)
    tokens = X.permute(0, 1, 3, 4, 2).reshape(2, 12, 16)
    expect = (tokens + block.mixer(block.norm(tokens))).reshape(2, 3, 2, 2, 16).permute(0, 1, 4, 2, 3)
    torch.testing.assert_close(head(X), expect)


def test_every_parameter_learns_in_a_deep_bidirectional_stack():
    torch.manual_seed(0)
    head = GlobalSSM(16, depth=3, d_state=4, expand=0.5, bidirectional=True)
    head(torch.randn(2, 4, 16, 2, 2)).square().mean().backward()
    assert not [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]


# settings that put global_ssm's variants at the pks4 head's parameter count for the synthetic
# config (dim 112: efficientnet_lite0 blocks.4); the pks4 count is taken from the current code
BUDGET = [dict(depth=1, d_state=16, expand=1), dict(depth=1, d_state=4, expand=1, bidirectional=True),
          dict(depth=2, d_state=16, expand=0.5), dict(depth=2, d_state=4, expand=0.5, bidirectional=True),
          dict(depth=4, d_state=16, expand=0.25), dict(depth=4, d_state=4, expand=0.25, bidirectional=True)]


@pytest.mark.parametrize("kw", BUDGET, ids=lambda kw: "-".join(f"{k}{v}" for k, v in kw.items()))
def test_variants_at_the_pks4_parameter_budget(kw):
    count = lambda m: sum(p.numel() for p in m.parameters())     # noqa: E731
    pks4 = count(build_temporal_head("pks4", 112, d_state=8, prior_dim=16, radius=1, expand=1, d_conv=4))
    assert count(GlobalSSM(112, **kw)) == pytest.approx(pks4, rel=0.05)


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="depth"):
        GlobalSSM(16, depth=0)
    with pytest.raises(ValueError, match=r"\[B,T,16,h,w\]"):
        GlobalSSM(16)(torch.randn(2, 3, 8, 2, 2))
