"""scripts/gpu_check.py's build orchestration, with a stand-in for build_cuda_ext.sh (no compiler)."""
import argparse
import importlib.util
import stat
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gpu_check.py"


@pytest.fixture
def gc():
    spec = importlib.util.spec_from_file_location("gpu_check_script", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _stub(tmp_path, status_rc, wait_rc):
    """A build script that records its calls and answers --status/--wait with the given codes."""
    calls = tmp_path / "calls.txt"
    stub = tmp_path / "build_stub.sh"
    stub.write_text(f"""#!/usr/bin/env bash
echo "$@" >> {calls}
case "$1" in --status) exit {status_rc};; --wait) exit {wait_rc};; --background) exit 0;; esac
""")
    stub.chmod(stub.stat().st_mode | stat.S_IEXEC)
    return stub, calls


def _args(tmp_path, **kw):
    a = dict(arch="sm_90", sdists=str(tmp_path / "sd"), time_limit_s=570.0, check_reserve_s=240.0,
             out=str(tmp_path / "out"))
    a.update(kw)
    return argparse.Namespace(**a)


def test_no_build_when_the_extensions_import(gc, tmp_path, monkeypatch):
    stub, calls = _stub(tmp_path, 4, 0)
    monkeypatch.setattr(gc, "BUILD", str(stub))
    monkeypatch.setattr(gc, "extensions_import", lambda: None)
    assert gc.build(_args(tmp_path), time.perf_counter()) == 0 and not calls.exists()


def test_starts_a_background_build_and_asks_to_call_again(gc, tmp_path, monkeypatch, capsys):
    stub, calls = _stub(tmp_path, 4, 3)                       # no build yet; still running after the wait
    monkeypatch.setattr(gc, "BUILD", str(stub))
    monkeypatch.setattr(gc, "extensions_import", lambda: "No module named 'selective_scan_cuda'")
    assert gc.build(_args(tmp_path), time.perf_counter()) == 3
    lines = calls.read_text().splitlines()
    assert lines[0] == "--status" and lines[1].startswith("--background --sdists")
    assert lines[2].startswith("--wait ") and 300 <= int(lines[2].split()[1]) <= 330
    assert "run the same command again" in capsys.readouterr().out


def test_does_not_restart_a_running_build(gc, tmp_path, monkeypatch):
    stub, calls = _stub(tmp_path, 3, 3)
    monkeypatch.setattr(gc, "BUILD", str(stub))
    monkeypatch.setattr(gc, "extensions_import", lambda: "missing")
    assert gc.build(_args(tmp_path), time.perf_counter()) == 3
    assert not any(line.startswith("--background") for line in calls.read_text().splitlines())


def test_a_failed_build_returns_2_and_copies_the_logs(gc, tmp_path, monkeypatch):
    stub, _ = _stub(tmp_path, 4, 1)
    work = tmp_path / "work"
    (work / "logs").mkdir(parents=True)
    (work / "build.log").write_text("x")
    (work / "logs" / "mamba_ssm-2.3.2.post1.log").write_text("nvcc error")
    monkeypatch.setenv("WORK", str(work))
    monkeypatch.setattr(gc, "BUILD", str(stub))
    monkeypatch.setattr(gc, "extensions_import", lambda: "missing")
    assert gc.build(_args(tmp_path), time.perf_counter()) == 2
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["build_build.log", "build_mamba_ssm-2.3.2.post1.log"]
