"""Sequence kernels with one dispatching function each (fused CUDA when available, PyTorch otherwise)."""
from pks4_lit.ops.selective_scan import selective_scan

__all__ = ["selective_scan"]
