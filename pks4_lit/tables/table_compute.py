"""`make table-compute`: training compute to reach a validation accuracy target (issue 10 §5, the compute claim).

    python -m pks4_lit.tables compute [--data DIR] [--seeds 0 1 2 3 4] [--target 0.8] [--epochs E]

The paper says PKS4 needs ~10× less training compute than pure video SSMs. On the temporal-heavy
synthetic set (`pks4 synth --task temporal`: only frame order separates the classes) we train, per seed:

  pks4_cache        pks4 head on a frozen backbone, from the feature store (`pks4 cache`, whose one-time
                    writing cost is charged to the run: the backbone FLOPs of its training views, the wall
                    time of the whole store)
  pks4_pixels       the same model from pixels (decode + frozen backbone every epoch)
  global_ssm_cache  the global-scan head (one causal Mamba layer over the T·h·w tokens), from the store
  videomamba        VideoMamba end to end from pixels (conf/synthetic/videomamba.yaml), at the learning
                    rate that won its own sweep on validation (seed 0, `--lrs`)

A seed sets `seed_everything` and `data.seed` (initialisation and clip sampling; the store is written per
seed with that seed's clips). Every run is a real `pks4 fit` in a subprocess (1 thread, `--threads`).

Read per run: the FIRST epoch whose val top-1 is at or above the target (not the best epoch);
  FLOPs to target = train FLOPs per clip × training clips × that epoch (+ the store's training views),
    FLOPs counted by torch.utils.flop_counter through pks4_lit.bench.heads.count_flops (forward +
    backward, with the analytic selective-scan term); validation passes are not counted;
  wall to target = launch of `pks4 fit` → end of that epoch's validation (+ the store's writing time),
    on this machine, so start-up and validation are included (+ writing the whole store).
A run that never reaches the target is 'not reached within E epochs': it has no value, and a ratio over
such seeds is reported as a lower bound (the compute it spent without reaching the target).
Ratio videomamba / pks4_cache: geometric mean over seeds of the per-seed ratios (the seed pairs the data
clips), with a Student-t 95 % interval on the log ratios (pks4_lit.tables.stats.mean_ci), exponentiated.
Results: docs/results/compute.json; the "Compute claim" section of docs/RESULTS.md is generated from it.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

from pks4_lit.tables import outputs
from pks4_lit.tables.events import epochs_to, read_scalars
from pks4_lit.tables.markdown import machine_line, md_table, replace_marked
from pks4_lit.tables.runs import Run, ensure_backbone_weights, ensure_synthetic, in_repo, run_child
from pks4_lit.tables.stats import mean_ci

METHODS = {  # name: (config in --config-dir, trained from the feature store)
    "pks4_cache": ("pks4", True),
    "pks4_pixels": ("pks4", False),
    "global_ssm_cache": ("global_ssm", True),
    "videomamba": ("videomamba", False),
}
REFERENCE, BASELINE = "pks4_cache", "videomamba"
RESULTS_JSON = "docs/results/compute.json"
SECTION = "## Compute claim (make table-compute)"


# ---------------------------------------------------------------------------- reading a run
def first_reach(values: list[float], target: float) -> int | None:
    """1-based epoch at which val top-1 FIRST reaches target (not the best epoch); None if never."""
    return epochs_to(values, target)


def to_target(curve: dict, target: float) -> dict:
    """curve: {val_top1[e], epoch_wall_s[e] (launch → end of epoch e's validation), flops_per_epoch, fixed_flops,
    fixed_s} → {epoch, flops, wall_s} to target, all None when not reached; `spent_*`: the whole run."""
    e = first_reach(curve["val_top1"], target)
    spent = dict(spent_flops=curve["fixed_flops"] + curve["flops_per_epoch"] * len(curve["val_top1"]),
                 spent_s=curve["fixed_s"] + (curve["epoch_wall_s"][-1] if curve["epoch_wall_s"] else 0.0))
    if e is None:
        return dict(epoch=None, flops=None, wall_s=None, **spent)
    return dict(epoch=e, flops=curve["fixed_flops"] + curve["flops_per_epoch"] * e,
                wall_s=curve["fixed_s"] + curve["epoch_wall_s"][e - 1], **spent)


def ratio_ci(num: list[dict], den: list[dict], key: str) -> dict:
    """num/den per seed (paired lists of to_target dicts) → geometric mean and 95 % interval.
    If num did not reach the target in some seed its spent compute stands in and the result is a lower
    bound (`bound: ">="`); a seed where den did not reach it is dropped (said in `dropped`)."""
    logs, bound, dropped = [], "=", 0
    for a, b in zip(num, den):
        if b[key] is None:
            dropped += 1
            continue
        value = a[key]
        if value is None:
            value, bound = a["spent_flops" if key == "flops" else "spent_s"], ">="
        logs.append(math.log(value / b[key]))
    if not logs:
        return dict(ratio=None, lo=None, hi=None, n=0, bound=bound, dropped=dropped)
    ci = mean_ci(logs)
    return dict(ratio=math.exp(ci["mean"]), lo=math.exp(ci["lo"]), hi=math.exp(ci["hi"]), n=ci["n"],
                bound=bound, dropped=dropped)


# ---------------------------------------------------------------------------- costs (FLOPs per clip)
def clip_costs(config: Path, data: Path) -> dict:
    """Per clip of `config` on `data`: train FLOPs from pixels, train FLOPs from features (backbone
    models only) and the frozen backbone's forward FLOPs (what writing one clip into the store costs)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from pks4_lit.bench.heads import count_flops
    from pks4_lit.cache.command import build
    from pks4_lit.cache.model import logits_from_features

    module, dm, _ = build([in_repo(config)], ["--data.root", in_repo(data)])
    model = module.model.train()
    T, S = dm.hparams["num_frames"], dm.hparams["crop_size"]
    x = torch.randint(0, 256, (1, T, 3, S, S), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    y = torch.zeros(1, dtype=torch.long)
    out = dict(pixels=count_flops(model, x, y)["total"], features=None, backbone_forward=None)
    if hasattr(model, "backbone"):
        with torch.no_grad(), FlopCounterMode(display=False) as fc:
            feats = model.backbone(model.normalize(x))                      # [1,T,C,h,w]
        out["backbone_forward"] = int(fc.get_total_flops())

        class FromFeatures(torch.nn.Module):                               # the cached training step
            def __init__(self, classifier):
                super().__init__()
                self.classifier = classifier

            def forward(self, f):
                return logits_from_features(self.classifier, f)

        out["features"] = count_flops(FromFeatures(model), feats.detach(), y)["total"]
    return out


# ---------------------------------------------------------------------------- running
def fit(run: Run, force: bool) -> dict:
    """`pks4 fit` only (the compute claim reads validation); reused when its command is unchanged."""
    done_file = run.dir / "done.json"
    if not force and done_file.is_file():
        done = json.loads(done_file.read_text())
        if done.get("fit_cmd") == run.fit_cmd[3:]:
            print(f"[compute] reusing {in_repo(run.dir)}", file=sys.stderr)
            return done
    if run.dir.exists():
        import shutil

        shutil.rmtree(run.dir)
    run.dir.mkdir(parents=True)
    t0 = time.time()
    run_child(run.fit_cmd, run.dir / "fit.log", quiet=True)
    done = dict(fit_cmd=run.fit_cmd[3:], launched=t0, fit_s=time.time() - t0, load=os.getloadavg())
    done_file.write_text(json.dumps(done, indent=1))
    return done


def curve_of(run: Run, done: dict, flops_per_epoch: float, fixed_flops: float = 0.0, fixed_s: float = 0.0) -> dict:
    val = sorted(read_scalars(run.dir).get("val/top1", []))                 # [(step, wall, value)] per epoch
    return dict(val_top1=[v for _, _, v in val], epoch_wall_s=[w - done["launched"] for _, w, _ in val],
                flops_per_epoch=flops_per_epoch, fixed_flops=fixed_flops, fixed_s=fixed_s,
                fit_s=done["fit_s"], load=done.get("load"), command=run.command)


def write_cache(config: Path, data: Path, out: Path, seed: int, views: int, force: bool) -> dict:
    """`pks4 cache` for one seed; {seconds, clips, command} (reused when the store and its record exist)."""
    record = out / "compute_cache.json"
    cmd = cache_cmd(config, data, out, seed, views)
    if not force and record.is_file() and json.loads(record.read_text()).get("cmd") == cmd[3:]:
        return json.loads(record.read_text())
    if out.exists():                        # time a complete write, never a reuse of an old store
        import shutil

        shutil.rmtree(out)
    print("[compute] $ pks4 " + shlex.join(cmd[3:]), file=sys.stderr, flush=True)
    t0 = time.time()
    proc = subprocess.run(cmd, cwd=outputs.REPO, capture_output=True, text=True, env=dict(os.environ))
    if proc.returncode != 0:
        raise RuntimeError(f"pks4 cache failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout[proc.stdout.index("{"):])
    done = dict(cmd=cmd[3:], seconds=time.time() - t0, summary=summary, command="pks4 " + shlex.join(cmd[3:]))
    record.write_text(json.dumps(done, indent=1))
    return done


def cache_cmd(config: Path, data: Path, out: Path, seed: int, views: int) -> list[str]:
    """`pks4 cache` of one seed's store, paths relative to the repository (the child runs there)."""
    return [sys.executable, "-m", "pks4_lit.cli", "cache", "--config", in_repo(config), "--data.root", in_repo(data),
            "--views", str(views), "--out", in_repo(out), "--no-progress",
            "--seed_everything", str(seed), "--data.seed", str(seed)]


def cached_clips(summary: dict, splits=("train",)) -> int:
    """Clips whose backbone features the store holds in `splits`: videos × views. Training FLOPs charge
    the training views only (validation is not counted for any method); wall time charges the whole store."""
    return sum(s["videos"] * s["views"] for name, s in summary["splits"].items() if name in splits)


def seed_args(seed: int, epochs: int) -> list[str]:
    return ["--seed_everything", str(seed), "--data.seed", str(seed), "--trainer.max_epochs", str(epochs)]


def method_run(method: str, seed: int, config: Path, data: Path, epochs: int, runs_dir: Path,
               store: Path | None = None, lr: float | None = None) -> Run:
    """The `pks4 fit` of one method and seed (from the store at `store` when given)."""
    ov = seed_args(seed, epochs) + (["--model.lr", str(lr)] if lr is not None else [])
    ov += ["--data.features", in_repo(store)] if store is not None else []
    return Run("compute", f"{method}/seed{seed}", config, data, ov, runs_dir)


def sweep(config: Path, data: Path, lrs: list[float], epochs: int, runs_dir: Path, force: bool) -> dict:
    """VideoMamba's own LR sweep (seed 0): the LR with the highest val top-1 at the LAST epoch wins."""
    rows = {}
    for lr in lrs:
        run = Run("compute", f"videomamba_sweep/lr{lr:g}", config, data, seed_args(0, epochs) + ["--model.lr", str(lr)],
                  runs_dir)
        done = fit(run, force)
        val = [v for _, _, v in sorted(read_scalars(run.dir).get("val/top1", []))]
        rows[f"{lr:g}"] = dict(lr=lr, val_top1=val, final=val[-1] if val else None, command=run.command,
                               fit_s=done["fit_s"])
    best = max(rows.values(), key=lambda r: -1 if r["final"] is None else r["final"])
    return dict(rows=rows, winner=best["lr"], rule="highest val top-1 at the last epoch (seed 0)")


def compute_table(argv: list[str], command: str) -> dict:
    p = argparse.ArgumentParser(prog="tables compute", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="data/compute/temporal", help="temporal-heavy synthetic set (written if missing)")
    p.add_argument("--videos-per-class", type=int, default=24)
    p.add_argument("--config-dir", default="conf/synthetic")
    p.add_argument("--runs-dir", default="runs/tables")
    p.add_argument("--cache-dir", default="runs/tables/compute/store", help="feature stores, one per seed")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    p.add_argument("--pixel-seeds", type=int, default=None, help="seeds for pks4_pixels (default: all)")
    p.add_argument("--target", type=float, default=0.8, help="val top-1 every method is timed to")
    p.add_argument("--also-targets", type=float, nargs="*", default=[0.3],
                   help="further targets read from the same runs (e.g. one every method reaches)")
    p.add_argument("--epochs", type=int, default=10, help="max epochs of the head runs")
    p.add_argument("--vm-epochs", type=int, default=16, help="max epochs of the VideoMamba runs")
    p.add_argument("--views", type=int, default=4, help="training views per video in the store")
    p.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3, 3e-3])
    p.add_argument("--sweep-epochs", type=int, default=None, help="default: --vm-epochs")
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    p.add_argument("--threads", type=int, default=1, help="torch threads of every child")
    p.add_argument("--out", default=RESULTS_JSON)
    p.add_argument("--force", action="store_true")
    args = p.parse_args(argv)
    os.environ.update(OMP_NUM_THREADS=str(args.threads), MKL_NUM_THREADS=str(args.threads))
    t_start = time.time()
    data = ensure_synthetic(outputs.repo_path(args.data), "temporal", args.videos_per_class)
    runs_dir, cache_dir = outputs.repo_path(args.runs_dir), outputs.repo_path(args.cache_dir)
    config = {m: outputs.repo_path(args.config_dir) / f"{c}.yaml" for m, (c, _) in METHODS.items()}
    for c in set(config.values()):
        ensure_backbone_weights(c)
    n_train = len(json.loads((data / "train.json").read_text()))
    costs = {c.stem: clip_costs(c, data) for c in {config[m] for m in args.methods}}

    result = dict(target=args.target, epochs=args.epochs, vm_epochs=args.vm_epochs, views=args.views,
                  seeds=args.seeds, n_train=n_train, threads=args.threads, data=in_repo(data),
                  machine=machine_line(), costs=costs, runs={m: [] for m in args.methods})
    vm_lr = None
    if "videomamba" in args.methods:
        result["sweep"] = sweep(config["videomamba"], data, args.lrs, args.sweep_epochs or args.vm_epochs,
                                runs_dir, args.force)
        vm_lr = result["sweep"]["winner"]
    pixel_seeds = args.seeds[:args.pixel_seeds] if args.pixel_seeds else args.seeds
    for seed in args.seeds:
        store, cache = cache_dir / f"seed{seed}", None
        if any(METHODS[m][1] for m in args.methods):
            cache = write_cache(config["pks4_cache"], data, store, seed, args.views, args.force)
        for m in args.methods:
            cfg, from_store = METHODS[m]
            if m == "pks4_pixels" and seed not in pixel_seeds:
                continue
            epochs = args.vm_epochs if m == "videomamba" else args.epochs
            run = method_run(m, seed, config[m], data, epochs, runs_dir, store if from_store else None,
                             vm_lr if m == "videomamba" else None)
            done = fit(run, args.force)
            c = costs[cfg]
            if from_store:
                fixed = c["backbone_forward"] * cached_clips(cache["summary"])
                curve = curve_of(run, done, c["features"] * n_train, fixed, cache["seconds"])
                curve["cache_command"] = cache["command"]
            else:
                curve = curve_of(run, done, c["pixels"] * n_train)
            curve.update(seed=seed, **to_target(curve, args.target))
            result["runs"][m].append(curve)
    result["summary"] = summarize(result)
    result["also"] = {f"{t:g}": summarize(at_target(result, t)) for t in args.also_targets}
    result["total_s"] = time.time() - t_start            # this invocation (finished runs are reused)
    result["machine_s"] = machine_seconds(result)
    out = outputs.repo_path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    write_section(render(result, command))
    print(f"[compute] wrote {in_repo(out)} and the compute section of {in_repo(outputs.RESULTS_MD)}", file=sys.stderr)
    return result


# ---------------------------------------------------------------------------- summary and markdown
def machine_seconds(result: dict) -> float:
    """Wall seconds of every `pks4 fit` (sweep included) and every store written: the table's cost."""
    fits = [r["fit_s"] for runs in result["runs"].values() for r in runs]
    fits += [r["fit_s"] for r in result.get("sweep", {}).get("rows", {}).values()]
    stores = {r["seed"]: r["fixed_s"] for runs in result["runs"].values() for r in runs if r["fixed_s"]}
    return sum(fits) + sum(stores.values())


def at_target(result: dict, target: float) -> dict:
    """result with every run's reading redone at another target (the curves are kept)."""
    runs = {m: [dict(r, **to_target(r, target)) for r in rs] for m, rs in result["runs"].items()}
    return dict(result, runs=runs, target=target)


def summarize(result: dict) -> dict:
    out = {}
    for m, runs in result["runs"].items():
        reached = [r for r in runs if r["epoch"] is not None]
        s = dict(seeds=len(runs), reached=len(reached))
        for key in ("epoch", "flops", "wall_s"):
            s[key] = mean_ci([r[key] for r in reached]) if reached else None
        out[m] = s
    runs = result["runs"]
    by_seed = {r["seed"]: r for r in runs.get(REFERENCE, [])}
    ratios = {}
    for m in runs:                           # every method against pks4_cache, paired by seed
        pairs = [(r, by_seed[r["seed"]]) for r in runs[m] if r["seed"] in by_seed]
        if m != REFERENCE and pairs:
            ratios[m] = {k: ratio_ci([a for a, _ in pairs], [b for _, b in pairs], k) for k in ("flops", "wall_s")}
    if BASELINE in ratios:
        out["ratio"] = ratios[BASELINE]
    out["ratios"] = ratios
    return out


def verdict(r: dict, claim: float = 10.0) -> str:
    """One sentence on the paper's ~10× from a FLOPs ratio (ratio_ci's dict)."""
    if r["ratio"] is None:
        return "not decided here (pks4 never reached the target)."
    if r["bound"] == ">=":
        if r["lo"] >= claim:
            return f"supported as a lower bound (≥ {r['lo']:.3g}× even without VideoMamba reaching the target)."
        return (f"not decided here: VideoMamba did not reach the target, so we only know ≥ {r['ratio']:.3g}×, "
                f"below the claimed {claim:g}×; more VideoMamba epochs would be needed to measure it.")
    if r["hi"] < claim:
        return f"not supported at this scale (the interval {r['lo']:.3g}–{r['hi']:.3g}× lies below {claim:g}×)."
    if r["lo"] > claim:
        return f"exceeded at this scale (the interval lies above {claim:g}×)."
    return f"consistent (the interval {r['lo']:.3g}–{r['hi']:.3g}× contains {claim:g}×)."


def _load_range(result: dict) -> str:
    loads = [r["load"][0] for runs in result["runs"].values() for r in runs if r.get("load")]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "not recorded"


def _fmt_ci(ci: dict | None, scale: float = 1.0, digits: int = 3) -> str:
    if ci is None:
        return "—"
    return f"{ci['mean'] / scale:.{digits}g} [{ci['lo'] / scale:.{digits}g}, {ci['hi'] / scale:.{digits}g}]"


def _fmt_ratio(r: dict) -> str:
    if r["ratio"] is None:
        return "undefined (the reference never reached the target)"
    text = f"{'≥ ' if r['bound'] == '>=' else ''}{r['ratio']:.3g}× (95 % interval {r['lo']:.3g}–{r['hi']:.3g}, {r['n']} seed{'s' if r['n'] != 1 else ''})"
    return text + (f", {r['dropped']} seed(s) dropped" if r["dropped"] else "")


def render(result: dict, command: str) -> str:
    s, target = result["summary"], result["target"]
    md = [f"Command: `{command}`  ", f"Machine: {result['machine']}, {result['threads']} torch thread(s) per run "
          f"(shared 2-core machine: wall times are noisy; 1-min load average at the runs' ends {_load_range(result)}, "
          f"each run's in `{RESULTS_JSON}`)  ", f"Machine time of all runs and stores: {result['machine_s'] / 60:.1f} min\n",
          f"Temporal-heavy synthetic set `{result['data']}` ({result['n_train']} training clips). Target: val top-1 "
          f"≥ {target:g}, read at the FIRST epoch that reaches it. Head runs: ≤ {result['epochs']} epochs; VideoMamba "
          f"≤ {result['vm_epochs']}. FLOPs: training steps only (forward + backward, torch.utils.flop_counter + the "
          f"analytic scan term), plus for the cached runs the backbone forwards of the store's {result['views']} training "
          f"views per video; no method's validation is counted. Wall: launch of `pks4 fit` to the end of that "
          f"epoch's validation, plus writing the whole store for the cached runs. Mean [95 % interval] over the "
          f"seeds that reached the target.\n"]
    rows = []
    for m, v in s.items():
        if m in ("ratio", "ratios"):
            continue
        rows.append([m, f"{v['reached']}/{v['seeds']}", _fmt_ci(v["epoch"]), _fmt_ci(v["flops"], 1e12),
                     _fmt_ci(v["wall_s"])])
    md.append(md_table(["method", "seeds reaching target", "epochs to target", "TFLOPs to target",
                        "wall s to target"], rows) + "\n")
    best = {m: mean_ci([max(r["val_top1"]) for r in runs]) for m, runs in result["runs"].items() if runs}
    md.append("Best val top-1 within the run, mean [95 % interval] over seeds: " + "; ".join(
        f"{m} {_fmt_ci(ci)}" for m, ci in best.items()) + ". A method whose best stays below the target has no "
        "time to target: its ratio is a lower bound (the compute it spent), marked ≥.\n")
    if "sweep" in result:
        sw = result["sweep"]
        md.append(f"VideoMamba LR sweep ({sw['rule']}): " + ", ".join(
            f"lr {k}: {v['final']:.3f}" if v["final"] is not None else f"lr {k}: —" for k, v in sw["rows"].items())
            + f" → **{sw['winner']:g}**.\n")
    if "ratio" in s:
        r = s["ratio"]
        md.append(f"**Training compute to target, {BASELINE} / {REFERENCE}: FLOPs {_fmt_ratio(r['flops'])}; "
                  f"wall time {_fmt_ratio(r['wall_s'])}.** The paper claims ~10× against pure video SSMs: "
                  f"{verdict(r['flops'])}\n")
    for t, st in result.get("also", {}).items():
        if "ratio" in st:
            reached = ", ".join(f"{m} {v['reached']}/{v['seeds']}" for m, v in st.items() if m not in ("ratio", "ratios"))
            md.append(f"At the lower target val top-1 ≥ {t} (seeds reaching it: {reached}): {BASELINE} / {REFERENCE} "
                      f"FLOPs {_fmt_ratio(st['ratio']['flops'])}; wall time {_fmt_ratio(st['ratio']['wall_s'])}.\n")
    others = {m: r for m, r in s.get("ratios", {}).items() if m != BASELINE}
    if others:
        md.append("Other methods / pks4_cache: " + "; ".join(
            f"{m}: FLOPs {_fmt_ratio(r['flops'])}, wall {_fmt_ratio(r['wall_s'])}" for m, r in others.items()) + ".\n")
    md.append("Per-clip training cost (GFLOPs, forward + backward): " + "; ".join(
        f"{k}: pixels {v['pixels'] / 1e9:.3g}" + (f", features {v['features'] / 1e9:.3g}, backbone forward "
                                                  f"{v['backbone_forward'] / 1e9:.3g}" if v["features"] else "")
        for k, v in result["costs"].items()) + ".\n")
    md.append("Mean val top-1 per epoch (accuracy vs compute: TFLOPs spent by the end of each epoch, first seed):\n")
    for m, runs in result["runs"].items():
        if not runs:
            continue
        n = min(len(r["val_top1"]) for r in runs)
        mean = [sum(r["val_top1"][i] for r in runs) / len(runs) for i in range(n)]
        r0 = runs[0]
        md.append(f"- {m}: " + ", ".join(f"{a:.2f}@{(r0['fixed_flops'] + r0['flops_per_epoch'] * (i + 1)) / 1e12:.3g}"
                                           for i, a in enumerate(mean)))
    commands = sorted({r["command"] for runs in result["runs"].values() for r in runs[:1]} |
                      {r["cache_command"] for runs in result["runs"].values() for r in runs[:1] if "cache_command" in r})
    md.append("\nCommands (seed 0; the other seeds change `--seed_everything`, `--data.seed` and the store):\n\n"
              + "\n".join(f"    {c}" for c in commands))
    return "\n".join(md)


def write_section(markdown: str, path: Path | None = None) -> None:
    """Replace the text between our markers in docs/RESULTS.md, or append the section at the end."""
    path = path or outputs.RESULTS_MD
    start, end = "<!-- compute:start -->", "<!-- compute:end -->"
    block = f"{start}\n{markdown.rstrip()}\n{end}"
    text = path.read_text() if path.is_file() else "# Results\n"
    if start in text and end in text:
        text = replace_marked(text, start, end, block)
    else:
        text = text.rstrip() + f"\n\n{SECTION}\n\n{block}\n"
    path.write_text(text.rstrip() + "\n")

