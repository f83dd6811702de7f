"""causal_conv1d's PyTorch path against an explicit loop; gradients; dtypes; errors."""
import pytest
import torch
import torch.nn.functional as F

from pks4_lit.ops import causal_conv1d


def loop_conv(x, weight, bias=None, activation=None):
    b, d, L = x.shape
    k = weight.shape[1]
    out = torch.zeros_like(x)
    for t in range(L):
        for j in range(k):
            s = t - k + 1 + j
            if s >= 0:
                out[:, :, t] += weight[:, j] * x[:, :, s]
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
    out = causal_conv1d(x, w, b, activation)
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
    out = causal_conv1d(x, w, b, "silu")
    assert out.dtype == torch.bfloat16
    expected = loop_conv(x.float(), w, b, "silu")                         # fp32 math, bf16 rounding
    eps = torch.finfo(torch.bfloat16).eps
    torch.testing.assert_close(out.float(), expected, rtol=eps, atol=eps * expected.abs().max().item())


@pytest.mark.parametrize("args, message", [
    ((torch.zeros(3, 8), torch.zeros(3, 4)), "x must be"),
    ((torch.zeros(1, 3, 8), torch.zeros(2, 4)), "weight must be"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), torch.zeros(2)), "bias must be"),
    ((torch.zeros(1, 3, 8), torch.zeros(3, 4), None, "relu"), "activation must be"),
])
def test_bad_inputs(args, message):
    with pytest.raises(ValueError, match=message):
        causal_conv1d(*args)
