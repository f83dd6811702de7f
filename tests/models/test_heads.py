import inspect

import pytest
import torch
import torch.nn as nn

from pks4_lit.models import (PKS4, SSM, TEMPORAL_HEADS, TSN, build_temporal_head, list_temporal_heads,
                             register_temporal_head, temporal_head_name)

SMALL = dict(ssm=dict(d_state=4), global_ssm=dict(d_state=4), pks4=dict(d_state=4, prior_dim=8, radius=1),
             attention=dict(num_heads=2), tsn={})


def test_registry_lists_the_contract_names():
    assert set(list_temporal_heads()) >= {"tsn", "attention", "ssm", "global_ssm", "pks4"}
    assert list_temporal_heads() == sorted(TEMPORAL_HEADS)


def test_registry_holds_classes_taking_dim_first():
    for name, cls in TEMPORAL_HEADS.items():
        assert isinstance(cls, type) and issubclass(cls, nn.Module), name
        assert list(inspect.signature(cls).parameters)[0] == "dim", name
    assert (TEMPORAL_HEADS["tsn"], TEMPORAL_HEADS["ssm"], TEMPORAL_HEADS["pks4"]) == (TSN, SSM, PKS4)


@pytest.mark.parametrize("cls", [TSN, SSM, PKS4])
def test_head_arguments_are_typed_with_defaults(cls):
    """What a config can set: every argument after dim has a type hint and a default."""
    params = list(inspect.signature(cls).parameters.values())
    assert params[0].annotation in (int, "int")
    for p in params[1:]:
        assert p.annotation is not inspect.Parameter.empty and p.default is not inspect.Parameter.empty, p


def test_register_a_class_and_name_instances():
    @register_temporal_head("double")
    class Double(nn.Module):
        def __init__(self, dim: int, scale: float = 2.0):
            super().__init__()
            self.scale = scale

        def forward(self, X):
            return X * self.scale
    try:
        head = build_temporal_head("double", 8, scale=3.0)
        assert isinstance(head, Double) and head.scale == 3.0 and temporal_head_name(head) == "double"
        with pytest.raises(TypeError, match="dim"):
            register_temporal_head("bad", nn.Identity)
    finally:
        TEMPORAL_HEADS.pop("double")
    assert temporal_head_name(build_temporal_head("pks4", 8, d_state=2, prior_dim=4, radius=1)) == "pks4"


@pytest.mark.parametrize("name", sorted(SMALL))
def test_every_head_keeps_the_shape(name):
    head = build_temporal_head(name, 16, **SMALL[name])
    for T in (1, 5):
        X = torch.randn(2, T, 16, 3, 4)
        assert head(X).shape == X.shape


@pytest.mark.parametrize("name", ["attention", "ssm", "global_ssm", "pks4"])
def test_gradient_reaches_every_parameter(name):
    torch.manual_seed(0)
    head = build_temporal_head(name, 16, **SMALL[name])
    head(torch.randn(2, 4, 16, 3, 3)).pow(2).sum().backward()
    missing = [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_unknown_name_and_arguments_are_clear_errors():
    with pytest.raises(ValueError, match="available: .*pks4"):
        build_temporal_head("transformer", 16)
    with pytest.raises(ValueError, match=r"'ssm' got unknown argument\(s\) \['radius'\]"):
        build_temporal_head("ssm", 16, radius=3)
    with pytest.raises(ValueError, match="tsn"):
        build_temporal_head("tsn", 16, d_state=4)
    with pytest.raises(ValueError, match="divisible"):
        build_temporal_head("attention", 10, num_heads=4)


def test_ssm_is_pks4_without_priors():
    head = build_temporal_head("ssm", 16, d_state=4)
    assert isinstance(head, PKS4) and not head.use_priors and head.priors is None


def _frames_changed(head, X, t0):
    X2 = X.clone()
    X2[:, t0:] = torch.randn_like(X2[:, t0:])
    with torch.no_grad():
        return (head(X2) - head(X)).abs().amax((0, 2, 3, 4)) > 1e-6   # [T]


def test_attention_causal_mask():
    X = torch.randn(1, 6, 16, 2, 2)
    torch.manual_seed(0)
    causal = build_temporal_head("attention", 16, num_heads=2, causal=True).eval()
    ch = _frames_changed(causal, X, 3)
    assert not ch[:3].any() and ch[3:].all()
    full = build_temporal_head("attention", 16, num_heads=2).eval()
    assert _frames_changed(full, X, 3).all()


def test_attention_is_order_aware():
    head = build_temporal_head("attention", 16, num_heads=2).eval()
    X = torch.randn(1, 5, 16, 2, 2)
    with torch.no_grad():
        assert not torch.allclose(head(X.flip(1)).flip(1), head(X), atol=1e-5)


def test_global_ssm_scans_the_flattened_clip_in_t_major_order():
    torch.manual_seed(0)        # a random init can leave one later token's change under the threshold
    head = build_temporal_head("global_ssm", 16, d_state=4)
    X = torch.randn(1, 4, 16, 3, 3)
    X2 = X.clone()
    X2[0, 1, :, 1, 1] += torch.randn(16)                           # token index 1·9 + 4 = 13
    with torch.no_grad():
        ch = ((head(X2) - head(X)).abs().amax(2) > 1e-6)[0].flatten()  # [T·h·w] in t-major order
    assert not ch[:13].any() and ch[13:].all()                      # mixes across space, causal in scan order
