"""`make demo`: the embedded dataset, PKS⁴ vs the order-blind TSN baseline, trained and tested on CPU.

    python scripts/demo.py [--heads pks4 tsn] [--synthetic data/synthetic]

1. writes the synthetic set (`pks4 synth data/synthetic`; kept if already there),
2. writes the offline ImageNet EfficientNet-Lite0 weights (`python -m pks4_lit.models.offline_weights`),
3. for each head: `pks4 fit --config conf/synthetic/<head>.yaml`, then
   `pks4 test --config conf/synthetic/<head>.yaml --ckpt_path best`,
4. prints a table (test top-1 overall / temporal classes / spatial classes, epochs, wall time),
   writes it to runs/demo.json and draws the training curves (from the TensorBoard event files)
   to runs/demo_curves.png.

The temporal classes come in forward/backward pairs with the same frames in opposite order, so an
order-blind head is at chance (50 %) inside each pair; a head that reads the order is not.
Run from the repository root (the configs' paths are relative to it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from pks4_lit.cli import run_cli

WEIGHTS = Path("data/weights/efficientnet_lite0.pth")


def step(message: str) -> None:
    print(f"\n=== {message}", flush=True)


def prepare(synthetic: Path) -> None:
    from pks4_lit.data.synthetic import write_synthetic_dataset

    step(f"synthetic dataset -> {synthetic}")
    t0 = time.perf_counter()
    summary = write_synthetic_dataset(synthetic)
    print(f"{summary['task']}: {'reused' if summary['reused'] else 'written'} in {time.perf_counter() - t0:.0f} s")
    if not WEIGHTS.is_file():
        step(f"offline ImageNet weights -> {WEIGHTS}")
        from pks4_lit.models import offline_weights

        WEIGHTS.parent.mkdir(parents=True, exist_ok=True)
        torch.save(offline_weights.convert(), WEIGHTS)


def train_and_test(head: str, synthetic: Path) -> dict:
    config = f"conf/synthetic/{head}.yaml"
    overrides = ["--data.root", str(synthetic)]
    step(f"pks4 fit --config {config}")
    t0 = time.perf_counter()
    fit = run_cli(["fit", "--config", config, *overrides])
    fit_seconds = time.perf_counter() - t0
    best = Path(fit.trainer.checkpoint_callback.best_model_path or "")
    if not best.is_file():
        raise SystemExit(f"no best checkpoint after training {config} (best_model_path={str(best)!r})")
    best_epoch = torch.load(best, map_location="cpu", weights_only=False)["epoch"]
    step(f"pks4 test --config {config} --ckpt_path best")
    t1 = time.perf_counter()
    test = run_cli(["test", "--config", config, "--ckpt_path", str(best), *overrides])
    metrics = {k: float(v) for k, v in test.trainer.callback_metrics.items()}
    return dict(head=head, top1=metrics["test/top1"], temporal=metrics.get("test/top1_temporal"),
                spatial=metrics.get("test/top1_spatial"), epochs=fit.trainer.current_epoch, best_epoch=best_epoch + 1,
                fit_seconds=round(fit_seconds, 1), test_seconds=round(time.perf_counter() - t1, 1), checkpoint=str(best),
                log_dir=str(fit.trainer.log_dir))


def plot_curves(rows: list[dict], png: Path) -> None:
    """train/loss per step and val/top1 per epoch of each head's fit, read back from TensorBoard."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pks4_lit.tables.events import read_scalars

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.6))
    for r in rows:
        scalars = read_scalars(Path(r["log_dir"]))
        steps, _, loss = zip(*scalars["train/loss"])
        ax_loss.plot(steps, loss, lw=1, label=r["head"])
        ax_acc.plot(range(1, len(scalars["val/top1"]) + 1), [v for _, _, v in scalars["val/top1"]], "o-", ms=3, label=r["head"])
    ax_loss.set(xlabel="step", ylabel="train/loss", title="training loss")
    ax_acc.set(xlabel="epoch", ylabel="val/top1", title="validation top-1", ylim=(0, 1.02))
    for ax in (ax_loss, ax_acc):
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("make demo: embedded dataset, frozen EfficientNet-Lite0, CPU")
    fig.tight_layout()
    fig.savefig(png, dpi=110)
    plt.close(fig)


def table(rows: list[dict]) -> str:
    pct = lambda x: "  -  " if x is None else f"{100 * x:5.1f}"  # noqa: E731
    lines = ["| head | test top-1 | temporal classes | spatial classes | epochs (best) | fit + test wall time |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['head']} | {pct(r['top1'])} % | {pct(r['temporal'])} % | {pct(r['spatial'])} % | "
                     f"{r['epochs']} ({r['best_epoch']}) | {r['fit_seconds'] + r['test_seconds']:.0f} s |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--heads", nargs="+", default=["pks4", "tsn"])
    parser.add_argument("--synthetic", type=Path, default=Path("data/synthetic"))
    args = parser.parse_args()
    if not Path("conf/synthetic").is_dir():
        sys.exit("run the demo from the repository root (conf/synthetic/ not found)")
    t0 = time.perf_counter()
    prepare(args.synthetic)
    rows = [train_and_test(head, args.synthetic) for head in args.heads]
    total = time.perf_counter() - t0
    step(f"demo: {total / 60:.1f} min in total on {os.cpu_count()} CPU cores, torch {torch.__version__}")
    print(table(rows))
    Path("runs").mkdir(exist_ok=True)
    Path("runs/demo.json").write_text(json.dumps(dict(rows=rows, total_seconds=round(total, 1)), indent=1))
    plot_curves(rows, Path("runs/demo_curves.png"))
    print("training curves: runs/demo_curves.png  (live: make tensorboard)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
