"""The `model:` section every tiny CLI config shares (test_cli.py, test_resume.py, cache/cache_helpers.py).

A random-init timm test model (`test_efficientnet`, nothing is downloaded) under a small PKS4 head. Written
without flow braces so that it can be pasted into the `str.format` templates of those files as is.
"""
from __future__ import annotations

_MODEL = """\
model:
  net:
    class_path: pks4_lit.models.VideoClassifier
    init_args:
      backbone:
        name: test_efficientnet
        feature_index: 2
      head:
        class_path: pks4_lit.models.PKS4
        init_args:
          d_state: 4
          prior_dim: 8
          radius: 1
{net_args}  lr: 0.003
  warmup_epochs: 0.5
"""


def tiny_model_yaml(**net_args) -> str:
    """The `model:` section; `net_args` adds VideoClassifier init_args (e.g. dropout=0.1)."""
    return _MODEL.format(net_args="".join(f"      {k}: {v}\n" for k, v in net_args.items()))
