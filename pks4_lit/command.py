"""The convention behind `pks4 synth`, `pks4 bench <name>` and `python -m` on those modules: a module
exposes `add_arguments(parser)` and `run(args) -> dict`, and its result is printed as JSON."""
from __future__ import annotations

import argparse
import json
import sys
from types import ModuleType


def run_command(module: ModuleType, prog: str, argv: list[str] | None = None):
    """Parse `argv` with the module's own arguments and return `module.run(args)`."""
    parser = argparse.ArgumentParser(prog=prog, description=(module.__doc__ or "").split("\n\n")[0])
    module.add_arguments(parser)
    return module.run(parser.parse_args(argv))


def print_json(result) -> None:
    print(json.dumps(result, indent=2, default=str))


def script_main(module_name: str, prog: str, argv: list[str] | None = None) -> None:
    """`main()` of such a module: run it on the command line and print the result."""
    print_json(run_command(sys.modules[module_name], prog, argv))
