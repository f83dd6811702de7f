"""The convention behind `pks4 synth`, `pks4 bench <name>` and `python -m` on those modules: a module
exposes `add_arguments(parser)` and `run(args) -> dict`, and its result is printed as JSON.

stdout carries only that JSON: anything the module prints while it runs, and its progress, goes to
stderr. Expected input errors (a refused folder, a bad value: FileExistsError, FileNotFoundError,
ValueError) end with one line and exit code 2; `PKS4_DEBUG=1` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from types import ModuleType

USER_ERRORS = (FileExistsError, FileNotFoundError, NotADirectoryError, ValueError)


def debug_enabled() -> bool:
    """`PKS4_DEBUG=1` (or `pks4 --debug ...`): full tracebacks instead of one-line errors."""
    return os.environ.get("PKS4_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def run_command(module: ModuleType, prog: str, argv: list[str] | None = None):
    """Parse `argv` with the module's own arguments and return `module.run(args)` (its prints go to stderr)."""
    parser = argparse.ArgumentParser(prog=prog, description=(module.__doc__ or "").split("\n\n")[0])
    module.add_arguments(parser)
    args = parser.parse_args(argv)
    with contextlib.redirect_stdout(sys.stderr):
        return module.run(args)


def print_json(result) -> None:
    print(json.dumps(result, indent=2, default=str), flush=True)


def run_and_print(module: ModuleType, prog: str, argv: list[str] | None = None) -> int:
    """Run a command module, print its JSON result; an expected error is one line on stderr, exit code 2."""
    try:
        result = run_command(module, prog, argv)
    except USER_ERRORS as err:
        if debug_enabled():
            raise
        print(f"{prog}: error: {err}", file=sys.stderr)
        return 2
    if result is not None:
        print_json(result)
    return 0


def script_main(module_name: str, prog: str, argv: list[str] | None = None) -> None:
    """`main()` of such a module: run it on the command line and print the result."""
    code = run_and_print(sys.modules[module_name], prog, argv)
    if code:
        raise SystemExit(code)


class Progress:
    """`done/total unit` on stderr: rewritten in place on a terminal, a line every ~10 % otherwise."""

    def __init__(self, prog: str, total: int, unit: str = "items", stream=None, enabled: bool = True):
        self.prog, self.total, self.unit, self.enabled = prog, max(int(total), 0), unit, enabled
        self.stream = stream or sys.stderr
        self.done_count, self.t0, self._last_line = 0, time.perf_counter(), -1
        self.interactive = getattr(self.stream, "isatty", lambda: False)()

    def step(self, n: int = 1) -> None:
        self.done_count += n
        if self.interactive:
            self._write(end="\r")
            return
        decile = self.done_count * 10 // max(self.total, 1)
        if decile != self._last_line and self.done_count < self.total:
            self._last_line = decile
            self._write()

    def close(self) -> None:
        self._write()

    def _write(self, end: str = "\n") -> None:
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.t0
        print(f"{self.prog}: {self.done_count}/{self.total} {self.unit} ({elapsed:.0f} s)", end=end,
              file=self.stream, flush=True)
