import argparse
import json

import pytest
import torch

from pks4_lit.bench import heads as bench


def _args(**kw):
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    args = parser.parse_args([])
    base = dict(dim=16, size=3, batch=2, repeats=1, img_size=64, backbone="resnet18", feature_index=-1)
    for k, v in {**base, **kw}.items():
        setattr(args, k, v)
    return args


def _flops(row, T, **kw):
    args = _args(**kw)
    model = bench.build("head", row, args)
    x, y = bench.make_batch("head", T, args, torch.device("cpu"), torch.Generator().manual_seed(0))
    return bench.count_flops(model, x, y)


def test_attention_score_flops_are_exactly_quadratic_in_T():
    # QKᵀ and AV: 2 bmm of 2·n·T²·C FLOPs forward (n = B·h·w sequences), ×3 with backward
    for T in (4, 8):
        fl = _flops("attention", T)
        n, C = 2 * 3 * 3, 16
        assert fl["quadratic"] == 3 * 2 * 2 * n * T * T * C
        assert fl["scan"] == 0 and fl["total"] > fl["quadratic"]


def test_scan_flops_are_added_analytically_and_match_between_scan_layouts():
    T, n, d, N = 6, 2 * 3 * 3, 16, 16
    ssm, glob = _flops("ssm", T), _flops("global_ssm", T)
    assert ssm["scan"] == 3 * bench.scan_flops(n, d, N, T) > 0
    assert glob["scan"] == ssm["scan"]            # B sequences of T·h·w = B·h·w sequences of T
    assert _flops("pks4", T)["correlation"] == 3 * 2 * d * 7 ** 2 * 2 * T * 3 * 3   # radius 3


def test_pks4_saved_memory_and_flops_grow_linearly_with_T():
    args = _args()
    vals = {}
    for T in (8, 16, 32):
        model = bench.build("head", "pks4", args)
        x, y = bench.make_batch("head", T, args, torch.device("cpu"), torch.Generator().manual_seed(0))
        vals[T] = (bench.saved_bytes(model, x, y), bench.count_flops(model, x, y)["total"])
    for i in (0, 1):
        assert bench.fit_slope(list(vals), [v[i] for v in vals.values()]) == pytest.approx(1.0, abs=0.1)


def test_st_adapter_stores_backbone_activations_that_a_frozen_backbone_does_not():
    res = bench.run(_args(rows=["tsn", "pks4", "st_adapter"], modes=["e2e"], T=[4], no_flops=True))
    by = {r["row"]: r for r in res["results"]}
    assert by["tsn"]["saved_MB"] < 0.05                    # frozen backbone + identity head: only pooled features
    assert by["st_adapter"]["saved_MB"] > 2 * by["pks4"]["saved_MB"] > 0
    assert by["st_adapter"]["tunable_params"] > by["tsn"]["tunable_params"]
    assert all(r["step_s"] > 0 and r["clips_per_s"] > 0 for r in res["results"])


def test_run_reports_slopes_and_cli_prints_json(capsys):
    bench.main(["--rows", "tsn", "attention", "--modes", "head", "--T", "4", "8", "--dim", "16", "--size", "3",
                "--repeats", "1"])
    out = json.loads(capsys.readouterr().out)
    assert {r["row"] for r in out["results"]} == {"tsn", "attention"}
    assert out["slopes"]["head"]["attention"]["quad_GFLOPs_per_clip"]["all"] == pytest.approx(2.0, abs=1e-6)
    assert out["machine"]["torch"] == torch.__version__


def test_fit_slope_and_bad_input():
    assert bench.fit_slope([2, 4, 8], [3, 12, 48]) == pytest.approx(2.0)
    assert bench.fit_slope([2], [1]) is None
    with pytest.raises(ValueError, match="no head-only mode"):
        bench.build("head", "st_adapter", _args())
    with pytest.raises(ValueError, match=">= 2"):
        bench.run(_args(T=[1]))


def test_interleave_times_every_case_round_robin(monkeypatch):
    """--interleave: each round runs one timed step of every (row, T) case in turn, after all the
    warm-ups; results keep one entry per case with `repeats` times, and the load is recorded."""
    calls = []
    real = bench.train_step

    def spy(model, x, y):
        calls.append((type(model.head).__name__, x.shape[1]))
        real(model, x, y)
    monkeypatch.setattr(bench, "train_step", spy)
    res = bench.run(_args(rows=["tsn", "pks4"], modes=["head"], T=[2, 3], repeats=2, no_flops=True,
                          interleave=True))
    cases = [(r["row"], r["T"]) for r in res["results"]]
    assert sorted(cases) == sorted([("tsn", 2), ("tsn", 3), ("pks4", 2), ("pks4", 3)])
    assert all(len(r["step_s_all"]) == 2 for r in res["results"])
    timed = calls[4:4 + 8]                                   # after 4 warm-ups: 2 rounds of 4 cases
    assert timed[:4] == timed[4:] and len(set(timed[:4])) == 4
    assert res["load_average"]["start"] is not None


def test_attention_past_max_frames_is_said_once_per_run_not_per_call(capsys, recwarn):
    """T > max_frames (32): the head's resampling warning is said in one line at the end, with every T."""
    res = bench.run(_args(rows=["tsn", "attention"], modes=["head"], T=[4, 40], extra_T=[48], repeats=2,
                          interleave=True))
    assert not [w for w in recwarn if "exceed max_frames" in str(w.message)]
    said = [line for line in capsys.readouterr().err.splitlines() if "max_frames" in line]
    assert said == ["[bench heads] head attention: at T=40, 48 (> the head's max_frames=32) its time embedding "
                    "was resampled linearly to T rows (max_frames >= T learns one row per frame)"]
    assert {(r["row"], r["T"]): r.get("time_embed_resampled_from") for r in res["results"]} == {
        ("tsn", 4): None, ("tsn", 40): None, ("tsn", 48): None,
        ("attention", 4): None, ("attention", 40): 32, ("attention", 48): 32}
