"""Generated Markdown equals the JSON it is rendered from, and the committed docs equal their JSON."""
import json
import re

import pytest
import yaml

from pks4_lit.tables import outputs, readings, table_ablation, table_e2e, table_efficiency, table_lr, table_main
from pks4_lit.tables.aggregate import group_summary, paired



def fake_main(trial) -> dict:
    groups = {"tsn": [trial(s, [0] * 120 + [1] * 80) for s in range(5)],               # 60 %
              "pks4": [trial(s, [0] * (180 + s) + [1] * (20 - s)) for s in range(5)]}  # ~91 %
    rows = {h: group_summary(g) for h, g in groups.items()}
    rows["tsn"]["vs_ref"] = paired(groups["tsn"], groups["pks4"])
    return {"command": "make table-main", "machine": "m", "date": "2026-11-25T19:00", "epochs": 8, "views": 2,
            "seeds": list(range(5)), "reference": "pks4", "lr": {"tsn": 0.016, "pks4": 0.004},
            "notes": {"tsn": "pool", "pks4": "ours"}, "missing": {"st_adapter": "too slow"},
            "sets": {"kinematic": {"rows": rows, "n_test": 200}}}


def test_main_markdown_numbers_are_the_json_numbers(trial):
    out = fake_main(trial)
    md = table_main.render(out)
    for h, r in out["sets"]["kinematic"]["rows"].items():
        line = next(line for line in md.splitlines() if line.startswith(f"| {h} |"))
        assert f"{100 * r['test']['mean']:.1f} ± {100 * r['test']['half']:.1f}" in line
    d = out["sets"]["kinematic"]["rows"]["tsn"]["vs_ref"]
    assert f"{100 * d['delta']:+.1f} [{100 * d['lo']:+.1f}, {100 * d['hi']:+.1f}] *" in md
    assert "| st_adapter | — | not run |" in md and "too slow" in md
    # the reading is generated from the same numbers and gives the verdict they imply
    reading = next(line for line in md.splitlines() if "order-blind pooling (tsn) on the kinematic" in line)
    assert "**holds**" in reading and f"Δ = {-100 * d['delta']:+.1f}" in reading


def test_readme_summary_carries_the_json_numbers(tmp_path, trial):
    out = fake_main(trial)
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{readings.README_START}\nold numbers 0.925\n{readings.README_END}\n\nrest\n")
    readings.write_readme_block(readme, out, None)
    text = readme.read_text()
    assert "0.925" not in text and text.endswith("rest\n")
    r = out["sets"]["kinematic"]["rows"]["pks4"]["test"]
    assert f"pks4 {100 * r['mean']:.1f} ± {100 * r['half']:.1f}" in text


def test_lr_winner_written_into_the_config_with_how_it_was_chosen(tmp_path):
    src = outputs.REPO / "conf" / "synthetic" / "attention.yaml"
    config = tmp_path / "attention.yaml"
    config.write_text(src.read_text())
    out = {"command": "make table-lr", "date": "2026-11-25", "seeds": [0, 1], "set": "kinematic",
           "grid": [0.001, 0.004, 0.016]}
    table_lr.write_config_lr(config, 0.016, out)
    new, old = yaml.safe_load(config.read_text()), yaml.safe_load(src.read_text())
    assert new["model"]["lr"] == 0.016 and new["model"]["backbone_lr"] == old["model"]["backbone_lr"]
    new["model"]["lr"] = old["model"]["lr"]
    assert new == old
    assert re.search(r"^  lr: 0.016 +# chosen on validation by `make table-lr` \(2026-11-25\)", config.read_text(), re.M)


def _committed(name):
    f = outputs.RAW_DIR / name
    data = json.loads(f.read_text()) if f.is_file() else None
    return data if isinstance(data, dict) and ("sets" in data or "rows" in data or "heads" in data
                                              or "table_command" in data) else None


@pytest.mark.parametrize("name,render", [("main.json", table_main.render), ("ablation.json", table_ablation.render),
                                         ("lr_sweep.json", table_lr.render), ("e2e.json", table_e2e.render),
                                         ("efficiency.json", table_efficiency.render)])
def test_committed_results_md_is_rendered_from_committed_json(name, render):
    data = _committed(name)
    if data is None:
        pytest.skip(f"docs/results/{name} not regenerated in the new format yet")
    assert render(data).strip() in outputs.RESULTS_MD.read_text(), f"docs/RESULTS.md drifted from docs/results/{name}"


def test_committed_readme_is_rendered_from_committed_json():
    text = outputs.README.read_text()
    block = text.split(readings.README_START, 1)[1].split(readings.README_END, 1)[0].strip()
    assert block == readings.readme_summary(_committed("main.json"), _committed("ablation.json"))
