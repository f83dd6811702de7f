"""scripts/build_cuda_ext.sh without a GPU: argument handling, and the setup.py patcher (dry run)
on stand-in sdists whose setup.py has the same shape as upstream's (hard-coded -gencode pairs,
-std=c++17, a *_FORCE_BUILD switch). Nothing is compiled or downloaded."""
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build_cuda_ext.sh"

SETUP = '''import os
FORCE_BUILD = os.getenv("{prefix}_FORCE_BUILD", "FALSE") == "TRUE"
if True:
    cc_flag = []
    if False:
        cc_flag.append("-DBUILD_PYTHON_PACKAGE")
    else:
        cc_flag.append("-gencode")
        cc_flag.append("arch=compute_80,code=sm_80")
        if True:
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_90,code=sm_90")
        if True:
            cc_flag.append("-gencode")
            cc_flag.append("arch=compute_100,code=sm_100")
    args = {{"cxx": ["-O3", "-std=c++17"], "nvcc": ["-O3", "-std=c++17"] + cc_flag}}
print(args)
'''


def _sdists(tmp_path, mamba_setup=None):
    d = tmp_path / "sdists"
    d.mkdir()
    for pkg, prefix in (("mamba_ssm-2.3.2.post1", "MAMBA"), ("causal_conv1d-1.7.0", "CAUSAL_CONV1D")):
        src = tmp_path / pkg
        src.mkdir()
        text = SETUP.format(prefix=prefix) if mamba_setup is None or prefix != "MAMBA" else mamba_setup
        (src / "setup.py").write_text(text)
        with tarfile.open(d / f"{pkg}.tar.gz", "w:gz") as tar:
            tar.add(src, arcname=pkg)
    return d


def _run(*args, tmp_path, **env):
    e = dict(os.environ, PYTHON=sys.executable, WORK=str(tmp_path / "work"), **env)
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, env=e, timeout=120)


def _run_patched(tmp_path, pkg):
    setup = tmp_path / "work" / "src" / pkg / "setup.py"
    out = subprocess.run([sys.executable, str(setup)], capture_output=True, text=True, check=True).stdout
    return setup.read_text(), out


def test_dry_run_patches_both_setups_to_one_arch(tmp_path):
    p = _run("--sdists", str(_sdists(tmp_path)), "--dry-run", "--arch", "9.0", tmp_path=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "stopping before compilation" in p.stdout and "3 -gencode pairs" in p.stdout
    for pkg in ("mamba_ssm-2.3.2.post1", "causal_conv1d-1.7.0"):
        text, out = _run_patched(tmp_path, pkg)
        nvcc = eval(out)["nvcc"]                                   # the patched file still runs
        assert nvcc.count("-gencode") == 1 and "arch=compute_90,code=sm_90" in nvcc
        assert "compute_80" not in text and "compute_100" not in text
    assert "+    cc_flag += [\"-gencode\", \"arch=compute_90,code=sm_90\"]" in p.stdout   # the diff


def test_arch_and_std_follow_the_request(tmp_path):
    p = _run("--sdists", str(_sdists(tmp_path)), "--dry-run", "--only", "mamba", tmp_path=tmp_path,
             ARCH="sm_90a")
    assert p.returncode == 0, p.stdout + p.stderr
    text, out = _run_patched(tmp_path, "mamba_ssm-2.3.2.post1")
    assert "arch=compute_90a,code=sm_90a" in eval(out)["nvcc"]
    import torch
    new = tuple(int(v) for v in torch.__version__.split("+")[0].split(".")[:2]) >= (2, 14)
    assert ('"-std=c++20"' in text) == new and ('"-std=c++17"' in text) == (not new)
    assert not (tmp_path / "work" / "src" / "causal_conv1d-1.7.0").exists()


def test_patcher_fails_loudly_when_upstream_changed(tmp_path):
    changed = 'import os\nFORCE_BUILD = os.getenv("MAMBA_FORCE_BUILD")\ncc_flag = ["-arch=sm_90"]\n'
    p = _run("--sdists", str(_sdists(tmp_path, mamba_setup=changed)), "--dry-run", "--only", "mamba",
             tmp_path=tmp_path)
    assert p.returncode != 0 and "patch failed" in p.stderr + p.stdout


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown argument"),
    (["--arch", "ampere"], "must look like sm_90"),
    (["--only", "both"], "--only must be mamba or conv"),
    (["--wait", "soon"], "--wait needs a number"),
])
def test_bad_arguments_exit_2_with_a_message(tmp_path, args, message):
    p = _run(*args, tmp_path=tmp_path)
    assert p.returncode == 2 and message in p.stderr


def test_missing_sdist_and_status_without_build(tmp_path):
    p = _run("--sdists", str(tmp_path), "--dry-run", tmp_path=tmp_path)
    assert p.returncode == 2 and "missing" in p.stderr and "--download-only" in p.stderr
    s = _run("--status", tmp_path=tmp_path)
    assert s.returncode == 4 and "no background build" in s.stdout


def test_real_build_refuses_a_python_without_cuda_torch(tmp_path):
    """A python whose torch has no CUDA version (a CPU build): a clear FATAL line, exit 2."""
    site = tmp_path / "fake_site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import torch\ntorch.version.cuda = None\n")
    p = _run("--sdists", str(_sdists(tmp_path)), tmp_path=tmp_path,
             PYTHONPATH=str(site) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    assert p.returncode == 2
    assert "CPU-only torch build" in p.stdout and "cannot build the CUDA extensions" in p.stderr


def test_background_dry_run_reports_ok(tmp_path):
    sd = str(_sdists(tmp_path))
    p = _run("--background", "--sdists", sd, "--dry-run", tmp_path=tmp_path)
    assert p.returncode == 0 and "started in the background" in p.stdout
    w = _run("--wait", "60", tmp_path=tmp_path)
    assert w.returncode == 0 and "state: ok" in w.stdout
