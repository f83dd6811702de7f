"""`pks4`: the command line.

    pks4 fit|validate|test|predict --config conf/...yaml [--key.sub value ...]   (LightningCLI)
    pks4 synth ROOT [...]                                                     (embedded dataset)
    pks4 bench [NAME|all] [...]                                               (benchmarks, JSON)

`synth` and `bench` are dispatched with argparse before LightningCLI sees the arguments.

LightningCLI is used with the fixed classes PKS4Module and VideoDataModule (not subclass mode:
errors stay readable), `parser_mode="omegaconf"`, and `data.num_classes`/`data.class_names` linked
into the model. What this file adds on top of it:
  * defaults: TensorBoard logs under `runs/<config dir>/<config name>/version_N`, a crash-safe
    checkpoint callback (`checkpoint:` keys: best.ckpt by val/top1 + last.ckpt every epoch and every
    N steps), a learning-rate monitor (`lr_monitor:` keys), a Rich progress bar on a terminal (TQDM
    otherwise);
  * `--ckpt_path last` (fit) resumes the latest run of this config in its own version directory, so
    logs and checkpoints continue where they stopped; `--ckpt_path best|last` (validate/test/predict)
    picks that run's best/last checkpoint;
  * validate/test/predict refuse to run on random weights unless `--allow_random_weights true`;
  * dataset problems and non-finite losses end with one clear line instead of a traceback.
"""
from __future__ import annotations

import glob
import importlib
import os
import pkgutil
import sys
import warnings
from pathlib import Path

from pks4_lit.command import print_json, run_command

RUNS_DIR = "runs"
EVAL_SUBCOMMANDS = ("validate", "test", "predict")


# ---------------------------------------------------------------------------- synth / bench
def _synth(argv: list[str]) -> int:
    from pks4_lit.data import synthetic

    result = run_command(synthetic, "pks4 synth", argv)
    if result is not None:
        print_json(result)
    return 0


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
    results = {}
    for bench_name in names if name == "all" else [name]:
        module = importlib.import_module(f"pks4_lit.bench.{bench_name}")
        results[bench_name] = run_command(module, f"pks4 bench {bench_name}", rest if name != "all" else [])
    print_json(results[name] if name != "all" else results)
    return 0


# ---------------------------------------------------------------------------- LightningCLI
def _config_run_name(argv: list[str]) -> str:
    """runs/<name>: `synthetic/pks4` for `--config conf/synthetic/pks4.yaml` (the last --config wins)."""
    configs = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config", "-c")]
    configs += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    if not configs:
        return "default"
    path = Path(configs[-1])
    return f"{path.parent.name}/{path.stem}" if path.parent.name not in ("", ".", "conf") else path.stem


def _latest_checkpoint(run_root: str, filename: str) -> Path | None:
    """The most recently written `<run_root>/version_*/checkpoints/<filename>`."""
    found = [Path(p) for p in glob.glob(os.path.join(glob.escape(run_root), "version_*", "checkpoints", filename))]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def _default_progress_bar():
    from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

    interactive = sys.stdout.isatty() and not os.environ.get("CI")
    if interactive:
        try:
            import rich  # noqa: F401
            return RichProgressBar()
        except ImportError:
            pass
    return TQDMProgressBar(refresh_rate=1 if interactive else 50)


def _make_cli_class():
    from lightning.pytorch.callbacks import LearningRateMonitor
    from lightning.pytorch.callbacks.progress import ProgressBar
    from lightning.pytorch.cli import LightningCLI

    from pks4_lit.callbacks import AtomicModelCheckpoint, PredictionPrinter

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

        def before_instantiate_classes(self):
            sub = self.subcommand
            config = self.config[sub]
            if sub == "fit" and config.ckpt_path == "last":
                self._resolve_resume(config)
            if sub in EVAL_SUBCOMMANDS:
                if config.ckpt_path in ("best", "last"):
                    self._resolve_eval_checkpoint(config)
                if not config.ckpt_path and not config.allow_random_weights:
                    _fail(f"pks4 {sub}: no --ckpt_path given: this would {sub} a model with random weights. "
                          f"Pass --ckpt_path FILE (or best/last for this config's latest run), or "
                          f"--allow_random_weights true if that is really what you want.")

        def _tensorboard_root(self, config) -> str | None:
            logger = config.trainer.logger
            if not hasattr(logger, "class_path") or not logger.class_path.endswith("TensorBoardLogger"):
                return None
            args = logger.init_args
            return os.path.join(str(args.save_dir), str(args.name or ""))

        def _resolve_resume(self, config):
            """`fit --ckpt_path last`: continue the latest run of this config in its own version dir."""
            root = self._tensorboard_root(config)
            if root is None or config.checkpoint.dirpath:
                return  # a fixed checkpoint dirpath: Lightning's own "last" lookup works
            last = _latest_checkpoint(root, "last.ckpt")
            if last is None:
                print(f"pks4 fit: no last.ckpt under {root}/version_*/checkpoints: starting from scratch",
                      file=sys.stderr)
                config.ckpt_path = None
                return
            config.trainer.logger.init_args.version = last.parent.parent.name
            config.ckpt_path = str(last)
            print(f"pks4 fit: resuming from {last}", file=sys.stderr)

        def _resolve_eval_checkpoint(self, config):
            which = config.ckpt_path
            root = self._tensorboard_root(config)
            found = _latest_checkpoint(root, f"{which}.ckpt") if root else None
            if found is None:
                _fail(f"pks4 {self.subcommand}: --ckpt_path {which}: no {which}.ckpt under "
                      f"{root or 'the logger directory'}/version_*/checkpoints; pass a checkpoint file")
            config.ckpt_path = str(found)
            print(f"pks4 {self.subcommand}: using {found}", file=sys.stderr)
            self._parse_ckpt_path()  # model hyper-parameters from the checkpoint, as for a file path

        def instantiate_trainer(self, **kwargs):
            trainer_config = self._get(self.config_init, "trainer", default={})
            callbacks = list(trainer_config.get("callbacks") or [])
            if self.subcommand == "predict":  # printed predictions, no progress bar in between
                callbacks.append(PredictionPrinter())
                if trainer_config.get("enable_progress_bar") is None:
                    kwargs["enable_progress_bar"] = False
            elif trainer_config.get("enable_progress_bar") is not False and not any(
                    isinstance(c, ProgressBar) for c in callbacks):
                callbacks.append(_default_progress_bar())
            return super().instantiate_trainer(callbacks=callbacks, **kwargs)

    return PKS4CLI


def _last_line(err: Exception) -> str:
    """The error's own message; errors re-raised from DataLoader workers carry a whole traceback."""
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    last = lines[-1] if lines else type(err).__name__
    return last.split("Error: ", 1)[1] if len(lines) > 1 and "Error: " in last else last


def _fail(message: str) -> None:
    print(message, file=sys.stderr)
    raise SystemExit(2)


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


def run_cli(argv: list[str] | None = None):
    """Run LightningCLI on `argv` (default: sys.argv[1:]) and return the LightningCLI object."""
    from pks4_lit.data.datamodule import VideoDataModule
    from pks4_lit.lit_module import PKS4Module

    if argv is not None:  # called from Python (tests, scripts/demo.py): argv is meant to differ from sys.argv
        warnings.filterwarnings("ignore", message="LightningCLI's args parameter is intended")
    cli_class = _make_cli_class()
    return cli_class(
        PKS4Module, VideoDataModule, args=argv, parser_kwargs={"parser_mode": "omegaconf"},
        parser_class=_parser_class(),
        seed_everything_default=0, save_config_kwargs={"overwrite": True},
        trainer_defaults={"logger": {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": RUNS_DIR, "name": _config_run_name(sys.argv[1:] if argv is None else argv)}}},
    )


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "synth":
        return _synth(args[1:])
    if args and args[0] == "bench":
        return _bench(args[1:])

    from pks4_lit.data.annotations import DatasetError
    from pks4_lit.lit_module import NonFiniteLossError

    try:
        run_cli(argv)
    except DatasetError as err:
        print(f"pks4: dataset error: {_last_line(err)}", file=sys.stderr)
        return 2
    except NonFiniteLossError as err:
        print(f"pks4: stopped: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
