"""Sequence kernels with one dispatching function each: the fused CUDA kernel when it can run,
an exact PyTorch implementation otherwise (see selective_scan.py and causal_conv1d.py)."""
from pks4_lit.ops.causal_conv1d import causal_conv1d, conv_backend
from pks4_lit.ops.selective_scan import (scan_backend, selective_scan, selective_scan_ref,
                                         selective_scan_torch)

__all__ = ["causal_conv1d", "conv_backend", "scan_backend", "selective_scan", "selective_scan_ref",
           "selective_scan_torch"]
