import pytest
import torch

import inspect

from pks4_lit.models import PKS4, SSM


def make(**kw):
    torch.manual_seed(0)
    base = dict(d_state=4, prior_dim=8, radius=1, d_conv=3)
    base.update(kw)
    return PKS4(16, **base)


def changed_mask(m, X, X2):                                         # [T,h,w]: where outputs differ
    with torch.no_grad():
        return (m(X2) - m(X)).abs().amax(2)[0] > 1e-6


@pytest.mark.parametrize("kw", [dict(), dict(use_priors=False), dict(d_conv=0), dict(expand=2),
                                dict(bidirectional=True), dict(use_correlation=False)])
def test_shape_contract(kw):
    m = make(**kw)
    for T in (1, 6):
        X = torch.randn(2, T, 16, 3, 4)
        assert m(X).shape == X.shape


@pytest.mark.parametrize("use_priors", [True, False])
def test_causal_in_time(use_priors):
    m = make(use_priors=use_priors)
    X = torch.randn(1, 8, 16, 3, 3)
    X2 = X.clone()
    X2[:, 5:] = torch.randn_like(X2[:, 5:])
    ch = changed_mask(m, X, X2)
    assert not ch[:5].any() and ch[5:].all()


@pytest.mark.parametrize("use_priors", [True, False])
def test_bidirectional_sees_the_future(use_priors):
    m = make(use_priors=use_priors, bidirectional=True)
    X = torch.randn(1, 8, 16, 3, 3)
    X2 = X.clone()
    X2[:, 5:] = torch.randn_like(X2[:, 5:])
    assert changed_mask(m, X, X2)[:5].all()


def test_scanners_without_priors_are_strictly_per_location():
    m = make(use_priors=False)
    X = torch.randn(1, 6, 16, 5, 5)
    X2 = X.clone()
    X2[0, 2, :, 1, 3] += torch.randn(16)
    ch = changed_mask(m, X, X2).any(0)
    expect = torch.zeros(5, 5, dtype=torch.bool)
    expect[1, 3] = True
    assert torch.equal(ch, expect)


@pytest.mark.parametrize("radius,dilation", [(1, 1), (1, 2), (2, 1)])
def test_receptive_field_with_priors_is_bounded_by_the_correlation_window(radius, dilation):
    m = make(radius=radius, dilation=dilation)
    X = torch.randn(1, 5, 16, 13, 13)
    X2 = X.clone()
    X2[0, 2, :, 6, 6] += torch.randn(16)
    ch = changed_mask(m, X, X2)
    assert not ch[:2].any()
    ys, xs = torch.nonzero(ch.any(0), as_tuple=True)
    dist = torch.maximum((ys - 6).abs(), (xs - 6).abs())
    reach = radius * dilation + 1                                    # correlation + boundary gradient
    assert dist.max() <= reach and dist.max() >= radius * dilation


def test_gradient_reaches_every_parameter():
    for kw in (dict(), dict(bidirectional=True), dict(use_priors=False)):
        m = make(**kw)
        X = torch.randn(2, 5, 16, 3, 3, requires_grad=True)
        m(X).pow(2).sum().backward()
        missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
        assert not missing, (kw, missing)
        assert X.grad.abs().sum() > 0


def test_ablation_switches():
    full = make()
    assert full.priors is not None and full.scanners[0].x_proj.in_features == full.d_inner + 8
    off = make(use_priors=False)
    assert off.priors is None and off.scanners[0].x_proj.in_features == off.d_inner
    both_off = make(use_correlation=False, use_difference=False)
    assert not both_off.use_priors and both_off.priors is None
    diff_only = make(use_correlation=False)
    assert not diff_only.priors.use_correlation and diff_only.priors.use_difference
    assert diff_only(torch.randn(1, 3, 16, 2, 2)).shape == (1, 3, 16, 2, 2)


def test_internals():
    m = make(bidirectional=True, expand=2)
    X = torch.randn(2, 4, 16, 3, 5)
    Y, I = m.forward_with_internals(X)
    torch.testing.assert_close(Y, m(X))
    assert I["priors"].shape == (2, 4, 8, 3, 5)
    assert I["delta"].shape == I["delta_backward"].shape == (2, 4, 32, 3, 5)
    assert I["delta"].min() > 0
    assert I["displacement"].shape == (2, 4, 2, 3, 5) and I["boundaries"].shape == (2, 4, 1, 3, 5)


def test_ssm_parameter_init_follows_mamba():
    dt_min, dt_max = 0.01, 0.05
    m = PKS4(32, d_state=8, dt_min=dt_min, dt_max=dt_max, use_priors=False)
    s = m.scanners[0]
    dt = torch.nn.functional.softplus(s.dt_proj.bias)
    assert dt.min() >= dt_min * 0.999 and dt.max() <= dt_max * 1.001
    torch.testing.assert_close(-torch.exp(s.A_log), -torch.arange(1, 9.0).expand(32, 8))
    assert torch.all(s.D == 1)


def test_autocast_keeps_ssm_parameters_and_scan_in_fp32():
    m = make()
    X = torch.randn(1, 4, 16, 3, 3)
    dtypes = []
    import pks4_lit.models.pks4 as mod
    orig = mod.selective_scan

    def spy(u, delta, A, B, C, D=None, z=None, delta_bias=None, **kw):
        dtypes.extend(t.dtype for t in (u, delta, A, B, C, D, z, delta_bias))
        return orig(u, delta, A, B, C, D, z=z, delta_bias=delta_bias, **kw)
    mod.selective_scan = spy
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            Y = m(X)
    finally:
        mod.selective_scan = orig
    assert set(dtypes) == {torch.float32}
    assert all(p.dtype == torch.float32 for p in m.parameters())
    torch.testing.assert_close(Y.float(), m(X), atol=0.05, rtol=0.05)


def test_bad_input_shape():
    with pytest.raises(ValueError, match=r"\[B,T,16,h,w\]"):
        make()(torch.randn(1, 4, 8, 3, 3))


@pytest.mark.parametrize("bidirectional", [False, True])
def test_float64_gradcheck_through_priors_conv_and_scan(bidirectional):
    torch.manual_seed(0)
    m = PKS4(8, d_state=2, prior_dim=4, radius=1, d_conv=2, bidirectional=bidirectional).double()
    X = torch.randn(1, 3, 8, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(m, (X,), eps=1e-6, atol=1e-5, fast_mode=True)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_one_batched_scan_per_direction_over_all_locations(bidirectional, monkeypatch):
    import pks4_lit.models.pks4 as mod
    calls = []
    orig = mod.selective_scan

    def spy(u, delta, A, B, C, *a, **kw):
        calls.append((tuple(u.shape), tuple(delta.shape), tuple(B.shape), tuple(C.shape)))
        return orig(u, delta, A, B, C, *a, **kw)
    monkeypatch.setattr(mod, "selective_scan", spy)
    m = make(expand=2, bidirectional=bidirectional)
    m(torch.randn(2, 7, 16, 3, 4))
    seqs, d, N = 2 * 3 * 4, 32, 4
    assert calls == [((seqs, d, 7), (seqs, d, 7), (seqs, N, 7), (seqs, N, 7))] * (1 + bidirectional)


def test_forward_and_mix_return_tensors_internals_have_their_own_method():
    m = make()
    X = torch.randn(1, 3, 16, 2, 2)
    assert list(inspect.signature(m.forward).parameters) == ["X"] and isinstance(m(X), torch.Tensor)
    assert isinstance(m.mix(torch.randn(4, 3, 16), torch.randn(4, 3, 8)), torch.Tensor)
    out, deltas = m.mix_with_deltas(torch.randn(4, 3, 16), torch.randn(4, 3, 8))
    assert out.shape == (4, 3, 16) and deltas[0].shape == (4, 16, 3)


def test_ssm_takes_only_the_scanner_arguments():
    params = inspect.signature(SSM).parameters
    assert "use_correlation" not in params and "radius" not in params and list(params)[0] == "dim"
    torch.manual_seed(0)
    a = SSM(16, d_state=4, bidirectional=True)
    torch.manual_seed(0)
    b = PKS4(16, d_state=4, bidirectional=True, use_priors=False)
    X = torch.randn(1, 4, 16, 2, 2)
    torch.testing.assert_close(a(X), b(X))
    assert a.priors is None


def test_ssm_parameters_are_declared_no_weight_decay():
    from pks4_lit.optim import no_weight_decay_patterns

    patterns = no_weight_decay_patterns(make(bidirectional=True))
    assert {"scanners.0.A_log", "scanners.1.A_log", "scanners.0.D", "scanners.1.dt_proj.bias"} <= patterns


def test_recomputed_priors_give_the_same_gradients_and_keep_less_for_backward():
    def saved_bytes_and_grads(recompute):
        torch.manual_seed(0)
        head = PKS4(16, d_state=4, prior_dim=8, radius=1, recompute_priors=recompute)
        X = torch.randn(2, 12, 16, 5, 5, requires_grad=True)
        sizes = {}

        def pack(t):
            sizes[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            y = head(X)
        y.square().mean().backward()
        return sum(sizes.values()), [X.grad] + [p.grad for p in head.parameters()]

    kept, grads = saved_bytes_and_grads(True)
    kept_all, grads_all = saved_bytes_and_grads(False)
    assert kept < 0.75 * kept_all, (kept, kept_all)
    for g, g_all in zip(grads, grads_all):
        torch.testing.assert_close(g, g_all, rtol=1e-5, atol=1e-6)
