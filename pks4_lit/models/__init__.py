"""The model: timm frame backbone + one temporal head (PKS⁴ or a baseline) + linear classifier."""
from pks4_lit.models.attention import TemporalAttention
from pks4_lit.models.backbone import FrameBackbone
from pks4_lit.models.classifier import VideoClassifier
from pks4_lit.models.global_ssm import GlobalSSM
from pks4_lit.models.heads import (TEMPORAL_HEADS, build_temporal_head, list_temporal_heads, register_temporal_head,
                                   temporal_head_name)
from pks4_lit.models.kinematic import KinematicPriorEncoder
from pks4_lit.models.pks4 import PKS4, SSM
from pks4_lit.models.tsn import TSN

__all__ = ["FrameBackbone", "GlobalSSM", "KinematicPriorEncoder", "PKS4", "SSM", "TSN", "TemporalAttention",
           "TEMPORAL_HEADS", "VideoClassifier", "build_temporal_head", "list_temporal_heads",
           "register_temporal_head", "temporal_head_name"]
