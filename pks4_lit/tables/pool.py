"""Run many trials in a few long-lived worker processes (one torch thread each), in-process per trial.

A `pks4 fit` subprocess pays the interpreter, torch, Lightning and timm imports (several seconds) for
every run; a worker pays them once. Workers are spawned (fresh interpreters, no forked torch state)
and each runs its trials one after another through `trial.run_trial`.
"""
from __future__ import annotations

import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed

from pks4_lit.tables.trial import Trial, run_trial


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _one(trial: Trial, force: bool) -> dict:
    t0 = time.time()
    res = run_trial(trial, force=force)
    return dict(res, wall_s=round(time.time() - t0, 2))


def run_trials(trials: list[Trial], jobs: int = 2, threads: int = 1, force: bool = False) -> list[dict]:
    """Results of `trials` in their order; jobs = 0 runs them in this process."""
    todo = [t for t in trials if force or t.cached() is None]
    print(f"[tables] {len(trials)} trials, {len(trials) - len(todo)} reused, {len(todo)} to train "
          f"({max(jobs, 1)} worker(s) × {threads} thread(s))", file=sys.stderr, flush=True)
    results: dict[str, dict] = {}
    t0 = time.time()
    if jobs <= 0 or len(todo) <= 1:
        for k, t in enumerate(trials):
            results[t.name] = _one(t, force and t in todo)
            _progress(k + 1, len(trials), t0, results[t.name])
    else:
        import multiprocessing as mp

        with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                                 initargs=(threads,)) as ex:
            futures = {ex.submit(_one, t, force): t for t in todo}
            for k, fut in enumerate(as_completed(futures)):
                t = futures[fut]
                results[t.name] = fut.result()
                _progress(k + 1, len(todo), t0, results[t.name])
        for t in trials:
            if t.name not in results:
                results[t.name] = dict(t.cached(), reused=True)
    return [results[t.name] for t in trials]


def _progress(k: int, n: int, t0: float, res: dict) -> None:
    how = "reused" if res.get("reused") else f"{res.get('fit_s', 0):.0f} s"
    print(f"[tables] {k}/{n} {res['name']}: val {res['best_val']:.3f} (epoch {res['best_epoch']}), "
          f"test {res['test_top1']:.3f} [{how}; {time.time() - t0:.0f} s so far]", file=sys.stderr, flush=True)
