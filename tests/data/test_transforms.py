import numpy as np
import pytest
import torch

from pks4_lit.data.transforms import eval_crops, random_resized_crop_params, train_transform


def _ramp_clip(T=4, H=60, W=90):
    """Frame t, pixel (y, x) = x + t: distinct columns, so a crop's position is readable."""
    x = torch.arange(W).view(1, 1, 1, W).expand(T, 3, H, W)
    return (x + torch.arange(T).view(T, 1, 1, 1)).to(torch.uint8)


def test_train_same_crop_for_all_frames_uint8():
    v = _ramp_clip()
    out = train_transform(v, 32, (0.3, 1.0), False, np.random.default_rng(0))
    assert out.shape == (4, 3, 32, 32) and out.dtype == torch.uint8
    diff = out[1:].int() - out[:-1].int()
    assert torch.all(diff.abs() <= 1) and diff.float().mean() > 0.9  # frames differ by the +1 only


def test_rrc_params_within_scale_and_image():
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, h, w = random_resized_crop_params(60, 90, (0.4, 1.0), rng)
        assert 0 <= top and top + h <= 60 and 0 <= left and left + w <= 90
        assert h * w >= 0.4 * 60 * 90 * 0.95 or (h, w) == (60, 60)


def test_hflip_off_by_default_on_when_asked():
    v = _ramp_clip()
    flips = [train_transform(v, 32, (1.0, 1.0), True, np.random.default_rng(s))[0, 0, 0] for s in range(20)]
    assert any(f[0] > f[-1] for f in flips) and any(f[0] < f[-1] for f in flips)
    assert all(train_transform(v, 32, (1.0, 1.0), False, np.random.default_rng(s))[0, 0, 0, 0] <
               train_transform(v, 32, (1.0, 1.0), False, np.random.default_rng(s))[0, 0, 0, -1] for s in range(5))


def test_eval_crops_positions():
    v = _ramp_clip(H=64, W=96)
    c1 = eval_crops(v, 64, 64, 1)
    assert len(c1) == 1 and c1[0].shape == (4, 3, 64, 64) and c1[0][0, 0, 0, 0] == 16  # centre
    c3 = eval_crops(v, 64, 64, 3)
    assert [int(c[0, 0, 0, 0]) for c in c3] == [0, 16, 32]  # left, centre, right
    portrait = eval_crops(v.transpose(-1, -2).contiguous(), 64, 64, 3)
    assert [int(c[0, 0, 0, 0]) for c in portrait] == [0, 16, 32]  # top, centre, bottom


def test_eval_resizes_short_side():
    v = _ramp_clip(H=30, W=45)
    assert eval_crops(v, 56, 60, 1)[0].shape == (4, 3, 56, 56)


def test_rejects_float_input():
    with pytest.raises(ValueError):
        eval_crops(torch.rand(4, 3, 32, 32), 16, 16)
