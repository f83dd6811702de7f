"""`pks4`: the command line.

    pks4 fit|validate|test|predict --config conf/...yaml [--key.sub value ...]   (LightningCLI)
    pks4 synth ROOT [...]                                                     (embedded dataset)
    pks4 bench [NAME|all] [...]                                               (benchmarks, JSON)
    pks4 cache --config C [--views K] [--out DIR]                             (frozen-feature store)
    pks4 stream --config C --ckpt_path X VIDEO                                (per-frame predictions)
    pks4 --help | --version;  pks4 --debug ... or PKS4_DEBUG=1: full tracebacks

Every subcommand is one row of `COMMANDS`; rows without a runner go to LightningCLI, the others
(an `add_arguments`/`run` module, or a function) are dispatched before LightningCLI sees the arguments.

LightningCLI is used with the fixed classes PKS4Module and VideoDataModule (not subclass mode:
errors stay readable), `parser_mode="omegaconf"`, and `data.num_classes`/`data.class_names` linked
into the model. What this file adds on top of it:
  * defaults: TensorBoard logs under `runs/<config dir>/<config name>/version_N`, a crash-safe
    checkpoint callback (`checkpoint:` keys: best.ckpt by val/top1 + last.ckpt every epoch and every
    N steps), a learning-rate monitor (`lr_monitor:` keys), a Rich progress bar on a terminal (TQDM
    otherwise) that names the run version;
  * `--ckpt_path last` (fit) resumes the latest run of this config in its own version directory;
    `--ckpt_path best` (validate/test/predict) takes the best checkpoint by the monitored metric
    across this config's runs, `last` the newest last.ckpt; the file and its score are printed;
    `test` of a best checkpoint warns in one line when the test split is (or shares videos with) the
    validation split it was chosen on (issue 10 §2: suggests `--ckpt_path last`);
  * validate/test log into the run whose checkpoint they evaluate (no new version_N; their config is
    saved there as config_<subcommand>.yaml); predict logs nothing; a run that fails before writing
    a checkpoint leaves no folder behind, one that fails later is marked with a FAILED file;
  * the config.yaml of a resumed run is the config as given (no pinned version or checkpoint file),
    so re-running it starts a fresh run like the original's config.yaml does;
  * validate/test/predict refuse to run on random weights unless `--allow_random_weights true`;
  * one line and exit code 2 for config mistakes (a typo'd key, with a did-you-mean), model
    construction errors raised by our own code, dataset problems; non-finite losses end with one line;
  * the warnings every run would print that say nothing about this run are filtered.
"""
from __future__ import annotations

import copy
import difflib
import importlib
import os
import pkgutil
import shutil
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import yaml

from pks4_lit.command import debug_enabled, print_json, run_and_print, run_command
from pks4_lit.console import default_progress_bar, filter_expected_output
from pks4_lit.runs import (FAILED_MARKER, best_checkpoint, class_count_mismatch, latest_checkpoint, mark_failed,
                           run_dir_of, tensorboard_args)

RUNS_DIR = "runs"
EVAL_SUBCOMMANDS = ("validate", "test", "predict")
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ConfigError(Exception):
    """A mistake in the configuration, reported as `pks4: config error: <message>` (exit code 2)."""


# ---------------------------------------------------------------------------- synth / bench
def bench_names() -> list[str]:
    import pks4_lit.bench as bench

    return sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if not m.name.startswith("_"))


def _bench(argv: list[str]) -> int:
    names = bench_names()
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: pks4 bench {" + ",".join(names + ["all"]) + "} [options]\n\nbenchmarks: " + ", ".join(names))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in names + ["all"]:
        print(f"pks4 bench: error: unknown benchmark {name!r}; choose from {names + ['all']}", file=sys.stderr)
        return 2
    if name != "all":
        return _timed(name, 1, 1, lambda: run_and_print(importlib.import_module(f"pks4_lit.bench.{name}"),
                                                          f"pks4 bench {name}", rest))
    results = {}
    for i, bench_name in enumerate(names, 1):
        module = importlib.import_module(f"pks4_lit.bench.{bench_name}")
        results[bench_name] = _timed(bench_name, i, len(names),
                                     lambda: run_command(module, f"pks4 bench {bench_name}", []))
    print_json(results)
    return 0


def _timed(name: str, i: int, n: int, fn: Callable):
    """Progress of `pks4 bench` on stderr: which benchmark runs, and how long it took."""
    print(f"pks4 bench: [{i}/{n}] {name} ...", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    out = fn()
    print(f"pks4 bench: [{i}/{n}] {name} done in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return out


# ---------------------------------------------------------------------------- the subcommand table
@dataclass(frozen=True)
class Command:
    """One `pks4 NAME`: a LightningCLI subcommand (neither runner), an `add_arguments`/`run` module
    (its JSON result printed), or a function of the remaining arguments returning the exit code."""
    help: str
    module: str | None = None
    function: Callable[[list[str]], int] | None = None

    def __call__(self, name: str, argv: list[str]) -> int:
        if self.function is not None:
            return self.function(argv)
        return run_and_print(importlib.import_module(self.module), f"pks4 {name}", argv)


COMMANDS: dict[str, Command] = {
    "fit": Command("train (LightningCLI: --config conf/...yaml [--key.sub value ...] [--ckpt_path last])"),
    "validate": Command("evaluate a checkpoint on the validation split (--ckpt_path FILE|best|last)"),
    "test": Command("evaluate a checkpoint on the test split (--ckpt_path FILE|best|last)"),
    "predict": Command("print the top classes of videos (--ckpt_path ... --data.predict_paths VIDEO ...)"),
    "synth": Command("write the embedded synthetic dataset in the SSv2 layout (pks4 synth ROOT)",
                     module="pks4_lit.data.synthetic"),
    "bench": Command("benchmarks, printed as JSON (pks4 bench NAME|all)", function=_bench),
    "cache": Command("write the frozen-feature store of a config (pks4 cache --config C [--views K] [--out DIR])",
                     function=lambda argv: _cache(argv)),
    "stream": Command("per-frame predictions of a video, one frame in, one prediction out "
                      "(pks4 stream --config C --ckpt_path X VIDEO)", function=lambda argv: _stream(argv)),
}


def _cache(argv: list[str]) -> int:
    from pks4_lit.cache.command import main as cache_main

    return cache_main(argv)


def _stream(argv: list[str]) -> int:
    from pks4_lit import stream

    return stream.main(argv)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("pks4_lit")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _help() -> str:
    width = max(map(len, COMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {command.help}" for name, command in COMMANDS.items())
    return (f"usage: pks4 [--version] [--debug] {{{','.join(COMMANDS)}}} ...\n\n"
            f"PKS4 video action recognition (pks4_lit {_version()})\n\ncommands:\n{rows}\n\n"
            f"`pks4 COMMAND --help` lists a command's options. --debug (or PKS4_DEBUG=1) shows full tracebacks.")


# ---------------------------------------------------------------------------- runs
def _config_run_name(argv: list[str]) -> str:
    """runs/<name>: `synthetic/pks4` for `--config conf/synthetic/pks4.yaml` (the last --config wins)."""
    configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config", "-c")]
    configs += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    if not configs:
        return "default"
    path = Path(configs[-1])
    return f"{path.parent.name}/{path.stem}" if path.parent.name not in ("", ".", "conf") else path.stem


# ---------------------------------------------------------------------------- errors
def _raised_in_package(err: BaseException) -> bool:
    """Raised by pks4_lit's own code (the innermost frame is ours), not by a dependency."""
    frames = traceback.extract_tb(err.__traceback__)
    return bool(frames) and os.path.abspath(frames[-1].filename).startswith(PACKAGE_DIR + os.sep)


def _last_line(err: BaseException) -> str:
    """The error's own message; errors re-raised from DataLoader workers carry a whole traceback."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    return last.split("Error: ", 1)[1] if len(lines) > 1 and "Error: " in last else last


def _fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


# ---------------------------------------------------------------------------- LightningCLI
def _make_cli_class():
    from lightning.pytorch.callbacks import Callback, LearningRateMonitor
    from lightning.pytorch.callbacks.progress import ProgressBar
    from lightning.pytorch.cli import LightningCLI, SaveConfigCallback
    from lightning.pytorch.utilities.exceptions import MisconfigurationException

    from pks4_lit.callbacks import AtomicModelCheckpoint, PredictionPrinter
    from pks4_lit.data.annotations import DatasetError

    construction_errors = (ValueError, FileNotFoundError, TypeError)

    def is_config_error(err: BaseException) -> bool:
        """A construction error raised by our own code (a dataset error is reported as such, by main)."""
        return (isinstance(err, construction_errors) and not isinstance(err, DatasetError)
                and not debug_enabled() and _raised_in_package(err))

    class _RunStarted(Callback):
        """Tells construction-time errors (before the first batch) from errors of a running loop."""
        started = False

        def on_sanity_check_start(self, trainer, pl_module):
            self.started = True

        def on_train_batch_start(self, *args):
            self.started = True

        on_validation_batch_start = on_test_batch_start = on_predict_batch_start = on_train_batch_start

    class _LogAtCheckpointStep(Callback):
        """validate/test: metrics land at the evaluated checkpoint's step and epoch, next to its training curves."""

        def on_load_checkpoint(self, trainer, pl_module, checkpoint):
            trainer.fit_loop.epoch_loop._batches_that_stepped = int(checkpoint.get("global_step", 0))
            trainer.fit_loop.epoch_progress.current.completed = int(checkpoint.get("epoch", 0))

    class PKS4CLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
            parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
            parser.add_lightning_class_args(AtomicModelCheckpoint, "checkpoint")
            parser.set_defaults({
                "checkpoint.monitor": "val/top1", "checkpoint.mode": "max", "checkpoint.save_top_k": 1,
                "checkpoint.filename": "best", "checkpoint.save_last": True,
                "checkpoint.auto_insert_metric_name": False, "checkpoint.last_every_n_train_steps": 50,
            })
            parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
            parser.set_defaults({"lr_monitor.logging_interval": "step"})
            parser.add_argument("--allow_random_weights", type=bool, default=False,
                                help="validate/test/predict: allow running without --ckpt_path (random weights)")

        def _prepare_subcommand_parser(self, klass, subcommand, **kwargs):
            parser = super()._prepare_subcommand_parser(klass, subcommand, **kwargs)
            if subcommand == "predict":   # added after the method's own arguments: not passed to trainer.predict
                parser.add_argument("--out", type=Optional[str], default=None,
                                    help="predict: also write the predictions to FILE (.csv or .jsonl)")
            return parser

        # ---- parsing: one line per mistake (PKS4Parser.error, pks4_lit.config_errors)
        def init_parser(self, **kwargs):
            parser = super().init_parser(**kwargs)
            parser.allow_abbrev = False   # `--trainer.max_epoch` is a typo, not `--trainer.max_epochs`
            return parser

        # ---- checkpoints and run folders
        def before_instantiate_classes(self):
            sub = self.subcommand
            if sub is None:  # run=False (pks4 cache): instantiate the configured classes only
                return
            config = self.config[sub]
            self._as_given = config.clone()
            if sub == "fit" and config.ckpt_path == "last":
                self._resolve_resume(config)
            if sub in EVAL_SUBCOMMANDS:
                self._selected_by = _selected_on_validation(config)
                if config.ckpt_path in ("best", "last"):
                    self._resolve_eval_checkpoint(config)
                    config = self.config[sub]  # re-parsed with the checkpoint's hyper-parameters
                if not config.ckpt_path and not config.allow_random_weights:
                    _fail(f"pks4 {sub}: no --ckpt_path given: this would {sub} a model with random weights. "
                          f"Pass --ckpt_path FILE (or best/last for this config's runs), or "
                          f"--allow_random_weights true if that is really what you want.")
                self._log_into_checkpoint_run(config)
            if config.get("ckpt_path") and os.path.isfile(config.ckpt_path):
                self._weights_from_checkpoint(config)

        def _weights_from_checkpoint(self, config):
            """Every weight comes from --ckpt_path: the backbone must not read its weights file or the hub
            (missing on another machine, or a download), so its `checkpoint_path`/`pretrained` are cleared."""
            for key, value in list(config.model.items()):
                leaf = key.rpartition(".")[2]
                if (leaf == "checkpoint_path" and value) or (leaf == "pretrained" and value is True):
                    config.model[key] = None if leaf == "checkpoint_path" else False

        def _tensorboard_root(self, config) -> str | None:
            args = tensorboard_args(config)
            return None if args is None else os.path.join(str(args.save_dir), str(args.name or ""))

        def _resolve_resume(self, config):
            """`fit --ckpt_path last`: continue the latest run of this config in its own version dir."""
            root = self._tensorboard_root(config)
            if root is None or config.checkpoint.dirpath:
                return  # a fixed checkpoint dirpath: Lightning's own "last" lookup works
            last = latest_checkpoint(root, "last.ckpt")
            if last is None:
                print(f"pks4 fit: no last.ckpt under {root}/version_*/checkpoints: starting from scratch",
                      file=sys.stderr)
                config.ckpt_path = None
                return
            config.trainer.logger.init_args.version = last.parent.parent.name
            config.ckpt_path = str(last)
            warnings.filterwarnings("ignore", message=r"Checkpoint directory .* exists and is not empty")
            print(f"pks4 fit: resuming from {last}", file=sys.stderr)

        def _resolve_eval_checkpoint(self, config):
            which, sub = config.ckpt_path, self.subcommand
            root = self._tensorboard_root(config)
            where = f"{root or 'the logger directory'}/version_*/checkpoints"
            if which == "last":
                found = latest_checkpoint(root, "last.ckpt") if root else None
                note = "the newest last.ckpt"
            else:
                monitor, mode = config.checkpoint.monitor, config.checkpoint.mode
                like = yaml.safe_load(self._subcommand_parsers[sub].dump(config, skip_none=False))
                best = best_checkpoint(root, monitor, mode, like) if root and monitor else None
                found = best and best[0]
                if best and best[1] is None:
                    note = f"no run records {monitor}: the newest of {best[2]} best.ckpt"
                elif best:
                    note = f"{monitor} = {best[1]:.4f}, the {mode} over {best[2]} run{'s' * (best[2] > 1)}"
                if best and best[3]:
                    note += f"; {best[3]} run{'s' * (best[3] > 1)} with another model or data.root left out"
            if not found:
                _fail(f"pks4 {sub}: --ckpt_path {which}: no {which}.ckpt under {where}; pass a checkpoint file")
            config.ckpt_path = str(found)
            print(f"pks4 {sub}: using {found} ({note})", file=sys.stderr)
            self._parse_ckpt_path()  # model hyper-parameters from the checkpoint, as for a file path

        def _log_into_checkpoint_run(self, config):
            """validate/test write into the run folder of the checkpoint they evaluate; predict logs nothing."""
            args = tensorboard_args(config)
            if args is None:
                return
            if self.subcommand == "predict":
                config.trainer.logger = False
                return
            run = run_dir_of(config.ckpt_path) if config.ckpt_path else None
            if run is not None:
                args.save_dir, args.name, args.version = str(run.parent.parent), run.parent.name, run.name
            args.default_hp_metric = False  # an evaluation must not overwrite the run's hp_metric with -1

        def _saved_config(self):
            """What config.yaml records: the config as given, except an evaluated checkpoint's resolved file."""
            saved = self.config[self.subcommand].clone()
            given = self._as_given
            if hasattr(saved.trainer.logger, "init_args") and hasattr(given.trainer.logger, "init_args"):
                saved.trainer.logger = copy.deepcopy(given.trainer.logger)
            if self.subcommand == "fit":
                saved.ckpt_path = given.ckpt_path if given.ckpt_path != "last" else None
            return saved

        def after_instantiate_classes(self):
            ckpt_path = self.config[self.subcommand].get("ckpt_path") if self.subcommand else None
            if ckpt_path and os.path.isfile(ckpt_path):
                problem = class_count_mismatch(ckpt_path, self.datamodule)
                if problem:
                    raise ConfigError(problem)
            if self.subcommand == "test" and getattr(self, "_selected_by", None):
                _warn_selected_on_test_split(self.datamodule, self._selected_by)

        # ---- the trainer
        def instantiate_classes(self):
            try:
                super().instantiate_classes()
            except (*construction_errors, MisconfigurationException) as err:
                if is_config_error(err) or (isinstance(err, MisconfigurationException) and not debug_enabled()):
                    raise ConfigError(_last_line(err)) from err
                raise

        def instantiate_trainer(self, **kwargs):
            trainer_config = self._get(self.config_init, "trainer", default={})
            callbacks = list(trainer_config.get("callbacks") or [])
            self._run_started = _RunStarted()
            callbacks.append(self._run_started)
            if self.subcommand in ("validate", "test"):
                callbacks.append(_LogAtCheckpointStep())
            if self.subcommand == "predict":  # printed predictions, no progress bar in between
                callbacks.append(PredictionPrinter(out=self.config[self.subcommand].get("out")))
                if trainer_config.get("enable_progress_bar") is None:
                    kwargs["enable_progress_bar"] = False
            elif trainer_config.get("enable_progress_bar") is not False and not any(
                    isinstance(c, ProgressBar) for c in callbacks):
                callbacks.append(default_progress_bar())
            trainer = super().instantiate_trainer(callbacks=callbacks, **kwargs)
            for callback in list(trainer.callbacks):
                if isinstance(callback, SaveConfigCallback):
                    if self.subcommand in ("predict", None):  # None: run=False (pks4 cache), nothing is run
                        trainer.callbacks.remove(callback)
                        continue
                    callback.config = self._saved_config()
                    if self.subcommand != "fit":  # beside the run's own config.yaml, not over it
                        callback.config_filename = f"config_{self.subcommand}.yaml"
            log_dir = getattr(trainer.logger, "log_dir", None)  # None: no logger, or fast_dev_run's dummy
            self._run_dir_existed = log_dir is None or os.path.isdir(log_dir)
            return trainer

        # ---- running: failures leave no empty run folders behind
        def _run_subcommand(self, subcommand):
            try:
                super()._run_subcommand(subcommand)
            except BaseException as err:
                self._after_failure(err)
                if not self._run_started.started and is_config_error(err):
                    raise ConfigError(_last_line(err)) from err
                raise
            run_dir = self._run_dir()
            if subcommand == "fit" and run_dir is not None and (run_dir / FAILED_MARKER).is_file():
                (run_dir / FAILED_MARKER).unlink()  # a resumed run that finished

        def _run_dir(self) -> Path | None:
            log_dir = getattr(self.trainer.logger, "log_dir", None)
            return Path(log_dir) if log_dir is not None and self.trainer.is_global_zero else None

        def _after_failure(self, err: BaseException) -> None:
            """A run folder this command made: removed if no batch ran, else marked FAILED (its logs stay)."""
            run_dir = self._run_dir()
            if run_dir is None or not run_dir.is_dir() or self._run_dir_existed:
                return
            if self._run_started.started or any(run_dir.rglob("*.ckpt")):
                mark_failed(run_dir, f"{type(err).__name__}: {_last_line(err)}")
                return
            shutil.rmtree(run_dir, ignore_errors=True)
            for empty in (run_dir.parent, run_dir.parent.parent):  # runs/<name>, runs: only if now empty
                try:
                    empty.rmdir()
                except OSError:
                    break

    return PKS4CLI


def _selected_on_validation(config) -> str | None:
    """The validation metric a `--ckpt_path best` (or a best.ckpt file) was chosen by, else None."""
    ckpt, monitor = config.get("ckpt_path"), config.checkpoint.monitor
    chosen = ckpt == "best" or (ckpt and Path(ckpt).name == f"{config.checkpoint.filename}.ckpt")
    return monitor if chosen and monitor and str(monitor).startswith("val") else None


def _warn_selected_on_test_split(datamodule, monitor: str) -> None:
    """One line (rank 0) when the test split shares videos with the validation split best.ckpt was chosen on
    (issue 10 §2). A warning, not a refusal: the number may be wanted knowingly (e.g. the literature's SSv2
    protocol); it must not be reported as a held-out score unknowingly."""
    from lightning.pytorch.utilities import rank_zero_only

    from pks4_lit.data.annotations import DatasetError
    from pks4_lit.data.splits import overlap_words, validation_overlap

    if rank_zero_only.rank != 0 or getattr(datamodule, "format", None) is None:
        return
    try:
        shared, total = validation_overlap(datamodule.root, datamodule.format, datamodule.split,
                                           datamodule.test_split, datamodule.video_dir)
    except DatasetError:
        return  # the test itself reports what is wrong with the data
    if shared:
        print(f"pks4 test: warning: this checkpoint was chosen by {monitor} on the validation split and "
              f"{overlap_words(shared, total)}: the number is selected on the split it reports; "
              f"report --ckpt_path last of the fixed schedule instead", file=sys.stderr)


def _parser_class():
    """LightningCLI's parser whose config errors are one line (pks4_lit.config_errors), exit code 2."""
    from lightning.pytorch.cli import LightningArgumentParser

    from pks4_lit.config_errors import misplaced_null, nested_nulls, one_line

    class PKS4Parser(LightningArgumentParser):
        def parse_args(self, args=None, *more, **kw):
            cfg = super().parse_args(nested_nulls(list(sys.argv[1:] if args is None else args)), *more, **kw)
            sub = cfg.get("subcommand")
            problem = misplaced_null(cfg.get(f"{sub}.model.net" if sub else "model.net"), "model.net")
            if problem:
                self._exit(problem, self)
            return cfg

        def error(self, message: str, ex: Exception | None = None):
            if not self.exit_on_error:
                return super().error(message, ex)
            self._exit(message, getattr(ex, "subcommand_parser", None) or self)

        @staticmethod
        def _exit(message: str, parser):
            last = parser.prog.split()[-1]               # "pks4 -c [options] fit" for a subcommand
            prog = "pks4" + (f" {last}" if last in ("fit", "validate", "test", "predict") else "")
            subcommands = getattr(parser, "_subcommands_action", None)
            parsers = [parser] + list(subcommands._name_parser_map.values() if subcommands else [])
            groups: dict[str, list[str]] = {}
            for action in (a for p in parsers for a in p._actions):
                group, _, key = action.dest.rpartition(".")
                groups.setdefault(group, []).append(key)
            print(f"{prog}: config error: {one_line(message, groups)}", file=sys.stderr)
            raise SystemExit(2)

    return PKS4Parser


def run_cli(argv: list[str] | None = None, run: bool = True):
    """Run LightningCLI on `argv` (default: sys.argv[1:]) and return the LightningCLI object;
    `run=False`: no subcommand, only instantiate the configured classes (used by `pks4 cache`)."""
    from pks4_lit.data.datamodule import VideoDataModule
    from pks4_lit.lit_module import PKS4Module

    filter_expected_output()
    if argv is not None:  # called from Python (tests, scripts/demo.py): argv is meant to differ from sys.argv
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    cli_class = _make_cli_class()
    return cli_class(
        PKS4Module, VideoDataModule, args=argv, parser_kwargs={"parser_mode": "omegaconf"},
        seed_everything_default=0, parser_class=_parser_class(),
        save_config_kwargs={"overwrite": True}, run=run,
        trainer_defaults={"logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": RUNS_DIR, "name": _config_run_name(sys.argv[1:] if argv is None else argv)}}},
    )


def _run_trainer_command(argv: list[str]) -> int:
    from pks4_lit.data.annotations import DatasetError
    from pks4_lit.lit_module import NonFiniteLossError

    try:
        run_cli(argv)
    except ConfigError as err:
        if debug_enabled():
            raise
        print(f"pks4: config error: {err}", file=sys.stderr)
        return 2
    except DatasetError as err:
        if debug_enabled():
            raise
        print(f"pks4: dataset error: {_last_line(err)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        if debug_enabled():
            raise
        print(f"pks4: stopped: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "--debug" in args:
        args.remove("--debug")
        os.environ["PKS4_DEBUG"] = "1"  # also reaches DDP worker processes
    if not args or args[0] in ("-h", "--help"):
        print(_help())
        return 0
    if args[0] == "--version":
        print(f"pks4 (pks4_lit) {_version()}")
        return 0
    name = args[0]
    command = COMMANDS.get(name)
    if command is None and not name.startswith("-"):
        close = difflib.get_close_matches(name, list(COMMANDS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        print(f"pks4: error: unknown command {name!r}{hint}; choose from {', '.join(COMMANDS)}", file=sys.stderr)
        return 2
    if command is not None and (command.module or command.function):
        return command(name, args[1:])
    return _run_trainer_command(args)


if __name__ == "__main__":
    sys.exit(main())
