"""pks4_lit.bench.scan at toy sizes: every implementation runs, agrees with the others, and the
result is JSON-serialisable."""
import argparse
import json

import pytest

from pks4_lit.bench import scan
from pks4_lit.ops.scan_cpu import available


@pytest.mark.parametrize("bc", ["var", "group", "const"])
def test_bench_runs_and_implementations_agree(bc):
    parser = argparse.ArgumentParser()
    scan.add_arguments(parser)
    args = parser.parse_args(["--batch", "3", "--dim", "8", "--d-state", "4", "--T", "1", "6",
                              "--bc", bc, "--groups", "2", "--repeats", "1", "--threads", "1",
                              "--device", "cpu", "--impls", "torch", "cpu", "unbind", "index", "ref", "fused"])
    result = json.loads(json.dumps(scan.run(args)))
    assert [row["T"] for row in result["results"]] == [1, 6]
    for row in result["results"]:
        assert row["torch"]["median_s"] > 0
        for impl in ("unbind", "index", "ref") + (("cpu",) if available()[0] else ()):
            assert row[impl]["max_rel_diff_vs_torch"] < 1e-5, (impl, row[impl])
        assert "not CUDA" in row["fused"]["error"] or "not importable" in row["fused"]["error"]
