"""The fast executor's per-thread scratch pool (issue 16: fast under glibc's default malloc): large
temporaries of no-grad CPU calls reuse earlier calls' buffers; the result is never one of them;
autograd, other threads and inference mode are kept apart."""
from __future__ import annotations

import threading

import pytest
import torch

from attnzero.space import TRIAL_105, TRIAL_140, as_genome, fast

N = 4096  # 2 x 4096 x 32 = 262144 elements per operand: above SCRATCH_MIN_NUMEL
GENOMES = [TRIAL_105, TRIAL_140,
           as_genome('i3n303:relu;-;-;-;-;sigmoid:einsum2,matmul,product'),
           as_genome('i3n303:exp;-;scale;-;abs;-:einsum2,matmul,sum')]


@pytest.fixture(autouse=True)
def _empty_pool():
    fast.clear_scratch()
    yield
    fast.clear_scratch()


def _qkv(seed=0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(1, 2, N, 32, generator=g).requires_grad_(requires_grad) for _ in range(3)]


@pytest.mark.parametrize('genome', GENOMES, ids=lambda g: g.to_string()[:24])
def test_results_equal_the_reference_and_never_alias_the_pool(genome):
    fn, ref = genome.compile(), genome.compile(fast=False)
    q, k, v = _qkv()
    with torch.no_grad():
        expect = ref(q, k, v)
        a = fn(q, k, v)
        a_copy = a.clone()
        assert fast._SCRATCH.bytes > 0  # temporaries were kept for the next call
        b = fn(*_qkv(1))
        c = fn(q, k, v)
    torch.testing.assert_close(a, expect, rtol=1e-4, atol=1e-4)
    assert torch.equal(a, a_copy)  # later calls did not write into an earlier result
    assert torch.equal(a, c)
    ptrs = {t.untyped_storage().data_ptr() for t in (a, b, c)}
    assert len(ptrs) == 3
    pooled = {buf.untyped_storage().data_ptr() for bufs in fast._SCRATCH.free.values() for buf in bufs}
    assert not ptrs & pooled


def test_no_pool_under_autograd_and_exact_gradients():
    fn = TRIAL_105.compile()
    q, k, v = (t.double().detach().requires_grad_() for t in _qkv())
    out = fn(q, k, v)
    assert fast._SCRATCH.bytes == 0
    out.square().sum().backward()
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    TRIAL_105.compile(fast=False)(q2, k2, v2).square().sum().backward()
    for x, y in ((q, q2), (k, k2), (v, v2)):
        torch.testing.assert_close(x.grad, y.grad, rtol=1e-6, atol=1e-9)


def test_limit_zero_turns_the_pool_off(monkeypatch):
    monkeypatch.setattr(fast, 'SCRATCH_LIMIT_BYTES', 0)
    with torch.no_grad():
        TRIAL_105.compile()(*_qkv())
    assert fast._SCRATCH.bytes == 0


def test_the_pool_is_bounded_and_cleared(monkeypatch):
    fn = TRIAL_105.compile()
    with torch.no_grad():
        fn(*_qkv())
    held = fast._SCRATCH.bytes
    assert 0 < held <= fast.SCRATCH_LIMIT_BYTES
    monkeypatch.setattr(fast, 'SCRATCH_LIMIT_BYTES', held // 2)
    with torch.no_grad():
        fn(*_qkv())
    assert fast._SCRATCH.bytes <= held // 2
    before = fast._SCRATCH.bytes
    assert fast.clear_scratch() == before
    assert fast._SCRATCH.bytes == 0 and not fast._SCRATCH.free


def test_threads_have_their_own_pools():
    fn = TRIAL_105.compile()
    q, k, v = _qkv()
    seen = {}

    def work():
        with torch.no_grad():
            seen['out'] = fn(q, k, v)
        seen['bytes'] = fast._SCRATCH.bytes

    t = threading.Thread(target=work)
    t.start()
    t.join()
    assert seen['bytes'] > 0 and fast._SCRATCH.bytes == 0
    with torch.no_grad():
        torch.testing.assert_close(fn(q, k, v), seen['out'])


def test_inference_mode_buffers_are_not_reused_outside_it():
    fn = TRIAL_105.compile()
    q, k, v = _qkv()
    with torch.inference_mode():
        a = fn(q, k, v)
    with torch.no_grad():  # writing into an inference-mode buffer here would raise
        b = fn(q, k, v)
    torch.testing.assert_close(a, b)
    modes = {key[3] for key in fast._SCRATCH.free}
    assert modes == {True, False}
