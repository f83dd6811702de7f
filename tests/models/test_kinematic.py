import math

import pytest
import torch
import torch.nn.functional as F

from pks4_lit.models import KinematicPriorEncoder, kinematic


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


def test_boundaries_switch_drops_exactly_the_boundary_channel():
    full = KinematicPriorEncoder(16, prior_dim=6, radius=1)
    off = KinematicPriorEncoder(16, prior_dim=6, radius=1, use_boundaries=False)
    assert off.fuse[0].in_features == full.fuse[0].in_features - 1
    x = torch.randn(1, 3, 16, 4, 4)
    _, I = off(x, return_internals=True)
    assert "boundaries" not in I and "displacement" in I
    # the boundary is the last correlation cue: dropping its weight column gives the same priors when it is 0
    k = 3 ** 2 + 3                                        # volume, (dx,dy), confidence, then the boundary
    sd = dict(full.state_dict())
    sd["fuse.0.weight"] = torch.cat([sd["fuse.0.weight"][:, :k], sd["fuse.0.weight"][:, k + 1:]], 1)
    off.load_state_dict(sd)
    with torch.no_grad():
        full.fuse[0].weight[:, k] = 0
    assert torch.allclose(off(x), full(x), atol=1e-6)
    from pks4_lit.models import PKS4

    assert sum(p.numel() for p in PKS4(16, prior_dim=6, radius=1, use_boundaries=False).parameters()) == \
        sum(p.numel() for p in PKS4(16, prior_dim=6, radius=1).parameters()) - 6


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


# ------------------------------------------------------------------ reading motion without bias
def smooth_field(C, h, w, T, step, angle_deg=0.0, seed=0, freq=0.8, n_waves=64):
    """[1,T,C,h,w] features sampled from a smooth random field (sums of plane waves, wavelengths of
    a few cells) translated by `step` cells per frame along `angle_deg` (x right, y down):
    neighbouring cells are strongly and unevenly similar, as backbone features are."""
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(C, n_waves, 2, generator=g, dtype=torch.float64) * freq
    phase = torch.rand(C, n_waves, generator=g, dtype=torch.float64) * 2 * math.pi
    amp = torch.randn(C, n_waves, generator=g, dtype=torch.float64)
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    a = math.radians(angle_deg)
    frames = []
    for t in range(T):
        x, y = xs - step * t * math.cos(a), ys - step * t * math.sin(a)      # content moves by +step
        arg = k[..., 0, None, None] * x + k[..., 1, None, None] * y + phase[..., None, None]
        frames.append((amp[..., None, None] * torch.cos(arg)).sum(1))
    return torch.stack(frames)[None].float()


@pytest.mark.parametrize("radius,dilation", [(1, 1), (3, 1), (1, 2)])
@pytest.mark.parametrize("features", ["random", "smooth"])
@pytest.mark.parametrize("path", ["gram", "shifted"])
def test_static_clip_reads_exactly_zero_motion_everywhere(radius, dilation, features, path, monkeypatch):
    monkeypatch.setattr(kinematic, "GRAM_MAX_POSITIONS", 10**9 if path == "gram" else 0)
    torch.manual_seed(0)
    X0 = torch.randn(2, 1, 24, 6, 7) if features == "random" else smooth_field(24, 6, 7, 1, 0.0).expand(2, -1, -1, -1, -1)
    X = X0.repeat(1, 5, 1, 1, 1)                                    # the same frame 5 times
    enc = KinematicPriorEncoder(24, radius=radius, dilation=dilation)
    _, I = enc(X, return_internals=True)
    assert torch.count_nonzero(I["displacement"]) == 0             # every t, every cell, borders too
    assert torch.count_nonzero(I["boundaries"]) == 0
    assert torch.count_nonzero(I["difference_magnitude"]) == 0


def test_static_clip_reads_zero_motion_inside_pks4():
    from pks4_lit.models import PKS4

    X = smooth_field(16, 5, 5, 1, 0.0).repeat(1, 4, 1, 1, 1)
    _, I = PKS4(16, d_state=4, prior_dim=8, radius=3).forward_with_internals(X)
    assert torch.count_nonzero(I["displacement"]) == 0 and torch.count_nonzero(I["boundaries"]) == 0


@pytest.mark.parametrize("radius", [1, 3])
@pytest.mark.parametrize("angle", [0, 90, 180, 270])
def test_sub_cell_shift_has_the_right_sign_and_grows_with_the_shift(radius, angle):
    u = torch.tensor([math.cos(math.radians(angle)), math.sin(math.radians(angle))])
    keep = torch.ones(7, 7, dtype=torch.bool)                        # not the edge the content enters
    keep[:, 0] &= angle != 0
    keep[:, -1] &= angle != 180
    keep[0, :] &= angle != 90
    keep[-1, :] &= angle != 270
    means = []
    for step in (0.125, 0.25, 0.375, 0.5):
        X = smooth_field(32, 7, 7, 3, step, angle)
        _, I = KinematicPriorEncoder(32, radius=radius)(X, return_internals=True)
        along = torch.einsum("tchw,c->thw", I["displacement"][0, 1:], u)   # [T-1,h,w]
        assert along[:, keep].min() > 0, (step, along[:, keep].min())   # right sign at every cell
        means.append(along[:, keep].mean())
    assert all(b > a for a, b in zip(means, means[1:])), means      # monotone in the shift


@pytest.mark.parametrize("radius,step", [(2, 1), (3, 1), (3, 2)])
def test_whole_cell_shift_is_recovered_on_self_similar_features(radius, step):
    X = smooth_field(32, 12, 12, 2, float(step), seed=1)
    _, I = KinematicPriorEncoder(32, radius=radius)(X, return_internals=True)   # default temperature
    m = radius + step                                               # interior: source and window inside
    d = I["displacement"][0, 1, :, m:-m, m:-m]
    assert (d[0] - step).abs().max() < 0.08 and d[1].abs().max() < 0.08    # window-tail truncation only


@pytest.mark.parametrize("path", ["gram", "shifted"])
@pytest.mark.parametrize("h,w,radius,dilation", [(6, 6, 1, 1), (6, 6, 3, 1), (7, 5, 1, 1), (9, 8, 2, 2)])
def test_correlation_volumes_match_the_shifted_product_reference(h, w, radius, dilation, path, monkeypatch):
    """Both paths that compute the volumes (Gram + gather on small maps, shifted products on large
    ones): values and gradients match a float64 shifted-products reference."""
    monkeypatch.setattr(kinematic, "GRAM_MAX_POSITIONS", 10**9 if path == "gram" else 0)
    enc = KinematicPriorEncoder(16, radius=radius, dilation=dilation)
    idx, valid = enc.window(h, w, "cpu")
    g = torch.Generator().manual_seed(0)
    f64 = torch.randn(3, h * w, 16, generator=g, dtype=torch.float64)
    d64 = torch.randn(3, h * w, 16, generator=g, dtype=torch.float64)
    w64 = torch.randn(2, 3, h * w, idx.shape[1], generator=g, dtype=torch.float64)

    def reference(f, d):                                            # [2,N,hw,K]: shifted zero-padded maps
        p = radius * dilation
        fm = f.unflatten(1, (h, w))
        keys = F.pad(torch.stack([f, d]).unflatten(2, (h, w)), (0, 0, p, p, p, p))
        vols = [(fm * keys[:, :, p - dy:p - dy + h, p - dx:p - dx + w]).sum(-1)
                for dx, dy in enc.offsets.long().tolist()]
        return torch.stack(vols, -1).flatten(2, 3)

    results = []
    for fn, dt in ((reference, torch.float64), (lambda f, d: enc.volumes(f, d, h, w), torch.float32)):
        f, d = f64.to(dt).detach().requires_grad_(), d64.to(dt).detach().requires_grad_()
        v = fn(f, d)
        (v * w64.to(dt)).sum().backward()
        results.append((v.detach().double(), f.grad.double(), d.grad.double()))
    for a, b in zip(*results):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=0)


def test_bench_candidates_compute_the_encoders_volumes():
    """`pks4 bench correlation` times the same computation as the encoder, whichever way."""
    from pks4_lit.bench import correlation as bench

    enc = KinematicPriorEncoder(16, radius=2)
    f = F.normalize(torch.randn(3, 30, 16), dim=-1)
    keys = torch.stack([f, torch.randn(3, 30, 16)])
    expect = enc.volumes(f, keys[1], 5, 6)
    for name, fn in bench.CANDIDATES.items():
        torch.testing.assert_close(bench.masked(fn, f, keys, 5, 6, 2), expect, atol=1e-6, rtol=0, msg=name)
    out = bench.run_config(N=2, C=16, size=4, r=1, reps=1, names=list(bench.CANDIDATES))
    assert set(out["ms"]) == set(bench.CANDIDATES) and out["fastest"] in bench.CANDIDATES


@pytest.mark.parametrize("T", [1, 2, 5])
def test_frame_difference_is_the_shifted_subtraction_with_its_gradient(T):
    from pks4_lit.models.kinematic import frame_difference
    v = torch.randn(2, T, 3, 4, dtype=torch.float64, requires_grad=True)
    d = frame_difference(v)
    assert torch.count_nonzero(d[:, 0]) == 0                                    # frame 0: exactly 0
    torch.testing.assert_close(d, v - torch.cat([v[:, :1], v[:, :-1]], 1), rtol=0, atol=0)
    assert torch.autograd.gradcheck(frame_difference, (v,))
