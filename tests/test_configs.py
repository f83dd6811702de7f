"""Every shipped config parses through `pks4 fit --print_config`; the synthetic ones differ only in the head."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pks4_lit.cli import main
from pks4_lit.models import list_temporal_heads

CONF = Path(__file__).resolve().parents[1] / "conf"
CONFIGS = sorted(CONF.rglob("*.yaml"))
SYNTHETIC_HEADS = ["pks4", "tsn", "attention", "ssm", "global_ssm"]


def test_configs_exist():
    names = {str(p.relative_to(CONF)) for p in CONFIGS}
    assert {f"synthetic/{h}.yaml" for h in SYNTHETIC_HEADS} <= names
    assert {"ssv2/pks4.yaml", "ssv2/tsn.yaml", "k400/pks4.yaml", "k400/tsn.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(CONF)))
def test_config_parses(path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(path), "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["head"] in list_temporal_heads()
    assert printed["checkpoint"]["monitor"] == "val/top1"


def test_synthetic_configs_differ_only_in_the_head():
    configs = {h: yaml.safe_load((CONF / "synthetic" / f"{h}.yaml").read_text()) for h in SYNTHETIC_HEADS}
    for head, config in configs.items():
        assert config["model"]["head"] == head
        for key in ("head", "head_kwargs"):
            config["model"].pop(key, None)
    reference = configs.pop("pks4")
    for head, config in configs.items():
        assert config == reference, head


def test_paper_recipes_follow_the_protocol():
    ssv2 = yaml.safe_load((CONF / "ssv2" / "pks4.yaml").read_text())
    k400 = yaml.safe_load((CONF / "k400" / "pks4.yaml").read_text())
    for config in (ssv2, k400):
        assert config["model"]["backbone"] == "vit_base_patch16_clip_224.openai" and config["model"]["freeze"] == "all"
        assert config["trainer"]["precision"] == "bf16-mixed" and config["data"]["crop_size"] == 224
    assert (ssv2["data"]["sampler"], ssv2["data"]["hflip"], ssv2["data"]["num_clips"], ssv2["data"]["num_crops"]) == (
        "segment", False, 2, 3)
    assert (k400["data"]["sampler"], k400["data"]["frame_stride"], k400["data"]["hflip"],
            k400["data"]["num_clips"], k400["data"]["num_crops"]) == ("dense", 8, True, 4, 3)
