"""Fixed-length features of a genome, for accuracy surrogates (the bench's
:class:`attnzero.bench.Surrogate` and the search's online one, :mod:`attnzero.search.surrogate`).

Features (all from the genome text, nothing trained): graph one-hot; binary operator of each node
position; for each edge *source* (``q``, ``k``, ``v``, ``b0``..``b2``, ``e5``) the count of each
unary operator on edges from that source; the overall count of each unary operator; unary list
lengths per edge position; ``log10`` static FLOPs at the reference size; original-operators-only and
batch-global flags.
"""
from __future__ import annotations

import math
from typing import List

import numpy as np

from .graphs import GRAPH_NAMES, GRAPHS
from .ops import BINARY_OPS, UNARY_OPS

__all__ = ['genome_features', 'feature_names', 'regressor']

_SOURCES = ('q', 'k', 'v', 'b0', 'b1', 'b2', 'e5')
_MAX_EDGES = 8
_MAX_NODES = 4


def feature_names() -> List[str]:
    names = [f'graph={g}' for g in GRAPH_NAMES]
    names += [f'node{j}={op.name}' for j in range(_MAX_NODES) for op in BINARY_OPS]
    names += [f'from_{s}:{op.name}' for s in _SOURCES for op in UNARY_OPS]
    names += [f'count:{op.name}' for op in UNARY_OPS]
    names += [f'len_edge{i}' for i in range(_MAX_EDGES)]
    names += ['n_unary', 'log10_flops', 'is_original', 'batch_global']
    return names


def genome_features(genome, ref_tokens: int = 3136, ref_head_dim: int = 32) -> np.ndarray:
    """The feature vector of one genome (see the module docstring)."""
    nu, nb = len(UNARY_OPS), len(BINARY_OPS)
    parts: List[np.ndarray] = []
    g = np.zeros(len(GRAPH_NAMES))
    g[list(GRAPH_NAMES).index(genome.graph)] = 1
    parts.append(g)
    b = np.zeros((_MAX_NODES, nb))
    for j, op in enumerate(genome.binary):
        b[j, op] = 1
    parts.append(b.ravel())
    src = np.zeros((len(_SOURCES), nu))
    cnt = np.zeros(nu)
    lens = np.zeros(_MAX_EDGES)
    sources = GRAPHS[genome.graph].sources
    for i, lst in enumerate(genome.unary):
        s = _SOURCES.index(sources[i]) if sources[i] in _SOURCES else len(_SOURCES) - 1
        for u in lst:
            src[s, u] += 1
            cnt[u] += 1
        lens[i] = len(lst)
    parts += [src.ravel(), cnt, lens]
    cx = genome.complexity()
    flops = cx.flops(ref_tokens, ref_head_dim) if cx.flops_poly is not None else 0.0
    parts.append(np.array([lens.sum(), math.log10(max(float(flops), 1.0)),
                           float(genome.is_original), float(genome.uses_batch_global)]))
    return np.concatenate(parts)


def regressor(seed: int = 0, **params):
    """The score model on these features, shared by the bench's surrogate
    (:class:`attnzero.bench.Surrogate`) and the search's prior (:mod:`attnzero.search.prior`): a
    seeded :class:`sklearn.ensemble.GradientBoostingRegressor` (200 trees of depth 3, learning rate
    0.05, subsample 0.8, at least 3 samples per leaf), ``params`` overriding those. scikit-learn is
    imported here, on use."""
    from sklearn.ensemble import GradientBoostingRegressor

    kw = dict(n_estimators=200, max_depth=3, learning_rate=0.05, subsample=0.8, min_samples_leaf=3,
              random_state=seed)
    kw.update(params)
    return GradientBoostingRegressor(**kw)
