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


def test_auto_on_cpu_is_torch(monkeypatch):
    monkeypatch.delenv("PKS4_SCAN_IMPL", raising=False)
    monkeypatch.delenv("PKS4_CONV_IMPL", raising=False)
    assert scan_backend(U, 16) == "torch"
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
    with pytest.raises(ValueError, match="PKS4_SCAN_IMPL='triton' is not one of auto, cuda, torch, ref"):
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
