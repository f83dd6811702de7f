#!/usr/bin/env python3
"""One command for a GPU machine: (optionally) build mamba-ssm + causal-conv1d, then verify and
time the fused path (pks4_lit/bench/gpu.py), write DIR/gpu_check.{json,md} and print the table.

    python3 scripts/gpu_check.py --build --sdists build/cuda_ext/sdists --out "$OUT"

Made for a command time limit (the lent device machines allow 10 minutes per command): with
--build it starts scripts/build_cuda_ext.sh in the background (a process session of its own, so
it outlives this command), waits for it while time is left, and exits with code 3 and "run the
same command again" when the build needs longer; the checks then run inside what is left of
--time-limit-s, skipping the sections that would start too late (named at the end, to run with
--sections). Exit codes: 0 all checks pass, 1 a check failed, 2 bad usage/build failure, 3 call again.
"""
from __future__ import annotations

import argparse
import glob
import importlib
import os
import shutil
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
BUILD = os.path.join(REPO, "scripts", "build_cuda_ext.sh")
EXTENSIONS = ("selective_scan_cuda", "causal_conv1d_cuda")


def extensions_import() -> str | None:
    """None when both compiled extensions import in a fresh interpreter, else the error."""
    code = "import " + ", ".join(EXTENSIONS) + "; import mamba_ssm, causal_conv1d"
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    return None if p.returncode == 0 else (p.stderr.strip().splitlines() or ["?"])[-1]


def build(args, t0: float) -> int:
    """0 when the extensions import (built now or before), 3 when the build is still running."""
    why = extensions_import()
    if why is None:
        print("extensions already importable: no build")
        return 0
    print(f"extensions not importable ({why}): building")
    env = dict(os.environ, PYTHON=sys.executable, ARCH=args.arch)
    status = subprocess.run(["bash", BUILD, "--status"], env=env, capture_output=True, text=True)
    if status.returncode != 3:                                    # not running: (re)start it
        cmd = ["bash", BUILD, "--background"] + (["--sdists", args.sdists] if args.sdists else [])
        if subprocess.run(cmd, env=env).returncode != 0:
            return 2
    wait = int(args.time_limit_s - (time.perf_counter() - t0) - args.check_reserve_s)
    rc = subprocess.run(["bash", BUILD, "--wait", str(max(wait, 10))], env=env).returncode
    if rc == 3:
        print("\nBUILD STILL RUNNING: run the same command again (within 30 s, before the machine is "
              "given back) to wait for it and then run the checks.")
        return 3
    if rc != 0:
        print("\nBUILD FAILED (log tails above)")
        if args.out:                                              # full logs come back with $OUT
            work = os.environ.get("WORK", os.path.join(REPO, "build", "cuda_ext"))
            os.makedirs(args.out, exist_ok=True)
            for f in glob.glob(os.path.join(work, "build.log")) + glob.glob(os.path.join(work, "logs", "*.log")):
                shutil.copy(f, os.path.join(args.out, "build_" + os.path.basename(f)))
        return 2
    importlib.invalidate_caches()
    why = extensions_import()
    if why is not None:
        print(f"\nbuild reported success but the extensions do not import: {why}")
        return 2
    return 0


def main() -> int:
    from pks4_lit.bench import gpu

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    gpu.add_arguments(p)
    p.add_argument("--build", action="store_true", help="build the CUDA extensions first when they do not import")
    p.add_argument("--sdists", default=None, help="directory with the two sdists (offline machines)")
    p.add_argument("--arch", default=os.environ.get("ARCH", "sm_90"))
    p.add_argument("--time-limit-s", type=float, default=570.0, help="wall-time budget of this command")
    p.add_argument("--check-reserve-s", type=float, default=240.0,
                   help="time kept for the checks when waiting for a build")
    args = p.parse_args()
    t0 = time.perf_counter()
    sys.stdout.reconfigure(line_buffering=True)                  # the device tool keeps the output tail
    if args.build:
        rc = build(args, t0)
        if rc:
            return rc
    elif "cuda" in (args.candidate, args.baseline) and (why := extensions_import()) is not None:
        print(f"WARNING: the fused extensions do not import ({why}); the cuda checks will fail. "
              "Add --build (and --sdists DIR offline).")
    left = args.time_limit_s - (time.perf_counter() - t0)
    if not args.deadline_s:
        args.deadline_s = max(left - 100.0, 1.0)                   # the longest section takes ~1.5 min
    res = gpu.run(args, log=lambda m: print(m, flush=True))
    print()
    if "skipped" in res:
        print(res["skipped"])
        return 2
    print(gpu.to_markdown(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
