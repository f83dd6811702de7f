"""The paper's tables at our scale: run the experiments, read the metrics back, write docs/RESULTS.md.

    python -m pks4_lit.tables efficiency [bench options]           (make table-efficiency)
    python -m pks4_lit.tables main     [--data DIR] [--epochs E]   (make table-main)
    python -m pks4_lit.tables ablation [--data DIR] [--epochs E]   (make table-ablation)
    python -m pks4_lit.tables ssv2 --data DIR                      (make table-ssv2 DATA=DIR)
    python -m pks4_lit.tables k400 --data DIR                      (make table-k400 DATA=DIR)

Claims of the abstract and where they are checked:
  * accuracy on temporal-heavy (SSv2-like) and spatial-heavy (K400-like) data: `main` trains every
    temporal head (and the ST-Adapter baseline) on the embedded `pks4 synth --task temporal` and
    `--task spatial` sets; `ssv2`/`k400` run the conf/ssv2 and conf/k400 recipes on the real data.
  * convergence in few epochs: epochs until val/top1 first reaches 90% of its final value.
  * ~10× less training compute than pure video SSMs: FLOPs/clip × clips seen until val/top1 first
    reaches a common target, pks4 against `global_ssm` (one scan over the flattened clip).
  * linear in frames: `efficiency` (pks4_lit.bench.heads), time/memory/FLOPs as T grows.

Every training run goes through the real CLI (`pks4 fit`, then `pks4 test --ckpt_path <best>`) in a
subprocess, logs to runs/tables/<table>/<run>/version_N, and is read back from its TensorBoard event
files. A finished run is reused when its command line is unchanged (`--force` reruns). Costs per
clip (train FLOPs, tunable parameters, bytes saved for backward) are measured on the trained model
rebuilt from its checkpoint, with the functions of pks4_lit.bench.heads.

Tables go into docs/RESULTS.md between `<!-- tables:<name>:start/end -->` markers in the section
"## Paper tables (make tables)"; plots into docs/figures/, raw numbers into docs/results/.
"""
from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS_MD = REPO / "docs" / "RESULTS.md"
FIG_DIR = REPO / "docs" / "figures"
RAW_DIR = REPO / "docs" / "results"
SECTION = "## Paper tables (make tables)"
SECTION_INTRO = (
    "Written by `pks4_lit/tables.py` (`make tables`, or one `make table-*`); each block below says the\n"
    "command, the machine and the date that produced it. Synthetic-scale numbers check the *shape* of\n"
    "the paper's claims (orderings, slopes, ratios), not its absolute accuracies.\n")
HEADS = ("tsn", "attention", "ssm", "global_ssm", "pks4")
TARGET_FRACTION = 0.9          # "converged": val/top1 >= 90% of its final value


# ---------------------------------------------------------------------------- docs/RESULTS.md
def write_block(key: str, markdown: str, path: Path | None = None) -> None:
    """Replace (or add) the marked block `key` inside this module's section of RESULTS.md."""
    path = path or RESULTS_MD
    start, end = f"<!-- tables:{key}:start -->", f"<!-- tables:{key}:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.is_file() else "# Results\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        if SECTION not in text:
            text = text.rstrip() + f"\n\n{SECTION}\n\n{SECTION_INTRO}"
        head, tail = text.split(SECTION, 1)
        nxt = tail.find("\n## ")                   # the next section, if any: insert before it
        body, after = (tail, "") if nxt < 0 else (tail[:nxt], tail[nxt:])
        text = head + SECTION + body.rstrip() + f"\n\n{block}\n" + after
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.rstrip() + "\n")


def machine_line() -> str:
    import torch

    cpu = f"{os.cpu_count()}-core {platform.machine()} CPU"
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return (f"{cpu}{gpu}, {platform.system()} {platform.release()}, Python {platform.python_version()}, "
            f"torch {torch.__version__}")


def provenance(command: str) -> str:
    return (f"Command: `{command}`  \nMachine: {machine_line()}  \n"
            f"Date: {datetime.datetime.now().isoformat(timespec='minutes')}\n")


def md_table(header: list[str], rows: list[list]) -> str:
    fmt = lambda v: "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _abs(path) -> Path:
    """Paths given to this module are relative to the repository (the CLI children run there)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO / path


def _relative(path: Path) -> str:
    return os.path.relpath(path, RESULTS_MD.parent)


# ---------------------------------------------------------------------------- efficiency
def efficiency(argv: list[str], command: str) -> dict:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from pks4_lit.bench import heads as bench

    parser = argparse.ArgumentParser(prog="tables efficiency")
    bench.add_arguments(parser)
    args = parser.parse_args(argv)
    res = bench.run(args)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    (RAW_DIR / "efficiency.json").write_text(json.dumps(res, indent=1))

    FIG_DIR.mkdir(parents=True, exist_ok=True)
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
    png = FIG_DIR / "efficiency.png"
    fig.savefig(png, dpi=110)
    plt.close(fig)

    md = [provenance(command), f"![training cost vs T]({_relative(png)})  ",
          f"Raw numbers: `{_relative(RAW_DIR / 'efficiency.json')}`. Batch {args.batch}; "
          f"head mode: features {args.dim}×{args.size}×{args.size}; e2e: {args.backbone} at {args.img_size} px "
          f"(feature_index {args.feature_index}); step time = fastest of {args.repeats} steps, {args.threads} thread(s).\n"]
    for mode in modes:
        rs = [r for r in res["results"] if r["mode"] == mode]
        Ts = sorted({r["T"] for r in rs})
        mem_key = "cuda_peak_MB" if any("cuda_peak_MB" in r for r in rs) else "rss_peak_MB"
        md.append(f"**{'Temporal head alone' if mode == 'head' else 'Full training step from pixels'}** "
                  f"(step time s / saved-for-backward MB / train GFLOPs per clip):\n")
        header = ["row", "tunable params"] + [f"T={t}" for t in Ts] + \
                 ["slope time", "slope memory", "slope FLOPs", "slope T² part"]
        rows = []
        for row in dict.fromkeys(r["row"] for r in rs):
            by_t = {r["T"]: r for r in rs if r["row"] == row}
            cells = [f"{by_t[t]['step_s']:.3f} / {by_t[t]['saved_MB']:.1f} / "
                     f"{by_t[t].get('train_GFLOPs_per_clip', float('nan')):.3g}" if t in by_t else "—" for t in Ts]
            sl = res["slopes"][mode][row]
            f = lambda k: sl[k]["tail"]  # noqa: E731
            rows.append([row, next(iter(by_t.values()))["tunable_params"], *cells, f("step_s"), f("saved_MB"),
                         f("train_GFLOPs_per_clip"), f("quad_GFLOPs_per_clip")])
        md.append(md_table(header, rows) + "\n")
        peaks = {r["row"]: r.get(mem_key) for r in rs if r["T"] == max(Ts)}
        md.append(f"{mem_key} at T={max(Ts)}: " + ", ".join(
            f"{k} {v:.0f}" if v is not None else f"{k} —" for k, v in peaks.items()) + "\n")
    write_block("efficiency", "### Efficiency: training cost as T grows\n\n" + "\n".join(md))
    return res


# ---------------------------------------------------------------------------- training runs
class Run:
    """One `pks4 fit` + `pks4 test` through the CLI, logged under runs/tables/<table>/<name>."""

    def __init__(self, table: str, name: str, config: Path, data: Path, overrides: list[str], runs_dir: Path):
        self.table, self.name, self.config, self.data = table, name, Path(config), Path(data)
        self.overrides = overrides
        self.dir = runs_dir / table / name
        log = ["--trainer.logger.init_args.save_dir", str(runs_dir / table),
               "--trainer.logger.init_args.name", name]
        base = [sys.executable, "-m", "pks4_lit.cli"]
        common = ["--config", str(self.config), "--data.root", str(self.data)]
        self.fit_cmd = base + ["fit", *common, *overrides, *log]
        self.test_cmd = base + ["test", *common, *overrides, *log, "--ckpt_path"]   # + best checkpoint

    @property
    def command(self) -> str:
        return "pks4 " + shlex.join(self.fit_cmd[3:])

    def _done_file(self) -> Path:
        return self.dir / "done.json"

    def cached(self) -> dict | None:
        f = self._done_file()
        if f.is_file():
            done = json.loads(f.read_text())
            if done.get("fit_cmd") == self.fit_cmd[3:]:
                return done
        return None

    def execute(self, quiet: bool = True) -> dict:
        if self.dir.exists():
            shutil.rmtree(self.dir)                  # a stale or different run: start clean
        self.dir.mkdir(parents=True)
        t0 = time.time()
        fit = _run_child(self.fit_cmd, self.dir / "fit.log", quiet)
        fit_s = time.time() - t0
        best = sorted(self.dir.glob("version_*/checkpoints/best.ckpt"))
        if not best:
            raise RuntimeError(f"{self.name}: no best.ckpt after `{self.command}` (see {self.dir / 'fit.log'})")
        _run_child(self.test_cmd + [str(best[-1])], self.dir / "test.log", quiet)
        done = dict(fit_cmd=self.fit_cmd[3:], fit_s=fit_s, fit_maxrss_MB=fit["maxrss_MB"], best=str(best[-1]))
        self._done_file().write_text(json.dumps(done, indent=1))
        return done


def _run_child(cmd: list[str], log_path: Path, quiet: bool) -> dict:
    """Run a CLI command; its peak RSS comes from wait4 (this child only)."""
    print("[tables] $ pks4 " + shlex.join(cmd[3:]), file=sys.stderr, flush=True)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log if quiet else None, stderr=subprocess.STDOUT if quiet else None,
                                cwd=REPO, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_path.read_text().strip().splitlines()[-15:] if quiet else []
        raise RuntimeError(f"command failed ({proc.returncode}): pks4 {shlex.join(cmd[3:])}\n" + "\n".join(tail))
    return dict(maxrss_MB=usage.ru_maxrss / 1024)


def read_scalars(run_dir: Path) -> dict[str, list[tuple[int, float, float]]]:
    """tag -> [(step, wall_time, value)] over every event file of every version under run_dir
    (or of run_dir alone when it is itself a version directory holding event files)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

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


def count_split(data: Path, split: str) -> int | None:
    f = Path(data) / f"{split}.json"
    return len(json.loads(f.read_text())) if f.is_file() else None


def model_costs(ckpt: str) -> dict:
    """Train FLOPs/clip, tunable params, saved-for-backward MB at the training batch, from a checkpoint."""
    import torch

    from pks4_lit.bench.heads import count_flops, saved_bytes, tunable_params
    from pks4_lit.lit_module import PKS4Module

    torch.set_num_threads(1)
    blob = torch.load(ckpt, map_location="cpu", weights_only=False)
    dm = blob.get("datamodule_hyper_parameters", {})
    module = PKS4Module.load_from_checkpoint(ckpt, map_location="cpu")
    model = module.model.train()
    T, S, B = dm.get("num_frames", 8), dm.get("crop_size", 112), dm.get("batch_size", 8)
    g = torch.Generator().manual_seed(0)
    x1 = torch.randint(0, 256, (1, T, 3, S, S), dtype=torch.uint8, generator=g)
    y1 = torch.zeros(1, dtype=torch.long)
    flops = count_flops(model, x1, y1)
    xb = torch.randint(0, 256, (B, T, 3, S, S), dtype=torch.uint8, generator=g)
    yb = torch.zeros(B, dtype=torch.long)
    return dict(train_GFLOPs_per_clip=flops["total"] / 1e9, tunable_params=tunable_params(model),
                saved_MB=saved_bytes(model, xb, yb) / 2 ** 20, batch_size=B, num_frames=T, crop_size=S)


def summarize(run: Run, done: dict) -> dict:
    sc = read_scalars(run.dir)
    val = [v for _, _, v in sorted(sc.get("val/top1", []))]
    test = sc.get("test/top1", [])
    s = dict(name=run.name, command=run.command, test_top1=test[-1][2] if test else None,
             val_top1=val, final_val=val[-1] if val else None, fit_s=done["fit_s"], fit_maxrss_MB=done["fit_maxrss_MB"])
    s["epochs_to_90"] = epochs_to(val, TARGET_FRACTION * val[-1]) if val else None
    n_train = count_split(run.data, "train")
    s["n_train"] = n_train
    epochs = sorted(sc.get("train/loss_epoch", []))
    if n_train and len(epochs) >= 2:                     # clips per wall second between epoch ends
        (_, w0, _), (_, w1, _) = epochs[0], epochs[-1]
        s["clips_per_s"] = n_train * (len(epochs) - 1) / max(w1 - w0, 1e-9)
    else:
        s["clips_per_s"] = n_train * len(val) / done["fit_s"] if n_train and val else None
    s.update(model_costs(done["best"]))
    return s


def run_all(runs: list[Run], force: bool) -> list[dict]:
    out = []
    for r in runs:
        done = None if force else r.cached()
        if done is None:
            done = r.execute()
        else:
            print(f"[tables] reusing {r.dir} (same command; --force reruns)", file=sys.stderr)
        out.append(summarize(r, done))
    return out


def ensure_synthetic(root: Path, task: str, videos_per_class: int) -> Path:
    from pks4_lit.data.synthetic import write_synthetic_dataset

    info = write_synthetic_dataset(root, task=task, videos_per_class=videos_per_class)
    print(f"[tables] synthetic {task} set at {root} ({'reused' if info.get('reused') else 'written'})", file=sys.stderr)
    return root


def adapter_supported() -> bool:
    from pks4_lit.lit_module import PKS4Module

    return "adapter" in inspect.signature(PKS4Module.__init__).parameters


def plot_curves(summaries: dict[str, list[dict]], png: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def _run_opts(parser: argparse.ArgumentParser, epochs_default: int | None) -> None:
    parser.add_argument("--data", default=None, help="dataset root (synthetic: a folder holding temporal/ and "
                                                     "spatial/, written if missing)")
    parser.add_argument("--config-dir", default=None, help="folder of <head>.yaml configs")
    parser.add_argument("--epochs", type=int, default=epochs_default, help="--trainer.max_epochs for every run")
    parser.add_argument("--videos-per-class", type=int, default=24, help="synthetic sets only")
    parser.add_argument("--runs-dir", default="runs/tables")
    parser.add_argument("--extra", default="", help="more CLI overrides for every run, one string")
    parser.add_argument("--force", action="store_true", help="rerun even when a finished run matches")


def _config_model(config: Path) -> dict:
    import yaml

    return (yaml.safe_load(Path(config).read_text()) or {}).get("model") or {}


HEAD_ARG = "--model.net.init_args.head.init_args."


def _overrides(args, config: Path, head_kwargs: dict | None = None, more: list[str] | None = None) -> list[str]:
    """CLI overrides of one run: one typed override per head argument (the config's other head
    arguments stay as they are)."""
    ov = list(more or [])
    for key, value in (head_kwargs or {}).items():
        ov += [HEAD_ARG + key, json.dumps(value)]
    if args.epochs:
        ov += ["--trainer.max_epochs", str(args.epochs)]
    return ov + shlex.split(args.extra)


def _config(config_dir: Path, head: str) -> Path:
    path = config_dir / f"{head}.yaml"
    if not path.is_file():
        raise SystemExit(f"tables: config {path} not found (--config-dir / CONFIG_DIR=)")
    ensure_backbone_weights(path)
    return path


def ensure_backbone_weights(config: Path) -> None:
    """The synthetic configs load offline EfficientNet-Lite0 weights that `make demo` writes: write
    them here too when missing; any other missing checkpoint is a clear error."""
    net = (_config_model(config).get("net") or {}).get("init_args") or {}
    ckpt = (net.get("backbone") or {}).get("checkpoint_path")
    if not ckpt or (REPO / ckpt).is_file() or Path(ckpt).is_file():
        return
    if Path(ckpt).name == "efficientnet_lite0.pth":
        from pks4_lit.models import offline_weights

        (REPO / ckpt).parent.mkdir(parents=True, exist_ok=True)
        offline_weights.main([str(REPO / ckpt)])
        return
    raise SystemExit(f"tables: {config} needs backbone weights {ckpt}, which do not exist")


def compute_to_target(rows: list[dict], target: float) -> None:
    for s in rows:
        e = epochs_to(s["val_top1"], target)
        s["epochs_to_target"] = e
        s["PFLOPs_to_target"] = (s["train_GFLOPs_per_clip"] * s["n_train"] * e / 1e6
                                 if e is not None and s["n_train"] else None)


# ---------------------------------------------------------------------------- main table
def main_table(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables main")
    _run_opts(parser, epochs_default=None)
    parser.add_argument("--heads", nargs="+", default=list(HEADS) + ["st_adapter"])
    parser.add_argument("--tasks", nargs="+", default=["temporal", "spatial"], choices=["temporal", "spatial"])
    args = parser.parse_args(argv)
    config_dir = _abs(args.config_dir or "conf/synthetic")
    data = _abs(args.data or "data/tables")
    runs_dir = _abs(args.runs_dir)
    notes, summaries = [], {}
    for task in args.tasks:
        root = ensure_synthetic(data / task, task, args.videos_per_class)
        runs = []
        for head in args.heads:
            if head == "st_adapter":
                if not adapter_supported():
                    notes.append("st_adapter: skipped: PKS4Module/VideoClassifier have no `adapter` argument yet "
                                 "(hook described in pks4_lit/models/st_adapter.py)")
                    continue
                runs.append(Run("main", f"{task}/st_adapter", _config(config_dir, "tsn"), root,
                                _overrides(args, _config(config_dir, "tsn"), more=["--model.adapter", "st_adapter"]), runs_dir))
            else:
                runs.append(Run("main", f"{task}/{head}", _config(config_dir, head), root,
                                _overrides(args, _config(config_dir, head)), runs_dir))
        rows = run_all(runs, args.force)
        finals = {s["name"].split("/")[1]: s["final_val"] for s in rows}
        ref = [finals[h] for h in ("pks4", "global_ssm") if finals.get(h) is not None]
        target = TARGET_FRACTION * min(ref) if ref else None
        if target is not None:
            compute_to_target(rows, target)
        summaries[task] = dict(rows=rows, target=target)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    (RAW_DIR / "main.json").write_text(json.dumps(summaries, indent=1))
    png = FIG_DIR / "main_val_curves.png"
    plot_curves({t: v["rows"] for t, v in summaries.items()}, png, "val top-1 per epoch (synthetic sets)")

    md = [provenance(command), f"![val curves]({_relative(png)})  ",
          "Epochs to 90%: first epoch whose val top-1 reaches 90% of the run's final val top-1. "
          "Compute to target: train FLOPs/clip × training clips × epochs until val top-1 first reaches the "
          "target (90% of the lower final val top-1 of pks4 and global_ssm). Saved MB: bytes autograd keeps "
          "for backward at the training batch (deterministic); peak RSS: the whole `pks4 fit` process "
          "(data loading and Lightning included). Clips/s: training clips per wall second between the first "
          "and last epoch ends (validation and data loading included). "
          "Raw: `" + _relative(RAW_DIR / "main.json") + "`.\n"]
    for task, v in summaries.items():
        rows = v["rows"]
        by = {s["name"].split("/")[1]: s for s in rows}
        md.append(f"**{task}-heavy set** (target val top-1 {v['target']:.3f}):\n" if v["target"] is not None
                  else f"**{task}-heavy set**:\n")
        header = ["head", "test top-1", "final val top-1", "epochs to 90%", "train GFLOPs/clip", "tunable params",
                  "saved MB (batch)", "peak RSS MB", "clips/s", "epochs to target", "PFLOPs to target"]
        md.append(md_table(header, [[
            s["name"].split("/")[1], s["test_top1"], s["final_val"], s["epochs_to_90"], s["train_GFLOPs_per_clip"],
            s["tunable_params"], f"{s['saved_MB']:.1f} ({s['batch_size']})", round(s["fit_maxrss_MB"]),
            s["clips_per_s"], s.get("epochs_to_target"), s.get("PFLOPs_to_target")] for s in rows]) + "\n")
        p, g = by.get("pks4", {}).get("PFLOPs_to_target"), by.get("global_ssm", {}).get("PFLOPs_to_target")
        if p and g:
            md.append(f"Training compute to target, global_ssm / pks4 = **{g / p:.2f}×** "
                      f"(the paper claims ~10× against pure video SSMs).\n")
        md.append("Commands:\n\n" + "\n".join(f"    {s['command']}" for s in rows) + "\n")
    md += [f"Note: {n}\n" for n in dict.fromkeys(notes)]
    write_block("main", "### Main results: accuracy, convergence and cost per head (synthetic)\n\n" + "\n".join(md))
    return summaries


# ---------------------------------------------------------------------------- ablation table
ABLATIONS = [  # (name, config head, head_kwargs)
    ("pks4 (full)", "pks4", {}),
    ("w/o correlation", "pks4", {"use_correlation": False}),
    ("w/o difference", "pks4", {"use_difference": False}),
    ("w/o priors (= ssm)", "pks4", {"use_priors": False}),
    ("global scan (= global_ssm)", "global_ssm", {}),
    ("bidirectional", "pks4", {"bidirectional": True}),
    ("radius 1", "pks4", {"radius": 1}),
    ("radius 3", "pks4", {"radius": 3}),
]


def ablation_table(argv: list[str], command: str) -> dict:
    parser = argparse.ArgumentParser(prog="tables ablation")
    _run_opts(parser, epochs_default=None)
    parser.add_argument("--task", default="temporal", choices=["temporal", "spatial"])
    parser.add_argument("--only", nargs="*", default=None, help="subset of ablation names")
    args = parser.parse_args(argv)
    config_dir = _abs(args.config_dir or "conf/synthetic")
    data = _abs(args.data or "data/tables")
    root = ensure_synthetic(data / args.task, args.task, args.videos_per_class)
    slug = lambda n: "".join(c if c.isalnum() else "_" for c in n).strip("_")  # noqa: E731
    runs = [Run("ablation", f"{args.task}/{slug(name)}", _config(config_dir, head), root,
                _overrides(args, _config(config_dir, head), kw),
                _abs(args.runs_dir))
            for name, head, kw in ABLATIONS if args.only is None or name in args.only]
    rows = run_all(runs, args.force)
    for (name, _, kw), s in zip([a for a in ABLATIONS if args.only is None or a[0] in args.only], rows):
        s["label"], s["head_kwargs"] = name, kw
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    (RAW_DIR / "ablation.json").write_text(json.dumps(rows, indent=1))
    png = FIG_DIR / "ablation_val_curves.png"
    for s in rows:
        s["name"] = s["label"]
    plot_curves({f"{args.task}-heavy set": rows}, png, "PKS4 ablations: val top-1 per epoch")
    full = next((s for s in rows if s["label"] == "pks4 (full)"), None)
    header = ["variant", "test top-1", "Δ vs full", "final val top-1", "epochs to 90%", "train GFLOPs/clip",
              "tunable params", "saved MB (batch)"]
    table = md_table(header, [[
        s["label"], s["test_top1"],
        (s["test_top1"] - full["test_top1"]) if full and s["test_top1"] is not None and full["test_top1"] is not None else None,
        s["final_val"], s["epochs_to_90"], s["train_GFLOPs_per_clip"], s["tunable_params"],
        f"{s['saved_MB']:.1f} ({s['batch_size']})"] for s in rows])
    md = [provenance(command), f"![ablation curves]({_relative(png)})  ",
          f"{args.task}-heavy synthetic set; every variant is `conf/synthetic/<head>.yaml` with the "
          f"head arguments (`--model.net.init_args.head.init_args.KEY`) shown in the commands. Raw: `{_relative(RAW_DIR / 'ablation.json')}`.\n",
          table + "\n", "Commands:\n\n" + "\n".join(f"    {s['command']}" for s in rows) + "\n"]
    write_block("ablation", "### Ablations of PKS4 (synthetic, temporal-heavy)\n\n" + "\n".join(md))
    return {"rows": rows}


# ---------------------------------------------------------------------------- real datasets
DATASETS = {"ssv2": ("ssv2", "conf/ssv2", "Something-Something V2 (temporal-heavy)"),
            "k400": ("kinetics", "conf/k400", "Kinetics-400 (spatial-heavy)")}


def check_dataset(root: str | None, fmt: str, which: str) -> Path:
    """Fail with one clear message when DATA is absent or lacks its annotation files."""
    from pks4_lit.data.annotations import DatasetError, read_class_names, read_samples

    if not root:
        raise SystemExit(f"tables {which}: no dataset given: run `make table-{which} DATA=/path/to/{which}` "
                         f"(layout: data/README.md)")
    path = _abs(root)
    if not path.is_dir():
        raise SystemExit(f"tables {which}: DATA={root} is not a directory")
    try:
        classes = read_class_names(path, fmt)
        for stage in ("train", "val"):
            samples = read_samples(path, fmt, stage, classes)
            if not Path(samples[0].path).is_file():
                raise DatasetError(f"first {stage} video {samples[0].path} does not exist")
    except DatasetError as err:
        raise SystemExit(f"tables {which}: DATA={root} is not a usable {fmt} dataset: {err}") from None
    return path


def dataset_table(which: str, argv: list[str], command: str) -> dict:
    fmt, conf, title = DATASETS[which]
    parser = argparse.ArgumentParser(prog=f"tables {which}")
    _run_opts(parser, epochs_default=None)
    parser.add_argument("--heads", nargs="+", default=None, help="default: every <head>.yaml in the config dir")
    args = parser.parse_args(argv)
    root = check_dataset(args.data, fmt, which)
    config_dir = _abs(args.config_dir or conf)
    heads = args.heads or sorted(p.stem for p in config_dir.glob("*.yaml"))
    if not heads:
        raise SystemExit(f"tables {which}: no configs in {config_dir}")
    runs = [Run(which, h, _config(config_dir, h), root, _overrides(args, _config(config_dir, h)), _abs(args.runs_dir))
            for h in heads]
    rows = run_all(runs, args.force)
    RAW_DIR.mkdir(parents=True, exist_ok=True)
    (RAW_DIR / f"{which}.json").write_text(json.dumps(rows, indent=1))
    png = FIG_DIR / f"{which}_val_curves.png"
    plot_curves({title: rows}, png, f"{title}: val top-1 per epoch")
    header = ["head", "test top-1 (config's test views)", "final val top-1", "epochs to 90%", "train GFLOPs/clip",
              "tunable params", "saved MB (batch)", "clips/s"]
    md = [provenance(command), f"![val curves]({_relative(png)})  ", md_table(header, [[
        s["name"], s["test_top1"], s["final_val"], s["epochs_to_90"], s["train_GFLOPs_per_clip"], s["tunable_params"],
        f"{s['saved_MB']:.1f} ({s['batch_size']})", s["clips_per_s"]] for s in rows]) + "\n",
          "Commands:\n\n" + "\n".join(f"    {s['command']}" for s in rows) + "\n"]
    write_block(which, f"### {title}\n\n" + "\n".join(md))
    return {"rows": rows}


# ---------------------------------------------------------------------------- entry point
TABLES = {"efficiency": efficiency, "main": main_table, "ablation": ablation_table,
          "ssv2": lambda a, c: dataset_table("ssv2", a, c), "k400": lambda a, c: dataset_table("k400", a, c)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in TABLES:
        print(f"usage: python -m pks4_lit.tables {{{','.join(TABLES)}}} [options]", file=sys.stderr)
        return 2
    command = os.environ.get("PKS4_TABLES_COMMAND") or "python -m pks4_lit.tables " + shlex.join(argv)
    TABLES[argv[0]](argv[1:], command)
    print(f"[tables] wrote {argv[0]} into {RESULTS_MD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
