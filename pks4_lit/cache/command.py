"""`pks4 cache --config C [--views K] [--out DIR] [options] [--key value ...]`: write a config's frozen-feature store.

Other `--key value` arguments are config overrides, as for `pks4 fit` (e.g. `--data.root DIR`). The
config is instantiated by the project's LightningCLI without running anything (`run_cli(..., run=False)`),
so the features come from exactly the model and datamodule `pks4 fit` would build, whatever shape the
config has. Then: `pks4 fit|validate|test --config C --data.features DIR`.

Default DIR: `cache/<config dir>/<backbone>-<10 hex of the fingerprint>`: configs that differ only in
what runs after the backbone (the synthetic heads) share one store, and a changed clip or backbone
setting gets a new store instead of overwriting one. Prints the size estimate and a progress bar on
stderr, a JSON summary on stdout.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

from pks4_lit.command import print_json

CACHE_DIR = "cache"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", action="append", required=True, help="config file(s), as for pks4 fit")
    parser.add_argument("--views", type=int, default=4,
                        help="training clips per video: those of epochs 0..K-1 (later epochs reuse them cyclically)")
    parser.add_argument("--out", default=None, help="store directory (default: cache/<config dir>/<backbone>-<hash>)")
    parser.add_argument("--dtype", choices=("float16", "bfloat16", "float32"), default="float16")
    parser.add_argument("--splits", nargs="+", default=["train", "val", "test"], choices=["train", "val", "test"])
    parser.add_argument("--batch-size", type=int, default=None, help="clips (train) / videos (eval) per backbone forward")
    parser.add_argument("--shard-size", type=int, default=None, help="videos per shard file (default: ~512 MB, >= 16 shards)")
    parser.add_argument("--device", default=None, help="default: the configured trainer's device")
    parser.add_argument("--overwrite", action="store_true", help="replace a store written for another configuration")
    parser.add_argument("--no-progress", action="store_true")


def default_out(configs: list[str], backbone: str, fingerprint: dict) -> Path:
    path = Path(configs[-1])
    group = path.parent.name if path.parent.name not in ("", ".", "conf") else path.stem
    digest = hashlib.sha256(json.dumps(fingerprint, sort_keys=True).encode()).hexdigest()[:10]
    return Path(CACHE_DIR) / group / f"{backbone.split('.')[0]}-{digest}"


def build(configs: list[str], overrides: list[str]):
    """(LightningModule, datamodule, trainer) of the config, instantiated and nothing run."""
    from pks4_lit.cli import run_cli

    args = [a for c in configs for a in ("--config", c)] + list(overrides)
    cli = run_cli(args, run=False)
    return cli.model, cli.datamodule, cli.trainer


def run(args, overrides: list[str]) -> dict:
    from pks4_lit.cache.fingerprint import fingerprint
    from pks4_lit.cache.model import check_cacheable
    from pks4_lit.cache.write import write_store

    module, datamodule, trainer = build(args.config, overrides)
    classifier = check_cacheable(module)
    out = args.out
    if out is None:
        fp = fingerprint(classifier, datamodule, trainer.precision, args.splits)
        out = default_out(args.config, classifier.backbone.name, fp)
    summary = write_store(classifier, datamodule, out, views=args.views, dtype=args.dtype, precision=trainer.precision,
                          autocast=trainer.precision_plugin.forward_context,
                          device=args.device or trainer.strategy.root_device, splits=args.splits,
                          batch_size=args.batch_size, shard_size=args.shard_size, overwrite=args.overwrite,
                          progress=not args.no_progress)
    configs = " ".join(f"--config {c}" for c in args.config)
    print(f"pks4 cache: {out} ready ({summary['seconds']} s); train from it: "
          f"pks4 fit {configs} --data.features {out}", file=sys.stderr)
    return summary


def main(argv: list[str] | None = None) -> int:
    from pks4_lit.data.annotations import DatasetError

    parser = argparse.ArgumentParser(prog="pks4 cache", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    args, overrides = parser.parse_known_args(argv)
    try:
        print_json(run(args, overrides))
    except DatasetError as err:  # StoreError / StoreMismatchError included: one line, exit 2
        print(f"pks4 cache: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
