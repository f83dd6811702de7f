import pytest
import timm
import torch

from pks4_lit.models import FrameBackbone


def clip(B=2, T=3, H=64, W=64):
    return torch.rand(B, T, 3, H, W)


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet"])
def test_cnn_shapes_and_attributes(name):
    bb = FrameBackbone(name)
    x = clip()
    y = bb(x)
    assert y.shape == (2, 3, bb.out_dim, 64 // bb.reduction, 64 // bb.reduction)
    info = timm.create_model(name, features_only=True).feature_info
    assert bb.out_dim == info.channels()[-1] and bb.reduction == info.reduction()[-1]
    cfg = timm.create_model(name).pretrained_cfg
    assert bb.mean == tuple(cfg["mean"]) and bb.std == tuple(cfg["std"])


def test_feature_index_selects_an_earlier_stage():
    bb = FrameBackbone("test_resnet", feature_index=2)
    info = timm.create_model("test_resnet", features_only=True).feature_info
    assert (bb.out_dim, bb.reduction) == (info.channels()[2], info.reduction()[2])
    assert bb(clip()).shape[-1] == 64 // info.reduction()[2]


def test_vit_tokens_reshaped_to_patch_grid_in_row_major_order():
    bb = FrameBackbone("test_vit", img_size=32, freeze="none").eval()
    x = torch.rand(1, 2, 3, 32, 48)                               # non-square: 2x3 patch grid
    y = bb(x)
    p = bb.reduction
    assert y.shape == (1, 2, bb.out_dim, 32 // p, 48 // p)
    tokens = bb.model.forward_features(x[0])                      # [T, prefix + 6, C]
    n = bb.num_prefix_tokens
    assert n >= 1 and tokens.shape[1] == n + 6
    for i in range(2):
        for j in range(3):
            torch.testing.assert_close(y[0, :, :, i, j], tokens[:, n + i * 3 + j])


def test_freeze_all_runs_under_no_grad_in_eval_mode():
    bb = FrameBackbone("test_resnet", freeze="all")
    assert not any(p.requires_grad for p in bb.parameters())
    bb.train()
    assert not any(m.training for m in bb.model.modules())
    grad_modes = []
    stem = next(m for m in bb.model.modules() if isinstance(m, torch.nn.Conv2d))
    stem.register_forward_hook(lambda *_: grad_modes.append(torch.is_grad_enabled()))
    stats = {k: v.clone() for k, v in bb.model.state_dict().items() if "running_mean" in k}
    y = bb(clip())
    assert grad_modes == [False] and not y.requires_grad
    for k, v in bb.model.state_dict().items():
        if k in stats:
            assert torch.equal(v, stats[k]), f"{k} changed: frozen BatchNorm left eval mode"


def test_freeze_none_trains_everything():
    bb = FrameBackbone("test_resnet", freeze="none").train()
    assert all(p.requires_grad for p in bb.parameters())
    assert all(m.training for m in bb.model.modules())
    bb(clip()).sum().backward()
    assert all(p.grad is not None for p in bb.parameters())


@pytest.mark.parametrize("name,last_n,expect_prefix", [
    ("test_resnet", 1, ("layer4.",)),
    ("test_resnet", 2, ("layer3.", "layer4.")),
    ("test_vit", 2, ("blocks.4.", "blocks.5.", "norm.")),
])
def test_freeze_last_n(name, last_n, expect_prefix):
    bb = FrameBackbone(name, freeze="last_n", last_n=last_n, img_size=32 if "vit" in name else None).train()
    trainable = {n for n, p in bb.model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(expect_prefix) for n in trainable)
    assert all(n in trainable for n, _ in bb.model.named_parameters() if n.startswith(expect_prefix))
    for n, m in bb.model.named_modules():                         # frozen leaves stay in eval mode
        if n and not (n + ".").startswith(expect_prefix) and not list(m.children()) and list(m.parameters()):
            assert not m.training, n
    bb(clip(H=32, W=32)).sum().backward()
    for n, p in bb.model.named_parameters():
        assert (p.grad is not None) == (n in trainable), n


def test_frozen_prefix_stores_no_activations():
    def saved_bytes(bb):
        total = [0]

        def pack(t):
            total[0] += t.numel() * t.element_size()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            bb(clip())
        return total[0]
    torch.manual_seed(0)
    full = saved_bytes(FrameBackbone("test_resnet", freeze="none").train())
    last = saved_bytes(FrameBackbone("test_resnet", freeze="last_n", last_n=1).train())
    assert 0 < last < full / 2


def test_checkpoint_path_loads_through_timm(tmp_path):
    torch.manual_seed(123)
    src = timm.create_model("test_resnet")
    f = tmp_path / "w.pth"
    torch.save(src.state_dict(), f)
    loaded = FrameBackbone("test_resnet", checkpoint_path=str(f)).model.state_dict()
    fresh = FrameBackbone("test_resnet").model.state_dict()
    ref = src.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in loaded.items())
    assert not all(torch.equal(v, ref[k]) for k, v in fresh.items() if v.is_floating_point())


def test_bad_arguments_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="checkpoint_path"):
        FrameBackbone("test_resnet", checkpoint_path=str(tmp_path / "missing.pth"))
    with pytest.raises(ValueError, match="freeze"):
        FrameBackbone("test_resnet", freeze="some")
    with pytest.raises(ValueError, match="unknown timm model"):
        FrameBackbone("no_such_model_xyz")
    with pytest.raises(ValueError, match=r"\[B,T,3,H,W\]"):
        FrameBackbone("test_resnet")(torch.rand(2, 3, 32, 32))


def _flops(fn, *args):
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        fn(*args)
    return fc.get_total_flops()


def test_backbone_is_cut_after_its_tap():
    # efficientnet_lite0, feature_index 3 = blocks.4 (112 ch, stride 16): blocks 5-6 and the head
    # conv must be gone, not run and thrown away (timm's features_only keeps them for EfficientNet)
    bb = FrameBackbone("efficientnet_lite0", feature_index=3)
    assert (bb.out_dim, bb.reduction) == (112, 16)
    names = {n for n, _ in bb.model.named_parameters()}
    assert not any(n.startswith(("blocks.5", "blocks.6", "conv_head", "bn2", "classifier")) for n in names)
    assert any(n.startswith("blocks.4.") for n in names)
    full = timm.create_model("efficientnet_lite0", features_only=True, out_indices=(3,)).eval()
    x = torch.rand(2, 3, 96, 96)
    cut_flops = _flops(lambda v: bb(v[None]), x)
    assert cut_flops < 0.8 * _flops(full, x)
    # the same features as timm's feature wrapper with the same weights
    full.load_state_dict(bb.model.state_dict(), strict=False)
    bb.eval()
    with torch.no_grad():
        torch.testing.assert_close(bb(x[None])[0], full(x)[0])


@pytest.mark.parametrize("name", ["test_resnet", "test_efficientnet", "test_convnext"])
def test_every_tap_matches_timms_feature_wrapper(name):
    n_taps = len(timm.create_model(name, features_only=True).feature_info.info)
    x = torch.rand(1, 2, 3, 32, 32)
    for i in range(-1, n_taps):
        bb = FrameBackbone(name, feature_index=i).eval()
        torch.manual_seed(0)
        ref = timm.create_model(name, features_only=True, out_indices=(i,)).eval()
        # feature wrappers may flatten module names (stages.0 -> stages_0): map by order, check shapes
        ours, theirs = bb.model.state_dict(), ref.state_dict()
        pairs = list(zip(theirs, ours))
        assert len(theirs) >= len(ours) and all(theirs[t].shape == ours[o].shape for t, o in pairs)
        ref.load_state_dict({t: ours[o] for t, o in pairs}, strict=False)
        with torch.no_grad():
            torch.testing.assert_close(bb(x)[0], ref(x[0])[0])
        extra = sum(p.numel() for p in ref.parameters()) - sum(p.numel() for p in bb.parameters())
        assert extra >= 0, f"{name} tap {i}: the cut model has parameters timm's wrapper lacks"


def test_out_of_range_feature_index_is_a_clear_error():
    with pytest.raises(ValueError, match="feature_index 7 is out of range"):
        FrameBackbone("test_resnet", feature_index=7)
