"""Sampling, mutation and crossover return statically valid genomes, reproducibly."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from attnzero.space import (DEFAULT_DISTRIBUTION, GRAPHS, MUTATIONS, ORIGINAL_DISTRIBUTION,
                            TRIAL_105, TRIAL_140, Genome, Reason, VariationError, analyse,
                            crossover, is_valid, mutate, sample, sample_raw, static_check)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_sample_is_valid_and_reproducible():
    a = [sample(np.random.default_rng(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    rng = np.random.default_rng(0)
    genomes = [sample(rng) for _ in range(40)]
    assert all(is_valid(g) for g in genomes)
    assert all(g.complexity().kind == 'linear' for g in genomes)
    assert len(set(genomes)) > 30
    assert len({g.graph for g in genomes}) >= 4


def test_original_distribution_uses_original_ops_only():
    rng = np.random.default_rng(1)
    for _ in range(20):
        assert sample(rng, ORIGINAL_DISTRIBUTION).is_original


def test_sample_raw_follows_graph_weights():
    rng = np.random.default_rng(2)
    counts = {}
    for _ in range(2000):
        g = sample_raw(rng)
        counts[g.graph] = counts.get(g.graph, 0) + 1
    assert counts['i3n303'] > 2 * counts['i3n2']     # weights 3 vs 1


def test_sample_gives_up_clearly():
    with pytest.raises(VariationError, match='no valid genome in 3 draws'):
        # one-op binary lists of only `cat` can never produce (B, h, N, d)
        dist = DEFAULT_DISTRIBUTION.__class__(
            graph_weights={'i3n2': 1.0}, unary_weights=(1.0,) + (0.0,) * 37,
            binary_weights=(0.0,) * 9 + (1.0,) + (0.0,) * 3)
        sample(np.random.default_rng(0), dist, max_tries=3)


@pytest.mark.parametrize('kind', MUTATIONS)
def test_each_mutation_kind(kind):
    rng = np.random.default_rng(11)
    parent = TRIAL_105 if kind != 'unary_insert' else TRIAL_140
    child = mutate(parent, rng, kinds=[kind])
    assert child != parent and is_valid(child)
    if kind == 'graph_switch':
        assert child.graph != parent.graph and GRAPHS[child.graph].arity == GRAPHS[parent.graph].arity
        assert child.unary == parent.unary and child.binary == parent.binary
    if kind == 'binary_swap':
        assert child.unary == parent.unary and child.graph == parent.graph


def test_mutation_chain_stays_valid():
    rng = np.random.default_rng(4)
    g = sample(rng)
    for _ in range(60):
        g = mutate(g, rng)
        assert is_valid(g)
        assert Genome.parse(g.to_string()) == g


def test_crossover():
    rng = np.random.default_rng(8)
    a = TRIAL_105
    b = Genome.parse('i3n303:relu;ones_aug;relu;-;-;homog_div:einsum1,matmul,second')
    children = {crossover(a, b, rng) for _ in range(10)}
    for c in children:
        assert is_valid(c) and c not in (a, b)
        for i, lst in enumerate(c.unary):
            assert lst in (a.unary[i], b.unary[i])
    with pytest.raises(ValueError, match='same arity'):
        crossover(a, Genome.parse('i3n2:scale;transpose;-;softmax:matmul,matmul'), rng)
    with pytest.raises(VariationError):
        crossover(a, a, rng)


def test_space_report_runs(tmp_path):
    out = tmp_path / 'rep.json'
    proc = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'space_report.py'),
                           '-n', '200', '--full', '10', '--json', str(out)],
                          capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    rep = json.loads(out.read_text())
    assert rep['n'] == 200 and 0 < rep['sampler']['valid_rate'] < 1
    assert sum(rep['full']['results'].values()) == 10
    assert sum(rep['static']['rejections'].values()) < 200
    assert {'ms_mean', 'ms_median'} <= set(rep['static'])


class _CountTorchCalls(TorchFunctionMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls.append(getattr(func, '__name__', str(func)))
        return func(*args, **(kwargs or {}))


def test_static_check_is_symbolic_and_linear_in_genome_size():
    """Why the static check is cheap (what a wall-clock bound used to stand for): it runs no tensor
    operation at all -- shapes are symbolic -- and applies each operator's shape rule once, so its
    work is proportional to the genome's length, whatever the token count."""
    rng = np.random.default_rng(7)
    genomes = [sample_raw(rng) for _ in range(200)]
    with _CountTorchCalls() as mode:
        reasons = [static_check(g)[0] for g in genomes]
        analyses = [analyse.__wrapped__(g, False) for g in genomes]  # uncached: every rule applied
    assert mode.calls == []
    assert Reason.OK in reasons and Reason.INVALID in reasons      # both outcomes were exercised
    for g, cx in zip(genomes, analyses):
        n_ops = sum(len(lst) for lst in g.unary) + len(g.binary)
        if cx.kind == 'invalid':
            assert len(cx.shapes) <= n_ops               # stops at the first failing operator
        else:
            assert len(cx.shapes) == n_ops               # one shape-rule application per operator
    with _CountTorchCalls() as mode:                     # the counter does see a program that runs
        TRIAL_105.compile(fast=False)(*torch.randn(3, 1, 1, 4, 3).unbind(0))
    assert len(mode.calls) > 10
