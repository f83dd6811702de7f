import pytest
import torch
import torch.nn.functional as F

from pks4_lit.models.mamba_block import Mamba, MambaBlock


def reference_direction(m, x, sfx):
    """Plain float64 loop over time, written from the Mamba equations (not from the module)."""
    conv = getattr(m, "conv1d" + sfx)
    W_x, dt_proj = getattr(m, "x_proj" + sfx).weight, getattr(m, "dt_proj" + sfx)
    A = -torch.exp(getattr(m, "A_b_log" if sfx else "A_log"))
    D = getattr(m, "D" + sfx)
    b, L, _ = x.shape
    d, N, R, k = m.d_inner, m.d_state, m.dt_rank, m.d_conv
    xz = x @ m.in_proj.weight.T                                     # [b,L,2d]
    u, z = xz[..., :d], xz[..., d:]
    if sfx:
        u, z = u.flip(1), z.flip(1)
    uc = torch.zeros_like(u)
    for t in range(L):
        for j in range(k):
            s = t - (k - 1) + j
            if s >= 0:
                uc[:, t] += conv.weight[:, 0, j] * u[:, s]
    uc = F.silu(uc + conv.bias)
    dbc = uc @ W_x.T
    dt, Bm, Cm = dbc[..., :R], dbc[..., R:R + N], dbc[..., R + N:]
    delta = F.softplus(dt @ dt_proj.weight.T + dt_proj.bias)       # [b,L,d]
    h = torch.zeros(b, d, N, dtype=x.dtype)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + delta[:, t, :, None] * Bm[:, t, None, :] * uc[:, t, :, None]
        ys.append((h * Cm[:, t, None, :]).sum(-1) + D * uc[:, t])
    y = torch.stack(ys, 1) * F.silu(z)                              # [b,L,d]
    return y.flip(1) if sfx else y


@pytest.mark.parametrize("bidirectional", [False, True])
def test_mixer_matches_a_plain_loop(bidirectional):
    torch.manual_seed(0)
    m = Mamba(8, d_state=4, d_conv=3, expand=2, bidirectional=bidirectional).double()
    with torch.no_grad():                     # make every path matter: non-trivial conv bias, D
        for n, p in m.named_parameters():
            if n.startswith(("conv1d", "D")):
                p.add_(0.3 * torch.randn_like(p))
    x = torch.randn(2, 7, 8, dtype=torch.float64)
    y = reference_direction(m, x, "")
    if bidirectional:
        y = y + reference_direction(m, x, "_b")
    torch.testing.assert_close(m(x), y @ m.out_proj.weight.T, rtol=1e-9, atol=1e-10)


def _changed_positions(m, L=9, at=4):
    x = torch.randn(1, L, 8)
    x2 = x.clone()
    x2[0, at] += 1.0
    with torch.no_grad():
        return ((m(x2) - m(x)).abs().amax(-1) > 1e-7)[0]


def test_causal_unless_bidirectional():
    torch.manual_seed(0)
    ch = _changed_positions(Mamba(8, d_state=4))
    assert not ch[:4].any() and ch[4:].all()
    assert _changed_positions(Mamba(8, d_state=4, bidirectional=True)).all()


def test_parameter_names_and_shapes_are_videomambas():
    m = Mamba(192, bidirectional=True)          # VideoMamba-Ti mixer: d_inner 384, dt_rank 12, N 16
    shapes = {k: tuple(v.shape) for k, v in m.state_dict().items()}
    direction = {"conv1d{}.weight": (384, 1, 4), "conv1d{}.bias": (384,), "x_proj{}.weight": (44, 384),
                 "dt_proj{}.weight": (384, 12), "dt_proj{}.bias": (384,), "D{}": (384,)}
    expect = {"in_proj.weight": (768, 192), "out_proj.weight": (192, 384), "A_log": (384, 16), "A_b_log": (384, 16)}
    for sfx in ("", "_b"):
        expect.update({k.format(sfx): v for k, v in direction.items()})
    assert shapes == expect


def test_block_carries_an_fp32_residual_stream_and_every_parameter_learns():
    torch.manual_seed(0)
    blocks = [MambaBlock(8, d_state=4, bidirectional=True, drop_path=0.1) for _ in range(2)]
    x = torch.randn(2, 5, 8, dtype=torch.bfloat16)
    h, r = blocks[0](x)
    assert r.dtype == torch.float32 and torch.equal(r, x.float())      # first block: stream = input
    h, r = blocks[1](h, r)
    (r + h).float().square().mean().backward()
    missing = [n for b in blocks for n, p in b.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_bad_arguments():
    with pytest.raises(ValueError, match="d_state"):
        Mamba(8, d_state=0)
    with pytest.raises(ValueError, match="norm must be"):
        MambaBlock(8, norm="batch")
    with pytest.raises(ValueError, match=r"\[b,L,8\]"):
        Mamba(8)(torch.randn(2, 8))
