import pytest
import torch
import torch.nn.functional as F

from pks4_lit.models.attention import TemporalAttention

DIM = 112                 # efficientnet_lite0 blocks.4: frozen tokens of L2 norm ≈ 86 (channel std ≈ 7)


def frozen_like(B=2, T=8, h=3, w=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 7.0 * torch.randn(B, T, DIM, h, w, generator=g)          # token norm ≈ 7·√112 ≈ 74


def pooled(head, X):                                                 # what the classifier reads
    with torch.no_grad():
        return F.layer_norm(head(X).mean((1, 3, 4)), (DIM,))


def test_time_code_is_as_large_as_the_token_where_it_is_added():
    torch.manual_seed(0)
    head = TemporalAttention(DIM)
    X = frozen_like()
    tokens = head.norm_in(X.permute(0, 3, 4, 1, 2).reshape(-1, 8, DIM))   # where the code is added
    ratio = head.time_embedding(8).norm(dim=-1).mean() / tokens.norm(dim=-1).mean()
    assert 0.5 < ratio < 2


@pytest.mark.parametrize("seed", range(3))
def test_reversing_time_changes_the_pooled_output_at_frozen_feature_scale(seed):
    # at initialisation, on tokens of the real backbone's norm: the old head (a unit sinusoid added
    # to the raw features) changed the pooled output by ~0.1 %; the time code must be visible
    torch.manual_seed(seed)
    head = TemporalAttention(DIM).eval()
    X = frozen_like(seed=seed)
    p, q = pooled(head, X), pooled(head, X.flip(1))
    assert ((q - p).norm(dim=-1) / p.norm(dim=-1)).min() > 0.01


def test_input_scale_does_not_matter():
    torch.manual_seed(0)
    head = TemporalAttention(DIM).eval()
    X = frozen_like()
    torch.testing.assert_close(head(X), head(X / 7.0), rtol=1e-4, atol=1e-4)


def test_causal_mask_and_prefix_consistency():
    torch.manual_seed(0)
    head = TemporalAttention(16, num_heads=2, causal=True, max_frames=8).eval()
    X = torch.randn(1, 6, 16, 2, 2)
    X2 = X.clone()
    X2[:, 3:] = torch.randn_like(X2[:, 3:])
    with torch.no_grad():
        ch = (head(X2) - head(X)).abs().amax((0, 2, 3, 4)) > 1e-6
        assert not ch[:3].any() and ch[3:].all()
        torch.testing.assert_close(head(X[:, :4]), head(X)[:, :4])     # absolute positions


def test_longer_clips_resample_the_table_with_a_warning():
    torch.manual_seed(0)
    head = TemporalAttention(16, num_heads=2, max_frames=4)
    with pytest.warns(UserWarning, match="T=7 frames exceed max_frames=4"):
        out = head(torch.randn(1, 7, 16, 2, 2))
    assert out.shape == (1, 7, 16, 2, 2)
    E = head.time_embedding(7)
    torch.testing.assert_close(E[0], head.time_embed[0])
    torch.testing.assert_close(E[-1], head.time_embed[-1])
    head(torch.randn(1, 7, 16, 2, 2)).sum().backward()              # warned once; gradient flows
    assert head.time_embed.grad.abs().sum(-1).gt(0).all()


def test_every_parameter_learns_and_names_its_no_decay_table():
    torch.manual_seed(0)
    head = TemporalAttention(16, num_heads=2, depth=2, max_frames=5)
    head(torch.randn(2, 5, 16, 2, 2)).square().mean().backward()
    assert not [n for n, p in head.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert head.no_weight_decay() == {"time_embed"}


def test_bad_arguments():
    with pytest.raises(ValueError, match="divisible"):
        TemporalAttention(10, num_heads=4)
    with pytest.raises(ValueError, match="max_frames"):
        TemporalAttention(16, max_frames=0)
    with pytest.raises(ValueError, match=r"\[B,T,16,h,w\]"):
        TemporalAttention(16)(torch.randn(1, 3, 8, 2, 2))
