"""selective_scan: the reference against scalar loops, both CPU implementations (the PyTorch scan
and the fused CPU kernel, fixture `scan`) against the float64 reference (values and gradients,
every B/C form and option), gradcheck, chunking, saved memory, edge cases, dtypes."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from pks4_lit.ops import selective_scan, selective_scan_cpu, selective_scan_ref, selective_scan_torch
from pks4_lit.ops.scan_cpu import available as cpu_kernel_available

FORMS = ("const", "var", "group")


@pytest.fixture(params=["torch", "cpu"])
def scan(request):
    """Each CPU implementation in turn (the fused kernel is skipped where it cannot be built)."""
    if request.param == "cpu":
        ok, why = cpu_kernel_available()
        if not ok:
            pytest.skip(f"fused CPU kernel not available: {why}")
        return selective_scan_cpu
    return selective_scan_torch


def make_inputs(b=2, d=4, N=3, L=5, forms=("var", "var"), G=2, dtype=torch.float64, seed=0,
                options=True, delta_scale=1.0):
    """Random inputs of mamba's shapes; B/C forms from FORMS; D/z/delta_bias when options."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64)
    bc = {"const": (d, N), "var": (b, N, L), "group": (b, G, N, L)}
    x = dict(u=r(b, d, L), delta=delta_scale * (r(b, d, L) * 0.5), A=-torch.rand(d, N, generator=g,
             dtype=torch.float64) - 0.2, B=r(*bc[forms[0]]), C=r(*bc[forms[1]]))
    if options:
        x.update(D=r(d), z=r(b, d, L), delta_bias=r(d) * 0.3)
    return {k: v.to(dtype) for k, v in x.items()}


def leaves(inputs):
    return {k: v.detach().clone().requires_grad_() for k, v in inputs.items()}


def grads(fn, inputs, softplus=True, seed=1):
    """Output and gradients of <out, w> for a fixed random w."""
    x = leaves(inputs)
    out = fn(**x, delta_softplus=softplus)
    w = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    (out.double() * w).sum().backward()
    return out.detach(), {k: v.grad for k, v in x.items()}


def assert_rel(actual, expected, tol=1e-4, what=""):
    """Elementwise |a-e| ≤ tol·|e| + tol·max|e| (relative error, floored for near-zero entries)."""
    expected = expected.double()
    torch.testing.assert_close(actual.double(), expected, rtol=tol,
                               atol=tol * expected.abs().max().item(), msg=lambda m: f"{what}: {m}")


def scalar_loop(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False):
    """Independent triple loop over (b, d, t) in Python floats: checks the reference itself."""
    b, d, L = u.shape
    N = A.shape[1]
    out = torch.zeros(b, d, L, dtype=torch.float64)
    for i, c in itertools.product(range(b), range(d)):
        h = [0.0] * N
        for t in range(L):
            dt = delta[i, c, t].item() + (delta_bias[c].item() if delta_bias is not None else 0.0)
            if delta_softplus:
                dt = math.log1p(math.exp(dt)) if dt <= 20 else dt
            y = 0.0
            for n in range(N):
                Bv = B[c, n] if B.dim() == 2 else B[i, n, t] if B.dim() == 3 else \
                    B[i, c // (d // B.shape[1]), n, t]
                Cv = C[c, n] if C.dim() == 2 else C[i, n, t] if C.dim() == 3 else \
                    C[i, c // (d // C.shape[1]), n, t]
                h[n] = math.exp(dt * A[c, n].item()) * h[n] + dt * Bv.item() * u[i, c, t].item()
                y += Cv.item() * h[n]
            if D is not None:
                y += D[c].item() * u[i, c, t].item()
            if z is not None:
                zz = z[i, c, t].item()
                y *= zz / (1 + math.exp(-zz))
            out[i, c, t] = y
    return out


@pytest.mark.parametrize("forms", [("const", "group"), ("var", "const"), ("group", "var")])
def test_reference_matches_scalar_loop(forms):
    x = make_inputs(forms=forms, G=2)
    ref = selective_scan_ref(**x, delta_softplus=True)
    torch.testing.assert_close(ref, scalar_loop(**x, delta_softplus=True), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("forms", list(itertools.product(FORMS, FORMS)))
@pytest.mark.parametrize("L", [1, 2, 7, 64])
def test_torch_matches_float64_reference(forms, L, scan):
    x = make_inputs(b=2, d=4, N=3, L=L, forms=forms)
    out_ref, g_ref = grads(selective_scan_ref, x)                        # float64
    out, g = grads(scan, {k: v.float() for k, v in x.items()})
    assert out.dtype == torch.float32
    assert_rel(out, out_ref, what="out")
    for k in g_ref:
        assert g[k].shape == x[k].shape
        assert_rel(g[k], g_ref[k], what=f"d{k}")


@pytest.mark.parametrize("forms", [("var", "var"), ("const", "group")])
def test_long_sequence_matches_reference(forms, scan):
    x = make_inputs(b=1, d=2, N=4, L=2048, forms=forms, G=2)
    out_ref, g_ref = grads(selective_scan_ref, x)
    out, g = grads(scan, {k: v.float() for k, v in x.items()})
    assert_rel(out, out_ref, what="out")
    for k in g_ref:
        assert_rel(g[k], g_ref[k], what=f"d{k}")


@pytest.mark.parametrize("option", ["none", "D", "z", "delta_bias", "no_softplus"])
def test_each_option_alone(option, scan):
    x = make_inputs(L=9, forms=("group", "var"), options=option not in ("none", "no_softplus"))
    for k in ("D", "z", "delta_bias"):
        if k != option:
            x.pop(k, None)
    if option == "no_softplus":
        x["delta"] = x["delta"].abs()
    softplus = option != "no_softplus"
    out_ref, g_ref = grads(selective_scan_ref, x, softplus)
    out, g = grads(scan, {k: v.float() for k, v in x.items()}, softplus)
    assert_rel(out, out_ref, what="out")
    assert set(g) == set(g_ref)
    for k in g_ref:
        assert_rel(g[k], g_ref[k], what=f"d{k}")


@pytest.mark.parametrize("forms", list(itertools.product(FORMS, FORMS)))
@pytest.mark.parametrize("options", [False, True])
def test_gradcheck(forms, options, scan):
    x = leaves(make_inputs(b=2, d=4, N=2, L=4, forms=forms, options=options))
    h0 = torch.randn(2, 4, 2, dtype=torch.float64, requires_grad=True)
    names = list(x)

    def f(*args):
        kw = dict(zip(names, args[:-1]))
        return scan(**kw, delta_softplus=options, initial_state=args[-1])

    assert torch.autograd.gradcheck(f, (*x.values(), h0))


def test_only_some_inputs_need_grad(scan):
    """Constant B/C as frozen parameters, u/delta as data: only A and the needed ones get grads."""
    x = make_inputs(forms=("const", "const"), dtype=torch.float32)
    x_ref = make_inputs(forms=("const", "const"))
    for inp in (x, x_ref):
        inp["A"].requires_grad_()
        inp["delta"].requires_grad_()
    out = scan(**x, delta_softplus=True)
    out_ref = selective_scan_ref(**x_ref, delta_softplus=True)
    out.sum().backward()
    out_ref.sum().backward()
    for k in ("u", "B", "C", "D", "z", "delta_bias"):
        assert x[k].grad is None
    assert_rel(x["A"].grad, x_ref["A"].grad)
    assert_rel(x["delta"].grad, x_ref["delta"].grad)
    with torch.no_grad():
        assert_rel(scan(**x), selective_scan_ref(**x_ref))


def test_large_delta_stays_finite(scan):
    x = make_inputs(L=32, forms=("var", "group"), delta_scale=0.0)
    x["delta"] = x["delta"] + 50.0 + torch.rand_like(x["delta"])         # softplus(Δ) ≈ 50
    out_ref, g_ref = grads(selective_scan_ref, x)
    out, g = grads(scan, {k: v.float() for k, v in x.items()})
    assert torch.isfinite(out).all()
    assert all(torch.isfinite(v).all() for v in g.values())
    assert_rel(out, out_ref, what="out")
    for k in g_ref:
        assert_rel(g[k], g_ref[k], what=f"d{k}")


@pytest.mark.parametrize("forms", [("var", "var"), ("const", "group")])
def test_last_state_and_two_halves(forms, scan):
    x = make_inputs(L=12, forms=forms, dtype=torch.float32)
    out, last = scan(**x, delta_softplus=True, return_last_state=True)
    out_ref, last_ref = selective_scan_ref(**{k: v.double() for k, v in x.items()},
                                           delta_softplus=True, return_last_state=True)
    assert last.shape == (2, 4, 3) and last.dtype == torch.float32 and not last.requires_grad
    assert_rel(last, last_ref, what="last_state")

    def half(sl):
        return {k: (v[..., sl] if v.dim() >= 3 else v) for k, v in x.items()}

    out1, h = scan(**half(slice(0, 5)), delta_softplus=True, return_last_state=True)
    out2, last2 = scan(**half(slice(5, None)), delta_softplus=True,
                                       return_last_state=True, initial_state=h)
    assert_rel(torch.cat([out1, out2], -1), out, tol=1e-5, what="halves")
    assert_rel(last2, last, tol=1e-5, what="last_state halves")


def test_initial_state_gradient_matches_reference(scan):
    x = make_inputs(L=6, forms=("group", "const"))
    h0 = torch.randn(2, 4, 3, dtype=torch.float64)
    g = []
    for fn in (selective_scan_ref, scan):
        h = h0.clone().requires_grad_()
        fn(**x, delta_softplus=True, initial_state=h).sum().backward()
        g.append(h.grad)
    torch.testing.assert_close(g[1], g[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_inputs_compute_in_fp32(dtype, scan):
    x = make_inputs(L=16, forms=("var", "const"))
    x_half = leaves({k: v.to(dtype) if k in ("u", "delta", "B", "z") else v.float()
                     for k, v in x.items()})
    out, last = scan(**x_half, delta_softplus=True, return_last_state=True)
    assert out.dtype == dtype and last.dtype == torch.float32
    # fp32 math on the rounded inputs: off by at most the final rounding to u's dtype
    expected = selective_scan_ref(**{k: v.detach().float() for k, v in x_half.items()},
                                  delta_softplus=True)
    eps = torch.finfo(dtype).eps
    torch.testing.assert_close(out.float(), expected, rtol=eps, atol=eps * expected.abs().max().item())
    out.float().sum().backward()
    for k, v in x_half.items():
        assert v.grad is not None and v.grad.dtype == v.dtype


def test_float64_in_float64_out(scan):
    x = make_inputs()
    out, last = scan(**x, return_last_state=True)
    assert out.dtype == torch.float64 and last.dtype == torch.float64


@pytest.mark.parametrize("env, expected", [(None, None), ("torch", selective_scan_torch),
                                           ("cpu", selective_scan_cpu)])
def test_public_function_on_cpu(monkeypatch, env, expected):
    """auto: the fused CPU kernel when it builds, else the PyTorch scan; or the forced one."""
    ok, _ = cpu_kernel_available()
    if env == "cpu" and not ok:
        pytest.skip("fused CPU kernel not available")
    if env is None:
        monkeypatch.delenv("PKS4_SCAN_IMPL", raising=False)
        expected = selective_scan_cpu if ok else selective_scan_torch
    else:
        monkeypatch.setenv("PKS4_SCAN_IMPL", env)
    x = make_inputs(L=7, forms=("group", "var"), dtype=torch.float32)
    out, last = selective_scan(**x, delta_softplus=True, return_last_state=True)
    out_t, last_t = expected(**x, delta_softplus=True, return_last_state=True)
    assert torch.equal(out, out_t) and torch.equal(last, last_t)


def test_cpu_kernel_refuses_other_devices(monkeypatch):
    monkeypatch.setenv("PKS4_SCAN_IMPL", "cpu")
    x = {k: v.to("meta") for k, v in make_inputs(L=4, dtype=torch.float32).items()}
    with pytest.raises(RuntimeError, match="CPU tensors only"):
        selective_scan(**x)


def test_cpu_kernel_unavailable_falls_back_to_torch(monkeypatch, tmp_path):
    """No compiler: auto uses the PyTorch scan (same numbers); forcing the kernel is a clear error."""
    import pks4_lit.ops.scan_cpu as scan_cpu
    monkeypatch.setattr(scan_cpu, "_load", lambda: (None, "no C++ compiler found"))
    monkeypatch.delenv("PKS4_SCAN_IMPL", raising=False)
    from pks4_lit.ops import scan_backend
    assert scan_backend(torch.zeros(2, 4, 5)) == "torch"
    x = make_inputs(L=7, forms=("group", "var"), dtype=torch.float32)
    assert torch.equal(selective_scan(**x), selective_scan_torch(**x))
    monkeypatch.setenv("PKS4_SCAN_IMPL", "cpu")
    with pytest.raises(RuntimeError, match="CPU scan kernel is not available: no C.. compiler"):
        selective_scan(**x)


@pytest.mark.parametrize("bad, message", [
    (dict(u=torch.zeros(2, 4)), "u must be"),
    (dict(delta=torch.zeros(2, 4, 6)), "delta must"),
    (dict(A=torch.zeros(3, 3)), "A must be"),
    (dict(A=torch.zeros(4, 3, dtype=torch.complex64)), "complex A"),
    (dict(B=torch.zeros(2, 3, 3, 5)), "B must be"),                       # G=3 does not divide 4
    (dict(C=torch.zeros(2, 3, 6)), "C must be"),
    (dict(D=torch.zeros(3)), "D must be"),
    (dict(z=torch.zeros(2, 4, 6)), "z must"),
    (dict(delta_bias=torch.zeros(4, 1)), "delta_bias must"),
])
def test_bad_shapes_raise_clear_errors(bad, message):
    x = make_inputs(forms=("var", "var"), dtype=torch.float32)
    x.update(bad)
    for fn in (selective_scan, selective_scan_torch, selective_scan_cpu, selective_scan_ref):
        with pytest.raises(ValueError, match=message):
            fn(**x)


def test_softplus_threshold_matches_torch(scan):
    """Δ above 20 passes through unchanged, as in mamba's kernel and F.softplus."""
    x = make_inputs(L=3, options=False, forms=("const", "const"))
    x["delta"] = torch.full_like(x["delta"], 25.0)
    a = scan(**x, delta_softplus=True)
    b = scan(**{**x, "delta": F.softplus(x["delta"])})
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_second_backward_with_retain_graph(scan):
    """The backward reuses a forward buffer in place; a second backward must recompute it."""
    x = leaves(make_inputs(L=6, forms=("var", "group")))
    out = scan(**x, delta_softplus=True)
    out.sum().backward(retain_graph=True)
    first = {k: v.grad.clone() for k, v in x.items()}
    out.sum().backward()
    for k, v in x.items():
        torch.testing.assert_close(v.grad, 2 * first[k])


@pytest.mark.parametrize("chunk", [1, 3, 4, 13, 100])
@pytest.mark.parametrize("forms", [("var", "group"), ("const", "var"), ("group", "const")])
def test_every_chunk_size_matches_reference(chunk, forms, scan):
    """States are kept only at chunk ends and recomputed in the backward: any chunk length
    (dividing L or not, 1, L, beyond L) gives the reference's values and gradients."""
    x = make_inputs(b=2, d=4, N=3, L=13, forms=forms)
    x["initial_state"] = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(5),
                                     dtype=torch.float64)
    out_ref, g_ref = grads(selective_scan_ref, x)
    out, g = grads(lambda **k: scan(**k, chunk=chunk), {k: v.float() for k, v in x.items()})
    assert_rel(out, out_ref, what="out")
    for k in g_ref:
        assert_rel(g[k], g_ref[k], what=f"d{k}")


def test_backward_keeps_only_chunk_boundary_states(scan):
    """Saved for backward: the inputs plus one [b,d,N] state per chunk, not every step's state."""
    b, d, N, L, chunk = 3, 8, 4, 64, 8
    x = leaves(make_inputs(b=b, d=d, N=N, L=L, forms=("var", "var"), dtype=torch.float32))
    inputs = {t.untyped_storage().data_ptr() for t in x.values()}
    saved = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in inputs:
            saved[s.data_ptr()] = s.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        scan(**x, delta_softplus=True, chunk=chunk).sum().backward()
    states = (L // chunk) * b * d * N * 4
    B_C_copies = 2 * b * N * L * 4                                   # time-major B and C
    assert sum(saved.values()) <= states + B_C_copies
    assert sum(saved.values()) < b * d * N * L * 4 / 2                 # all states: 4× the budget


def test_double_backward_is_a_clear_error(scan):
    """The backward is hand-written and in place: second derivatives must raise, not be wrong."""
    x = leaves(make_inputs(L=6, forms=("var", "group")))
    out = scan(**x, delta_softplus=True)
    with pytest.raises(RuntimeError, match="differentiate twice"):
        torch.autograd.grad((out ** 2).sum(), x["u"], create_graph=True)


def test_create_graph_is_refused_even_when_the_loss_is_linear_in_the_output(scan):
    """A gradient penalty on Δ with a loss linear in the output: once_differentiable alone would let
    the second-order term drop silently (the reference gives it)."""
    x = leaves(make_inputs(L=6, forms=("var", "group")))
    with pytest.raises(RuntimeError, match="differentiate twice"):
        torch.autograd.grad(scan(**x, delta_softplus=True).sum(), x["delta"], create_graph=True)
