"""Scalars read back from TensorBoard event files."""
from __future__ import annotations

from pathlib import Path


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float, float]]]:
    """tag -> [(step, wall_time, value)] over every event file of every version under run_dir
    (or of run_dir alone when it is itself a version directory holding event files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = Path(run_dir)
    out: dict[str, list] = {}
    pattern = "events.out.tfevents.*" if any(run_dir.glob("events.out.tfevents.*")) else "version_*/events.out.tfevents.*"
    for ev_dir in sorted({p.parent for p in run_dir.glob(pattern)}):
        acc = EventAccumulator(str(ev_dir), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend((e.step, e.wall_time, e.value) for e in acc.Scalars(tag))
    return out


def epochs_to(values: list[float], target: float) -> int | None:
    """1-based epoch at which the per-epoch series first reaches target."""
    return next((i + 1 for i, v in enumerate(values) if v >= target - 1e-9), None)
