"""Training runs through the real CLI: `pks4 fit`, then `pks4 test --ckpt_path <best.ckpt|last.ckpt>`, in
subprocesses.

A run logs to <runs_dir>/<table>/<name>/version_N and writes done.json when both finished; a run
whose command line is unchanged is reused (`--force` reruns), and only re-tested when another
checkpoint is to be reported. Model options are typed CLI overrides of the config
(`--model.net.head.use_correlation false`), merged into the config's own by the CLI.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from pks4_lit.tables import outputs


class Run:
    """One `pks4 fit` + `pks4 test` through the CLI, logged under runs_dir/<table>/<name>. `report`: the
    checkpoint `pks4 test` evaluates, "best" (selected on validation) or "last" (end of the fixed schedule)."""

    def __init__(self, table: str, name: str, config: Path, data: Path, overrides: list[str], runs_dir: Path,
                 report: str = "best"):
        if report not in ("best", "last"):
            raise ValueError(f"report must be 'best' or 'last' (got {report!r})")
        self.table, self.name, self.config, self.data = table, name, Path(config), Path(data)
        self.overrides, self.report = overrides, report
        self.dir = runs_dir / table / name
        # the children run in the repository: paths inside it are given relative, so the commands
        # written into docs/RESULTS.md work on any clone
        log = ["--trainer.logger.init_args.save_dir", in_repo(runs_dir / table),
               "--trainer.logger.init_args.name", name]
        base = [sys.executable, "-m", "pks4_lit.cli"]
        common = ["--config", in_repo(self.config), "--data.root", in_repo(self.data)]
        self.fit_cmd = base + ["fit", *common, *overrides, *log]
        self.test_cmd = base + ["test", *common, *overrides, *log, "--ckpt_path"]   # + the reported checkpoint

    @property
    def command(self) -> str:
        return "pks4 " + shlex.join(self.fit_cmd[3:])

    def _done_file(self) -> Path:
        return self.dir / "done.json"

    def cached(self) -> dict | None:
        f = self._done_file()
        if f.is_file():
            done = json.loads(f.read_text())
            if done.get("fit_cmd") == self.fit_cmd[3:]:
                return done
        return None

    def execute(self, quiet: bool = True) -> dict:
        if self.dir.exists():
            shutil.rmtree(self.dir)                  # a stale or different run: start clean
        self.dir.mkdir(parents=True)
        t0 = time.time()
        fit = run_child(self.fit_cmd, self.dir / "fit.log", quiet)
        done = dict(fit_cmd=self.fit_cmd[3:], fit_s=time.time() - t0, fit_maxrss_MB=fit["maxrss_MB"])
        return self.test(done, quiet)

    def test(self, done: dict, quiet: bool = True) -> dict:
        """`pks4 test` of this run's `report` checkpoint; done.json records which file and when."""
        found = sorted(self.dir.glob(f"version_*/checkpoints/{self.report}.ckpt"))
        if not found:
            raise RuntimeError(f"{self.name}: no {self.report}.ckpt after `{self.command}` (see {self.dir / 'fit.log'})")
        tested_at = time.time()
        run_child(self.test_cmd + [str(found[-1])], self.dir / "test.log", quiet)
        done = dict(done, report=self.report, ckpt=str(found[-1]), tested_at=tested_at)
        self._done_file().write_text(json.dumps(done, indent=1))
        return done


def in_repo(path: Path) -> str:
    """`path` relative to the repository when it is inside it, else as given."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(outputs.REPO))
    except ValueError:
        return str(path)


def run_child(cmd: list[str], log_path: Path, quiet: bool) -> dict:
    """Run a CLI command; its peak RSS comes from wait4 (this child only)."""
    print("[tables] $ pks4 " + shlex.join(cmd[3:]), file=sys.stderr, flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log if quiet else None, stderr=subprocess.STDOUT if quiet else None,
                                cwd=outputs.REPO, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-15:] if quiet else []
        raise RuntimeError(f"command failed ({proc.returncode}): pks4 {shlex.join(cmd[3:])}\n" + "\n".join(tail))
    return dict(maxrss_MB=usage.ru_maxrss / 1024)


def run_all(runs: list[Run], force: bool) -> list[dict]:
    """Each run's done.json contents, executing the runs that are not finished (or all, with force)."""
    out = []
    for r in runs:
        done = None if force else r.cached()
        if done is None:
            done = r.execute()
        elif done.get("report", "best") != r.report:     # same training, another checkpoint to report
            print(f"[tables] reusing the training of {r.dir}; testing its {r.report}.ckpt", file=sys.stderr)
            done = r.test(done)
        else:
            print(f"[tables] reusing {r.dir} (same command; --force reruns)", file=sys.stderr)
        out.append(done)
    return out


# ---------------------------------------------------------------------------- run inputs
def add_run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", default=None, help="dataset root (synthetic: a folder holding temporal/ and "
                                                     "spatial/, written if missing)")
    parser.add_argument("--config-dir", default=None, help="folder of <head>.yaml configs")
    parser.add_argument("--epochs", type=int, default=None, help="--trainer.max_epochs for every run")
    parser.add_argument("--videos-per-class", type=int, default=24, help="synthetic sets only")
    parser.add_argument("--runs-dir", default="runs/tables")
    parser.add_argument("--extra", default="", help="more CLI overrides for every run, one string")
    parser.add_argument("--force", action="store_true", help="rerun even when a finished run matches")


def head_overrides(head_args: dict) -> list[str]:
    """Typed CLI overrides of the temporal head's own arguments: {"radius": 1} → --model.net.head.radius 1."""
    return [a for k, v in head_args.items() for a in (f"--model.net.head.{k}", json.dumps(v))]


def overrides(args, more: list[str] | None = None) -> list[str]:
    """CLI overrides of one run: `more`, then --epochs and --extra."""
    ov = list(more or [])
    if args.epochs:
        ov += ["--trainer.max_epochs", str(args.epochs)]
    return ov + shlex.split(args.extra)


def config_backbone(config: Path) -> dict:
    import yaml

    model = (yaml.safe_load(Path(config).read_text()) or {}).get("model") or {}
    backbone = ((model.get("net") or {}).get("init_args") or {}).get("backbone") or {}
    return backbone.get("init_args", backbone)           # with or without class_path


def config_path(config_dir: Path, head: str) -> Path:
    path = config_dir / f"{head}.yaml"
    if not path.is_file():
        raise SystemExit(f"tables: config {path} not found (--config-dir / CONFIG_DIR=)")
    ensure_backbone_weights(path)
    return path


def ensure_backbone_weights(config: Path) -> None:
    """The synthetic configs load offline EfficientNet-Lite0 weights that `make demo` writes: write
    them here too when missing; any other missing checkpoint is a clear error."""
    ckpt = config_backbone(config).get("checkpoint_path")
    if not ckpt or (outputs.REPO / ckpt).is_file() or Path(ckpt).is_file():
        return
    if Path(ckpt).name == "efficientnet_lite0.pth":
        from pks4_lit.models import offline_weights

        (outputs.REPO / ckpt).parent.mkdir(parents=True, exist_ok=True)
        offline_weights.main([str(outputs.REPO / ckpt)])
        return
    raise SystemExit(f"tables: {config} needs backbone weights {ckpt}, which do not exist")


def ensure_synthetic(root: Path, task: str, videos_per_class: int) -> Path:
    from pks4_lit.data.synthetic import write_synthetic_dataset

    info = write_synthetic_dataset(root, task=task, videos_per_class=videos_per_class)
    print(f"[tables] synthetic {task} set at {root} ({'reused' if info.get('reused') else 'written'})", file=sys.stderr)
    return root
