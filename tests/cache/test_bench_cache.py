"""`pks4 bench cache` on a tiny configuration: both epoch timings, the store, and both FLOP ratios."""
from __future__ import annotations

import pytest

from cache_helpers import write_config
from pks4_lit.bench import cache as bench
from pks4_lit.command import run_command

pytestmark = pytest.mark.slow


def test_bench_cache_reports_epochs_and_flops(synth, tmp_path):
    cfg = write_config(tmp_path / "tiny.yaml", synth)
    result = run_command(bench, "pks4 bench cache", [
        "--config", str(cfg), "--data", str(synth), "--epochs", "2", "--views", "2",
        "--flop-backbone", "test_vit", "--flop-img-size", "64", "--flop-frames", "4"])
    epochs = result["epochs"]
    assert epochs["train_videos"] == 24 and epochs["views"] == 2 and epochs["store_MB"] > 0
    for side in ("pixels", "store"):
        for kind in ("wall", "cpu"):
            assert len(epochs[side][kind]["epoch_s"]) == 2 and epochs[side][kind]["median_s"] > 0
    assert epochs["speedup_cpu"] > 1  # no decoding, no backbone: always less work per epoch
    paper, configured = result["flops"]["paper"], result["flops"]["configured"]
    assert paper["feature_map"] == [4, 64, 4, 4] and configured["feature_map"] == [4, 32, 4, 4]
    for row in (paper, configured):
        assert row["backbone_fwd_GFLOPs"] > 0 and row["head_train_GFLOPs"] > 0
        assert row["step_ratio"] == pytest.approx(1 + row["backbone_fwd_GFLOPs"] / row["head_train_GFLOPs"], rel=0.02)
