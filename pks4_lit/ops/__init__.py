"""Sequence kernels with one dispatching function each: the fused CUDA kernel when it can run,
on the CPU a fused kernel built on first use (scan_cpu.py), and an exact PyTorch implementation
otherwise (selective_scan.py, causal_conv1d.py; the one-step updates for streaming: state_update.py
and causal_conv1d_update)."""
from pks4_lit.ops.causal_conv1d import causal_conv1d, causal_conv1d_update, conv_backend
from pks4_lit.ops.selective_scan import (scan_backend, selective_scan, selective_scan_cpu,
                                         selective_scan_ref, selective_scan_torch)
from pks4_lit.ops.state_update import selective_state_update, state_update_backend

__all__ = ["causal_conv1d", "causal_conv1d_update", "conv_backend", "scan_backend", "selective_scan",
           "selective_scan_cpu", "selective_scan_ref", "selective_scan_torch", "selective_state_update",
           "state_update_backend"]
