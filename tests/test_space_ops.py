"""Operator implementations agree with their symbolic shape rules; operators are pure."""
import itertools

import pytest
import torch

from attnzero.space import BINARY_OPS, UNARY_OPS
from attnzero.space.symbolic import ONE, SB, SD, SH, SN, Poly, ShapeError, broadcast, numel

SIZES = {'B': 2, 'h': 3, 'N': 7, 'M': 7, 'd': 5}
SHAPES = [
    (SB, SH, SN, SD), (SB, SH, SD, SD), (SB, SH, SN, SN), (SB, SH, SD, SN), (SB, SH, SN, ONE),
    (SB, SH, ONE, SD), (SB, SH, SD), (SB, SH, SN), (SB, SH), (SB, SH, SN, SD + 1),
    (SB, SH, ONE, SN, SD), (SB, SH, SN, SD * 2),
]


def concrete(shape):
    return tuple(int(s.evaluate(**SIZES)) for s in shape)


def tensor(shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(concrete(shape), generator=g, dtype=torch.float64) + 0.1


@pytest.mark.parametrize('op', UNARY_OPS, ids=lambda o: o.name)
def test_unary_shape_rule_matches_torch(op):
    for s in SHAPES:
        try:
            out = op.shape(s)
        except ShapeError:
            continue
        x = tensor(s)
        x0 = x.clone()
        y = op.fn(x, SIZES['d'])
        assert tuple(y.shape) == concrete(out), (op.name, s)
        assert torch.equal(x, x0), f'{op.name} modified its input'
        assert op.flops(s, out).nonnegative


@pytest.mark.parametrize('op', BINARY_OPS, ids=lambda o: o.name)
def test_binary_shape_rule_matches_torch(op):
    for sa, sb in itertools.product(SHAPES, repeat=2):
        try:
            out, variant = op.shape(sa, sb)
        except ShapeError:
            continue
        a, b = tensor(sa, 1), tensor(sb, 2)
        a0, b0 = a.clone(), b.clone()
        y = op.fn(a, b, variant)
        assert tuple(y.shape) == concrete(out), (op.name, sa, sb)
        assert torch.equal(a, a0) and torch.equal(b, b0)
        assert op.flops(sa, sb, out, variant).nonnegative


def test_einsum_branch_is_symbolic():
    e1 = BINARY_OPS[5]
    # same token count -> A^T B, even when d == N numerically
    assert e1.shape((SB, SH, SN, SD), (SB, SH, SN, SD))[1] == 0
    # (N, d) with (d, d): token counts differ symbolically -> A B^T
    out, v = e1.shape((SB, SH, SN, SD), (SB, SH, SD, SD))
    assert v == 1 and out == (SB, SH, SN, SD)
    a = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    b = torch.randn(1, 1, 4, 4, dtype=torch.float64)
    torch.testing.assert_close(e1.fn(a, b, 1), a @ b.transpose(-1, -2))
    torch.testing.assert_close(e1.fn(a, b, 0), a.transpose(-1, -2) @ b)


def test_original_quirks_and_fixes():
    x = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    y = torch.randn(2, 3, 7, 5, dtype=torch.float64)
    cos_orig = BINARY_OPS[4].fn(x, y, 0)
    torch.testing.assert_close(cos_orig, torch.ones_like(cos_orig))       # compares A with A
    cos = BINARY_OPS[10].fn(x, y, 0)
    torch.testing.assert_close(cos, (x * y).sum(-1) / (x.norm(dim=-1) * y.norm(dim=-1)))
    # global vs per-sample normalisation
    normalize, normalize_ps = UNARY_OPS[6], UNARY_OPS[28]
    assert normalize.batch_global and not normalize_ps.batch_global
    torch.testing.assert_close(normalize_ps.fn(x, 5)[:1], normalize_ps.fn(x[:1], 5))
    assert not torch.allclose(normalize.fn(x, 5)[:1], normalize.fn(x[:1], 5))
    mm = UNARY_OPS[29].fn(x, 5)
    assert mm.flatten(1).min(1).values.abs().max() < 1e-12
    # normalize maps NaN to 0 (constant input has std 0)
    assert torch.equal(normalize.fn(torch.ones(2, 3), 5), torch.zeros(2, 3))
    # strange_op divides by the channel sum, l1norm_last is the safe version
    torch.testing.assert_close(UNARY_OPS[27].fn(x.abs(), 5).sum(-1), torch.ones(2, 3, 7, dtype=torch.float64))
    # focused power keeps the norm of relu(x)
    f = UNARY_OPS[35].fn(x, 5)
    torch.testing.assert_close(f.norm(dim=-1), torch.relu(x).norm(dim=-1), rtol=1e-3, atol=1e-3)
    # ones_aug / homog_div round trip
    aug = UNARY_OPS[36].fn(x, 5)
    assert aug.shape[-1] == 6 and torch.equal(aug[..., -1], torch.ones(2, 3, 7, dtype=torch.float64))
    torch.testing.assert_close(UNARY_OPS[37].fn(aug, 5), x / (1 + 1e-6))


def test_poly_basics():
    p = SN * SD * SD * 2 + SN * SD + 3
    assert p.token_degree() == 1 and (SN * SN).token_degree() == 2
    assert p.evaluate(N=10, d=4) == 2 * 10 * 16 + 40 + 3
    assert repr(p) == '2*N*d^2 + N*d + 3'
    assert numel((SB, SH, SN, SD)) == SB * SH * SN * SD
    assert broadcast((SB, SH, SN, ONE), (SB, SH, ONE, SD)) == (SB, SH, SN, SD)
    with pytest.raises(ShapeError):
        broadcast((SB, SH, SN, SD), (SB, SH, SD, SD))
    assert Poly.const(2) * SD == SD + SD and hash(SD * 2) == hash(SD + SD)


@pytest.mark.parametrize('dtype,rtol', [(torch.float64, 1e-14), (torch.float32, 1e-6),
                                        (torch.bfloat16, 2e-2), (torch.float16, 2e-3)])
def test_elu_plus_one_matches_elu(dtype, rtol):
    import torch.nn.functional as F

    from attnzero.space.ops import elu_plus_one
    x = (torch.randn(20000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3).to(dtype)
    x = torch.cat([x, torch.tensor([0.0, -0.0, 1e-30, -1e-30, 50.0, -50.0], dtype=dtype)])
    xd = x.double()
    exact = torch.where(xd > 0, xd + 1, torch.exp(xd))
    y = elu_plus_one(x)
    assert y.dtype == dtype and y.shape == x.shape
    ok = xd > -5  # where exp(x) is representable with a relative error in every dtype
    assert torch.allclose(y.double()[ok], exact[ok], rtol=rtol, atol=0)
    # never less accurate than the expm1 route it replaces (F.elu + 1 loses exp(x) for x << 0)
    assert ((y.double() - exact).abs() <= (F.elu(x).double() + 1 - exact).abs() + rtol * exact).all()
    # in place: same values, same storage; the input of the out-of-place call is untouched
    x0 = x.clone()
    xi = x.clone()
    yi = elu_plus_one(xi, inplace=True)
    assert yi.data_ptr() == xi.data_ptr() and torch.equal(yi, y) and torch.equal(x, x0)


@pytest.mark.parametrize('inplace', [False, True])
def test_elu_plus_one_blocked_path_equals_unblocked(monkeypatch, inplace):
    """Tensors above the block threshold take the cache-blocked path (last block partial); the
    values are bit-identical to the one-pass path and the input is untouched out of place."""
    from attnzero.space import ops
    x = torch.randn(3, 1000, generator=torch.Generator().manual_seed(1)) * 3
    ref = ops.elu_plus_one(x)                                   # below the threshold: one pass
    monkeypatch.setattr(ops, 'BLOCKED_MIN_NUMEL', 1000)
    monkeypatch.setattr(ops, 'ELEMENTWISE_BLOCK', 256)        # 3000 = 11 blocks + 184
    x0 = x.clone()
    y = ops.elu_plus_one(x, inplace=inplace)
    assert torch.equal(y, ref)
    assert (y.data_ptr() == x.data_ptr()) == inplace
    if not inplace:
        assert torch.equal(x, x0)
    xt = x0.t()                                                 # non-contiguous: unblocked path
    assert torch.equal(ops.elu_plus_one(xt), ref.t())


def test_elu_plus_one_is_not_blocked_under_torch_compile(monkeypatch):
    """torch.compile fuses the passes itself; tracing the block loop would unroll it into the graph."""
    from attnzero.space import ops
    monkeypatch.setattr(ops, 'BLOCKED_MIN_NUMEL', 1000)
    monkeypatch.setattr(ops, 'ELEMENTWISE_BLOCK', 256)
    sizes = []

    def backend(gm, example_inputs):
        sizes.append(len(gm.graph.nodes))
        return gm.forward

    torch._dynamo.reset()
    x = torch.randn(3000)
    with torch.no_grad():
        y = torch.compile(ops.elu_plus_one, backend=backend, dynamic=False)(x)
    torch._dynamo.reset()
    assert torch.equal(y, ops.elu_plus_one(x))
    assert sizes and max(sizes) < 20, sizes        # 12 blocks x 5 ops if the loop were traced


def test_elu_plus_one_gradient():
    import torch.nn.functional as F

    from attnzero.space.ops import elu_plus_one
    x = torch.cat([torch.randn(500, dtype=torch.float64), torch.tensor([0.0], dtype=torch.float64)])
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    elu_plus_one(a).sum().backward()
    (F.elu(b) + 1).sum().backward()
    assert torch.allclose(a.grad, b.grad, rtol=1e-14, atol=1e-300)
    assert a.grad[-1] == 1.0  # ELU's derivative at 0
