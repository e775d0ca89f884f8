"""Genome features for the accuracy surrogates: the syntax set, the probe and the gradient features."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from attnzero.space import REFERENCE_GENOMES, Genome
from attnzero.space import features as F


def _probe(name):
    return dict(zip(F.PROBE_FEATURES, F.probe_features(REFERENCE_GENOMES[name])))


def test_feature_sets_and_names():
    g = REFERENCE_GENOMES['trial_105']
    syn = F.genome_features(g)
    both = F.genome_features(g, features='syntax+probe')
    assert len(syn) == len(F.feature_names()) and len(both) == len(F.feature_names('syntax+probe'))
    assert np.array_equal(both[:len(syn)], syn)
    assert np.array_equal(both[len(syn):], F.probe_features(g))
    assert F.feature_names('syntax+probe')[len(syn):] == [f'probe:{n}' for n in F.PROBE_FEATURES]
    full = F.genome_features(g, features='syntax+probe+grad')
    assert len(full) == len(F.feature_names('syntax+probe+grad')) and np.array_equal(full[:len(both)], both)
    assert np.array_equal(full[len(both):], F.gradient_features(g))
    assert F.feature_names('syntax+probe+grad')[len(both):] == [f'grad:{n}' for n in F.GRAD_FEATURES]
    with pytest.raises(ValueError, match="'probes'"):
        F.genome_features(g, features='probes')


def test_probe_features_measure_what_they_say():
    sm, elu, t105 = _probe('softmax'), _probe('elu_linear'), _probe('trial_105')
    assert sm['probe_ok'] == elu['probe_ok'] == t105['probe_ok'] == 1.0
    # softmax attention is its own reference; ELU+1 linear attention approximates it
    assert sm['cos_softmax'] == pytest.approx(1.0, abs=1e-4)
    assert 0.3 < elu['cos_softmax'] < 0.99
    # both are linear in v; Trial-105 normalises v, so f(2v) = f(v) and the deviation is 1/2
    assert sm['v_nonlinearity'] == elu['v_nonlinearity'] == 0.0
    assert t105['v_nonlinearity'] == pytest.approx(0.5, abs=1e-4)
    # ReLU linear attention is homogeneous in (q, k): doubling both changes nothing
    assert _probe('relu_linear')['sens_qk_scale'] < 1e-6 and sm['sens_qk_scale'] > 0.1
    for p in (sm, elu, t105):
        assert p['sens_q'] > 0 and p['sens_k'] > 0 and 1 <= p['effective_rank'] <= 16


def test_an_invariance_is_exactly_zero_on_every_machine():
    """A relative change below ``REL_FLOOR`` is 0: for an attention that doubling q and k leaves
    unchanged, float64 gives rounding error (1e-17 to 1e-10), which differs between CPUs and, ranked,
    made the committed bench report differ between machines."""
    assert _probe('relu_linear')['sens_qk_scale'] == 0.0
    # a bench genome whose change was 7e-17 on one host (and something else on another)
    g = Genome.parse('i3n2:normalize_ps;abs;abs,abs;unsqz2:cosine_sim,sum')
    q, k, v = F._probe_inputs()[:3]
    f = g.compile(fast=False)
    with torch.no_grad():
        raw = float((f(2 * q, 2 * k, v) - f(q, k, v)).norm() / f(q, k, v).norm())
    assert raw < F.REL_FLOOR
    assert dict(zip(F.PROBE_FEATURES, F.probe_features(g)))['sens_qk_scale'] == 0.0
    a = torch.linspace(1, 2, 50, dtype=torch.float64)
    assert F._rel(a * (1 + 1e-10), a) == 0.0
    assert F._rel(a * (1 + 1e-6), a) == pytest.approx(1e-6, rel=1e-6)


def test_probe_features_are_a_function_of_the_genome():
    g = REFERENCE_GENOMES['trial_140']
    a = F.probe_features(g)
    F._probe_cached.cache_clear()
    assert np.array_equal(F.probe_features(Genome.parse(g.to_string())), a)  # recomputed, same values
    # a genome computing the same function written differently (an idempotent operator repeated)
    h = Genome.parse('i3n302:elu;scale;abs,abs;sigmoid;l2_norm;l2norm_last:einsum1,einsum1,sum')
    assert h.hash != g.hash and np.array_equal(F.probe_features(h), a)
    assert not np.array_equal(F.probe_features(REFERENCE_GENOMES['trial_105']), a)
    ga = F.gradient_features(g)
    F._grad_cached.cache_clear()
    assert np.array_equal(F.gradient_features(Genome.parse(g.to_string())), ga)
    assert np.array_equal(F.gradient_features(h), ga)


def test_gradient_features_measure_what_they_say():
    sm = dict(zip(F.GRAD_FEATURES, F.gradient_features(REFERENCE_GENOMES['softmax'])))
    assert sm['grad_ok'] == 1.0
    # softmax attention is A v with A fixed by q and k: the readout's gradient in v is A^T r
    q, k, v = F._probe_inputs()[:3]
    r = F._grad_readout()
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1)
    want = math.log10(float((a.transpose(-1, -2) @ r).norm() * v.norm() / (a @ v).norm()))
    assert sm['gain_v'] == pytest.approx(want, abs=1e-4)
    # an attention whose output ignores q gets the floor for q, and finite gains for k and v
    ign = dict(zip(F.GRAD_FEATURES, F.gradient_features(
        Genome.parse('i3n302:abs;min_max_normalize_ps,relu;relu;strange_op;l2norm_last,exp;softsign:einsum1,matmul,second'))))
    assert ign['grad_ok'] == 1.0 and ign['gain_q'] == ign['dir_gain_q'] == -12.0
    assert ign['gain_k'] > -6 and ign['gain_v'] > -6 and ign['dir_gain_k'] > -6
    for name in REFERENCE_GENOMES:
        g = dict(zip(F.GRAD_FEATURES, F.gradient_features(REFERENCE_GENOMES[name])))
        assert g['grad_ok'] == 1.0 and min(g[f'gain_{x}'] for x in 'qkv') > -3, name


def test_a_genome_that_fails_on_the_probe_gets_probe_ok_zero(monkeypatch):
    text = 'i3n302:relu;-;-;-;-;-:einsum1,matmul,second'
    F._probe_cached.cache_clear()
    monkeypatch.setattr(Genome, 'compile', lambda self, *a, **k: (lambda q, k_, v: q * float('nan')))
    assert np.array_equal(F.probe_features(Genome.parse(text)), np.zeros(len(F.PROBE_FEATURES)))
    F._grad_cached.cache_clear()
    assert np.array_equal(F.gradient_features(Genome.parse(text)), np.zeros(len(F.GRAD_FEATURES)))

    def boom(self, *a, **k):
        raise RuntimeError('no')
    F._probe_cached.cache_clear()
    monkeypatch.setattr(Genome, 'compile', boom)
    assert np.array_equal(F.probe_features(Genome.parse(text)), np.zeros(len(F.PROBE_FEATURES)))
    F._grad_cached.cache_clear()
    assert np.array_equal(F.gradient_features(Genome.parse(text)), np.zeros(len(F.GRAD_FEATURES)))
    F._probe_cached.cache_clear()
    F._grad_cached.cache_clear()


def test_probe_leaves_torch_state_alone():
    state = torch.random.get_rng_state()
    grad = torch.is_grad_enabled()
    F._probe_cached.cache_clear()
    F.probe_features(REFERENCE_GENOMES['elu_linear'])
    assert torch.equal(torch.random.get_rng_state(), state) and torch.is_grad_enabled() == grad
    # the gradient features differentiate even where the caller disabled autograd, and keep it off
    F._grad_cached.cache_clear()
    with torch.no_grad():
        a = F.gradient_features(REFERENCE_GENOMES['elu_linear'])
        assert not torch.is_grad_enabled()
    F._grad_cached.cache_clear()
    assert np.array_equal(F.gradient_features(REFERENCE_GENOMES['elu_linear']), a) and a[0] == 1.0
    assert torch.equal(torch.random.get_rng_state(), state) and torch.is_grad_enabled() == grad


def test_features_stay_within_float32(monkeypatch):
    """A ratio of a near-zero output is finite in float64 but would overflow the float32 of the
    surrogate's trees: it is clipped."""
    q0 = F._probe_inputs()[0]
    text = 'i3n302:relu;-;-;-;-;-:einsum1,matmul,second'
    monkeypatch.setattr(Genome, 'compile', lambda self, *a, **k: (lambda q, k_, v: v * (1e-250 if q is q0 else 1.0)))
    F._probe_cached.cache_clear()
    p = dict(zip(F.PROBE_FEATURES, F.probe_features(Genome.parse(text))))
    F._probe_cached.cache_clear()
    assert p['probe_ok'] == 1.0 and p['sens_q'] == F.FEATURE_LIMIT
    assert np.all(np.abs(list(p.values())) <= F.FEATURE_LIMIT)


def test_an_output_the_same_for_every_token_has_no_direction_to_steer(monkeypatch):
    text = 'i3n302:relu;-;-;-;-;-:einsum1,matmul,second'
    monkeypatch.setattr(Genome, 'compile', lambda self, *a, **k: (
        lambda q, k_, v: (q.sum(-2, keepdim=True) * v.mean(-2, keepdim=True)).expand_as(v)))
    F._grad_cached.cache_clear()
    g = dict(zip(F.GRAD_FEATURES, F.gradient_features(Genome.parse(text))))
    F._grad_cached.cache_clear()
    assert g['grad_ok'] == 1.0 and g['gain_k'] == -12.0 and g['gain_q'] > -6 and g['gain_v'] > -6
    assert g['dir_gain_q'] == g['dir_gain_k'] == g['dir_gain_v'] == -12.0
