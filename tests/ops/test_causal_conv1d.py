"""causal_conv1d's PyTorch path against an explicit loop; causal-conv1d's signature, initial/final
states and seq_idx; the streaming update; gradients; dtypes; errors."""
import importlib
import inspect

import pytest
import torch
import torch.nn.functional as F

from pks4_lit.ops import causal_conv1d, causal_conv1d_update


def loop_conv(x, weight, bias=None, activation=None, initial_states=None):
    b, d, L = x.shape
    k = weight.shape[1]
    out = torch.zeros_like(x)
    for t in range(L):
        for j in range(k):
            s = t - k + 1 + j
            if s >= 0:
                out[:, :, t] += weight[:, j] * x[:, :, s]
            elif initial_states is not None:                       # x[-1] = initial_states[..., -1]
                out[:, :, t] += weight[:, j] * initial_states[:, :, k - 1 + s]
    if bias is not None:
        out = out + bias[:, None]
    return F.silu(out) if activation else out


@pytest.mark.parametrize("k", [1, 2, 4, 5])
@pytest.mark.parametrize("bias", [False, True])
@pytest.mark.parametrize("activation", [None, "silu", "swish"])
def test_matches_explicit_loop(k, bias, activation):
    g = torch.Generator().manual_seed(k)
    x = torch.randn(2, 3, 7, generator=g, dtype=torch.float64)
    w = torch.randn(3, k, generator=g, dtype=torch.float64)
    b = torch.randn(3, generator=g, dtype=torch.float64) if bias else None
    out = causal_conv1d(x, w, b, activation=activation)
    torch.testing.assert_close(out, loop_conv(x, w, b, activation))


def test_is_causal():
    x = torch.randn(1, 2, 10)
    w = torch.randn(2, 4)
    y = causal_conv1d(x, w)
    x2 = x.clone()
    x2[..., 6:] += 1.0                                                    # change the future only
    torch.testing.assert_close(causal_conv1d(x2, w)[..., :6], y[..., :6])
    assert not torch.allclose(causal_conv1d(x2, w)[..., 6:], y[..., 6:])


def test_gradcheck():
    x = torch.randn(2, 3, 6, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: causal_conv1d(*a, activation="silu"), (x, w, b),
                                    fast_mode=True)


def test_bf16_input_keeps_dtype_and_fp32_params_work():
    x = torch.randn(2, 3, 8, dtype=torch.bfloat16)
    w, b = torch.randn(3, 4), torch.randn(3)
    out = causal_conv1d(x, w, b, activation="silu")
    assert out.dtype == torch.bfloat16
    expected = loop_conv(x.float(), w, b, "silu")                         # fp32 math, bf16 rounding
    eps = torch.finfo(torch.bfloat16).eps
    torch.testing.assert_close(out.float(), expected, rtol=eps, atol=eps * expected.abs().max().item())


@pytest.mark.parametrize("args, message", [
    ((torch.zeros(3, 8), torch.zeros(3, 4)), "x must be"),
    ((torch.zeros(1, 3, 8), torch.zeros(2, 4)), "weight must be"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), torch.zeros(2)), "bias must be"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, None, None, False, None, "relu"), "activation must be"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, "silu"), "pass activation=... by keyword"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, torch.zeros(1, 8)), "integer tensor"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, torch.zeros(1, 7, dtype=torch.int32)), "seq_idx must"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, None, torch.zeros(1, 3, 2)), "initial_states must"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, torch.zeros(1, 8, dtype=torch.int32),
      torch.zeros(1, 3, 3)), "cannot be combined"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, torch.zeros(1, 8, dtype=torch.int32), None, True),
     "cannot be combined"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, None, None, True, torch.zeros(1, 3, 4)),
     "final_states_out must"),
])
def test_bad_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        causal_conv1d(*args)


def test_signature_is_causal_conv1d_fn():
    """causal-conv1d 1.7's `causal_conv1d_fn`, so its own test suite can call ours."""
    params = inspect.signature(causal_conv1d).parameters
    assert list(params) == ["x", "weight", "bias", "seq_idx", "initial_states", "return_final_states",
                            "final_states_out", "activation"]
    assert [p.default for p in params.values()][2:] == [None, None, None, False, None, None]


def rand(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("k", [1, 2, 4])
def test_initial_states_against_loop(k):
    x, w, b, h = rand(2, 3, 6), rand(3, k, seed=1), rand(3, seed=2), rand(2, 3, k - 1, seed=3)
    out = causal_conv1d(x, w, b, initial_states=h, activation="silu")
    torch.testing.assert_close(out, loop_conv(x, w, b, "silu", initial_states=h))


@pytest.mark.parametrize("k", [2, 3, 4])
@pytest.mark.parametrize("split", [1, 2, 5])
def test_final_states_continue_the_sequence(k, split):
    """Conv of the first piece → its final states → initial states of the second piece: the same
    as one conv over the whole, also when a piece is shorter than k-1."""
    x, w, b = rand(2, 3, 9), rand(3, k, seed=1), rand(3, seed=2)
    whole = causal_conv1d(x, w, b, activation="silu")
    y1, f1 = causal_conv1d(x[..., :split], w, b, return_final_states=True, activation="silu")
    y2, f2 = causal_conv1d(x[..., split:], w, b, initial_states=f1, return_final_states=True,
                           activation="silu")
    torch.testing.assert_close(torch.cat([y1, y2], -1), whole)
    assert f1.shape == (2, 3, k - 1)
    torch.testing.assert_close(f2, x[..., 9 - (k - 1):])
    if split < k - 1:                                              # left-padded with zeros
        torch.testing.assert_close(f1[..., :k - 1 - split], torch.zeros(2, 3, k - 1 - split,
                                                                         dtype=torch.float64))


def test_final_states_out_is_written_and_returned():
    x, w = rand(2, 3, 5), rand(3, 4, seed=1)
    buf = torch.full((2, 3, 3), 7.0, dtype=torch.float64)
    _, f = causal_conv1d(x, w, return_final_states=True, final_states_out=buf)
    assert f is buf
    torch.testing.assert_close(buf, x[..., 2:])


def test_gradcheck_through_initial_and_final_states():
    x = rand(2, 3, 5).requires_grad_()
    w, b, h = rand(3, 3, seed=1).requires_grad_(), rand(3, seed=2).requires_grad_(), \
        rand(2, 3, 2, seed=3).requires_grad_()

    def f(x, w, b, h):
        out, fin = causal_conv1d(x, w, b, initial_states=h, return_final_states=True, activation="silu")
        return out.sum(-1) + torch.sigmoid(fin).sum(-1)            # as upstream's test

    assert torch.autograd.gradcheck(f, (x, w, b, h))


def seq_idx_for(lengths, L, pad_to=None):
    ids = torch.cat([torch.full((n,), i, dtype=torch.int32) for i, n in enumerate(lengths)])
    return F.pad(ids, (0, (pad_to or L) - len(ids)), value=-1)


@pytest.mark.parametrize("activation", [None, "silu"])
def test_seq_idx_restarts_at_every_sequence(activation):
    """Packed sequences: equal to separate convs per piece; padding (seq_idx < 0) outputs 0."""
    L, k = 12, 4
    x, w, b = rand(2, 3, L), rand(3, k, seed=1), rand(3, seed=2)
    pieces = [[3, 1, 8], [5, 4]]                                     # batch 1 padded by 3 steps
    seq_idx = torch.stack([seq_idx_for(p, L) for p in pieces])
    out = causal_conv1d(x, w, b, seq_idx=seq_idx, activation=activation)
    for i, p in enumerate(pieces):
        ref = torch.cat([causal_conv1d(s, w, b, activation=activation)
                         for s in torch.split(x[i:i + 1, :, :sum(p)], p, -1)], -1)
        torch.testing.assert_close(out[i:i + 1, :, :sum(p)], ref)
        assert (out[i, :, sum(p):] == 0).all()
    assert torch.autograd.gradcheck(
        lambda x, w, b: causal_conv1d(x, w, b, seq_idx=seq_idx, activation="silu"),
        (x[:, :, :].clone().requires_grad_(), w.clone().requires_grad_(), b.clone().requires_grad_()))


@pytest.mark.parametrize("k", [2, 4])
@pytest.mark.parametrize("state_len", [None, 5])
@pytest.mark.parametrize("activation", [None, "silu"])
def test_update_steps_equal_the_full_conv(k, state_len, activation):
    """Streaming: one step at a time (conv_state updated in place) gives the full conv's output at
    every step, and conv_state ends as the last inputs (the final states)."""
    L = 7
    x, w, b = rand(2, 3, L), rand(3, k, seed=1), rand(3, seed=2)
    full, final = causal_conv1d(x, w, b, return_final_states=True, activation=activation)
    S = state_len or k - 1
    state = torch.zeros(2, 3, S, dtype=torch.float64)
    steps = torch.stack([causal_conv1d_update(x[..., t], state, w, b, activation) for t in range(L)], -1)
    torch.testing.assert_close(steps, full)
    torch.testing.assert_close(state[..., S - (k - 1):], final)
    state2 = torch.zeros(2, 3, S, dtype=torch.float64)                    # several steps at once
    y3 = causal_conv1d_update(x[..., :3], state2, w, b, activation)
    y4 = causal_conv1d_update(x[..., 3:], state2, w, b, activation)
    torch.testing.assert_close(torch.cat([y3, y4], -1), full)
    torch.testing.assert_close(state2, state)


def test_update_bad_state():
    with pytest.raises(ValueError, match="conv_state must be"):
        causal_conv1d_update(torch.zeros(2, 3), torch.zeros(2, 3, 2), torch.zeros(3, 4))


def test_training_keeps_only_the_inputs_for_backward():
    """The PyTorch path recomputes conv and activation in the backward: saved = x, weight, bias."""
    x, w, b = (t.requires_grad_() for t in (rand(2, 8, 32).float(), rand(8, 4, seed=1).float(),
                                               rand(8, seed=2).float()))
    saved = {}

    def pack(t):
        saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = causal_conv1d(x, w, b, activation="silu")
    assert sum(saved.values()) == sum(t.numel() * 4 for t in (x, w, b))
    out.square().sum().backward()
    got = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    loop_conv(x, w, b, "silu").square().sum().backward()
    for g, t in zip(got, (x, w, b)):
        torch.testing.assert_close(g, t.grad)


def test_cpu_training_path_reads_strided_input_without_f_conv1d(monkeypatch):
    """On CPU the stateless call runs the C++ conv (SiLU fused, recomputed in the backward): it
    reads a transposed view of a [b,L,d] projection without F.conv1d and its padded copy, and
    matches the explicit loop in values and gradients (gradcheck in float64)."""
    from pks4_lit.ops.scan_cpu import available
    if not available()[0]:
        pytest.skip("C++ kernel library not available")
    cc = importlib.import_module("pks4_lit.ops.causal_conv1d")      # (the package re-exports the function)

    def no_conv(*a, **k):
        raise AssertionError("F.conv1d called")
    monkeypatch.setattr(cc.F, "conv1d", no_conv)
    g = torch.Generator().manual_seed(0)
    proj = torch.randn(2, 9, 2 * 5, generator=g, dtype=torch.float64)
    x = proj[..., :5].transpose(1, 2).detach().requires_grad_()               # [2,5,9], strided
    w = torch.randn(5, 4, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    for act in (None, "silu"):
        torch.testing.assert_close(causal_conv1d(x, w, b, activation=act), loop_conv(x, w, b, act))
        assert torch.autograd.gradcheck(lambda *a: causal_conv1d(*a, activation=act), (x, w, b))
