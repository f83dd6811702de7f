"""Figures of the tables (matplotlib, Agg backend), written as PNG files."""
from __future__ import annotations

from pathlib import Path


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_curves(summaries: dict[str, list[dict]], png: Path, title: str) -> None:
    """val/top1 per epoch: one panel per key of `summaries`, one line per run."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(summaries), figsize=(5.5 * len(summaries), 4), squeeze=False)
    for ax, (task, rows) in zip(axes[0], summaries.items()):
        for s in rows:
            if s["val_top1"]:
                ax.plot(range(1, len(s["val_top1"]) + 1), s["val_top1"], "o-", ms=3, label=s["name"])
        ax.set_xlabel("epoch")
        ax.set_ylabel("val top-1")
        ax.set_title(task)
        ax.set_ylim(0, 1.02)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)


def plot_efficiency(res: dict, png: Path) -> None:
    """Step time and saved-for-backward memory vs T, log-log, per mode (head alone / end to end)."""
    plt = _pyplot()
    modes = [m for m in ("head", "e2e") if any(r["mode"] == m for r in res["results"])]
    metrics = [("step_s", "training step time (s)"), ("saved_MB", "saved for backward (MB)")]
    fig, axes = plt.subplots(len(modes), 2, figsize=(11, 4.2 * len(modes)), squeeze=False)
    for i, mode in enumerate(modes):
        for j, (key, label) in enumerate(metrics):
            ax = axes[i][j]
            for row in dict.fromkeys(r["row"] for r in res["results"] if r["mode"] == mode):
                rs = sorted((r for r in res["results"] if r["mode"] == mode and r["row"] == row), key=lambda r: r["T"])
                pts = [(r["T"], r[key]) for r in rs if r[key] and r[key] > 0]
                if len(pts) < 2:
                    continue
                s = res["slopes"][mode][row][key]["tail"]
                ax.loglog(*zip(*pts), "o-", label=f"{row} (slope {s:.2f})", base=2)
            ax.set_xlabel("frames T")
            ax.set_ylabel(label)
            ax.set_title(f"{'temporal head alone' if mode == 'head' else 'full step from pixels'}: {label}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.suptitle("Training cost vs clip length (log-log; slopes over the largest three T)")
    fig.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=110)
    plt.close(fig)
