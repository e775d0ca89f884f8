"""Published and textbook attentions compute what their formulas say; static cost; no N x N."""
import math
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from attnzero.space import (ELU_LINEAR, RELU_LINEAR, SOFTMAX, TRIAL_105, TRIAL_140, Genome,
                            InvalidGenomeError, sample)


def _qkv(B=2, h=3, N=17, d=8, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3, B, h, N, d, generator=gen, dtype=dtype).unbind(0)


# --- independent references, written from the paper's formulas --------------------------------
def ref_trial_105(q, k, v):
    """i3n303 [[16],[0,13],[0,25],[6],[0],[25,0]] [6,3,2]."""
    k1 = F.elu(k) + 1                                              # f0(K) = elu + 1
    v1 = (v - v.min()) / (v.max() - v.min() + 1e-9)                # f1(V) = global min-max
    b1 = torch.einsum('bhnd,bhne->bhed', k1, v1)                   # einsum2, same token count
    q2 = q / q.norm(dim=-1, keepdim=True)                          # f2(Q) = l2 norm over channels
    b1n = (b1 - b1.mean()) / b1.std()                              # f3(B1) = global normalize
    b1n = torch.nan_to_num(b1n, nan=0.0)
    b2 = q2 @ b1n                                                  # matmul
    b2n = b2 / b2.norm(dim=-1, keepdim=True)                       # f5(B2) = l2 norm over channels
    return q * b2n                                                 # product with f4(Q) = Q


def ref_trial_140(q, k, v):
    """i3n302 [[16],[15],[0,5],[9,0],[20],[25]] [5,5,0]."""
    d = v.shape[-1]
    b1 = torch.einsum('bhnd,bhne->bhde', F.elu(k) + 1, v / math.sqrt(d))   # einsum1, same count
    b2 = torch.einsum('bhnd,bhed->bhne', v.abs(), torch.sigmoid(b1))       # einsum1, other branch
    qn = q / q.norm(dim=-2, keepdim=True)                                  # l2 norm over tokens
    b2n = b2 / b2.norm(dim=-1, keepdim=True)
    return qn + b2n


def ref_linear(q, k, v, phi, eps=1e-6):
    qf, kf = phi(q), phi(k)
    kv = torch.einsum('bhnd,bhne->bhde', kf, v)
    num = torch.einsum('bhnd,bhde->bhne', qf, kv)
    den = torch.einsum('bhnd,bhd->bhn', qf, kf.sum(dim=2)).unsqueeze(-1)
    return num / (den + eps)


def ref_softmax(q, k, v):
    attn = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    return attn.softmax(dim=-1) @ v


@pytest.mark.parametrize('genome, ref', [
    (TRIAL_105, ref_trial_105),
    (TRIAL_140, ref_trial_140),
    (ELU_LINEAR, lambda q, k, v: ref_linear(q, k, v, lambda x: F.elu(x) + 1)),
    (RELU_LINEAR, lambda q, k, v: ref_linear(q, k, v, F.relu)),
    (SOFTMAX, ref_softmax),
])
def test_genome_matches_independent_reference(genome, ref):
    q, k, v = _qkv()
    out = genome.compile()(q, k, v)
    assert out.shape == q.shape
    torch.testing.assert_close(out, ref(q, k, v), rtol=1e-9, atol=1e-10)


def test_published_genomes_load_from_original_format():
    g = Genome.from_attnzero_cfg({'graph_type': 'i3n302',
                                  'unary_op': [[16], [15], [0, 5], [9, 0], [20], [25]],
                                  'binary_op': [5, 5, 0]})
    q, k, v = _qkv(N=64, d=64)  # N == d: the einsum branch is decided symbolically, not numerically
    torch.testing.assert_close(g.compile()(q, k, v), ref_trial_140(q, k, v))


def test_complexity_kinds():
    for g in (TRIAL_105, TRIAL_140, ELU_LINEAR, RELU_LINEAR):
        cx = g.complexity()
        assert cx.kind == 'linear' and cx.token_degree == 1, (g, cx)
    cx = SOFTMAX.complexity()
    assert cx.kind == 'quadratic' and cx.token_degree == 2
    assert 'matmul' in cx.where and '(B, h, N, N)' in cx.reason
    # FLOPs: softmax grows ~N^2, linear ones ~N
    assert SOFTMAX.complexity().flops(2 * 196, 64) / SOFTMAX.complexity().flops(196, 64) > 3.5
    lin = TRIAL_105.complexity()
    assert 1.9 < lin.flops(2 * 196, 64) / lin.flops(196, 64) < 2.1
    # the two matmul-like contractions of a linear attention dominate: 2 N d^2
    assert lin.flops(10_000, 64) == pytest.approx(2 * 10_000 * 64 ** 2, rel=0.15)
    assert lin.flops(196, 64, B=2, heads=3) == 6 * lin.flops(196, 64)


def test_invalid_reports_node_and_reason():
    g = Genome.parse('i3n303:-;-;-;-;-;-:matmul,matmul,product')   # K @ V: (N,d) @ (N,d)
    cx = g.complexity()
    assert cx.kind == 'invalid' and cx.code == 'shape_error'
    assert cx.where.startswith('⊗0 matmul') and 'inner dims differ' in cx.reason
    with pytest.raises(InvalidGenomeError, match='matmul'):
        g.compile()
    g = Genome.parse('i3n303:-;-;-;-;-;axis_sum2:einsum1,matmul,second')
    assert g.complexity().code == 'output_shape'


def test_spatial_reduction_analysis():
    # keys/values with their own token count M: Trial-105 works, Trial-140 (adds a V-token-sized
    # tensor to a Q-token-sized one) does not
    assert TRIAL_105.complexity(distinct_kv=True).kind == 'linear'
    assert TRIAL_140.complexity(distinct_kv=True).kind == 'invalid'
    q, _, _ = _qkv(N=17)
    _, k, v = _qkv(N=5, seed=1)
    for g in (TRIAL_105, ELU_LINEAR):
        assert g.compile(distinct_kv=True)(q, k, v).shape == q.shape
    torch.testing.assert_close(ELU_LINEAR.compile(distinct_kv=True)(q, k, v),
                               ref_linear(q, k, v, lambda x: F.elu(x) + 1))


class _ShapeRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


def _max_token_dims(genome, N=97):
    q, k, v = _qkv(B=2, h=3, N=N, d=8, dtype=torch.float32)
    q.requires_grad_(True)
    prog = genome.compile()
    with _ShapeRecorder() as rec:
        out = prog(q, k, v)
        out.sum().backward()   # the backward must not materialise N x N either
    return max(sum(1 for s in shape if s == N) for shape in rec.shapes)


def test_no_token_by_token_tensor_for_linear_genomes():
    assert _max_token_dims(SOFTMAX) == 2     # the instrument sees an N x N tensor when there is one
    rng = np.random.default_rng(7)
    genomes = [TRIAL_105, TRIAL_140, ELU_LINEAR, RELU_LINEAR] + [sample(rng) for _ in range(25)]
    for g in genomes:
        assert _max_token_dims(g) <= 1, g


def test_pure_device_dtype_and_pickle():
    q, k, v = _qkv(dtype=torch.float32)
    copies = [t.clone() for t in (q, k, v)]
    for g in (TRIAL_105, TRIAL_140, ELU_LINEAR, SOFTMAX):
        prog = g.compile()
        out32 = prog(q, k, v)
        assert out32.dtype == torch.float32
        for a, b in zip((q, k, v), copies):
            assert torch.equal(a, b)           # inputs untouched
        out64 = prog(q.double(), k.double(), v.double())
        assert out64.dtype == torch.float64
        torch.testing.assert_close(out32.double(), out64, rtol=1e-3, atol=1e-4)
        prog2 = pickle.loads(pickle.dumps(prog))
        torch.testing.assert_close(prog2(q, k, v), out32)
    if torch.cuda.is_available():  # pragma: no cover - no GPU on CI
        out = TRIAL_105.compile()(q.cuda(), k.cuda(), v.cuda())
        torch.testing.assert_close(out.cpu(), TRIAL_105.compile()(q, k, v), rtol=1e-4, atol=1e-5)


def test_gradients_flow():
    q, k, v = (t.float().requires_grad_(True) for t in _qkv())
    TRIAL_105.compile()(q, k, v).square().sum().backward()
    for t in (q, k, v):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().max() > 0


def test_min_max_differentiates_without_aminmax_derivative(monkeypatch):
    """torch 2.11 has no derivative for aminmax (backward raises; seen on torch 2.11 + CUDA when
    training an AttnZero model). Simulated here: the fast executor must train through min() and
    max() as the reference does, with the reference's gradients, and keep its one-pass aminmax
    where no gradient is needed."""
    real = torch.aminmax
    calls = []

    class _NoDerivative(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            lo, hi = real(x)
            return lo, hi

        @staticmethod
        def backward(ctx, *grads):
            raise RuntimeError('derivative for aten::aminmax is not implemented')

    def aminmax(x, *args, **kw):
        calls.append(x.requires_grad)
        return _NoDerivative.apply(x) if not (args or kw) else real(x, *args, **kw)

    monkeypatch.setattr(torch, 'aminmax', aminmax)
    q, k, v = (t.requires_grad_(True) for t in _qkv())
    TRIAL_105.compile()(q, k, v).square().sum().backward()
    q2, k2, v2 = (t.detach().clone().requires_grad_(True) for t in (q, k, v))
    ref_trial_105(q2, k2, v2).square().sum().backward()
    for a, b in ((q, q2), (k, k2), (v, v2)):
        torch.testing.assert_close(a.grad, b.grad)
    assert not any(calls)  # no aminmax on a tensor that needs a gradient
    with torch.no_grad():
        TRIAL_105.compile()(q, k, v)
    assert calls  # the no-grad path keeps its single aminmax pass
