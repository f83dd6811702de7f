"""Depthwise causal 1-D convolution with causal-conv1d 1.7's contract: `causal_conv1d_fn` and,
for streaming, `causal_conv1d_update`.

    out[b,c,t] = act(bias[c] + Σ_{j<k} weight[c,j] · x[b,c,t-k+1+j])

x `[b,d,L]`, weight `[d,k]`, bias `[d]`, activation None | "silu" | "swish"; output in x's dtype.
Before the start, x is `initial_states` `[b,d,k-1]` (zeros when None). `return_final_states`
also returns the last k-1 inputs `[b,d,k-1]` (written into `final_states_out` when given): the
initial states of the next piece of the sequence. `seq_idx` `[b,L]` (integers) marks packed
sequences: a tap only reads inputs with the same seq_idx as the output step, and steps with
seq_idx < 0 (padding) output 0. As upstream, seq_idx excludes initial and final states.

Dispatch (`PKS4_CONV_IMPL=auto|cuda|torch`): the fused kernel of the `causal_conv1d` package for
CUDA tensors when it imports, x is fp32/fp16/bf16 and 2 ≤ k ≤ 4 (the kernel's widths), with x in
a layout the kernel accepts (`fused_layout`): its main, channel-first path takes x contiguous
`[b,d,L]`; its channel-last path (x.stride(1) == 1: the only one with states and seq_idx) needs
d % 8 == 0 and x.stride(0), x.stride(2) divisible by 8, which its Python wrapper does not check.
Otherwise, on CPU in fp32/float64 without states or seq_idx, the C++ kernel of conv_cpu.py (x read
with any strides, SiLU fused, recomputed in the backward) when it builds; else `F.conv1d` with
groups=d (half precision computed in fp32 on CPU).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

from pks4_lit.ops.first_order import first_order_only
from pks4_lit.ops.conv_cpu import causal_conv1d_cpu
from pks4_lit.ops.dispatch import choose_backend, optional_attr
from pks4_lit.ops.scan_cpu import available as cpu_kernel_available

CONV_IMPLS = ("auto", "cuda", "torch")
_FUSED = ("causal_conv1d", "causal_conv1d_fn")
_FUSED_UPDATE = ("causal_conv1d", "causal_conv1d_update")
_ACTIVATIONS = (None, "silu", "swish")
_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def _check_inputs(x, weight, bias, activation, seq_idx=None, initial_states=None,
                  return_final_states=False, final_states_out=None) -> None:
    if x.dim() != 3:
        raise ValueError(f"x must be [batch, dim, L], got shape {tuple(x.shape)}")
    b, d, L = x.shape
    if weight.dim() != 2 or weight.shape[0] != d:
        raise ValueError(f"weight must be [dim={d}, width], got shape {tuple(weight.shape)}")
    if bias is not None and tuple(bias.shape) != (d,):
        raise ValueError(f"bias must be [dim={d}], got shape {tuple(bias.shape)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")
    states = (b, d, weight.shape[1] - 1)
    if initial_states is not None and tuple(initial_states.shape) != states:
        raise ValueError(f"initial_states must be [batch, dim, width-1]={states}, "
                         f"got {tuple(initial_states.shape)}")
    if return_final_states and final_states_out is not None and tuple(final_states_out.shape) != states:
        raise ValueError(f"final_states_out must be [batch, dim, width-1]={states}, "
                         f"got {tuple(final_states_out.shape)}")
    if seq_idx is not None:
        if not isinstance(seq_idx, torch.Tensor):
            raise ValueError(f"seq_idx must be an integer tensor [batch, L], got {seq_idx!r} (the "
                             f"signature is causal-conv1d's: pass activation=... by keyword)")
        if tuple(seq_idx.shape) != (b, L) or seq_idx.is_floating_point() or seq_idx.is_complex():
            raise ValueError(f"seq_idx must be an integer tensor [batch, L]=({b}, {L}), "
                             f"got {seq_idx.dtype} {tuple(seq_idx.shape)}")
        if initial_states is not None or return_final_states:
            raise ValueError("seq_idx cannot be combined with initial_states or return_final_states "
                             "(as in causal-conv1d)")


# ---------------------------------------------------------------- PyTorch path

def _work_dtype(x: torch.Tensor) -> torch.dtype:
    half_on_cpu = x.device.type == "cpu" and x.dtype in (torch.float16, torch.bfloat16)
    return torch.float32 if half_on_cpu else x.dtype


class _ConvRecompute(torch.autograd.Function):
    """conv + activation that keeps only its inputs for the backward and recomputes the rest
    there (autograd through the plain path would also keep the padded input and the
    pre-activation: two more [b,d,L] tensors)."""

    @staticmethod
    def forward(ctx, x, weight, bias, initial_states, activation):
        ctx.save_for_backward(x, weight, bias, initial_states)
        ctx.activation = activation
        return _conv_plain(x, weight, bias, None, initial_states, False, None, activation)

    @staticmethod
    @first_order_only
    @once_differentiable
    def backward(ctx, gout):
        saved = ctx.saved_tensors
        leaves = [None if t is None else t.detach().requires_grad_(need)
                  for t, need in zip(saved, ctx.needs_input_grad)]
        with torch.enable_grad():
            out = _conv_plain(leaves[0], leaves[1], leaves[2], None, leaves[3], False, None, ctx.activation)
            wanted = [t for t in leaves if t is not None and t.requires_grad]
            grads = iter(torch.autograd.grad(out, wanted, gout) if wanted else [])
        return (*(next(grads) if t is not None and t.requires_grad else None for t in leaves), None)


def causal_conv1d_torch(x, weight, bias=None, seq_idx=None, initial_states=None,
                        return_final_states=False, final_states_out=None, activation=None):
    """Grouped F.conv1d over [initial states (or zeros), x]; with seq_idx, k masked taps. When
    training without seq_idx or final states, the backward recomputes (`_ConvRecompute`)."""
    _check_inputs(x, weight, bias, activation, seq_idx, initial_states, return_final_states,
                  final_states_out)
    args = (x, weight, bias, initial_states)
    if _cpu_kernel_fits(x, weight, bias, seq_idx, initial_states, return_final_states):
        return causal_conv1d_cpu(x, weight, bias, silu=activation is not None)
    if (seq_idx is None and not return_final_states and torch.is_grad_enabled()
            and any(t is not None and t.requires_grad for t in args)):
        return _ConvRecompute.apply(*args, activation)
    return _conv_plain(x, weight, bias, seq_idx, initial_states, return_final_states, final_states_out,
                       activation)


def _cpu_kernel_fits(x, weight, bias, seq_idx, initial_states, return_final_states) -> bool:
    """The C++ conv (conv_cpu.py) takes the stateless call on CPU in fp32/float64, any x strides."""
    if seq_idx is not None or initial_states is not None or return_final_states or x.device.type != "cpu":
        return False
    if x.dtype not in (torch.float32, torch.float64) or weight.dtype != x.dtype or (
            bias is not None and bias.dtype != x.dtype) or x.numel() == 0:
        return False
    return cpu_kernel_available()[0]


def _conv_plain(x, weight, bias, seq_idx, initial_states, return_final_states, final_states_out,
                activation):
    d, k = weight.shape
    L = x.shape[-1]
    work = _work_dtype(x)
    b_ = None if bias is None else bias.to(work)
    before = x.new_zeros(x.shape[0], d, k - 1, dtype=work) if initial_states is None \
        else initial_states.to(work)
    xp = torch.cat([before, x.to(work)], -1)                             # [b,d,k-1+L]
    if seq_idx is None:
        out = F.conv1d(xp, weight.to(work).unsqueeze(1), b_, groups=d)   # [b,d,L]
    else:
        ids = F.pad(seq_idx.long(), (k - 1, 0), value=-1)                # before the start: -1
        cur = seq_idx.long()
        out = 0
        for j in range(k):                                               # tap j reads x[t-k+1+j]
            same = (ids[:, j:j + L] == cur).unsqueeze(1)                 # [b,1,L]
            out = out + weight[:, j].to(work)[:, None] * xp[..., j:j + L] * same
        if b_ is not None:
            out = out + b_[:, None]
        out = out.masked_fill((cur < 0).unsqueeze(1), 0.0)               # padding steps: 0
    if activation is not None:
        out = F.silu(out)
    out = out.to(x.dtype)
    if not return_final_states:
        return out
    final = xp[..., xp.shape[-1] - (k - 1):].to(x.dtype)                 # last k-1 inputs
    if final_states_out is not None:
        final = final_states_out.copy_(final)
    return out, final


def causal_conv1d_update_torch(x, conv_state, weight, bias=None, activation=None):
    """One (or a few) new steps against the last inputs kept in conv_state (updated in place)."""
    d, k = weight.shape
    S = conv_state.shape[-1]
    squeeze = x.dim() == 2
    xs = x.unsqueeze(-1) if squeeze else x                               # [b,d,l]
    work = _work_dtype(xs)
    window = torch.cat([conv_state.to(work), xs.to(work)], -1)           # [b,d,S+l]
    conv_state.copy_(window[..., window.shape[-1] - S:])
    out = F.conv1d(window[..., S - (k - 1):], weight.to(work).unsqueeze(1),
                   None if bias is None else bias.to(work), groups=d)    # [b,d,l]
    if activation is not None:
        out = F.silu(out)
    out = out.to(x.dtype)
    return out.squeeze(-1) if squeeze else out


# ---------------------------------------------------------------- fused kernel

def fused_layout(x: torch.Tensor, stateful: bool) -> tuple[str | None, str | None]:
    """How to hand x to causal-conv1d's kernel: ("as_is" | "channel_first" | "channel_last",
    None), or (None, why it cannot run). `stateful`: seq_idx or initial/final states are used,
    which only the channel-last path supports."""
    b, d, L = x.shape
    is_channel_last = x.stride(1) == 1 and x.stride(2) > 1
    aligned = (x.stride(0) % 8 == 0 and x.stride(2) % 8 == 0 and x.storage_offset() % 8 == 0)
    if is_channel_last and d % 8 == 0 and aligned:
        return "as_is", None
    if stateful:
        if d % 8:
            return None, (f"dim={d} is not a multiple of 8: the kernel's channel-last path, the only "
                          f"one with seq_idx or initial/final states, needs one")
        return "channel_last", None
    if d > 65535:                     # channel-first grid (batch, dim): grid.y is capped at 65535
        return (("channel_last", None) if d % 8 == 0
                else (None, f"dim={d} > 65535, the kernel's grid limit"))
    return ("as_is" if x.is_contiguous() and x.storage_offset() % 8 == 0 else "channel_first"), None


def _to_layout(x: torch.Tensor, layout: str) -> torch.Tensor:
    if layout == "channel_last":                                           # strides (L·d, 1, d)
        return x.transpose(1, 2).contiguous().transpose(1, 2)
    if layout == "channel_first":                                          # contiguous, aligned
        return x.contiguous() if not x.is_contiguous() else x.clone()
    return x


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward hands on a contiguous gradient: the channel-last backward
    kernel rejects a channel-last dout whose strides are not multiples of 8, and a contiguous
    (channel-first) one is always accepted (the kernel transposes it itself)."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, g):
        return g.contiguous()


def _kernel_problem(kernel: tuple[str, str], x: torch.Tensor, width: int, **same_dtype) -> str | None:
    """Why the fused `kernel` (module, name) cannot take x, or None: device, import, dtype, the
    tensors of `same_dtype` (name=tensor) on CUDA in x's dtype, width. Checked in that order."""
    if not (x.is_cuda and all(t.is_cuda for t in same_dtype.values())):
        return f"inputs are on {x.device.type}, not CUDA"
    fn, why = optional_attr(*kernel)
    if fn is None:
        return why
    if x.dtype not in _FUSED_DTYPES:
        return f"the kernel has no {x.dtype} version"
    for name, t in same_dtype.items():
        if t.dtype != x.dtype:
            return f"{name} is {t.dtype}, x is {x.dtype}: the kernel needs one dtype"
    if not 2 <= width <= 4:
        return f"kernel width {width} is outside the fused kernel's 2..4"
    return None


def _fused_problem(x: torch.Tensor, width: int, stateful: bool = False) -> str | None:
    return _kernel_problem(_FUSED, x, width) or fused_layout(x, stateful)[1]


def conv_backend(x: torch.Tensor, width: int = 4, stateful: bool = False) -> str:
    """"cuda" or "torch": which implementation `causal_conv1d` would run (`stateful`: with
    seq_idx or initial/final states). Raises RuntimeError when PKS4_CONV_IMPL=cuda cannot be
    honoured."""
    return choose_backend("causal conv1d", "PKS4_CONV_IMPL", CONV_IMPLS,
                          lambda: _fused_problem(x, width, stateful), x.is_cuda)


def _call_fused(fn, x, weight, bias, seq_idx, initial_states, return_final_states,
                final_states_out, activation):
    """Call causal_conv1d_fn with what its kernel checks: weight and bias in one dtype (x's),
    bias contiguous, x in `fused_layout`'s layout, seq_idx int32 contiguous, initial states
    channel-last in x's dtype; final states are copied into `final_states_out` afterwards (the
    kernel needs stride(1) == 1, which the wrapper does not check)."""
    stateful = seq_idx is not None or initial_states is not None or return_final_states
    layout, why = fused_layout(x, stateful)
    if layout is None:
        raise RuntimeError(why)
    x_ = _to_layout(x, layout)
    if x_.stride(1) == 1 and x_.stride(2) > 1:
        x_ = _ContiguousGrad.apply(x_)
    w = weight.to(x.dtype).contiguous()
    b_ = None if bias is None else bias.to(x.dtype).contiguous()
    s = None if seq_idx is None else seq_idx.to(torch.int32).contiguous()
    h = None if initial_states is None else _to_layout(initial_states.to(x.dtype), "channel_last")
    res = fn(x_, w, b_, seq_idx=s, initial_states=h, return_final_states=return_final_states,
             final_states_out=None, activation=activation)
    if return_final_states and final_states_out is not None:
        out, final = res
        return out, final_states_out.copy_(final)
    return res


def causal_conv1d(x, weight, bias=None, seq_idx=None, initial_states=None, return_final_states=False,
                  final_states_out=None, activation=None):
    """causal-conv1d's `causal_conv1d_fn`, dispatched (module doc). Returns out `[b,d,L]`, or
    (out, final_states `[b,d,k-1]`) with return_final_states."""
    _check_inputs(x, weight, bias, activation, seq_idx, initial_states, return_final_states,
                  final_states_out)
    stateful = seq_idx is not None or initial_states is not None or bool(return_final_states)
    args = (x, weight, bias, seq_idx, initial_states, return_final_states, final_states_out, activation)
    if conv_backend(x, weight.shape[1], stateful) == "cuda":
        return _call_fused(optional_attr(*_FUSED)[0], *args)
    return causal_conv1d_torch(*args)


# ---------------------------------------------------------------- streaming update

def _check_update(x, conv_state, weight, bias, activation) -> None:
    if x.dim() not in (2, 3):
        raise ValueError(f"x must be [batch, dim] or [batch, dim, L], got shape {tuple(x.shape)}")
    b, d = x.shape[:2]
    if weight.dim() != 2 or weight.shape[0] != d:
        raise ValueError(f"weight must be [dim={d}, width], got shape {tuple(weight.shape)}")
    k = weight.shape[1]
    if conv_state.dim() != 3 or conv_state.shape[:2] != (b, d) or conv_state.shape[2] < k - 1:
        raise ValueError(f"conv_state must be [batch, dim, state_len ≥ width-1]=({b}, {d}, ≥{k - 1}), "
                         f"got {tuple(conv_state.shape)}")
    if bias is not None and tuple(bias.shape) != (d,):
        raise ValueError(f"bias must be [dim={d}], got shape {tuple(bias.shape)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {_ACTIVATIONS}, got {activation!r}")


def _fused_update_problem(x, conv_state, width) -> str | None:
    return _kernel_problem(_FUSED_UPDATE, x, width, conv_state=conv_state)


def causal_conv1d_update(x, conv_state, weight, bias=None, activation=None):
    """causal-conv1d's `causal_conv1d_update`: x `[b,d]` (one step) or `[b,d,L]`, conv_state
    `[b,d,S]` (S ≥ k-1: the last S inputs, oldest first) updated in place; returns out `[b,d]` or
    `[b,d,L]`, the same as the matching steps of `causal_conv1d` over the whole sequence.
    Fused kernel on CUDA when it can run (PKS4_CONV_IMPL as above), else PyTorch."""
    _check_update(x, conv_state, weight, bias, activation)
    impl = choose_backend("causal conv1d update", "PKS4_CONV_IMPL", CONV_IMPLS,
                          lambda: _fused_update_problem(x, conv_state, weight.shape[1]), x.is_cuda)
    if impl == "cuda":
        fn = optional_attr(*_FUSED_UPDATE)[0]
        return fn(x, conv_state, weight.to(x.dtype).contiguous(),
                  None if bias is None else bias.to(x.dtype).contiguous(), activation)
    return causal_conv1d_update_torch(x, conv_state, weight, bias, activation)
