"""`pks4 synth`: it replaces only folders it wrote itself, reports progress on stderr, prints JSON on stdout."""
from __future__ import annotations

import json

import pytest

from pks4_lit.cli import main

TINY = ["--task", "temporal", "--videos-per-class", "3", "--size", "32", "--frames", "4", "--workers", "1"]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("flags", [[], ["--overwrite"]])
def test_unrelated_folder_survives(tmp_path, capsys, flags):
    mine = tmp_path / "project"
    (mine / "src").mkdir(parents=True)
    (mine / "notes.txt").write_text("keep me")
    (mine / "src" / "main.py").write_text("print(1)")
    assert main(["synth", str(mine), *TINY, *flags]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert line.startswith("pks4 synth: error:") and "not written by pks4 synth" in line
    assert (mine / "notes.txt").read_text() == "keep me" and (mine / "src" / "main.py").read_text() == "print(1)"
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "src"]


def test_own_folder_is_replaced_only_with_overwrite_and_only_if_nothing_else_is_there(tmp_path, capsys):
    root = tmp_path / "synthetic"
    assert main(["synth", str(root), *TINY]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["reused"] is False and (root / ".pks4_synth").is_file()

    assert main(["synth", str(root), *TINY, "--seed", "1"]) == 2  # other parameters: needs --overwrite
    assert "--overwrite" in _one_error_line(capsys.readouterr().err)

    assert main(["synth", str(root), *TINY, "--seed", "1", "--overwrite"]) == 0
    assert json.loads(capsys.readouterr().out)["seed"] == 1
    assert json.loads((root / "synthetic.json").read_text())["seed"] == 1

    (root / "my_results.csv").write_text("a,b\n")  # a file the user put there: never deleted
    assert main(["synth", str(root), *TINY, "--overwrite"]) == 2
    assert "my_results.csv" in _one_error_line(capsys.readouterr().err)
    assert (root / "my_results.csv").is_file() and json.loads((root / "synthetic.json").read_text())["seed"] == 1


def test_progress_on_stderr_json_on_stdout(tmp_path, capsys):
    assert main(["synth", str(tmp_path / "s"), *TINY]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)  # stdout is exactly the JSON summary
    assert f"{summary['videos']}/{summary['videos']} videos" in captured.err
