"""selective_state_update (one streaming step) against the full scan on the prefix: every step's
output and the state, with and without heads/groups, dtypes, dispatch and errors."""
import inspect

import pytest
import torch

from pks4_lit.ops import selective_scan_ref, selective_state_update, state_update_backend


def scan_inputs(b=2, d=4, N=3, L=9, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)   # noqa: E731
    return dict(u=r(b, d, L), delta=r(b, d, L) * 0.5, A=-torch.rand(d, N, generator=g, dtype=torch.float64) - 0.2,
                B=r(b, N, L), C=r(b, N, L), D=r(d), z=r(b, d, L), delta_bias=r(d) * 0.3)


def test_signature_is_mamba_ssm():
    assert list(inspect.signature(selective_state_update).parameters) == [
        "state", "x", "dt", "A", "B", "C", "D", "z", "dt_bias", "dt_softplus"]


@pytest.mark.parametrize("options", [True, False])
def test_steps_equal_the_scan(options):
    """Step t's output = the scan's output at t (a causal scan: the same as on the prefix :t+1);
    the state after the last step = the scan's last state."""
    x = scan_inputs()
    if not options:
        x.update(D=None, z=None, delta_bias=None)
    full, last = selective_scan_ref(**x, delta_softplus=options, return_last_state=True)
    state = torch.zeros(2, 4, 3, dtype=torch.float64)
    L = x["u"].shape[-1]
    steps = []
    for t in range(L):
        at = lambda k: None if x[k] is None else x[k][..., t]          # noqa: E731
        steps.append(selective_state_update(state, at("u"), at("delta"), x["A"], at("B"), at("C"),
                                            x["D"], at("z"), x["delta_bias"], dt_softplus=options))
        prefix = selective_scan_ref(**{k: (v[..., :t + 1] if v is not None and v.dim() == 3 else v)
                                       for k, v in x.items()}, delta_softplus=options)
        torch.testing.assert_close(steps[-1], prefix[..., t])
    torch.testing.assert_close(torch.stack(steps, -1), full)
    torch.testing.assert_close(state, last)


def test_heads_and_groups_equal_the_grouped_scan():
    """[b,h,d,N] states with B/C [b,G,N]: the scan over h·d channels with G groups."""
    b, h, d, N, G, L = 2, 4, 3, 5, 2, 6
    g = torch.Generator().manual_seed(1)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)   # noqa: E731
    u, delta, z = r(b, h, d, L), r(b, h, d, L) * 0.5, r(b, h, d, L)
    A, D, bias = -torch.rand(h, d, N, generator=g, dtype=torch.float64) - 0.2, r(h, d), r(h, d)
    B, C = r(b, G, N, L), r(b, G, N, L)
    flat = lambda t: t.reshape(b, h * d, L)                           # noqa: E731
    full = selective_scan_ref(flat(u), flat(delta), A.reshape(h * d, N), B, C, D.reshape(-1),
                              flat(z), bias.reshape(-1), delta_softplus=True)
    state = torch.zeros(b, h, d, N, dtype=torch.float64)
    steps = [selective_state_update(state, u[..., t], delta[..., t], A, B[..., t], C[..., t], D,
                                    z[..., t], bias, dt_softplus=True) for t in range(L)]
    torch.testing.assert_close(flat(torch.stack(steps, -1)), full)


def test_half_input_keeps_dtype_and_fp32_state():
    x = scan_inputs(L=1)
    state = torch.zeros(2, 4, 3)
    out = selective_state_update(state, x["u"][..., 0].bfloat16(), x["delta"][..., 0].bfloat16(),
                                 x["A"].float(), x["B"][..., 0].bfloat16(), x["C"][..., 0].bfloat16(),
                                 dt_softplus=True)
    assert out.dtype == torch.bfloat16 and state.dtype == torch.float32 and state.abs().sum() > 0


def test_dispatch_on_cpu(monkeypatch):
    state, xs = torch.zeros(2, 4, 3), torch.zeros(2, 4)
    monkeypatch.delenv("PKS4_SCAN_IMPL", raising=False)
    assert state_update_backend(state, xs) == "torch"
    monkeypatch.setenv("PKS4_SCAN_IMPL", "ref")
    assert state_update_backend(state, xs) == "torch"
    monkeypatch.setenv("PKS4_SCAN_IMPL", "cuda")
    with pytest.raises(RuntimeError, match="PKS4_SCAN_IMPL=cuda.*not CUDA"):
        selective_state_update(state, xs, xs, torch.zeros(4, 3), torch.zeros(2, 3), torch.zeros(2, 3))


@pytest.mark.parametrize("bad, message", [
    (dict(state=torch.zeros(2, 4)), "state must be"),
    (dict(x=torch.zeros(2, 5)), "x must be"),
    (dict(A=torch.zeros(3, 3)), "A must be"),
    (dict(B=torch.zeros(2, 4)), "B must be"),
    (dict(C=torch.zeros(2, 2, 3)), "C must be"),                      # G=2 does not divide 1 head
    (dict(D=torch.zeros(3)), "D must be"),
])
def test_bad_shapes(bad, message):
    args = dict(state=torch.zeros(2, 4, 3), x=torch.zeros(2, 4), dt=torch.zeros(2, 4),
                A=torch.zeros(4, 3), B=torch.zeros(2, 3), C=torch.zeros(2, 3))
    args.update(bad)
    with pytest.raises(ValueError, match=message):
        selective_state_update(**args)
