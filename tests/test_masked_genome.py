"""Token-masked evaluation of genomes (:mod:`attnzero.space.masked`; DynamicViT with the ``attnzero``
kernel, issue 20): with 0/1 token weights the masked program equals the genome run on the kept
tokens alone, for the published genomes and for genomes sampled from the space; soft weights
against a slow reference written here; gradients; genomes with no masked form."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from attnzero.attention import TokenMask, build_kernel
from attnzero.space import (DEFAULT_DISTRIBUTION, ELU_LINEAR, ORIGINAL_DISTRIBUTION, RELU_LINEAR, SOFTMAX,
                            TRIAL_105, TRIAL_140, Genome, MaskUnsupportedError, mask_problem, run_masked,
                            sample)

B, HEADS, N, D, KEEP = 2, 2, 13, 8, 7
NO_MASKED_FORM = 'i3n303:elu;-;-;-;-;transpose,ones_aug:einsum1,matmul,first'


def _inputs(seed: int, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, HEADS, N, D, generator=g, dtype=dtype) for _ in range(3))
    index = torch.stack([torch.randperm(N, generator=g)[:KEEP].sort().values for _ in range(B)])
    weight = torch.zeros(B, N, dtype=dtype).scatter(1, index, 1.0)
    return q, k, v, index, weight


def _take(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return t.gather(2, index[:, None, :, None].expand(-1, t.shape[1], -1, t.shape[-1]))


def _masked_vs_pruned(genome: Genome, seed: int = 0):
    q, k, v, index, weight = _inputs(seed)
    masked = _take(run_masked(genome, q, k, v, weight), index)
    ref = genome.compile(fast=False)
    pruned = ref(_take(q, index), _take(k, index), _take(v, index))
    plain = _take(ref(q, k, v), index)
    return masked, pruned, plain


def _ill_conditioned(genome: Genome, seed: int) -> bool:
    """True if a relative perturbation of 1e-12 of the kept inputs moves the pruned output by more
    than 1e-6: round-off decides such a genome's result (e.g. standardising a tensor whose entries
    are equal up to round-off), so no two summation orders agree on it."""
    q, k, v, index, _ = _inputs(seed)
    ref = genome.compile(fast=False)
    a = ref(*(_take(t, index) for t in (q, k, v)))
    b = ref(*(_take(t, index) * (1 + 1e-12) for t in (q, k, v)))
    return not torch.allclose(a, b, rtol=1e-6, atol=1e-8, equal_nan=True)


@pytest.mark.parametrize('genome', [TRIAL_105, TRIAL_140, SOFTMAX, ELU_LINEAR, RELU_LINEAR], ids=str)
def test_published_genomes_masked_equal_pruned(genome):
    masked, pruned, plain = _masked_vs_pruned(genome)
    torch.testing.assert_close(masked, pruned, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(masked, plain)   # the mask does something


@pytest.mark.parametrize('dist', ['default', 'original'])
def test_sampled_genomes_masked_equal_pruned(dist):
    """60 valid genomes of each distribution with a masked form (the few without one are tested
    below): the masked program equals the pruned one, wherever the pruned output is finite and
    not decided by round-off."""
    rng = np.random.default_rng(7 if dist == 'default' else 8)
    d = DEFAULT_DISTRIBUTION if dist == 'default' else ORIGINAL_DISTRIBUTION
    checked = changed = skipped = 0
    while checked < 60:
        g = sample(rng, d)
        if g.complexity().kind == 'invalid' or mask_problem(g) is not None:
            continue
        masked, pruned, plain = _masked_vs_pruned(g, seed=checked)
        if not torch.isfinite(pruned).all() or _ill_conditioned(g, checked):
            skipped += 1
            continue
        checked += 1
        torch.testing.assert_close(masked, pruned, rtol=1e-8, atol=1e-10, msg=lambda m: f'{g}: {m}')
        changed += not torch.allclose(masked, plain)
    assert changed > 30   # most genomes mix tokens (a few are token-wise)
    assert skipped < 30


def test_trial_105_soft_weights_against_a_slow_reference():
    """Fractional weights: Trial-105 (ELU+1 on K, min-max of V over the kept entries, the weighted
    state (phi(K)^T V)^T, its global standardisation, L2 norms along channels, gated by Q) written
    out token by token."""
    q, k, v, _, weight = _inputs(3)
    w = weight * torch.rand(weight.shape, dtype=weight.dtype, generator=torch.Generator().manual_seed(0))
    out = run_masked(TRIAL_105, q, k, v, w)
    kept = w > 0
    vk = v.permute(0, 2, 1, 3)[kept]                         # the kept entries of V
    lo, hi = vk.min(), vk.max()
    mv = (v - lo) / (hi - lo + 1e-9)
    fk = F.elu(k) + 1
    state = torch.zeros(B, HEADS, D, D, dtype=q.dtype)
    for b in range(B):
        for n in range(N):
            state[b] += w[b, n] * torch.einsum('hd,he->hed', fk[b, :, n], mv[b, :, n])
    state = (state - state.mean()) / state.std()
    b2 = F.normalize(q, dim=-1) @ state
    ref = q * F.normalize(b2, dim=-1)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


def test_gradients_reach_dropped_tokens_and_stay_finite():
    q, k, v, _, weight = _inputs(4)
    for t in (q, k, v):
        t.requires_grad_(True)
    soft = torch.rand(weight.shape, dtype=weight.dtype, generator=torch.Generator().manual_seed(1))
    soft.requires_grad_(True)
    w = weight - soft.detach() + soft         # straight-through: 0/1 forward, soft gradient
    for g in (TRIAL_105, TRIAL_140, SOFTMAX):
        run_masked(g, q, k, v, w).square().sum().backward()
        assert all(torch.isfinite(t.grad).all() for t in (q, k, v, soft))
        assert (soft.grad[weight == 0] != 0).any()   # a dropped token's decision gets a gradient
        soft.grad = None


def test_values_a_dropped_token_alone_produces_do_not_poison_the_kept_ones():
    """``sqrt`` of min-max-normalised V: negative (NaN after sqrt) only at dropped tokens that lie
    below the kept minimum; the weighted contraction must not turn the kept outputs into NaN."""
    g = Genome.parse('i3n302:sqrt;min_max_normalize_ps;relu;sqrt;normalize;sigmoid:second,einsum1,einsum1')
    q, k, v, index, weight = _inputs(0)
    v = v.clone()
    dropped = (weight[0] == 0).nonzero()[0, 0]
    v[0, :, dropped] = -100.0                      # far below every kept value
    out = run_masked(g, q, k, v, weight)
    pruned = g.compile(fast=False)(_take(q, index), _take(k, index), _take(v, index))
    assert torch.isfinite(pruned).all()
    torch.testing.assert_close(_take(out, index), pruned, rtol=1e-8, atol=1e-10)


def test_genomes_without_a_masked_form_are_named_and_refused():
    g = Genome.parse(NO_MASKED_FORM)
    assert g.complexity().kind == 'linear'
    why = mask_problem(g)
    assert why is not None and 'ones_aug' in why and 'N + 1' in why
    assert mask_problem(TRIAL_105) is None and mask_problem(TRIAL_140) is None
    q, k, v, _, weight = _inputs(0)
    with pytest.raises(MaskUnsupportedError, match='ones_aug'):
        run_masked(g, q, k, v, weight)
    kern = build_kernel('attnzero', D, HEADS, genome=NO_MASKED_FORM, v_branch=False)
    assert not kern.supports_token_mask and 'ones_aug' in kern.token_mask_problem
    with pytest.raises(ValueError, match='cannot take token masks'):
        kern(q, k, v, mask=TokenMask(weight=weight))


def test_bad_shapes_are_named():
    q, k, v, _, weight = _inputs(0)
    with pytest.raises(ValueError, match=r'\(2, 13\), got \(2, 12\)'):
        run_masked(TRIAL_105, q, k, v, weight[:, :12])
    with pytest.raises(ValueError, match='keys/values at the query tokens'):
        run_masked(TRIAL_105, q, k[:, :, :5], v[:, :, :5], weight)


def test_kernel_half_precision_masked_runs_in_float32():
    q, k, v, _, weight = _inputs(5, dtype=torch.float32)
    kern = build_kernel('attnzero', D, HEADS, v_branch=False)
    ref = kern(q, k, v, mask=TokenMask(weight=weight))
    out = kern(q.bfloat16(), k.bfloat16(), v.bfloat16(), mask=TokenMask(weight=weight.bfloat16()))
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), ref, rtol=0.05, atol=0.05)
