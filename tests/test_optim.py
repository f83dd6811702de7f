"""PKS4Module's AdamW groups honour the one no-weight-decay source, a module's `no_weight_decay()`:
VideoMamba's position embeddings, class token and SSM state parameters (A_log, A_b_log, D, D_b)."""
from __future__ import annotations

from functools import partial

import pytest
import torch

from pks4_lit.lit_module import PKS4Module
from pks4_lit.models.videomamba import VideoMamba


def optimizer_groups(net) -> dict[str, set[str]]:
    """{group name: parameter names} of the optimizer configure_optimizers builds."""
    module = PKS4Module(net, num_classes=3, weight_decay=0.1, warmup_epochs=0.0)
    module.trainer = type("T", (), {"estimated_stepping_batches": 10, "max_epochs": 1})()
    name_of = {id(p): n for n, p in module.model.named_parameters()}
    opt = module.configure_optimizers()["optimizer"]
    return {g["name"]: {name_of[id(p)] for p in g["params"]} for g in opt.param_groups}, \
        {g["name"]: g["weight_decay"] for g in opt.param_groups}


def test_videomamba_state_and_embeddings_are_not_decayed():
    net = partial(VideoMamba, img_size=32, num_frames=2, embed_dim=16, depth=2, d_state=4)
    groups, wd = optimizer_groups(net)
    assert wd == {"head": 0.1, "head_no_decay": 0.0}
    no_decay, decay = groups["head_no_decay"], groups["head"]
    for i in range(2):
        # A_log / A_b_log are 2-D [d,N]: only the declaration keeps them out of the decay
        assert {f"layers.{i}.mixer.{n}" for n in ("A_log", "A_b_log", "D", "D_b")} <= no_decay
        assert {f"layers.{i}.mixer.in_proj.weight", f"layers.{i}.mixer.x_proj_b.weight"} <= decay
    assert {"pos_embed", "cls_token", "temporal_pos_embedding"} <= no_decay
    assert {"head.weight", "patch_embed.proj.weight"} <= decay
    assert not no_decay & decay


@pytest.mark.parametrize("nested", [False, True])
def test_patterns_are_relative_to_the_declaring_module(nested):
    """The same model inside a wrapper: its names get the wrapper's prefix and still match."""
    def net(k):
        m = VideoMamba(k, img_size=32, num_frames=2, embed_dim=16, depth=1, d_state=4)
        return torch.nn.Sequential(m) if nested else m
    groups, _ = optimizer_groups(net)
    prefix = "0." if nested else ""
    assert f"{prefix}layers.0.mixer.A_log" in groups["head_no_decay"]
    assert f"{prefix}layers.0.mixer.in_proj.weight" in groups["head"]


def test_the_global_scan_heads_ssm_parameters_are_not_decayed():
    from pks4_lit.models import VideoClassifier
    from pks4_lit.optim import no_weight_decay_patterns
    import fnmatch

    model = VideoClassifier.from_names(3, backbone="test_efficientnet", head="global_ssm", feature_index=2)
    patterns = no_weight_decay_patterns(model)
    names = [n for n, _ in model.named_parameters() if n.endswith("A_log")]
    assert names and all(any(fnmatch.fnmatchcase(n, p) for p in patterns) for n in names), (names, patterns)
