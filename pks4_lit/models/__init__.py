"""The model: timm frame backbone + one temporal head (PKS⁴ or a baseline) + linear classifier."""
from pks4_lit.models.backbone import FrameBackbone
from pks4_lit.models.classifier import VideoClassifier
from pks4_lit.models.heads import TEMPORAL_HEADS, build_temporal_head, list_temporal_heads, register_temporal_head
from pks4_lit.models.kinematic import KinematicPriorEncoder
from pks4_lit.models.pks4 import PKS4

__all__ = ["FrameBackbone", "KinematicPriorEncoder", "PKS4", "build_temporal_head", "list_temporal_heads",
           "register_temporal_head", "TEMPORAL_HEADS", "VideoClassifier"]
