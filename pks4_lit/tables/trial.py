"""One training run in this process: `pks4 fit` through the project's CLI (PKS4Module + Trainer), usually
from a frozen-feature store; the checkpoint is chosen on VALIDATION (best val/top1, Lightning's
best.ckpt); the test split is read once, by that checkpoint, clip by clip.

A trial's result (results.json in its run folder) holds everything the tables need:
  val_top1       [E]  val top-1 after every epoch (TensorBoard scalars of the run)
  best_epoch, best_val  the selected checkpoint: argmax of val_top1 (first one on ties)
  test           {ids [N], labels [N], preds [N]}: the selected checkpoint on every test clip,
                 sorted by clip id (so two trials on one set pair clip by clip)
  test_top1      accuracy of those predictions (checked equal to the logged test/top1)
A trial whose command is unchanged is reused (results.json records the command); `force` reruns.
Nothing in the selection reads the test split: it is opened only after best.ckpt is fixed.
"""
from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from pks4_lit.tables import outputs


@dataclass
class Trial:
    """One `pks4 fit` run: config + data (+ store) + seed + typed overrides; logs under runs_dir/name."""
    name: str                       # e.g. "main/kinematic/pks4/seed0": its folder under runs_dir
    config: str                     # relative to the repository, e.g. conf/synthetic/pks4.yaml
    data: str                       # dataset root, relative
    seed: int
    overrides: list[str] = field(default_factory=list)
    features: str | None = None     # feature store (pks4 cache) or None: from pixels
    runs_dir: str = "runs/tables"

    @property
    def dir(self) -> Path:
        return outputs.repo_path(self.runs_dir) / self.name

    def fit_args(self) -> list[str]:
        """The `pks4 fit` arguments; paths relative to the repository (the run's working directory)."""
        args = ["fit", "--config", self.config, "--data.root", self.data]
        if self.features:
            args += ["--data.features", self.features]
        args += ["--seed_everything", str(self.seed), "--data.seed", str(self.seed), *self.overrides]
        return args

    def log_args(self) -> list[str]:
        save_dir, name = str(Path(self.runs_dir) / self.name).rsplit("/", 1)
        return ["--trainer.logger.init_args.save_dir", save_dir, "--trainer.logger.init_args.name", name,
                "--trainer.logger.init_args.version", "0", "--trainer.enable_progress_bar", "false"]

    @property
    def command(self) -> str:
        """The command a user types to repeat this run (logging options left out)."""
        return "pks4 " + shlex.join(self.fit_args())

    def cached(self) -> dict | None:
        f = self.dir / "results.json"
        if f.is_file():
            res = json.loads(f.read_text())
            if res.get("command") == self.command:
                return res
        return None


def run_trial(trial: Trial, force: bool = False, quiet: bool = True) -> dict:
    """The trial's results (module docstring), training it unless a finished identical run exists."""
    res = None if force else trial.cached()
    if res is not None:
        return dict(res, reused=True)
    if trial.dir.exists():
        shutil.rmtree(trial.dir)                 # a stale or different run: start clean (fit would resume it)
    trial.dir.mkdir(parents=True)
    cwd = os.getcwd()
    os.chdir(outputs.REPO)                       # relative paths in the command mean the repository
    try:
        with _redirected(trial.dir / "fit.log", quiet):
            res = _fit_select_test(trial)
    finally:
        os.chdir(cwd)
    (trial.dir / "results.json").write_text(json.dumps(res))
    return dict(res, reused=False)


@contextlib.contextmanager
def _redirected(log_path: Path, quiet: bool):
    """stdout/stderr of this process (file descriptors, so Lightning's prints too) into log_path."""
    if not quiet:
        yield
        return
    sys.stdout.flush(), sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "w") as log:
        os.dup2(log.fileno(), 1), os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            os.close(saved[0]), os.close(saved[1])


def _fit_select_test(trial: Trial) -> dict:
    import torch

    from pks4_lit.cli import run_cli
    from pks4_lit.tables.events import read_scalars

    t0, cpu0 = time.time(), cpu_seconds()
    cli = run_cli(trial.fit_args() + trial.log_args())
    fit_s = time.time() - t0
    val = [v for _, _, v in sorted(read_scalars(trial.dir).get("val/top1", []))]
    best = cli.trainer.checkpoint_callback.best_model_path
    if not val or not best or not Path(best).is_file():
        raise RuntimeError(f"{trial.name}: no validation scores or best.ckpt after `{trial.command}`")
    # ---- selection is fixed here; only now is the test split opened
    state = torch.load(best, map_location="cpu", weights_only=False)
    cli.model.load_state_dict(state["state_dict"])
    test = predict_test(cli.model, cli.datamodule)
    logged = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]["test/top1"]
    acc = sum(int(p == y) for p, y in zip(test["preds"], test["labels"])) / len(test["ids"])
    if abs(acc - logged) > 1e-6:
        raise RuntimeError(f"{trial.name}: per-clip test accuracy {acc} differs from the logged test/top1 {logged}")
    best_epoch = max(range(len(val)), key=lambda e: (val[e], -e))       # argmax, first on ties
    return dict(command=trial.command, name=trial.name, seed=trial.seed, val_top1=val, best_epoch=best_epoch,
                best_val=val[best_epoch], best_ckpt_epoch=int(state.get("epoch", -1)), test=test, test_top1=acc,
                fit_s=round(fit_s, 2), cpu_s=round(cpu_seconds() - cpu0, 2), epochs=len(val))


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (data-loader workers), user + system."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def predict_test(module, datamodule) -> dict:
    """{ids, labels, preds} of every test clip (view-averaged softmax argmax), sorted by clip id."""
    import torch

    from pks4_lit.data.annotations import read_samples

    dm = datamodule
    samples = read_samples(dm.root, dm.format, "test", dm.class_names, dm.video_dir, dm.split, dm.test_split)
    features = bool(dm.features)
    if not features:
        dm.setup("test")
    rows = []
    module.eval()
    with torch.no_grad():
        for batch in dm.test_dataloader():
            if batch is None:
                continue
            probs = module.multi_view_probs(batch["features" if features else "video"], features)   # [B,K]
            index = batch["index"].tolist() if "index" in batch else [None] * len(probs)
            for i, y, p in zip(index, batch["label"].tolist(), probs.argmax(-1).tolist()):
                rows.append((Path(samples[i].path).stem if i is not None else None, y, p))
    if any(r[0] is None for r in rows):
        raise RuntimeError("test batches carry no clip index: per-clip predictions cannot be paired")
    rows.sort(key=lambda r: (len(r[0]), r[0]))                    # numeric ids in numeric order
    return {"ids": [r[0] for r in rows], "labels": [r[1] for r in rows], "preds": [r[2] for r in rows]}
