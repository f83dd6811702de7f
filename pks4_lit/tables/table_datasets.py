"""`make table-ssv2` / `make table-k400`: the paper-scale recipes of conf/ssv2, conf/k400 on the real data.

Honest selection (issue 10 §2): `best.ckpt` is chosen on the validation split, so it is reported only
when the test split holds no validation video; when the reported split is the validation list (SSv2's
validation, Kinetics without a labelled test.csv, UCF101/HMDB51) the row reports `last.ckpt` of the
config's fixed schedule. Each row says which checkpoint it reports and why.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from pks4_lit.tables import outputs
from pks4_lit.tables.markdown import md_table, provenance, write_block
from pks4_lit.tables.plots import plot_curves
from pks4_lit.tables.runs import Run, add_run_options, config_path, overrides, run_all
from pks4_lit.tables.summary import summarize

DATASETS = {"ssv2": ("ssv2", "conf/ssv2", "Something-Something V2 (temporal-heavy)"),
            "k400": ("kinetics", "conf/k400", "Kinetics-400 (spatial-heavy)")}


def check_dataset(root: str | None, fmt: str, which: str) -> Path:
    """Fail with one clear message when DATA is absent or lacks its annotation files."""
    from pks4_lit.data.annotations import DatasetError, read_class_names, read_samples

    if not root:
        raise SystemExit(f"tables {which}: no dataset given: run `make table-{which} DATA=/path/to/{which}` "
                         f"(layout: data/README.md)")
    path = outputs.repo_path(root)
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


def data_settings(config: Path, run_overrides: list[str]) -> dict:
    """The config's `data:` section with the run's `--data.KEY VALUE` / `--data.KEY=VALUE` overrides applied."""
    import yaml

    data = dict((yaml.safe_load(Path(config).read_text()) or {}).get("data") or {})
    args = [part for a in run_overrides for part in (a.split("=", 1) if a.startswith("--") and "=" in a else [a])]
    for key, value in zip(args, args[1:]):
        if key.startswith("--data."):
            data[key[len("--data."):]] = yaml.safe_load(value)
    return data


def reported_checkpoint(root: Path, data: dict, which: str) -> tuple[str, str]:
    """("best" | "last", why): best.ckpt only when no test video is a validation video it was selected on."""
    from pks4_lit.data.annotations import DatasetError
    from pks4_lit.data.splits import overlap_words, validation_overlap

    try:
        shared, total = validation_overlap(root, data.get("format", "ssv2"), data.get("split", 1),
                                           data.get("test_split"), data.get("video_dir"))
    except DatasetError as err:
        raise SystemExit(f"tables {which}: DATA={root}: cannot read the test and validation splits: {err}") from None
    if shared == 0:
        return "best", "best on validation, reported on test"
    if shared == total:
        return "last", "last.ckpt: validation is the reported split"
    return "last", f"last.ckpt: {overlap_words(shared, total)}"


def dataset_table(which: str, argv: list[str], command: str) -> dict:
    fmt, conf, title = DATASETS[which]
    parser = argparse.ArgumentParser(prog=f"tables {which}")
    add_run_options(parser)
    parser.add_argument("--heads", nargs="+", default=None, help="default: every <head>.yaml in the config dir")
    args = parser.parse_args(argv)
    root = check_dataset(args.data, fmt, which)
    config_dir = outputs.repo_path(args.config_dir or conf)
    heads = args.heads or sorted(p.stem for p in config_dir.glob("*.yaml"))
    if not heads:
        raise SystemExit(f"tables {which}: no configs in {config_dir}")
    runs, selection = [], {}
    for h in heads:
        config, ov = config_path(config_dir, h), overrides(args)
        report, why = reported_checkpoint(root, data_settings(config, ov), which)
        runs.append(Run(which, h, config, root, ov, outputs.repo_path(args.runs_dir), report=report))
        selection[h] = dict(checkpoint=f"{report}.ckpt", selection=why)
    rows = [dict(summarize(r, done), **selection[r.name]) for r, done in zip(runs, run_all(runs, args.force))]
    outputs.RAW_DIR.mkdir(parents=True, exist_ok=True)
    (outputs.RAW_DIR / f"{which}.json").write_text(json.dumps(rows, indent=1))
    png = outputs.FIG_DIR / f"{which}_val_curves.png"
    plot_curves({title: rows}, png, f"{title}: val top-1 per epoch")
    header = ["head", "test top-1 (config's test views)", "reported checkpoint", "final val top-1", "epochs to 90%",
              "train GFLOPs/clip", "tunable params", "saved MB (batch)", "clips/s"]
    md = [provenance(command), f"![val curves]({outputs.relative(png)})  ", md_table(header, [[
        s["name"], s["test_top1"], s["selection"], s["final_val"], s["epochs_to_90"], s["train_GFLOPs_per_clip"],
        s["tunable_params"], f"{s['saved_MB']:.1f} ({s['batch_size']})", s["clips_per_s"]] for s in rows]) + "\n",
          "Commands:\n\n" + "\n".join(f"    {s['command']}" for s in rows) + "\n"]
    write_block(which, f"### {title}\n\n" + "\n".join(md))
    return {"rows": rows}
