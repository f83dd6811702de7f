"""Streaming: PKS4.step / VideoClassifier.stream against the offline forward, frame by frame."""
import pytest
import torch

from pks4_lit.models import PKS4, VideoClassifier

HEAD_KW = dict(d_state=4, prior_dim=8, radius=1)


@pytest.fixture(autouse=True)
def one_thread():
    """Hundreds of tiny per-frame ops: one thread avoids OpenMP spin-waits on a busy machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def perturb(module, scale=0.3, seed=1):
    """Move every parameter off its initial value (D ≠ 1, conv bias ≠ 0, ...), like training would."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g) * (p.abs().mean() + 0.1))
    return module


def run_steps(head, X):                                               # X [B,T,C,h,w] → [B,T,C,h,w]
    B, T, C, h, w = X.shape
    state = head.allocate_state(B, h, w, X.device, X.dtype)
    return torch.stack([head.step(X[:, t], state)[0] for t in range(T)], 1)


@pytest.mark.parametrize("kw", [
    dict(),                                                   # correlation + difference priors
    dict(use_difference=False),
    dict(use_correlation=False, radius=2),
    dict(use_priors=False),                                   # the `ssm` head
    dict(d_conv=0),
    dict(d_conv=1),
    dict(d_conv=2, expand=2, d_state=3),
], ids=["priors", "corr", "diff", "no_priors", "no_conv", "conv1", "conv2_expand2"])
def test_pks4_step_equals_forward_on_every_prefix(kw):
    torch.manual_seed(0)
    head = perturb(PKS4(16, **{**HEAD_KW, **kw})).eval()
    X = torch.randn(3, 64, 16, 5, 4)
    with torch.no_grad():
        Y = run_steps(head, X)
        full = head(X)
        for t in (0, 1, 2, 3, 17, 63):                        # literally the forward on the prefix
            torch.testing.assert_close(Y[:, t], head(X[:, :t + 1])[:, t], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(Y, full, atol=1e-4, rtol=1e-4)  # causal: every t at once


def test_pks4_step_float64_is_exact_to_rounding():
    torch.manual_seed(0)
    head = perturb(PKS4(16, **HEAD_KW)).double().eval()
    X = torch.randn(2, 40, 16, 4, 4, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(run_steps(head, X), head(X), atol=1e-11, rtol=1e-11)


def test_pks4_state_shapes_and_bad_frames():
    head = PKS4(16, d_conv=4, expand=2, **HEAD_KW)
    s = head.allocate_state(2, 3, 5)
    assert s.conv.shape == (30, 32, 3) and s.ssm.shape == (30, 32, 4) and s.prev is None
    assert s.ssm.dtype == torch.float32
    with pytest.raises(ValueError, match=r"\[B,h,w\]=\(2, 3, 5\)"):
        head.step(torch.randn(2, 16, 3, 4), s)
    with pytest.raises(ValueError, match=r"expects \[B,16,h,w\]"):
        head.step(torch.randn(2, 8, 3, 5), s)


# ---------------------------------------------------------------------------- VideoClassifier.stream
def make(head="pks4", head_kwargs=None, **kw):
    torch.manual_seed(0)
    hk = head_kwargs if head_kwargs is not None else (dict(HEAD_KW) if head == "pks4" else None)
    return VideoClassifier.from_names(5, backbone="test_resnet", head=head, head_kwargs=hk, **kw).eval()


@pytest.mark.parametrize("head,hk", [("pks4", None), ("pks4", dict(HEAD_KW, use_priors=False)),
                                     ("ssm", dict(d_state=4)), ("tsn", None)],
                         ids=["pks4", "pks4_no_priors", "ssm", "tsn"])
def test_stream_logits_equal_forward_on_every_prefix(head, hk):
    m = perturb(make(head, hk), scale=0.1)
    v = torch.randint(0, 256, (2, 12, 3, 64, 64), dtype=torch.uint8)     # 2×2 feature maps
    logits = list(m.stream(v))
    assert len(logits) == 12 and logits[0].shape == (2, 5)
    with torch.no_grad():
        for t in range(12):
            torch.testing.assert_close(logits[t], m(v[:, :t + 1]), atol=1e-4, rtol=1e-4)


def test_stream_64_frames_after_training_steps():
    m = make("pks4", dict(HEAD_KW, d_state=8)).train()
    opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=0.05)
    torch.manual_seed(1)
    for _ in range(4):                                       # a few real optimiser steps
        v = torch.rand(2, 6, 3, 64, 64)
        loss = torch.nn.functional.cross_entropy(m(v), torch.tensor([1, 3]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    m.eval()
    v = torch.rand(3, 64, 3, 64, 64)
    logits = torch.stack(list(m.stream(v)), 1)                           # [B,T,K]
    with torch.no_grad():
        for t in (0, 5, 31, 63):
            torch.testing.assert_close(logits[:, t], m(v[:, :t + 1]), atol=1e-4, rtol=1e-4)


def test_stream_accepts_any_iterable_of_frames_and_float():
    m = make()
    v = torch.randint(0, 256, (2, 5, 3, 64, 64), dtype=torch.uint8)
    from_tensor = torch.stack(list(m.stream(v)))
    from_generator = torch.stack(list(m.stream(v[:, t] for t in range(5))))
    from_float = torch.stack(list(m.stream(list((v.float() / 255).unbind(1)))))
    torch.testing.assert_close(from_generator, from_tensor, rtol=0, atol=0)
    torch.testing.assert_close(from_float, from_tensor, atol=1e-5, rtol=1e-5)


def test_window_pools_the_last_n_head_outputs():
    m = perturb(make(), scale=0.1)
    v = torch.rand(2, 9, 3, 64, 64)
    logits = list(m.stream(v, window=3))
    with torch.no_grad():
        per_frame = m.forward_features(v)["head"].mean(dim=(3, 4))               # [B,T,C]
        for t in range(9):
            expect = m.fc(m.norm(per_frame[:, max(0, t - 2):t + 1].mean(1)))
            torch.testing.assert_close(logits[t], expect, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="window must be None or >= 1"):
        m.stream(v, window=0)


def test_batch_elements_do_not_share_state():
    m = make()
    v = torch.randint(0, 256, (2, 10, 3, 64, 64), dtype=torch.uint8)
    w = v.clone()
    w[1] = torch.randint(0, 256, w[1].shape, dtype=torch.uint8)        # change element 1 only
    a, b = torch.stack(list(m.stream(v))), torch.stack(list(m.stream(w)))   # [T,B,K]
    torch.testing.assert_close(b[:, 0], a[:, 0], atol=1e-6, rtol=1e-6)
    assert (b[:, 1] - a[:, 1]).abs().amax(-1).min() > 1e-3             # element 1 did change


def test_stream_leaves_grad_mode_alone_and_keeps_no_graph():
    m = make()
    it = m.stream(torch.rand(1, 3, 3, 64, 64))
    out = next(it)
    assert torch.is_grad_enabled() and not out.requires_grad


@pytest.mark.parametrize("kw,match", [
    (dict(head="attention"), "'attention' cannot stream: temporal self-attention"),
    (dict(head="global_ssm"), "'global_ssm' cannot stream: it scans the clip's T·h·w tokens"),
    (dict(head="pks4", head_kwargs=dict(HEAD_KW, bidirectional=True)), "'pks4' cannot stream: .*bidirectional"),
    (dict(head="ssm", head_kwargs=dict(bidirectional=True)), "'ssm' cannot stream: .*frames that have not arrived"),
    (dict(head="tsn", adapter="st_adapter"), "ST-Adapters cannot stream"),
])
def test_heads_that_cannot_stream_say_so_before_any_frame(kw, match):
    m = make(**kw)
    with pytest.raises(NotImplementedError, match=match):
        m.stream(torch.rand(1, 2, 3, 64, 64))                # raised by the call, not at next()


def test_bad_frames():
    m = make("tsn")
    with pytest.raises(ValueError, match=r"\[B,T,3,H,W\] or an iterable"):
        m.stream(torch.rand(1, 3, 64, 64))
    with pytest.raises(ValueError, match=r"frame 1 has shape"):
        list(m.stream([torch.rand(1, 3, 64, 64), torch.rand(2, 3, 64, 64)]))
    with pytest.raises(ValueError, match=r"frame 0 must be a tensor \[B,3,H,W\]"):
        list(m.stream([torch.rand(3, 64, 64)]))
