"""Figures logged to TensorBoard: the row-normalised confusion matrix."""
from __future__ import annotations

import torch


def confusion_figure(confusion: torch.Tensor, class_names: list[str], title: str):
    """confusion [K,K] counts (rows: true class) → a matplotlib Figure of per-class recall."""
    from matplotlib.figure import Figure  # no pyplot: no global backend state

    counts = confusion.cpu().float()
    rates = counts / counts.sum(1, keepdim=True).clamp_min(1)
    k = counts.shape[0]
    size = min(4 + 0.35 * k, 24)
    fig = Figure(figsize=(size, size))
    ax = fig.add_subplot()
    im = ax.imshow(rates.numpy(), cmap="Blues", vmin=0, vmax=1)
    if k <= 60:
        ax.set_xticks(range(k), class_names, rotation=90, fontsize=7)
        ax.set_yticks(range(k), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig
