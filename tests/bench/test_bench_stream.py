"""pks4 bench stream on a tiny backbone: every method timed, memory accounted, flatness reported."""
import argparse

import torch

from pks4_lit.bench import stream


def test_bench_stream_small():
    parser = argparse.ArgumentParser()
    stream.add_arguments(parser)
    args = parser.parse_args(["--backbone", "test_resnet", "--feature-index", "-1", "--size", "64",
                              "--frames", "40", "--window-frames", "3", "--windows", "2", "4",
                              "--heads", "pks4", "tsn"])
    n = torch.get_num_threads()
    try:
        out = stream.run(args)
    finally:
        torch.set_num_threads(n)
    names = {"stream_pks4", "stream_tsn", "window_2", "window_4", "window_2_cached_features",
             "window_4_cached_features"}
    assert set(out["per_frame"]) == names == set(out["memory"])
    assert all(r["frames"] == 3 and r["cpu_median_ms"] > 0 for r in out["per_frame"].values())
    assert set(out["speedup_stream_pks4"]) == names - {"stream_pks4", "stream_tsn"}
    # held between frames: W uint8 frames, or W feature maps [1,1,C,h,w] fp32 (test_resnet: 2×2 at 64 px)
    C = stream.build(args, "tsn").backbone.out_dim
    assert out["memory"]["window_4"]["held_bytes"] == 4 * 3 * 64 * 64
    assert out["memory"]["window_4_cached_features"]["held_bytes"] == 4 * C * 2 * 2 * 4
    # pks4: conv [4,C,3] + ssm [4,C,8] + previous frame [1,C,2,2] + running sum [1,C], fp32
    assert out["memory"]["stream_pks4"]["held_bytes"] == 4 * (4 * C * 3 + 4 * C * 8 + C * 4 + C)
    assert out["memory"]["stream_tsn"]["held_bytes"] == 4 * C
    long = out["stream_long"]["pks4"]
    assert long["frames"] == 40 and long["late_over_early"] > 0 and set(long["cpu_median_ms_around_T"]) == {10}
