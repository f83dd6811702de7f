"""The fused CUDA path (mamba-ssm / causal-conv1d behind pks4_lit.ops) against the PyTorch path.

GPU tests are marked `cuda` and skipped unless a GPU and mamba-ssm are present; they run the same
functions as `scripts/gpu_check.py` (pks4_lit/bench/gpu.py). The CPU tests check those functions
themselves: error metrics, the location-folding layout, the timing harness, and that the parity
check does flag a wrong implementation.
"""
import argparse
import json
import math
import time

import pytest
import torch

from pks4_lit.bench import gpu
from pks4_lit.ops import selective_scan_ref, selective_scan_torch
from pks4_lit.ops.dispatch import optional_attr

HAS_FUSED = torch.cuda.is_available() and \
    optional_attr("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")[0] is not None
cuda = pytest.mark.skipif(not HAS_FUSED, reason="needs a CUDA GPU and mamba-ssm (scripts/build_cuda_ext.sh)")


# ---------------------------------------------------------------------------- error metrics

def test_rel_err_basic_values():
    b = torch.randn(50, dtype=torch.float64)
    assert gpu.rel_err(b, b) == 0.0
    assert gpu.rel_err(2 * b, b) == pytest.approx(1.0, rel=1e-12)
    assert gpu.rel_err(torch.zeros(3), torch.zeros(3)) == 0.0
    assert gpu.rel_err(torch.ones(3), torch.zeros(3)) == math.inf
    with pytest.raises(ValueError, match="shapes differ"):
        gpu.rel_err(torch.ones(3), torch.ones(4))


def test_within_rejects_nan_and_inf():
    a = torch.randn(10)
    bad = a.clone()
    bad[3] = float("nan")
    assert gpu.within(gpu.rel_err(a * (1 + 1e-5), a), 1e-3)
    assert not gpu.within(gpu.rel_err(bad, a), 1e-3)
    assert not gpu.within(math.inf, 1e-3)
    assert not gpu.all_finite(a, bad) and gpu.all_finite(a, None)


# ---------------------------------------------------------------------------- parity check

def _torch(*a, **k):
    return selective_scan_torch(*a, **k)


@pytest.mark.parametrize("bc", ["var", "grouped", "const"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_compare_scan_passes_for_equal_implementations(bc, dtype):
    x = gpu.make_scan_inputs(2, 12, 4, 9, dtype=dtype, bc=bc, groups=3, seed=1)
    r = gpu.compare_scan(selective_scan_ref, _torch, x, reference=selective_scan_ref)
    assert r["ok"], r["errors"]
    assert set(r["errors"]) == {"out", "du", "ddelta", "dA", "dB", "dC", "dD", "dz", "ddelta_bias"}


def test_compare_scan_flags_a_wrong_implementation():
    x = gpu.make_scan_inputs(2, 12, 4, 9, seed=2)

    def drops_D(u, delta, A, B, C, D=None, *a, **k):                  # forgets the skip term
        return selective_scan_torch(u, delta, A, B, C, None, *a, **k)

    r = gpu.compare_scan(drops_D, _torch, x)
    assert not r["ok"] and r["errors"]["out"] > 1e-2 and r["errors"]["dD"] == math.inf


def test_compare_scan_flags_nan_output():
    x = gpu.make_scan_inputs(2, 12, 4, 9, seed=3)

    def one_nan(*a, **k):
        out = selective_scan_torch(*a, **k)
        return out + torch.nn.functional.pad(torch.full((1,), float("nan")), (0, out.numel() - 1)).view_as(out)

    r = gpu.compare_scan(one_nan, _torch, x, grads=False)
    assert not r["finite"] and not r["ok"]


def test_compare_scan_last_state_and_no_softplus():
    x = gpu.make_scan_inputs(3, 8, 4, 17, bc="grouped", groups=2, softplus=False, seed=4)
    r = gpu.compare_scan(selective_scan_ref, _torch, x, softplus=False, last_state=True)
    assert r["ok"] and "last_state" in r["errors"]


def test_scan_inputs_are_fresh_and_in_kernel_dtypes():
    a = gpu.make_scan_inputs(2, 8, 4, 6, dtype=torch.bfloat16, seed=5)
    b = gpu.make_scan_inputs(2, 8, 4, 6, dtype=torch.bfloat16, seed=6)
    assert not torch.equal(a["u"], b["u"]) and (a["u"] != 0).all()
    assert a["u"].dtype == a["delta"].dtype == a["B"].dtype == a["z"].dtype == torch.bfloat16
    assert a["A"].dtype == a["D"].dtype == a["delta_bias"].dtype == torch.float32
    assert (a["A"] < 0).all()


# ---------------------------------------------------------------------------- fold layout

def _leaves(x):
    return {k: v.detach().clone().requires_grad_() for k, v in x.items() if v is not None}


def test_folding_locations_into_channels_is_the_same_scan():
    """[B·h·w, d, T] with B/C [B·h·w, N, T]  ==  [B·h·w/g, g·d, T] with B/C grouped [.., g, N, T]."""
    x = {k: None if v is None else v.double() for k, v in
         gpu.make_scan_inputs(12, 5, 3, 7, seed=7).items()}
    gout = torch.randn(12, 5, 7, dtype=torch.float64)
    ref_leaves = _leaves(x)
    y = selective_scan_torch(*[ref_leaves.get(k) for k in gpu.SCAN_ARGS], delta_softplus=True)
    ref_g = torch.autograd.grad(y, list(ref_leaves.values()), gout)
    for g in (1, 2, 3, 12):
        leaves = _leaves(x)
        f = gpu.fold_locations(leaves, g)
        assert f["u"].shape == (12 // g, 5 * g, 7) and f["B"].shape == (12 // g, g, 3, 7)
        yf = gpu.unfold_output(selective_scan_torch(*[f.get(k) for k in gpu.SCAN_ARGS], delta_softplus=True), g)
        assert gpu.rel_err(yf, y) < 1e-12
        for name, a, b in zip(leaves, torch.autograd.grad(yf, list(leaves.values()), gout), ref_g):
            assert gpu.rel_err(a, b) < 1e-12, name


def test_folding_with_the_wrong_group_order_differs():
    """The check above can fail: the same fold with B/C groups reversed is a different scan."""
    x = gpu.make_scan_inputs(8, 4, 3, 6, seed=8)
    y = selective_scan_torch(*[x.get(k) for k in gpu.SCAN_ARGS], delta_softplus=True)
    f = gpu.fold_locations(x, 4)
    f["B"], f["C"] = f["B"].flip(1), f["C"].flip(1)
    yf = gpu.unfold_output(selective_scan_torch(*[f.get(k) for k in gpu.SCAN_ARGS], delta_softplus=True), 4)
    assert gpu.rel_err(yf, y) > 1e-2


def test_fold_rejects_bad_factors_and_constant_bc():
    x = gpu.make_scan_inputs(6, 4, 3, 5, seed=9)
    with pytest.raises(ValueError, match="must divide"):
        gpu.fold_locations(x, 4)
    with pytest.raises(ValueError, match="variable B/C"):
        gpu.fold_locations(gpu.make_scan_inputs(6, 4, 3, 5, bc="const", seed=9), 2)


def test_fold_factors_respect_the_kernel_grid_limit():
    for hw, dim in ((196, 768), (49, 96), (64, 1536)):
        gs = gpu.fold_factors(hw, dim)
        assert gs[0] == 1 and all(hw % g == 0 and g * dim <= 65535 for g in gs)
    # ViT-B/16 at 224 (14×14 cells, d=768): the divisors of 196 with g·768 ≤ 65535 are 1…49
    assert gpu.fold_factors(196, 768) == [1, 7, 49]


# ---------------------------------------------------------------------------- timing harness

def test_time_fn_on_cpu_uses_wall_clock_and_rotates_inputs():
    seen = []
    t = gpu.time_fn(lambda i: seen.append(i) or torch.randn(64, 64) @ torch.randn(64, 64),
                    torch.device("cpu"), warmup=2, repeats=7, budget_s=10.0)
    assert t["clock"] == "wall" and t["n"] == 7 and seen == list(range(9))
    assert 0 < t["min_ms"] <= t["median_ms"] and t["p20_ms"] <= t["p80_ms"]


def test_time_fn_stops_at_its_budget_but_not_before_min_repeats():
    t0 = time.perf_counter()
    t = gpu.time_fn(lambda i: time.sleep(0.02), torch.device("cpu"), warmup=0, repeats=100,
                    budget_s=0.05, min_repeats=3)
    assert 3 <= t["n"] <= 5 and time.perf_counter() - t0 < 1.0
    assert t["median_ms"] >= 19.0


def test_rotation_count_and_traffic_model():
    assert gpu.n_rotations(10 * 2 ** 30, 50 * 2 ** 20) == 2
    assert gpu.n_rotations(1024, 50 * 2 ** 20, most=8) == 8
    a, b = gpu.scan_bytes(4, 8, 16, 32, 4), gpu.scan_bytes(4, 8, 16, 64, 4)
    assert b["minimal"] == 2 * a["minimal"] and b["state_write"] == a["state_write"]
    assert gpu.scan_bytes(4, 8, 16, 32, 2)["minimal"] * 2 == a["minimal"]


# ---------------------------------------------------------------------------- the whole run on CPU

def _args(**kw):
    p = argparse.ArgumentParser()
    gpu.add_arguments(p)
    a = p.parse_args([])
    a.__dict__.update(dict(device="cpu", candidate="ref", baseline="torch", T=[8, 20], time_T=[8], batch=1,
                           hw=2, dim=8, big_batch=0, head_dim=16, copy_mib=1, budget_s=0.02), **kw)
    return a


def test_run_on_cpu_writes_json_and_markdown(tmp_path):
    res = gpu.run(_args(sections="env,verify,head,bandwidth,scan_time,fold", out=str(tmp_path)), log=lambda m: None)
    assert res["ok"], res.get("errors")
    assert res["verify"]["n"] == 2 * (2 * 3 + 3) and res["fold"]["equivalence_worst"] < 1e-6
    saved = json.loads((tmp_path / "gpu_check.json").read_text())
    assert saved["verify"]["ok"] and len(saved["scan_time"]["rows"]) == 4
    md = (tmp_path / "gpu_check.md").read_text()
    assert "verdict: PASS" in md and "| scan dtype |" in md and "| fold (ref) dtype |" in md


def test_run_records_a_failing_section_and_fails(monkeypatch):
    monkeypatch.setattr(gpu, "section_head", lambda *a: 1 / 0)
    res = gpu.run(_args(sections="env,head"), log=lambda m: None)
    assert not res["ok"] and "ZeroDivisionError" in res["errors"]["head"]


def test_run_skips_sections_past_the_deadline():
    res = gpu.run(_args(sections="env,verify,fold", deadline_s=1e-9), log=lambda m: None)
    assert res["skipped_sections"] == ["verify", "fold"] and "--sections verify,fold" in gpu.to_markdown(res)


def test_run_without_cuda_says_so():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    res = gpu.run(_args(device="cuda"))
    assert not res["ok"] and "no CUDA device" in res["skipped"]


def test_unknown_section_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown sections"):
        gpu.run(_args(sections="env,nope"))


# ---------------------------------------------------------------------------- on a GPU

DEV = torch.device("cuda")


@cuda
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_fused_scan_matches_torch_and_float64(dtype):
    r = gpu.verify_scan(gpu.dispatched("cuda"), gpu.dispatched("torch"), selective_scan_ref, DEV,
                        [8, 16, 32, 64, 128, 300], [dtype], log=print)
    bad = [(c["T"], c["form"], c["errors"]) for c in r["cases"] if not c["ok"]]
    assert r["ok"], bad


@cuda
def test_dispatch_reaches_the_fused_kernel():
    from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    x = gpu.make_scan_inputs(4, 32, 16, 64, dtype=torch.bfloat16, device=DEV, seed=11)
    args = [x.get(k) for k in gpu.SCAN_ARGS]
    with gpu.impl("cuda"):
        ours = gpu.selective_scan(*args, delta_softplus=True)
    assert torch.equal(ours, selective_scan_fn(*args, delta_softplus=True))


@cuda
def test_fused_fold_layout_equals_standard_layout():
    x = gpu.make_scan_inputs(8 * 49, 96, 16, 16, dtype=torch.bfloat16, device=DEV, seed=12)
    fn = gpu.dispatched("cuda")
    y = fn(*[x.get(k) for k in gpu.SCAN_ARGS], delta_softplus=True)
    for g in gpu.fold_factors(49, 96):
        f = gpu.fold_locations(x, g)
        yf = gpu.unfold_output(fn(*[f.get(k) for k in gpu.SCAN_ARGS], delta_softplus=True), g)
        assert gpu.rel_err(yf, y) < 1e-6


@cuda
@pytest.mark.parametrize("autocast", [False, True])
def test_pks4_head_fused_matches_torch(autocast):
    from pks4_lit.models import build_temporal_head
    torch.manual_seed(0)
    head = build_temporal_head("pks4", 64).to(DEV)
    X = torch.randn(2, 16, 64, 7, 7, device=DEV)
    r = gpu.head_parity(head, X, "cuda", "torch", autocast, 3e-2 if autocast else 1e-3, seed=0)
    assert r["ok"], (r["worst_name"], r["worst"])


@cuda
def test_bf16_training_step_with_fused_kernels():
    r = gpu.section_train(_args(device="cuda", candidate="cuda", train_backbone="resnet18",
                                train_img=112), DEV, print)
    assert r["ok"], r


@cuda
def test_fused_causal_conv1d_matches_torch():
    r = gpu.section_conv(_args(device="cuda", candidate="cuda"), DEV, print)
    assert "skipped" not in r and r["ok"], r


@cuda
def test_fused_streaming_steps_match_torch():
    r = gpu.section_stream(_args(device="cuda", candidate="cuda"), DEV, print)
    assert r["ok"], r
