"""Variation operators for the search: random sampling, mutation, crossover.

Each operator takes a :class:`numpy.random.Generator` (reproducible) and returns only genomes that
pass the static check (linear, or quadratic when ``allow_quadratic``), retrying up to ``max_tries``
and raising :class:`VariationError` if no valid genome was found.

The default distribution (:data:`DEFAULT_DISTRIBUTION`). The reference's exact sampling weights
are not published; what is known is the genome format (each unary list has 1-2 entries, ``no_op``
included, e.g. ``[0, 13]``) and the paper's findings (graphs ``i3n302``/``i3n303`` are preferred;
normalisation + activation combinations help). The default therefore

* draws a unary list of length 1 or 2 (equal odds) with ``no_op`` among the operators, so an edge
  is empty, one operator or two;
* weights the graphs ``i3n302``/``i3n303`` 3, the other three-node graphs 1.5, ``i3n2`` and the
  four-node graphs 1;
* weights activations and normalisations (elu, relu, sigmoid, softmax, scale, abs, l2 norms,
  min-max / standard normalisation and the per-sample variants) 2, ``no_op`` 3, other
  elementwise operators 1, shape-changing and NaN-prone operators 0.5 (``repeat``/``repeat_d``
  0.25; ``ones_aug``/``homog_div``, which are only useful as a pair, 0.5);
* weights the contractions and elementwise binaries (sum, product, matmul, einsum1/2) 2, the
  rank-changing einsum3/einsum4 and ``first``/``second`` 0.25 and the rest 0.5.

:data:`ORIGINAL_DISTRIBUTION` is the same restricted to the 28 + 10 original operators.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .check import Reason, static_check
from .genome import Genome
from .graphs import GRAPHS
from .ops import BINARY_OPS, NUM_ORIGINAL_BINARY, NUM_ORIGINAL_UNARY, UNARY_OPS

__all__ = ['SpaceDistribution', 'DEFAULT_DISTRIBUTION', 'ORIGINAL_DISTRIBUTION', 'VariationError',
           'is_valid', 'sample_raw', 'sample', 'mutate', 'crossover', 'MUTATIONS']


class VariationError(RuntimeError):
    """No valid genome was found within the retry bound."""


def _weights(table: Mapping[str, float], names: Sequence[str], default: float) -> Tuple[float, ...]:
    unknown = set(table) - set(names)
    if unknown:
        raise KeyError(f'unknown operators in weights: {sorted(unknown)}')
    return tuple(float(table.get(n, default)) for n in names)


_UNARY_NAMES = tuple(op.name for op in UNARY_OPS)
_BINARY_NAMES = tuple(op.name for op in BINARY_OPS)

_UNARY_W = {
    'no_op': 3.0,
    # activations and normalisations the paper highlights
    'elu': 2.0, 'relu': 2.0, 'sigmoid': 2.0, 'softmax': 2.0, 'scale': 2.0, 'abs': 2.0,
    'l2_norm': 2.0, 'l2norm_last': 2.0, 'min_max_normalize': 2.0, 'normalize': 2.0,
    'normalize_ps': 2.0, 'min_max_normalize_ps': 2.0, 'silu': 2.0, 'softplus': 1.5,
    'relu2': 1.5, 'focus3': 1.5,
    # shape-changing and NaN-prone operators
    'transpose': 0.5, 'axis_sum1': 0.5, 'axis_sum2': 0.5, 'unsqz1': 0.5, 'unsqz2': 0.5,
    'repeat': 0.25, 'repeat_d': 0.25, 'ones_aug': 0.5, 'homog_div': 0.5,
    'log': 0.5, 'sqrt': 0.5, 'abslog': 0.5, 'invert': 0.5,
    'exp': 0.5, 'strange_op': 0.5, 'sign': 0.5, 'logsoftmax': 0.5,
}
_BINARY_W = {
    'sum': 2.0, 'product': 2.0, 'matmul': 2.0, 'einsum1': 2.0, 'einsum2': 2.0,
    'einsum3': 0.25, 'einsum4': 0.25, 'first': 0.25, 'second': 0.25,
}


def _probs(weights: Sequence[float]) -> np.ndarray:
    """Weights as a probability vector (float64, summing to 1)."""
    w = np.asarray(weights, dtype=float)
    return w / w.sum()


@dataclass(frozen=True)
class SpaceDistribution:
    """Sampling distribution over genomes.

    Attributes:
        graph_weights: relative weight of each graph type (0 or absent excludes it).
        unary_weights: relative weight per unary operator index (``no_op`` included).
        binary_weights: relative weight per binary operator index.
        list_length_probs: probability of drawing 0, 1, 2, ... operators into a unary list
            (before ``no_op`` entries are dropped).
        max_list_len: longest unary list mutation may grow.
    """

    graph_weights: Mapping[str, float]
    unary_weights: Tuple[float, ...]
    binary_weights: Tuple[float, ...]
    list_length_probs: Tuple[float, ...] = (0.0, 0.5, 0.5)
    max_list_len: int = 3
    mutation_weights: Mapping[str, float] = field(default_factory=lambda: {
        'unary_swap': 0.35, 'unary_insert': 0.2, 'unary_delete': 0.2, 'binary_swap': 0.2,
        'graph_switch': 0.05})

    def __post_init__(self) -> None:
        if len(self.unary_weights) != len(UNARY_OPS) or len(self.binary_weights) != len(BINARY_OPS):
            raise ValueError('need one weight per unary and binary operator')
        unknown = set(self.graph_weights) - set(GRAPHS)
        if unknown:
            raise KeyError(f'unknown graphs {sorted(unknown)}')

    @cached_property
    def _graphs(self) -> Tuple[List[str], np.ndarray]:
        names = [g for g, w in self.graph_weights.items() if w > 0]
        return names, _probs([self.graph_weights[g] for g in names])

    @cached_property
    def _unary_p(self) -> np.ndarray:
        return _probs(self.unary_weights)

    @cached_property
    def _nonnoop_unary_p(self) -> np.ndarray:
        return _probs([0.0, *self.unary_weights[1:]])

    @cached_property
    def _binary_p(self) -> np.ndarray:
        return _probs(self.binary_weights)

    @cached_property
    def _len_p(self) -> np.ndarray:
        return _probs(self.list_length_probs)

    @cached_property
    def _mut(self) -> Tuple[List[str], np.ndarray]:
        names = list(self.mutation_weights)
        return names, _probs([self.mutation_weights[n] for n in names])

    # draws ----------------------------------------------------------------------------------
    def draw_graph(self, rng: np.random.Generator) -> str:
        names, p = self._graphs
        return names[rng.choice(len(names), p=p)]

    def draw_unary(self, rng: np.random.Generator, allow_noop: bool = True) -> int:
        p = self._unary_p if allow_noop else self._nonnoop_unary_p
        return int(rng.choice(len(p), p=p))

    def draw_binary(self, rng: np.random.Generator) -> int:
        return int(rng.choice(len(self._binary_p), p=self._binary_p))

    def draw_list(self, rng: np.random.Generator) -> Tuple[int, ...]:
        n = int(rng.choice(len(self._len_p), p=self._len_p))
        return tuple(self.draw_unary(rng) for _ in range(n))

    def restricted_to_original(self) -> 'SpaceDistribution':
        """The same distribution over the original 28 + 10 operators only."""
        uw = tuple(w if i < NUM_ORIGINAL_UNARY else 0.0 for i, w in enumerate(self.unary_weights))
        bw = tuple(w if i < NUM_ORIGINAL_BINARY else 0.0 for i, w in enumerate(self.binary_weights))
        return replace(self, unary_weights=uw, binary_weights=bw)


DEFAULT_DISTRIBUTION = SpaceDistribution(
    graph_weights={'i3n2': 1.0, 'i3n301': 1.5, 'i3n302': 3.0, 'i3n303': 3.0, 'i3n304': 1.5,
                   'i3n305': 1.5, 'i3n401': 1.0, 'i3n402': 1.0},
    unary_weights=_weights(_UNARY_W, _UNARY_NAMES, 1.0),
    binary_weights=_weights(_BINARY_W, _BINARY_NAMES, 0.5),
)
ORIGINAL_DISTRIBUTION = DEFAULT_DISTRIBUTION.restricted_to_original()

MUTATIONS = ('unary_swap', 'unary_insert', 'unary_delete', 'binary_swap', 'graph_switch')


def is_valid(genome: Genome, allow_quadratic: bool = False, distinct_kv: bool = False) -> bool:
    """Static check only (shape-valid, and linear unless ``allow_quadratic``)."""
    return static_check(genome, allow_quadratic, distinct_kv)[0] is Reason.OK


def sample_raw(rng: np.random.Generator, dist: SpaceDistribution = DEFAULT_DISTRIBUTION) -> Genome:
    """One draw from ``dist``, without any check."""
    g = GRAPHS[dist.draw_graph(rng)]
    return Genome(g.name, tuple(dist.draw_list(rng) for _ in range(g.n_unary)),
                  tuple(dist.draw_binary(rng) for _ in range(g.n_binary)))


def sample(rng: np.random.Generator, dist: SpaceDistribution = DEFAULT_DISTRIBUTION, *,
           allow_quadratic: bool = False, distinct_kv: bool = False,
           max_tries: int = 10000) -> Genome:
    """A random genome that passes the static check.

    Raises:
        VariationError: if ``max_tries`` draws were all rejected.
    """
    for _ in range(max_tries):
        g = sample_raw(rng, dist)
        if is_valid(g, allow_quadratic, distinct_kv):
            return g
    raise VariationError(f'no valid genome in {max_tries} draws')


def _mutate_once(genome: Genome, rng: np.random.Generator, dist: SpaceDistribution,
                 kind: str) -> Optional[Genome]:
    unary = [list(lst) for lst in genome.unary]
    binary = list(genome.binary)
    graph = genome.graph
    if kind == 'unary_swap':
        slots = [(i, p) for i, lst in enumerate(unary) for p in range(len(lst))]
        if not slots:
            return None
        i, p = slots[rng.integers(len(slots))]
        unary[i][p] = dist.draw_unary(rng, allow_noop=False)
    elif kind == 'unary_insert':
        free = [i for i, lst in enumerate(unary) if len(lst) < dist.max_list_len]
        if not free:
            return None
        i = free[rng.integers(len(free))]
        unary[i].insert(int(rng.integers(len(unary[i]) + 1)), dist.draw_unary(rng, allow_noop=False))
    elif kind == 'unary_delete':
        slots = [(i, p) for i, lst in enumerate(unary) for p in range(len(lst))]
        if not slots:
            return None
        i, p = slots[rng.integers(len(slots))]
        del unary[i][p]
    elif kind == 'binary_swap':
        j = int(rng.integers(len(binary)))
        binary[j] = dist.draw_binary(rng)
    elif kind == 'graph_switch':
        arity = GRAPHS[graph].arity
        others = [n for n, w in dist.graph_weights.items()
                  if w > 0 and n != graph and GRAPHS[n].arity == arity]
        if not others:
            return None
        graph = others[rng.integers(len(others))]
    else:
        raise ValueError(f'unknown mutation {kind!r}; known: {MUTATIONS}')
    return Genome(graph, tuple(map(tuple, unary)), tuple(binary))


def mutate(genome: Genome, rng: np.random.Generator, dist: SpaceDistribution = DEFAULT_DISTRIBUTION,
           *, kinds: Optional[Sequence[str]] = None, allow_quadratic: bool = False,
           distinct_kv: bool = False, max_tries: int = 200) -> Genome:
    """A valid genome different from ``genome``, one mutation away.

    Mutations: ``unary_swap`` (replace an operator of a list), ``unary_insert``, ``unary_delete``,
    ``binary_swap``, ``graph_switch`` (to another graph with the same number of lists and binary
    ops, keeping the genes positionally). ``kinds`` restricts them (weights from ``dist``).

    Raises:
        VariationError: if ``max_tries`` attempts gave no valid, different genome.
    """
    names, p = dist._mut
    if kinds is not None:
        bad = set(kinds) - set(MUTATIONS)
        if bad:
            raise ValueError(f'unknown mutations {sorted(bad)}; known: {MUTATIONS}')
        keep = [i for i, n in enumerate(names) if n in kinds]
        names = [names[i] for i in keep]
        p = p[keep] / p[keep].sum()
    for _ in range(max_tries):
        child = _mutate_once(genome, rng, dist, names[rng.choice(len(names), p=p)])
        if child is not None and child != genome and is_valid(child, allow_quadratic, distinct_kv):
            return child
    raise VariationError(f'no valid mutation of {genome} in {max_tries} tries')


def crossover(a: Genome, b: Genome, rng: np.random.Generator, *, allow_quadratic: bool = False,
              distinct_kv: bool = False, max_tries: int = 200) -> Genome:
    """Uniform crossover: each unary list and binary op from either parent.

    The parents must have graphs of the same arity (normally the same graph); the child's graph is
    that of either parent. The child differs from both parents.

    Raises:
        ValueError: parents of different arity.
        VariationError: no valid child different from both parents in ``max_tries`` tries
            (always the case for identical parents).
    """
    ga, gb = GRAPHS[a.graph], GRAPHS[b.graph]
    if ga.arity != gb.arity:
        raise ValueError(f'crossover needs graphs of the same arity: {a.graph} {ga.arity} vs '
                         f'{b.graph} {gb.arity}')
    if a == b:
        raise VariationError(f'crossover of identical parents {a}')
    for _ in range(max_tries):
        graph = a.graph if rng.random() < 0.5 else b.graph
        unary = tuple(x if rng.random() < 0.5 else y for x, y in zip(a.unary, b.unary))
        binary = tuple(x if rng.random() < 0.5 else y for x, y in zip(a.binary, b.binary))
        child = Genome(graph, unary, binary)
        if child != a and child != b and is_valid(child, allow_quadratic, distinct_kv):
            return child
    raise VariationError(f'no valid child of {a} and {b} in {max_tries} tries')
