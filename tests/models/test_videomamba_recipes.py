"""conf/{ssv2,k400}/videomamba_{tiny,small,middle}.yaml: they parse through `pks4 fit --print_config` and
carry the published recipe (OpenGVLab/VideoMamba videomamba/video_sm/exp/*/videomamba_*/run_f8x224.sh)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from pks4_lit.cli import main
from pks4_lit.models.videomamba import create_model

CONF = Path(__file__).resolve().parents[2] / "conf"
# (dataset, size): epochs, drop path, weight decay — as published
PUBLISHED = {("ssv2", "tiny"): (35, 0.1, 0.1), ("ssv2", "small"): (30, 0.35, 0.05), ("ssv2", "middle"): (30, 0.8, 0.05),
             ("k400", "tiny"): (70, 0.1, 0.1), ("k400", "small"): (50, 0.35, 0.05), ("k400", "middle"): (50, 0.8, 0.05)}
BASE_LR = {"ssv2": 4e-4, "k400": 2e-4}
TEST_VIEWS = {"ssv2": (2, 3), "k400": (4, 3)}
GPUS = 8                                    # the configs' stated node: their lr is for 8 GPUs


@pytest.mark.parametrize("dataset,size", sorted(PUBLISHED), ids=lambda v: v)
def test_recipe_parses_and_is_the_published_one(dataset, size, capsys):
    path = CONF / dataset / f"videomamba_{size}.yaml"
    with pytest.raises(SystemExit) as done:
        main(["fit", "--config", str(path), "--print_config"])
    assert done.value.code in (0, None)
    cfg = yaml.safe_load(capsys.readouterr().out)
    epochs, drop_path, wd = PUBLISHED[(dataset, size)]
    net = cfg["model"]["net"]
    assert net["class_path"].endswith("videomamba.VideoMamba")
    args = net["init_args"]
    with torch.device("meta"):             # the registry's published variant, without allocating it
        published = create_model(f"videomamba_{size}")
    assert (args["embed_dim"], args["depth"], args["patch_size"], args["tubelet_size"]) == \
        (published.embed_dim, published.depth, published.patch_size, 1)
    assert (args["img_size"], args["num_frames"], cfg["data"]["num_frames"], cfg["data"]["crop_size"]) == (224, 8, 8, 224)
    assert cfg["trainer"]["max_epochs"] == epochs and args["drop_path_rate"] == drop_path
    assert cfg["model"]["weight_decay"] == wd and cfg["model"]["warmup_epochs"] == 5
    # their rule, lr = base × clips per step / 256, with our clips per step (no repeated augmentation)
    assert cfg["model"]["lr"] == pytest.approx(BASE_LR[dataset] * cfg["data"]["batch_size"] * GPUS / 256)
    assert (cfg["data"]["num_clips"], cfg["data"]["num_crops"]) == TEST_VIEWS[dataset]
    assert cfg["data"]["hflip"] is (dataset == "k400")
    assert cfg["data"]["sampler"] == "segment"
