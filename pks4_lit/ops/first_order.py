"""`first_order_only`: hand-written backwards (in place, no graph) refuse `create_graph=True` up front.

`once_differentiable` alone raises only when the second derivative flows through the backward's
outputs; with a loss linear in the op's output (a gradient penalty on Δ, say) the second-order term
would silently be zero. Under `create_graph=True` autograd runs the backward with grad mode on:
that is the signal.
"""
from __future__ import annotations

import functools

import torch


def first_order_only(backward):
    @functools.wraps(backward)
    def wrapper(ctx, *grads):
        if torch.is_grad_enabled():
            raise RuntimeError(
                "this CPU kernel's backward is first-order only: cannot differentiate twice "
                "(create_graph=True); use PKS4_SCAN_IMPL=ref / selective_scan_ref for higher derivatives")
        return backward(ctx, *grads)
    return wrapper
