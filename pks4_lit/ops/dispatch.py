"""Shared dispatch helpers: the `PKS4_*_IMPL` environment switches, lazy imports of the optional
CUDA packages, and logging each fallback reason once.

mamba-ssm and causal-conv1d import their compiled extensions at import time and cannot be
installed without CUDA (FIELD_NOTES, "Installing"), so they are imported lazily, inside
`try/except Exception`, and only when a CUDA tensor asks for them.
"""
from __future__ import annotations

import functools
import importlib
import logging
import os

log = logging.getLogger("pks4_lit.ops")
_logged: set[str] = set()


def requested_impl(env_var: str, choices: tuple[str, ...]) -> str:
    """The implementation forced by `env_var` ("auto" when unset); bad values raise ValueError."""
    value = os.environ.get(env_var, "auto").strip().lower() or "auto"
    if value not in choices:
        raise ValueError(f"{env_var}={os.environ[env_var]!r} is not one of {', '.join(choices)}")
    return value


@functools.lru_cache(maxsize=None)
def optional_attr(module: str, attr: str):
    """(object, None) when `module.attr` imports, else (None, "why it did not")."""
    try:
        return getattr(importlib.import_module(module), attr), None
    except Exception as e:                                     # ImportError, missing .so, CUDA init...
        return None, f"{module}.{attr} is not importable ({type(e).__name__}: {e})"


def log_once(message: str) -> None:
    if message not in _logged:
        _logged.add(message)
        log.warning(message)


def choose_backend(what: str, env_var: str, choices: tuple[str, ...], fused_problem, on_cuda: bool) -> str:
    """The path an op takes: `env_var` forces one of `choices`; under "auto" the fused kernel runs
    unless `fused_problem()` names a reason (logged once on CUDA, where a fallback is a surprise).
    A forced "cuda" that cannot run raises RuntimeError with the reason instead of falling back."""
    forced = requested_impl(env_var, choices)
    if forced not in ("auto", "cuda"):
        return forced
    problem = fused_problem()
    if forced == "cuda":
        if problem is not None:
            raise RuntimeError(f"{env_var}=cuda but the fused {what} cannot run: {problem}")
        return "cuda"
    if problem is None:
        return "cuda"
    if on_cuda:
        log_once(f"{what}: using the PyTorch implementation on CUDA because {problem}")
    return "torch"
