"""Every shipped config parses through `pks4 fit --print_config`; the synthetic ones differ only in the head;
CLI overrides of the model are typed (the README's ablation line builds the model it says)."""
from __future__ import annotations

import importlib
import re
import shlex
from pathlib import Path

import pytest
import yaml

from pks4_lit.cli import main, run_cli
from pks4_lit.models import TEMPORAL_HEADS

REPO = Path(__file__).resolve().parents[1]
CONF = REPO / "conf"
CONFIGS = sorted(CONF.rglob("*.yaml"))
SYNTHETIC_HEADS = ["pks4", "tsn", "attention", "ssm", "global_ssm"]


def _class(path: str):
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_configs_exist():
    names = {str(p.relative_to(CONF)) for p in CONFIGS}
    assert {f"synthetic/{h}.yaml" for h in SYNTHETIC_HEADS} | {"synthetic/st_adapter.yaml"} <= names
    assert {"ssv2/pks4.yaml", "ssv2/tsn.yaml", "k400/pks4.yaml", "k400/tsn.yaml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(CONF)))
def test_config_parses(path, capsys):
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(path), "--print_config"])
    assert done.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    net = printed["model"]["net"]
    if _class(net["class_path"]).__name__ == "VideoClassifier":
        assert _class(net["init_args"]["head"]["class_path"]) in TEMPORAL_HEADS.values()
    assert printed["checkpoint"]["monitor"] == "val/top1"


def test_synthetic_configs_differ_only_in_the_head():
    configs = {h: yaml.safe_load((CONF / "synthetic" / f"{h}.yaml").read_text()) for h in SYNTHETIC_HEADS}
    for head, config in configs.items():
        assert TEMPORAL_HEADS[head] is _class(config["model"]["net"]["init_args"]["head"]["class_path"]), head
        del config["model"]["net"]["init_args"]["head"], config["model"]["lr"]
    reference = configs.pop("pks4")
    for head, config in configs.items():
        assert config == reference, head



def test_st_adapter_config_is_tsn_plus_adapters_at_its_own_lr():
    """conf/synthetic/st_adapter.yaml: tsn.yaml's backbone, head, data, trainer and schedule + adapters;
    its lr line is its own (written by make table-e2e's sweep), so only adapter, adapter_kwargs and lr differ."""
    st = yaml.safe_load((CONF / "synthetic" / "st_adapter.yaml").read_text())
    tsn = yaml.safe_load((CONF / "synthetic" / "tsn.yaml").read_text())
    net = st["model"]["net"]["init_args"]
    assert net["adapter"] == "st_adapter" and net["backbone"]["freeze"] == "all"
    assert _class(net["head"]["class_path"]) is TEMPORAL_HEADS["tsn"]
    del net["adapter"], net["adapter_kwargs"], st["model"]["lr"], tsn["model"]["lr"]
    assert st == tsn

def test_paper_recipes_follow_the_protocol():
    ssv2 = yaml.safe_load((CONF / "ssv2" / "pks4.yaml").read_text())
    k400 = yaml.safe_load((CONF / "k400" / "pks4.yaml").read_text())
    for config in (ssv2, k400):
        backbone = config["model"]["net"]["init_args"]["backbone"]
        assert backbone["name"] == "vit_base_patch16_clip_224.openai" and backbone["freeze"] == "all"
        assert config["trainer"]["precision"] == "bf16-mixed" and config["data"]["crop_size"] == 224
    assert (ssv2["data"]["sampler"], ssv2["data"]["hflip"], ssv2["data"]["num_clips"], ssv2["data"]["num_crops"]) == (
        "segment", False, 2, 3)
    assert (k400["data"]["sampler"], k400["data"]["frame_stride"], k400["data"]["hflip"],
            k400["data"]["num_clips"], k400["data"]["num_crops"]) == ("dense", 8, True, 4, 3)


# ------------------------------------------------------------------------------ typed overrides
def _printed(capsys, *overrides: str) -> dict:
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(CONF / "synthetic" / "pks4.yaml"), *overrides, "--print_config"])
    assert done.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)["model"]["net"]["init_args"]


def test_head_overrides_arrive_typed(capsys):
    head = _printed(capsys, "--model.net.head.radius", "2", "--model.net.head.use_correlation", "false")["head"]
    assert head["init_args"]["radius"] == 2 and head["init_args"]["use_correlation"] is False
    swapped = _printed(capsys, "--model.net.head", "SSM", "--model.net.head.d_state", "4",
                       "--model.net.backbone.freeze", "none")
    assert _class(swapped["head"]["class_path"]) is TEMPORAL_HEADS["ssm"]
    assert swapped["head"]["init_args"]["d_state"] == 4 and swapped["backbone"]["init_args"]["freeze"] == "none"


def test_null_reaches_optional_arguments_of_nested_classes(capsys):
    """jsonargparse 4.53 alone turns this null into the string 'None' (pks4_lit.config_errors.nested_nulls)."""
    backbone = _printed(capsys, "--model.net.backbone.checkpoint_path", "null",
                        "--model.net.init_args.backbone.img_size=null")["backbone"]["init_args"]
    assert backbone["checkpoint_path"] is None and backbone["img_size"] is None and backbone["name"] == "efficientnet_lite0"


@pytest.mark.parametrize("override,expected", [
    (["--model.net.head.use_corelation", "false"],
     "model.net.head.use_corelation: not an argument of pks4_lit.models.PKS4 (did you mean use_correlation?)"),
    (["--model.net.head.radius", "two"], "model.net.head.radius: expected int, got 'two'"),
    (["--model.net.backbone.freez", "none"], "model.net.backbone.freez: not an argument of "
                                              "pks4_lit.models.FrameBackbone (did you mean freeze?)"),
    (["--model.lrr", "1"], "model.lrr: unknown key (did you mean lr?)"),
    (["--model.net.head.radius", "null"], "model.net.head.radius: expected int, got 'null'"),
    (["--model.net.dropout", "null"], "model.net.dropout: expected float, got 'null'"),
    (["--model.net.backbone.img_size", "x"], "model.net.backbone.img_size: expected int | tuple | None, got 'x'"),
])
def test_config_mistakes_are_one_line_exit_2(capsys, override, expected):
    with pytest.raises(SystemExit) as err:
        main(["fit", "--config", str(CONF / "synthetic" / "pks4.yaml"), *override, "--print_config"])
    assert err.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"pks4 fit: config error: {expected}"]


@pytest.fixture(scope="module")
def tiny_synthetic(tmp_path_factory) -> Path:
    from pks4_lit.data.synthetic import write_synthetic_dataset

    root = tmp_path_factory.mktemp("synthetic") / "data"
    write_synthetic_dataset(root, videos_per_class=3, size=32, frames=4, workers=1)
    return root


def readme_ablation_line() -> list[str]:
    lines = [line for line in (REPO / "README.md").read_text().splitlines() if "# an ablation" in line]
    assert len(lines) == 1, lines
    args = shlex.split(lines[0].split("#", 1)[0])
    assert args[0] == "pks4"
    return args[1:]


def test_readme_ablation_line_builds_a_model_without_correlation(tiny_synthetic, tmp_path, monkeypatch):
    from pks4_lit.lit_module import PKS4Module

    monkeypatch.chdir(tmp_path)                                       # runs/ lands here
    args = readme_ablation_line()
    args[args.index("--config") + 1] = str(REPO / args[args.index("--config") + 1])
    small = ["--data.root", str(tiny_synthetic), "--data.num_frames", "4", "--data.crop_size", "32",
             "--data.short_side", "32", "--data.num_workers", "0", "--trainer.max_epochs", "1",
             "--model.net.backbone.checkpoint_path", "null"]         # random init: no weights file needed
    cli = run_cli(args + small)
    head = cli.model.model.head
    assert type(head) is TEMPORAL_HEADS["pks4"] and head.use_priors
    assert head.priors.use_correlation is False and head.priors.use_difference is True
    assert not [n for n, _ in head.named_parameters() if "temperature" in n]   # the correlation's only parameter
    # the checkpoint rebuilds the same model without the config
    best = Path(cli.trainer.checkpoint_callback.best_model_path)
    again = PKS4Module.load_from_checkpoint(best)
    assert again.model.head.priors.use_correlation is False
    assert again.hparams["net"]["init_args"]["head"]["init_args"]["use_correlation"] is False
    assert re.fullmatch(r"\d+", str(again.num_classes)) and again.num_classes == cli.datamodule.num_classes
