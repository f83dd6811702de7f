"""Backend choice for selective_scan and causal_conv1d: PKS4_*_IMPL switches, fused-kernel limits,
and the dtype/layout casts made before calling mamba-ssm's kernel (checked with a stand-in)."""
import importlib
import logging

import pytest
import torch

from pks4_lit.ops import causal_conv1d, conv_backend, scan_backend, selective_scan, selective_scan_ref
from pks4_lit.ops import dispatch
from pks4_lit.ops.selective_scan import _call_fused, _fused_limits

U = torch.zeros(2, 4, 5)


def scan_inputs():
    g = torch.Generator().manual_seed(0)
    return dict(u=torch.randn(2, 4, 5, generator=g), delta=torch.rand(2, 4, 5, generator=g),
                A=-torch.rand(4, 3, generator=g), B=torch.randn(2, 3, 5, generator=g),
                C=torch.randn(2, 2, 3, 5, generator=g))


def test_auto_on_cpu(monkeypatch):
    """The scan: the fused CPU kernel when it builds, else PyTorch; the conv: PyTorch."""
    from pks4_lit.ops.scan_cpu import available
    monkeypatch.delenv("PKS4_SCAN_IMPL", raising=False)
    monkeypatch.delenv("PKS4_CONV_IMPL", raising=False)
    assert scan_backend(U, 16) == ("cpu" if available()[0] else "torch")
    assert conv_backend(U, 4) == "torch"


@pytest.mark.parametrize("impl", ["torch", "ref", " REF "])
def test_forced_pytorch_paths(monkeypatch, impl):
    monkeypatch.setenv("PKS4_SCAN_IMPL", impl)
    assert scan_backend(U) == impl.strip().lower()
    x = scan_inputs()
    torch.testing.assert_close(selective_scan(**x), selective_scan_ref(**x))


def test_forced_ref_runs_the_reference(monkeypatch):
    mod = importlib.import_module("pks4_lit.ops.selective_scan")  # the attribute is the function
    calls = []
    monkeypatch.setattr(mod, "selective_scan_ref", lambda *a: calls.append(a) or "ref-called")
    monkeypatch.setenv("PKS4_SCAN_IMPL", "ref")
    assert selective_scan(**scan_inputs()) == "ref-called" and len(calls) == 1


def test_forced_cuda_without_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("PKS4_SCAN_IMPL", "cuda")
    with pytest.raises(RuntimeError, match="PKS4_SCAN_IMPL=cuda.*not CUDA"):
        selective_scan(**scan_inputs())
    monkeypatch.setenv("PKS4_CONV_IMPL", "cuda")
    with pytest.raises(RuntimeError, match="PKS4_CONV_IMPL=cuda.*not CUDA"):
        causal_conv1d(U, torch.zeros(4, 4))


def test_bad_env_value(monkeypatch):
    monkeypatch.setenv("PKS4_SCAN_IMPL", "triton")
    with pytest.raises(ValueError, match="PKS4_SCAN_IMPL='triton' is not one of auto, cuda, cpu, torch, ref"):
        scan_backend(U)
    monkeypatch.setenv("PKS4_CONV_IMPL", "ref")
    with pytest.raises(ValueError, match="PKS4_CONV_IMPL='ref'"):
        conv_backend(U)


def test_fused_limits():
    assert _fused_limits(392, 96, 16, torch.bfloat16) is None
    assert "N=257" in _fused_limits(2, 4, 257, torch.float32)
    assert "2³¹" in _fused_limits(2 ** 20, 2 ** 7, 16, torch.float32)     # exactly 2³¹
    assert _fused_limits(2 ** 20, 2 ** 7, 15, torch.float32) is None
    assert "float64" in _fused_limits(2, 4, 16, torch.float64)
    assert "65535" in _fused_limits(1, 65536, 16, torch.float32)         # launch-grid limit
    assert _fused_limits(1, 65535, 16, torch.float32) is None


def test_missing_package_is_reported_not_raised():
    fn, why = dispatch.optional_attr("pks4_lit_no_such_package", "anything")
    assert fn is None and "pks4_lit_no_such_package" in why


def test_log_once(caplog):
    with caplog.at_level(logging.WARNING, logger="pks4_lit.ops"):
        for _ in range(3):
            dispatch.log_once("test_log_once: message")
    assert caplog.text.count("test_log_once: message") == 1


def test_fused_call_casts_like_the_kernel_requires():
    """A stand-in for selective_scan_fn records what it receives."""
    seen = {}

    def fake_fn(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state):
        seen.update(u=u, delta=delta, A=A, B=B, C=C, D=D, z=z, delta_bias=delta_bias,
                    softplus=delta_softplus)
        last = torch.zeros(2, 4, 3, requires_grad=True) * 1                # has a grad_fn
        return (u.clone(), last) if return_last_state else u.clone()

    bf = torch.bfloat16
    u = torch.randn(2, 4, 5, dtype=bf)
    C = torch.randn(2, 5, 3).transpose(1, 2)                              # [b,N,L], last dim strided
    out, last = _call_fused(fake_fn, u, torch.rand(2, 4, 5), -torch.rand(4, 3, dtype=torch.float64),
                            torch.randn(4, 3, dtype=torch.float64), C, torch.randn(4, dtype=bf),
                            torch.randn(2, 4, 5), torch.randn(4, dtype=bf), True, True)
    assert seen["delta"].dtype == bf and seen["z"].dtype == bf and seen["C"].dtype == bf
    for k in ("A", "B", "D", "delta_bias"):                               # B is constant [d,N]
        assert seen[k].dtype == torch.float32, k
    for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias"):
        assert seen[k].stride(-1) == 1, k
    assert seen["softplus"] is True
    assert not last.requires_grad


# ---- causal_conv1d: the layouts causal-conv1d's kernel accepts (csrc/causal_conv1d.cpp) --------

def fake_conv_kernel(calls):
    """Stand-in for causal_conv1d_fn that enforces the kernel's own checks (which its Python
    wrapper does not make) and computes the PyTorch result."""
    from pks4_lit.ops.causal_conv1d import causal_conv1d_torch

    def fn(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
           final_states_out=None, activation=None):
        b, d, L = x.shape
        assert x.stride(2) == 1 or x.stride(1) == 1, "x must have stride 1 in L or in dim"
        channel_last = x.stride(1) == 1 and x.stride(2) > 1
        if channel_last:
            assert d % 8 == 0, "channel last: dim divisible by 8"
            assert x.stride(2) % 8 == 0 and x.stride(0) % 8 == 0, "channel last: strides % 8"
        else:
            assert x.is_contiguous() and x.storage_offset() % 8 == 0, "channel first: aligned rows"
        assert 2 <= weight.shape[1] <= 4
        assert bias is None or (bias.dtype == weight.dtype and bias.stride(-1) == 1)
        if seq_idx is not None:
            assert channel_last and seq_idx.dtype == torch.int32 and seq_idx.is_contiguous()
        if initial_states is not None:
            assert channel_last and initial_states.stride(1) == 1 and initial_states.dtype == x.dtype
        if return_final_states:
            assert channel_last
        calls.append(dict(channel_last=channel_last, x=x))
        return causal_conv1d_torch(x, weight, bias, seq_idx, initial_states, return_final_states,
                                   final_states_out, activation)
    return fn


def in_proj_chunk(d, L=8, extra=0):
    """u as PKS4/Mamba get it: in_proj(x) [b,L,2d(+extra)] → transpose → first half [b,d,L]."""
    xz = torch.randn(2, L, 2 * d + extra).transpose(1, 2)
    return xz[:, :d]


@pytest.mark.parametrize("make, stateful, expected", [
    (lambda: torch.randn(2, 12, 8), False, "as_is"),                  # channel-first contiguous
    (lambda: torch.randn(2, 12, 8), True, None),                      # stateful needs d % 8 == 0
    (lambda: torch.randn(2, 16, 8), True, "channel_last"),
    (lambda: in_proj_chunk(16), False, "as_is"),                      # channel-last, strides (2dL,1,2d)
    (lambda: in_proj_chunk(16), True, "as_is"),
    (lambda: in_proj_chunk(12), False, "channel_first"),              # d % 8 != 0: copy to [b,d,L]
    (lambda: in_proj_chunk(16, extra=3), False, "channel_first"),     # stride 35 not a multiple of 8
    (lambda: in_proj_chunk(16, extra=3), True, "channel_last"),
    (lambda: torch.randn(2, 12, 9)[..., 1:], False, "channel_first"),  # rows not aligned
])
def test_conv_fused_layout(make, stateful, expected):
    from pks4_lit.ops.causal_conv1d import fused_layout
    layout, why = fused_layout(make(), stateful)
    assert layout == expected
    assert (why is None) == (expected is not None)


@pytest.mark.parametrize("d, extra", [(12, 0), (16, 0), (16, 3), (24, 5)])
@pytest.mark.parametrize("states", [False, True])
def test_conv_fused_call_satisfies_the_kernel(d, extra, states):
    """Whatever layout PKS4/Mamba hand over, the fused call passes the kernel's checks (or the
    dispatcher says why not) and returns the PyTorch result, gradients included."""
    from pks4_lit.ops.causal_conv1d import _call_fused, causal_conv1d_torch, fused_layout
    calls = []
    x = in_proj_chunk(d, extra=extra).requires_grad_()
    w, bias = torch.randn(d, 4, dtype=torch.float64), torch.randn(d)
    kw = dict(initial_states=torch.randn(2, d, 3), return_final_states=True) if states else {}
    if fused_layout(x, states)[0] is None:
        assert d % 8 and states                                       # the dispatcher falls back
        return
    got = _call_fused(fake_conv_kernel(calls), x, w, bias, None, kw.get("initial_states"),
                      bool(states), None, "silu")
    want = causal_conv1d_torch(x, w, bias, None, kw.get("initial_states"), bool(states), None, "silu")
    got, want = (got, want) if states else ((got,), (want,))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)
    assert len(calls) == 1
    gx = torch.autograd.grad(got[0].sum(), x)[0]
    torch.testing.assert_close(gx, torch.autograd.grad(want[0].sum(), x)[0])


def test_conv_fused_call_casts_seq_idx_and_copies_final_states():
    from pks4_lit.ops.causal_conv1d import _call_fused
    calls = []
    x = torch.randn(2, 16, 6)
    seq = torch.tensor([[0, 0, 1, 1, 1, -1], [0, 0, 0, 0, 0, 0]])          # int64
    _call_fused(fake_conv_kernel(calls), x, torch.randn(16, 3), None, seq, None, False, None, None)
    assert calls[-1]["channel_last"]
    buf = torch.zeros(2, 16, 2)
    _, f = _call_fused(fake_conv_kernel(calls), x, torch.randn(16, 3), None, None, None, True, buf, None)
    assert f is buf and torch.equal(buf, x[..., 4:])


def test_conv_dispatch_reasons_with_the_module_mocked(monkeypatch):
    """With the package "importable", the reason to fall back comes from the layout/width/dtype."""
    conv_mod = importlib.import_module("pks4_lit.ops.causal_conv1d")     # the name is re-exported
    monkeypatch.setattr(conv_mod, "optional_attr", lambda *a: (lambda *x, **k: None, None))
    cuda_like = lambda t: type("T", (), dict(is_cuda=True, dtype=t.dtype, shape=t.shape,   # noqa: E731
                                             stride=t.stride, storage_offset=t.storage_offset,
                                             is_contiguous=t.is_contiguous))()
    assert conv_mod._fused_problem(cuda_like(in_proj_chunk(16)), 4) is None
    assert conv_mod._fused_problem(cuda_like(in_proj_chunk(12)), 4) is None       # copied to [b,d,L]
    assert "multiple of 8" in conv_mod._fused_problem(cuda_like(in_proj_chunk(12)), 4, stateful=True)
    assert "2..4" in conv_mod._fused_problem(cuda_like(in_proj_chunk(16)), 5)
    assert "float64" in conv_mod._fused_problem(cuda_like(in_proj_chunk(16).double()), 4)
