"""The algebraic simplifier and the fast executor compute the same functions as the reference
evaluator (issue 8). No timing here: performance lives in tools/benchmark_*.py and docs."""
from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from attnzero.space import (ELU_LINEAR, REFERENCE_GENOMES, TRIAL_105, TRIAL_140, Genome, sample,
                            same_function)
from attnzero.space.fec import equivalent, fingerprint, probe_inputs, quantise
from attnzero.space.simplify import simplify
from attnzero.space.variation import VariationError


def _genomes(n: int, seed: int):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        try:
            out.append(sample(rng))
        except VariationError:
            pass
    return out


RANDOM = _genomes(120, 8)
PUBLISHED = list(REFERENCE_GENOMES.values())


def _close(out: torch.Tensor, ref: torch.Tensor, rtol: float, atol: float) -> bool:
    if out.shape != ref.shape:
        return False
    fin = torch.isfinite(ref)
    scale = float(ref[fin].abs().max()) if fin.any() else 0.0
    return bool(torch.allclose(out, ref, rtol=rtol, atol=atol + atol * scale, equal_nan=True))


# --------------------------------------------------------------------------------- simplifier
@pytest.mark.parametrize('text, expected', [
    ('i3n303:relu,relu;-;-;-;-;-:einsum1,matmul,second', 'i3n303:relu;-;-;-;-;-:einsum1,matmul,second'),
    ('i3n303:elu;-;transpose,transpose;-;-;-:einsum1,matmul,second', 'i3n303:elu;-;-;-;-;-:einsum1,matmul,second'),
    ('i3n303:elu;-;scale,l2norm_last;-;-;-:einsum1,matmul,second', 'i3n303:elu;-;l2norm_last;-;-;-:einsum1,matmul,second'),
    ('i3n303:elu,relu;-;-;-;-;-:einsum1,matmul,second', 'i3n303:elu;-;-;-;-;-:einsum1,matmul,second'),
])
def test_local_rules(text, expected):
    g = Genome.parse(text)
    res = simplify(g)
    assert res.genome == Genome.parse(expected), res
    assert equivalent(g, res.genome)


def test_trial105_drops_the_l2norm_of_q():
    res = simplify(TRIAL_105)
    assert res.genome.unary[2] == ()          # f2 = l2norm_last on Q: row scaling before matmul
    assert res.genome.unary[5] == TRIAL_105.unary[5]
    assert ('row_scaling_through_contraction', 'edge 2 -> node 1') in res.applied
    assert equivalent(TRIAL_105, res.genome)
    assert res.genome.complexity().kind == 'linear'


def test_dead_code():
    g = Genome.parse('i3n303:elu;relu;sigmoid,abs;softsign;-;l2norm_last:einsum1,matmul,first')
    res = simplify(g)
    assert res.genome.unary[2] == res.genome.unary[3] == res.genome.unary[5] == ()
    assert res.genome.binary[1] == Genome.parse('i3n2:-;-;-;-:first,first').binary[0]
    assert equivalent(g, res.genome)


def test_simplified_genomes_equal_the_originals():
    """Many random genomes + the published ones: the rewritten genome computes the same function
    (reference evaluator on the FEC probes, quantised hash or 1e-9 closeness)."""
    changed = 0
    for g in PUBLISHED + RANDOM:
        res = simplify(g)
        if res.changed:
            changed += 1
            assert equivalent(g, res.genome), (g, res.genome, res.applied)
            assert res.genome.complexity().kind == g.complexity().kind
        assert simplify(res.genome).genome == res.genome   # fixpoint
    assert changed >= 20


def test_fec_hash_unchanged_by_the_fast_path():
    """``fingerprint`` (which runs ``compile()``, i.e. the simplified genome on the fast path) equals
    the quantised hash of the reference evaluator's output for the published and random genomes."""
    import hashlib

    q, k, v = probe_inputs()
    agree = total = 0
    for g in PUBLISHED + RANDOM[:60]:
        try:
            with torch.no_grad():
                ref = g.compile(fast=False)(q, k, v)
        except Exception:  # noqa: BLE001
            continue
        total += 1
        agree += fingerprint(g) == hashlib.sha256(quantise(ref.numpy(), 20, 1e-9)).hexdigest()[:16]
        assert same_function(g, simplify(g).genome) or fingerprint(g).startswith('invalid-')
    assert agree >= total - 1, (agree, total)   # a value on a quantisation boundary may flip


# --------------------------------------------------------------------------------- fast path
def _inputs(dtype, shape=(2, 2, 11, 6), seed=0, grad=False):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).requires_grad_(grad)
            for _ in range(3)]


@pytest.mark.parametrize('dtype, rtol, atol', [(torch.float64, 1e-7, 1e-9), (torch.float32, 2e-3, 2e-4)])
def test_fast_equals_reference(dtype, rtol, atol):
    q, k, v = _inputs(dtype)
    bad = []
    for g in PUBLISHED + (RANDOM if dtype == torch.float64 else RANDOM[:60]):
        try:
            ref = g.compile(fast=False)(q, k, v)
        except Exception:  # noqa: BLE001 - runtime-invalid genome: nothing to compare
            continue
        if dtype == torch.float32:   # compare float32 against the float64 truth where well-conditioned
            ref64 = g.compile(fast=False)(*(x.double() for x in (q, k, v)))
            if not _close(ref.double(), ref64, rtol, atol):
                continue
        with torch.no_grad():
            out = g.compile()(q, k, v)
        if not _close(out, ref, rtol, atol):
            bad.append(g.to_string())
    assert not bad, bad


def test_fast_gradients_match():
    checked = 0
    for g in PUBLISHED + RANDOM[:60]:
        grads = []
        for fast in (False, True):
            q, k, v = _inputs(torch.float64, grad=True)
            try:
                out = g.compile(fast=fast)(q, k, v)
            except Exception:  # noqa: BLE001
                break
            w = torch.linspace(-1, 1, out.numel(), dtype=out.dtype).reshape(out.shape)
            (out.nan_to_num() * w).sum().backward()
            grads.append([x.grad for x in (q, k, v)])
        if len(grads) < 2:
            continue
        for a, b in zip(*grads):
            if a is None or b is None:
                assert (a is None or not a.abs().sum()) and (b is None or not b.abs().sum()), g
                continue
            if torch.isfinite(a).all() and a.abs().max() < 1e6:
                assert _close(b, a, 1e-6, 1e-8), g
                checked += 1
    assert checked >= 60


def test_trial105_fast_and_half():
    q, k, v = _inputs(torch.float64, shape=(2, 3, 64, 16), seed=3)
    ref = TRIAL_105.compile(fast=False)(q, k, v)
    torch.testing.assert_close(TRIAL_105.compile()(q, k, v), ref, rtol=1e-10, atol=1e-12)
    for dt in (torch.bfloat16, torch.float16):
        out = TRIAL_105.compile()(*(x.to(dt) for x in (q, k, v)))
        assert out.dtype == dt and torch.isfinite(out).all()
        err = (out.double() - ref).abs().max() / ref.abs().max()
        assert err < (0.03 if dt == torch.bfloat16 else 0.01), (dt, err)
    for g in (TRIAL_140, ELU_LINEAR):
        ref = g.compile(fast=False)(q, k, v)
        out = g.compile()(*(x.bfloat16() for x in (q, k, v)))
        assert out.dtype == torch.bfloat16
        assert (out.double() - ref).abs().max() / ref.abs().max() < 0.05, g


def test_fast_never_writes_inputs_and_is_picklable():
    q, k, v = _inputs(torch.float32, shape=(1, 2, 20, 8))
    copies = [x.clone() for x in (q, k, v)]
    for g in PUBLISHED + RANDOM[:50]:
        try:
            with torch.no_grad():
                g.compile()(q, k, v)
        except Exception:  # noqa: BLE001
            pass
        for x, c in zip((q, k, v), copies):
            assert torch.equal(x, c), g
    prog = pickle.loads(pickle.dumps(TRIAL_105.compile()))
    torch.testing.assert_close(prog(q, k, v), TRIAL_105.compile(fast=False)(q, k, v), rtol=1e-5, atol=1e-6)


def test_contraction_order_reassociates_chains():
    """(Q K^T) V with nothing in between is evaluated as Q (K^T V): no N x N intermediate."""
    g = Genome.parse('i3n2:-;transpose;-;-:matmul,matmul')
    q, k, v = _inputs(torch.float64, shape=(1, 1, 300, 4))
    seen = []

    class Spy(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if isinstance(out, torch.Tensor):
                seen.append(out.numel())
            return out

    with torch.no_grad(), Spy():
        out = g.compile()(q, k, v)
    torch.testing.assert_close(out, g.compile(fast=False)(q, k, v))
    assert max(seen) < 300 * 300


def test_inductor_backend_option_exists():
    prog = TRIAL_105.compile(backend='inductor')
    assert prog.backend == 'inductor' and prog.fast
    with pytest.raises(ValueError):
        TRIAL_105.compile(backend='nope')


def test_inductor_backend_matches_eager():
    """``backend='inductor'`` (torch.compile of the fast executor, no host-side checks) computes the
    same function, forward and backward."""
    pytest.importorskip('torch._inductor')
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 49, 16, generator=g, dtype=torch.float64) for _ in range(3))
    ind = TRIAL_105.compile(backend='inductor')
    eager = TRIAL_105.compile()
    with torch.no_grad():
        assert torch.allclose(ind(q, k, v), eager(q, k, v), rtol=1e-9, atol=1e-11)
    qi, ki, vi = (x.clone().requires_grad_() for x in (q, k, v))
    qe, ke, ve = (x.clone().requires_grad_() for x in (q, k, v))
    ind(qi, ki, vi).sum().backward()
    eager(qe, ke, ve).sum().backward()
    for a, b in ((qi, qe), (ki, ke), (vi, ve)):
        assert torch.allclose(a.grad, b.grad, rtol=1e-8, atol=1e-10)
