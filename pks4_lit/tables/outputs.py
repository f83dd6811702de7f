"""Where the tables write; tests point these at a temporary folder (read them at call time)."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RESULTS_MD = REPO / "docs" / "RESULTS.md"
FIG_DIR = REPO / "docs" / "figures"
RAW_DIR = REPO / "docs" / "results"
README = REPO / "README.md"


def repo_path(path) -> Path:
    """Paths given to the tables are relative to the repository (the CLI children run there)."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else REPO / path


def relative(path: Path) -> str:
    """A path as docs/RESULTS.md links it."""
    return os.path.relpath(path, RESULTS_MD.parent)
