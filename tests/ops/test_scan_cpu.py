"""The fused CPU scan kernel's build and run-time plumbing (its numbers are checked against the
float64 reference in test_selective_scan.py, fixture `scan`)."""
import os

import pytest
import torch

import pks4_lit.ops.scan_cpu as scan_cpu
from pks4_lit.ops import selective_scan_cpu, selective_scan_torch

needs_compiler = pytest.mark.skipif(scan_cpu._compiler() is None, reason="no C++ compiler")


@needs_compiler
def test_builds_once_into_the_cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("PKS4_EXT_DIR", str(tmp_path))
    lib = scan_cpu._build(scan_cpu._compiler())
    assert lib.parent == tmp_path and lib.suffix == ".so"
    mtime = os.stat(lib).st_mtime_ns
    assert scan_cpu._build(scan_cpu._compiler()) == lib and os.stat(lib).st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [lib.name]  # no temporary left
    assert os.stat(lib).st_mode & 0o777 == 0o755                        # loadable by other users


@needs_compiler
def test_with_a_compiler_the_kernel_is_what_runs():
    """Otherwise every kernel test below would silently test the PyTorch fallback."""
    ok, why = scan_cpu.available()
    assert ok, why


def test_broken_compiler_is_reported_not_raised(tmp_path, monkeypatch):
    fake = tmp_path / "c++"
    fake.write_text("#!/bin/sh\necho 'fake compiler: error' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CXX", str(fake))
    monkeypatch.setenv("PKS4_EXT_DIR", str(tmp_path / "ext"))
    scan_cpu._load.cache_clear()
    try:
        ok, why = scan_cpu.available()
        assert not ok and "did not build" in why and "fake compiler" in why
    finally:
        scan_cpu._load.cache_clear()
    monkeypatch.setenv("PKS4_SCAN_CPU_KERNEL", "0")
    try:
        assert scan_cpu.available() == (False, "PKS4_SCAN_CPU_KERNEL=0")
    finally:
        scan_cpu._load.cache_clear()


def head_sized(seed=0, L=150, N=16):
    g = torch.Generator().manual_seed(seed)
    b, d = 6, 24
    return dict(u=torch.randn(b, d, L, generator=g), delta=torch.randn(b, d, L, generator=g) * 0.5,
                A=-torch.rand(d, N, generator=g) - 0.2, B=torch.randn(b, N, L, generator=g),
                C=torch.randn(b, 2, N, L, generator=g), D=torch.randn(d, generator=g),
                z=torch.randn(b, d, L, generator=g), delta_bias=torch.randn(d, generator=g) * 0.3)


@pytest.mark.skipif(not scan_cpu.available()[0], reason="fused CPU kernel not available")
@pytest.mark.parametrize("N", [16, 5])                                # specialised and generic N
@pytest.mark.parametrize("threads", [1, 3])
def test_threads_and_chunks_agree_with_the_pytorch_scan(N, threads):
    """Several chunks of the default length, the batch split over threads: the PyTorch scan's
    values and gradients."""
    x = head_sized(N=N)
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        res = []
        for fn in (selective_scan_torch, selective_scan_cpu):
            leaves = {k: v.clone().requires_grad_() for k, v in x.items()}
            out = fn(**leaves, delta_softplus=True)
            out.backward(torch.ones_like(out))
            res.append((out.detach(), {k: v.grad for k, v in leaves.items()}))
    finally:
        torch.set_num_threads(old)
    (o_t, g_t), (o_c, g_c) = res
    torch.testing.assert_close(o_c, o_t, rtol=1e-5, atol=1e-5)
    for k in g_t:
        torch.testing.assert_close(g_c[k], g_t[k], rtol=1e-4, atol=1e-4 * g_t[k].abs().max().item())


@pytest.mark.skipif(not scan_cpu.available()[0], reason="fused CPU kernel not available")
def test_strided_views_are_read_in_place_and_match_the_reference():
    """What PKS4 passes on CPU: u, Δ, z as transposed views of [b,L,·] projections and B/C as
    transposed slices of one [b,L,R+2N] projection. The kernel reads them where they are (nothing
    saved for backward but the inputs and the chunk states; y written channel-last like Δ) and
    gives the float64 reference's values and gradients."""
    from pks4_lit.ops import selective_scan_ref
    b, d, N, L, R, chunk = 3, 8, 4, 40, 2, 16
    g = torch.Generator().manual_seed(0)
    uz = torch.randn(b, L, 2 * d, generator=g, dtype=torch.float64)            # like in_proj's output
    dl = torch.randn(b, L, d, generator=g, dtype=torch.float64) * 0.5          # like dt_proj's output
    dbc = torch.randn(b, L, R + 2 * N, generator=g, dtype=torch.float64)       # like x_proj's output
    A = -torch.rand(d, N, generator=g, dtype=torch.float64) - 0.2
    D, bias = torch.randn(d, generator=g, dtype=torch.float64), torch.randn(d, generator=g, dtype=torch.float64)

    def run(fn, dtype, **kw):
        leaves = [t.to(dtype).requires_grad_() for t in (uz, dl, dbc, A, D, bias)]
        uz_, dl_, dbc_, A_, D_, b_ = leaves
        u, z = (t.transpose(1, 2) for t in uz_.split(d, -1))                  # [b,d,L] views
        Bm, Cm = (t.transpose(1, 2) for t in dbc_[..., R:].split(N, -1))      # [b,N,L] views
        saved = {}

        def pack(t):
            saved[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return t
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fn(u, dl_.transpose(1, 2), A_, Bm, Cm, D_, z, b_, delta_softplus=True, **kw)
        (out * torch.linspace(-1, 1, L, dtype=dtype)).sum().backward()
        inputs = {t.untyped_storage().data_ptr() for t in leaves}
        return out, [t.grad for t in leaves], sum(v for k, v in saved.items() if k not in inputs)

    out, grads, extra = run(selective_scan_cpu, torch.float32, chunk=chunk)
    ref, ref_grads, _ = run(selective_scan_ref, torch.float64)
    assert out.transpose(1, 2).is_contiguous()                                 # y laid out as Δ
    assert extra == b * d * -(-L // chunk) * N * 4                             # the chunk states only
    torch.testing.assert_close(out.double(), ref, rtol=1e-4, atol=1e-4)
    for got, want in zip(grads, ref_grads):
        torch.testing.assert_close(got.double(), want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
