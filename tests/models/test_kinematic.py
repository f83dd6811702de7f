import pytest
import torch

from pks4_lit.models import KinematicPriorEncoder


def test_shape_and_internals():
    enc = KinematicPriorEncoder(16, prior_dim=12, radius=2)
    P, I = enc(torch.randn(2, 5, 16, 6, 7), return_internals=True)
    assert P.shape == (2, 5, 12, 6, 7)
    assert I["correlation"].shape == (2, 5, 25, 6, 7)
    assert I["displacement"].shape == (2, 5, 2, 6, 7)
    assert I["confidence"].shape == I["boundaries"].shape == (2, 5, 1, 6, 7)


def test_first_frame_has_zero_motion_and_self_correlation():
    enc = KinematicPriorEncoder(16, radius=1)
    X = torch.randn(2, 4, 16, 5, 5)
    _, I = enc(X, return_internals=True)
    assert torch.all(I["displacement"][:, 0] == 0)
    assert torch.all(I["boundaries"][:, 0] == 0)
    assert torch.all(I["difference_magnitude"][:, 0] == 0)
    assert I["difference_magnitude"][:, 1:].min() > 0
    centre = I["correlation"].shape[2] // 2                        # zero offset: cosine of X_0 with itself
    torch.testing.assert_close(I["correlation"][:, 0, centre], torch.ones(2, 5, 5))


@pytest.mark.parametrize("dy,dx,radius,dilation", [(1, -2, 2, 1), (2, -2, 1, 2), (0, 3, 3, 1)])
def test_displacement_recovers_a_global_shift(dy, dx, radius, dilation):
    torch.manual_seed(0)
    X0 = torch.randn(1, 1, 32, 12, 12)
    X1 = torch.roll(X0, shifts=(dy, dx), dims=(-2, -1))            # content moves by (dx, dy)
    enc = KinematicPriorEncoder(32, radius=radius, dilation=dilation, temperature=0.01)
    _, I = enc(torch.cat([X0, X1], 1), return_internals=True)
    m = radius * dilation                                           # away from wrapped borders
    d = I["displacement"][0, 1, :, m:-m, m:-m]
    torch.testing.assert_close(d[0], torch.full_like(d[0], float(dx)), atol=1e-3, rtol=0)
    torch.testing.assert_close(d[1], torch.full_like(d[1], float(dy)), atol=1e-3, rtol=0)
    assert I["confidence"][0, 1, 0, m:-m, m:-m].min() > 0.9


def test_boundaries_mark_where_displacement_changes():
    disp = torch.zeros(1, 2, 8, 8)
    disp[:, 0, :, 4:] = 2.0                                         # right half moves
    b = KinematicPriorEncoder.boundaries(disp)[0, 0]
    assert torch.all(b[:, :3] == 0) and torch.all(b[:, 5:] == 0) and torch.all(b[:, 3:5] > 0)


@pytest.mark.parametrize("corr,diff", [(True, True), (True, False), (False, True)])
def test_ablation_switches_set_fusion_inputs(corr, diff):
    r, diff_dim = 2, 5
    enc = KinematicPriorEncoder(16, prior_dim=6, radius=r, use_correlation=corr, use_difference=diff, diff_dim=diff_dim)
    expect = corr * ((2 * r + 1) ** 2 + 4) + diff * (diff_dim + 1)
    assert enc.fuse[0].in_features == expect
    P, I = enc(torch.randn(1, 3, 16, 4, 4), return_internals=True)
    assert P.shape == (1, 3, 6, 4, 4)
    assert ("displacement" in I) == corr and ("difference_magnitude" in I) == diff


def test_both_switches_off_is_an_error():
    with pytest.raises(ValueError, match="use_priors=False"):
        KinematicPriorEncoder(16, use_correlation=False, use_difference=False)


def test_causal_and_spatially_bounded():
    radius, dilation = 1, 2
    enc = KinematicPriorEncoder(8, prior_dim=4, radius=radius, dilation=dilation)
    X = torch.randn(1, 4, 8, 11, 11)
    X2 = X.clone()
    X2[0, 2, :, 5, 5] += 1.0
    changed = (enc(X2) - enc(X)).abs().amax(2)[0] > 0               # [T,h,w]
    assert not changed[:2].any()                                    # causal: frames before 2 unchanged
    assert changed[2:].any()
    ys, xs = torch.nonzero(changed.any(0), as_tuple=True)
    reach = radius * dilation + 1
    assert (ys - 5).abs().max() <= reach and (xs - 5).abs().max() <= reach
    assert max((ys - 5).abs().max(), (xs - 5).abs().max()) >= radius * dilation
