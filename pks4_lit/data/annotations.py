"""Annotation readers: one per dataset format, each read as downloaded.

Every reader answers two questions and nothing else:
  class_names(root)                 -> list[str]   (cheap; needed before setup for num_classes)
  samples(root, stage, classes, ..) -> list[Sample] (stage in train/val/test; paths not checked)

All problems (missing file, malformed line, unknown label, empty split) raise `DatasetError` with
the file and the offending entry, so the CLI can print one readable line instead of a traceback.
Layouts are described in data/README.md.
"""
from __future__ import annotations

import csv
import json
import logging
import re
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

FORMATS = ("ssv2", "kinetics", "ucf101", "hmdb51", "csv")
STAGES = ("train", "val", "test")


class DatasetError(ValueError):
    """A dataset cannot be used as configured (bad annotations, layout, or too many bad videos)."""


class Sample(NamedTuple):
    path: Path  # absolute path of the video file (existence is checked later)
    label: int
    id: str  # what logs and errors name: the SSv2 id, the Kinetics youtube id, the relative path


# ---------------------------------------------------------------------------------------------
# helpers


def _first_existing(root: Path, names: list[str], what: str) -> Path:
    for name in names:
        if (root / name).is_file():
            return root / name
    raise DatasetError(f"{what}: none of {names} found under {root}")


def _read_json(path: Path):
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise DatasetError(f"{path}: not valid JSON ({e})") from None


def _read_rows(path: Path) -> list[list[str]]:
    with open(path, newline="") as f:
        return [[c.strip() for c in row] for row in csv.reader(f) if row and any(c.strip() for c in row)]


def _lines(path: Path) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _check_nonempty(samples: list[Sample], source: Path | str, stage: str) -> list[Sample]:
    if not samples:
        raise DatasetError(f"{source}: split '{stage}' is empty")
    return samples


# ---------------------------------------------------------------------------------------------
# Something-Something V2: labels.json {template: "index"}; train/validation/test.json entries
# {id, label, template, placeholders}; videos <id>.webm.

_PLACEHOLDER = re.compile(r"\[([^\]]*)\]")


def ssv2_class_of(template: str) -> str:
    """'Putting [something] on a surface' -> 'Putting something on a surface' (labels.json key)."""
    return _PLACEHOLDER.sub(r"\1", template)


def ssv2_class_names(root: Path) -> list[str]:
    path = _first_existing(root, ["labels.json", "annotations/labels.json", "labels/labels.json"], "ssv2 labels")
    labels = _read_json(path)
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(f"{path}: expected a non-empty object {{template: index}}")
    try:
        by_index = {int(v): k for k, v in labels.items()}
    except (TypeError, ValueError):
        raise DatasetError(f"{path}: every value must be an integer index (got {list(labels.values())[:3]})") from None
    if sorted(by_index) != list(range(len(labels))):
        raise DatasetError(f"{path}: indices must be 0..{len(labels) - 1} without gaps or duplicates")
    return [by_index[i] for i in range(len(labels))]


def _ssv2_split_file(root: Path, stem: str) -> Path | None:
    for name in (f"{stem}.json", f"annotations/{stem}.json", f"labels/{stem}.json"):
        if (root / name).is_file():
            return root / name
    return None


def ssv2_samples(root: Path, stage: str, classes: list[str], video_dir: Path, test_split: str | None = None) -> list[Sample]:
    index = {name: i for i, name in enumerate(classes)}
    stem = {"train": "train", "val": "validation"}.get(stage)
    if stage == "test":
        stem = test_split or "test"
        path = _ssv2_split_file(root, stem)
        # SSv2's official test.json lists ids only: fall back to the validation set, loudly.
        if test_split is None and (path is None or not _has_templates(_read_json(path))):
            log.warning("ssv2: %s has no labelled entries; testing on validation.json", path or root / "test.json")
            stem = "validation"
    path = _ssv2_split_file(root, stem)
    if path is None:
        raise DatasetError(f"ssv2: {stem}.json not found under {root} (needed for the '{stage}' split)")
    entries = _read_json(path)
    if not isinstance(entries, list):
        raise DatasetError(f"{path}: expected a list of {{id, template, ...}} entries")
    samples = []
    for k, e in enumerate(entries):
        if not isinstance(e, dict) or "id" not in e or "template" not in e:
            raise DatasetError(f"{path}: entry {k} has no 'id'/'template': {str(e)[:120]}")
        name = ssv2_class_of(e["template"])
        if name not in index:
            raise DatasetError(f"{path}: entry {k} (id {e['id']}): template {e['template']!r} -> {name!r} not in labels.json")
        samples.append(Sample(video_dir / f"{e['id']}.webm", index[name], str(e["id"])))
    return _check_nonempty(samples, path, stage)


def _has_templates(entries) -> bool:
    return isinstance(entries, list) and bool(entries) and all(isinstance(e, dict) and "template" in e for e in entries)


# ---------------------------------------------------------------------------------------------
# Kinetics-400/600/700: CSV label,youtube_id,time_start,time_end,split (one file per split, named
# train/validate|val/test.csv, or one file with the split column); videos
# <split>/<label>/<youtube_id>_<start:06d>_<end:06d>.mp4 or flat <split>/<youtube_id>_...mp4.

_K_FILES = {"train": ["train.csv"], "val": ["validate.csv", "val.csv", "validation.csv"], "test": ["test.csv"]}
_K_DIRS = {"train": ["train"], "val": ["val", "validate", "validation"], "test": ["test"]}


def _kinetics_csv(root: Path, stage: str) -> Path | None:
    for sub in ("", "annotations/"):
        for name in _K_FILES[stage]:
            if (root / sub / name).is_file():
                return root / sub / name
    return None


def _kinetics_rows(path: Path) -> list[dict]:
    rows = _read_rows(path)
    header = rows[0] if rows else []
    need = ["label", "youtube_id", "time_start", "time_end"]
    if not all(h in header for h in need):
        raise DatasetError(f"{path}: header must contain {need} (got {header})")
    out = []
    for n, row in enumerate(rows[1:], start=2):
        if len(row) < len(header):
            raise DatasetError(f"{path} line {n}: expected {len(header)} columns, got {row}")
        out.append(dict(zip(header, row), _line=n))
    return out


def kinetics_class_names(root: Path) -> list[str]:
    path = _kinetics_csv(root, "train")
    if path is None:
        raise DatasetError(f"kinetics: none of {_K_FILES['train']} found under {root} or {root / 'annotations'}")
    names = sorted({r["label"] for r in _kinetics_rows(path)})
    if not names:
        raise DatasetError(f"{path}: no rows")
    return names


def kinetics_samples(root: Path, stage: str, classes: list[str], video_dir: Path, test_split: str | None = None) -> list[Sample]:
    index = {name: i for i, name in enumerate(classes)}
    want = stage if test_split is None or stage != "test" else {"validation": "val", "validate": "val"}.get(test_split, test_split)
    if want not in _K_FILES:
        raise DatasetError(f"kinetics: test_split must be one of {list(_K_FILES)} or 'validation' (got {test_split!r})")
    path = _kinetics_csv(root, want)
    if path is None and stage == "test" and test_split is None:
        log.warning("kinetics: no test.csv under %s; testing on the validation CSV", root)
        want, path = "val", _kinetics_csv(root, "val")
    if path is None:
        raise DatasetError(f"kinetics: none of {_K_FILES[want]} found under {root} (needed for '{stage}')")
    samples = []
    for r in _kinetics_rows(path):
        if r["label"] not in index:
            raise DatasetError(f"{path} line {r['_line']}: label {r['label']!r} is not a training class")
        try:
            start, end = int(float(r["time_start"])), int(float(r["time_end"]))
        except ValueError:
            raise DatasetError(f"{path} line {r['_line']}: time_start/time_end not numbers: {r['time_start']!r}, {r['time_end']!r}") from None
        name = f"{r['youtube_id']}_{start:06d}_{end:06d}"
        split_dirs = [r["split"]] if r.get("split") else []
        split_dirs += [d for d in _K_DIRS[want] if d not in split_dirs]
        samples.append(Sample(_kinetics_path(video_dir, split_dirs, r["label"], name), index[r["label"]], name))
    return _check_nonempty(samples, path, stage)


def _kinetics_path(video_dir: Path, split_dirs: list[str], label: str, name: str) -> Path:
    candidates = []
    for d in split_dirs:
        for lab in (label, label.replace(" ", "_")):
            candidates.append(video_dir / d / lab / f"{name}.mp4")
        candidates.append(video_dir / d / f"{name}.mp4")
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]  # missing: reported as a bad video when loaded, counted at setup


# ---------------------------------------------------------------------------------------------
# UCF101: classInd.txt ("1 ApplyEyeMakeup"), trainlist0N.txt ("Class/v_x.avi 1"),
# testlist0N.txt ("Class/v_x.avi"); UCF101 has no validation split: val = test list.


def _ucf_file(root: Path, name: str) -> Path:
    return _first_existing(root, [name, f"ucfTrainTestlist/{name}", f"splits/{name}"], "ucf101")


def ucf101_class_names(root: Path) -> list[str]:
    path = _ucf_file(root, "classInd.txt")
    pairs = []
    for n, line in enumerate(_lines(path), start=1):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise DatasetError(f"{path} line {n}: expected '<index> <ClassName>', got {line!r}")
        pairs.append((int(parts[0]), parts[1]))
    pairs.sort()
    if [i for i, _ in pairs] != list(range(1, len(pairs) + 1)):
        raise DatasetError(f"{path}: class indices must be 1..{len(pairs)}")
    return [name for _, name in pairs]


def ucf101_samples(root: Path, stage: str, classes: list[str], video_dir: Path, split: int = 1, test_split: str | None = None) -> list[Sample]:
    if split not in (1, 2, 3):
        raise DatasetError(f"ucf101: split must be 1, 2 or 3 (got {split})")
    index = {name: i for i, name in enumerate(classes)}
    path = _ucf_file(root, f"{'train' if stage == 'train' else 'test'}list0{split}.txt")
    samples = []
    for n, line in enumerate(_lines(path), start=1):
        rel = line.split()[0]
        name = rel.replace("\\", "/").split("/")[0]
        if name not in index:
            raise DatasetError(f"{path} line {n}: class {name!r} of {rel!r} is not in classInd.txt")
        samples.append(Sample(video_dir / rel, index[name], rel))
    return _check_nonempty(samples, path, stage)


# ---------------------------------------------------------------------------------------------
# HMDB51: per-class "<class>_test_split<N>.txt" with lines "<video>.avi <0|1|2>" (1 train, 2 test,
# 0 unused); videos <class>/<video>.avi. No validation split: val = test.

_HMDB_DIRS = ["", "splits", "testTrainMulti_7030_splits", "test_train_splits"]


def _hmdb_split_files(root: Path, split: int) -> dict[str, Path]:
    for sub in _HMDB_DIRS:
        files = sorted((root / sub).glob(f"*_test_split{split}.txt")) if (root / sub).is_dir() else []
        if files:
            return {f.name[: -len(f"_test_split{split}.txt")]: f for f in files}
    raise DatasetError(f"hmdb51: no '*_test_split{split}.txt' files under {root} or {[root / d for d in _HMDB_DIRS[1:]]}")


def hmdb51_class_names(root: Path, split: int = 1) -> list[str]:
    return sorted(_hmdb_split_files(root, split))


def hmdb51_samples(root: Path, stage: str, classes: list[str], video_dir: Path, split: int = 1, test_split: str | None = None) -> list[Sample]:
    files = _hmdb_split_files(root, split)
    mark = "1" if stage == "train" else "2"
    samples = []
    for label, name in enumerate(classes):
        if name not in files:
            raise DatasetError(f"hmdb51: no split file {name}_test_split{split}.txt for class {name!r}")
        for n, line in enumerate(_lines(files[name]), start=1):
            parts = line.split()
            if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                raise DatasetError(f"{files[name]} line {n}: expected '<video> <0|1|2>', got {line!r}")
            if parts[1] == mark:
                samples.append(Sample(video_dir / name / parts[0], label, f"{name}/{parts[0]}"))
    return _check_nonempty(samples, f"hmdb51 split {split} under {root}", stage)


# ---------------------------------------------------------------------------------------------
# Generic CSV: train.csv / val.csv / test.csv with rows "path,label" (optional header); label is
# a class name or an integer index. Class names come from classes.txt (one per line) if present,
# else: integer labels -> "0".."K-1", names -> sorted names of train.csv.

_CSV_FILES = {"train": ["train.csv"], "val": ["val.csv", "validation.csv"], "test": ["test.csv"]}


def _csv_rows(path: Path) -> list[tuple[int, str, str]]:
    rows = _read_rows(path)
    if rows and [c.lower() for c in rows[0][:2]] == ["path", "label"]:
        rows, first = rows[1:], 2
    else:
        first = 1
    out = []
    for n, row in enumerate(rows, start=first):
        if len(row) < 2:
            raise DatasetError(f"{path} line {n}: expected 'path,label', got {row}")
        out.append((n, row[0], row[1]))
    return out


def csv_class_names(root: Path) -> list[str]:
    if (root / "classes.txt").is_file():
        return _lines(root / "classes.txt")
    path = _first_existing(root, _CSV_FILES["train"], "csv")
    labels = [lab for _, _, lab in _csv_rows(path)]
    if not labels:
        raise DatasetError(f"{path}: no rows")
    if all(lab.isdigit() for lab in labels):
        return [str(i) for i in range(max(int(lab) for lab in labels) + 1)]
    return sorted(set(labels))


def csv_samples(root: Path, stage: str, classes: list[str], video_dir: Path, test_split: str | None = None) -> list[Sample]:
    index = {name: i for i, name in enumerate(classes)}
    names = _CSV_FILES["test"] if stage == "test" else _CSV_FILES[stage]
    if stage == "test" and test_split:
        names = [f"{test_split}.csv"]
    if stage == "test" and test_split is None and not any((root / n).is_file() for n in names):
        log.warning("csv: no test.csv under %s; testing on the validation CSV", root)
        names = _CSV_FILES["val"]
    path = _first_existing(root, names, f"csv '{stage}' split")
    samples = []
    for n, rel, lab in _csv_rows(path):
        if lab in index:
            label = index[lab]
        elif lab.isdigit() and int(lab) < len(classes):
            label = int(lab)
        else:
            raise DatasetError(f"{path} line {n}: unknown label {lab!r} (known: {len(classes)} classes)")
        p = Path(rel)
        samples.append(Sample(p if p.is_absolute() else video_dir / p, label, rel))
    return _check_nonempty(samples, path, stage)


# ---------------------------------------------------------------------------------------------
# dispatch


def read_class_names(root: str | Path, format: str, split: int = 1) -> list[str]:
    root = _check_root(root, format)
    fn = {"ssv2": ssv2_class_names, "kinetics": kinetics_class_names, "ucf101": ucf101_class_names,
          "hmdb51": lambda r: hmdb51_class_names(r, split), "csv": csv_class_names}[format]
    try:
        return fn(root)
    except OSError as e:
        raise DatasetError(f"{format}: cannot read annotations under {root}: {e}") from None


def read_samples(root: str | Path, format: str, stage: str, classes: list[str], video_dir: str | Path | None = None,
                 split: int = 1, test_split: str | None = None) -> list[Sample]:
    """The (path, label, id) list of one stage. `video_dir` defaults to `root` (relative to root if relative)."""
    root = _check_root(root, format)
    if stage not in STAGES:
        raise DatasetError(f"unknown stage {stage!r}; expected one of {STAGES}")
    vdir = root if video_dir is None else root / video_dir
    kw = {"split": split} if format in ("ucf101", "hmdb51") else {}
    fn = {"ssv2": ssv2_samples, "kinetics": kinetics_samples, "ucf101": ucf101_samples,
          "hmdb51": hmdb51_samples, "csv": csv_samples}[format]
    try:
        return fn(root, stage, classes, vdir, test_split=test_split, **kw)
    except OSError as e:
        raise DatasetError(f"{format}: cannot read annotations under {root}: {e}") from None


def read_class_groups(root: str | Path) -> dict[str, str] | None:
    """groups.json {class name: group} when present (the synthetic set writes one), else None."""
    path = Path(root) / "groups.json"
    if not path.is_file():
        return None
    groups = _read_json(path)
    if not isinstance(groups, dict) or not all(isinstance(v, str) for v in groups.values()):
        raise DatasetError(f"{path}: expected an object {{class name: group name}}")
    return groups


def _check_root(root: str | Path, format: str) -> Path:
    if format not in FORMATS:
        raise DatasetError(f"unknown dataset format {format!r}; expected one of {FORMATS}")
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"dataset root {root} does not exist or is not a directory")
    return root
