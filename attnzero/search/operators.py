"""pymoo building blocks over genomes: the problem and the variation operators.

Individuals carry one variable: the genome's canonical text (pymoo ``X`` of dtype ``object``,
shape ``(n, 1)``). The operators call the search space's own sampling, mutation and crossover
(:mod:`attnzero.space.variation`) with pymoo's ``random_state`` (a ``numpy.random.Generator``), so
the whole search is reproducible from the run seed. Duplicates are eliminated by functional
equivalence (:func:`attnzero.space.fingerprint`), not only by text (by text only without the
search's cache, ``SearchConfig.cache=False``).

In the joint space (``SearchConfig.space == 'joint'``) the variable is a
:class:`~attnzero.space.shape.JointGenome` text ``'<shape>|<genome>'``, and the ``Joint*``
operators vary it through :class:`~attnzero.space.shape.JointGenome` in the configured shape space
(the attention part in the default distribution); two joint individuals are duplicates if their
shapes are equal and their genomes compute the same function (:func:`fec_key` of a joint text).
"""
from __future__ import annotations

from functools import lru_cache
from typing import Dict, List, Sequence, Tuple

import numpy as np
from pymoo.core.crossover import Crossover
from pymoo.core.duplicate import DuplicateElimination
from pymoo.core.mutation import Mutation
from pymoo.core.problem import Problem
from pymoo.core.sampling import Sampling
from pymoo.operators.survival.rank_and_crowding.metrics import calc_crowding_distance
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from attnzero.space import (DEFAULT_DISTRIBUTION, ORIGINAL_DISTRIBUTION, Genome, VariationError,
                            crossover, fingerprint, mutate, sample)
from attnzero.space.shape import SHAPE_SPACES, JointGenome, ShapeSpace

__all__ = ['GenomeProblem', 'GenomeSampling', 'GenomeCrossover', 'GenomeMutation', 'JointSampling',
           'JointCrossover', 'JointMutation', 'FECDuplicateElimination', 'TextDuplicateElimination', 'fec_key',
           'build_algorithm', 'space_distribution', 'pareto_order']


def pareto_order(F: Dict[int, Sequence[float]]) -> Tuple[List[int], Dict[int, int]]:
    """``(indices best first, front of each index)``: candidates ordered as NSGA-II's survival orders
    them, by the non-dominated front of their (predicted) objectives ``F`` (minimised), then by
    crowding distance within a front (the extremes first), then by index. Ranking by predicted
    accuracy alone would keep only the most accurate, costliest family and lose the cheap end of the
    front (measured: ``docs/efficiency/search/prior``). Used by the prior, and by the pre-screen and
    the rungs' promotions with ``SearchConfig.prescreen_by`` / ``promote_by = 'pareto'``."""
    ids = sorted(F)
    if not ids:
        return [], {}
    A = np.asarray([list(F[i]) for i in ids], dtype=float)
    order: List[int] = []
    front_of: Dict[int, int] = {}
    for f, members in enumerate(NonDominatedSorting().do(A)):
        members = sorted(int(m) for m in members)
        cd = calc_crowding_distance(A[members]) if len(members) > 2 else np.full(len(members), np.inf)
        for m, _ in sorted(zip(members, cd), key=lambda t: (-t[1], ids[t[0]])):
            order.append(ids[m])
            front_of[ids[m]] = f + 1
    return order, front_of


def space_distribution(name: str):
    return ORIGINAL_DISTRIBUTION if name == 'original' else DEFAULT_DISTRIBUTION


@lru_cache(maxsize=65536)
def _parse(text: str):
    return Genome.parse(text)


@lru_cache(maxsize=65536)
def fec_key(text: str) -> str:
    """Functional-equivalence fingerprint of a canonical genome text (memoised); of a joint text
    (``'<shape>|<genome>'``, never a genome's: genome texts have no ``|``), the canonical shape
    text and the genome's fingerprint: the same model up to how its attention is written."""
    try:
        if '|' in text:
            j = JointGenome.parse(text)
            return f'{j.shape.to_string()}|{fingerprint(j.attention)}'
        return fingerprint(_parse(text))
    except Exception:  # noqa: BLE001 - an unparsable text is only equal to itself
        return f'text-{text}'


class GenomeProblem(Problem):
    """Objectives are computed by the runner (ask/tell); this only declares the shape."""

    def __init__(self, n_obj: int) -> None:
        super().__init__(n_var=1, n_obj=n_obj, n_ieq_constr=1, vtype=object)


class GenomeSampling(Sampling):
    """The ``seeds`` first (canonical texts), then draws from the space's distribution."""

    def __init__(self, dist, seeds: Sequence[str] = (), allow_quadratic: bool = False) -> None:
        super().__init__()
        self.dist, self.seeds, self.allow_quadratic = dist, list(seeds), allow_quadratic

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        out: List[str] = [_parse(s).to_string() for s in self.seeds[:n_samples]]
        while len(out) < n_samples:
            out.append(sample(random_state, self.dist, allow_quadratic=self.allow_quadratic).to_string())
        return np.array(out, dtype=object).reshape(-1, 1)


class GenomeCrossover(Crossover):
    """Uniform crossover of two parents (one child). Parents of different arity or identical
    parents fall back to a mutation of the first parent."""

    def __init__(self, dist, prob: float = 0.5, allow_quadratic: bool = False) -> None:
        super().__init__(n_parents=2, n_offsprings=1, prob=prob, vtype=object)
        self.dist, self.allow_quadratic = dist, allow_quadratic

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        n_matings = X.shape[1]
        Y = np.empty((1, n_matings, 1), dtype=object)
        for k in range(n_matings):
            a, b = _parse(X[0, k, 0]), _parse(X[1, k, 0])
            try:
                child = crossover(a, b, random_state, allow_quadratic=self.allow_quadratic)
            except (VariationError, ValueError):
                try:
                    child = mutate(a, random_state, self.dist, allow_quadratic=self.allow_quadratic)
                except VariationError:
                    child = a
            Y[0, k, 0] = child.to_string()
        return Y


class GenomeMutation(Mutation):
    """One mutation of the space (operator swap / insert / delete, binary swap, graph switch)."""

    def __init__(self, dist, prob: float = 0.9, allow_quadratic: bool = False) -> None:
        super().__init__(prob=prob)
        self.dist, self.allow_quadratic = dist, allow_quadratic

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        Y = np.empty_like(X)
        for i in range(len(X)):
            g = _parse(X[i, 0])
            try:
                Y[i, 0] = mutate(g, random_state, self.dist, allow_quadratic=self.allow_quadratic).to_string()
            except VariationError:
                Y[i, 0] = X[i, 0]
        return Y


class JointSampling(Sampling):
    """The ``seeds`` first (joint texts, made canonical), then a shape drawn from ``space`` with a
    genome drawn from ``dist``."""

    def __init__(self, space: ShapeSpace, dist, seeds: Sequence[str] = (), allow_quadratic: bool = False) -> None:
        super().__init__()
        self.space, self.dist, self.seeds, self.allow_quadratic = space, dist, list(seeds), allow_quadratic

    def _do(self, problem, n_samples, *args, random_state=None, **kwargs):
        out: List[str] = [JointGenome.parse(s).to_string() for s in self.seeds[:n_samples]]
        while len(out) < n_samples:
            out.append(JointGenome.sample(self.space, random_state, self.dist,
                                          allow_quadratic=self.allow_quadratic).to_string())
        return np.array(out, dtype=object).reshape(-1, 1)


class JointCrossover(Crossover):
    """Crossover of two joint parents (one child; :meth:`JointGenome.crossover`: shapes and genomes
    crossed separately). Where no child differs from both parents, a mutation of the first."""

    def __init__(self, space: ShapeSpace, dist, prob: float = 0.5, allow_quadratic: bool = False) -> None:
        super().__init__(n_parents=2, n_offsprings=1, prob=prob, vtype=object)
        self.space, self.dist, self.allow_quadratic = space, dist, allow_quadratic

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        n_matings = X.shape[1]
        Y = np.empty((1, n_matings, 1), dtype=object)
        for k in range(n_matings):
            a, b = JointGenome.parse(X[0, k, 0]), JointGenome.parse(X[1, k, 0])
            try:
                child = a.crossover(b, self.space, random_state, allow_quadratic=self.allow_quadratic)
            except (VariationError, ValueError):
                try:
                    child = a.mutate(self.space, random_state, dist=self.dist, allow_quadratic=self.allow_quadratic)
                except VariationError:
                    child = a
            Y[0, k, 0] = child.to_string()
        return Y


class JointMutation(Mutation):
    """One mutation of the shape or of the genome (:meth:`JointGenome.mutate`, even odds)."""

    def __init__(self, space: ShapeSpace, dist, prob: float = 0.9, allow_quadratic: bool = False) -> None:
        super().__init__(prob=prob)
        self.space, self.dist, self.allow_quadratic = space, dist, allow_quadratic

    def _do(self, problem, X, *args, random_state=None, **kwargs):
        Y = np.empty_like(X)
        for i in range(len(X)):
            j = JointGenome.parse(X[i, 0])
            try:
                Y[i, 0] = j.mutate(self.space, random_state, dist=self.dist,
                                   allow_quadratic=self.allow_quadratic).to_string()
            except VariationError:
                Y[i, 0] = X[i, 0]
        return Y


class FECDuplicateElimination(DuplicateElimination):
    """Two individuals are duplicates if their genomes compute the same function (joint ones: and
    their shapes are equal; :func:`fec_key`)."""

    @staticmethod
    def key(text: str) -> str:
        return fec_key(text)

    def _do(self, pop, other, is_duplicate):
        seen = set()
        if other is not None:
            seen.update(self.key(x[0]) for x in other.get('X'))
        for i, x in enumerate(pop.get('X')):
            key = self.key(x[0])
            if key in seen:
                is_duplicate[i] = True
            else:
                seen.add(key)
        return is_duplicate


class TextDuplicateElimination(FECDuplicateElimination):
    """Two individuals are duplicates only if their genome texts are equal (pymoo's own notion of
    a duplicate: equal ``X``); the search without its cache (``SearchConfig.cache=False``)."""

    @staticmethod
    def key(text: str) -> str:
        return text


def build_algorithm(cfg):
    """pymoo NSGA-II over genomes for ``cfg`` (:class:`attnzero.search.config.SearchConfig`)."""
    from pymoo.algorithms.moo.nsga2 import NSGA2  # heavy (scipy.spatial): only where a search runs

    dist = space_distribution(cfg.space)
    if cfg.space == 'joint':
        space = SHAPE_SPACES[cfg.shape_space]
        sampling = JointSampling(space, dist, cfg.init_genomes, cfg.allow_quadratic)
        cross = JointCrossover(space, dist, cfg.crossover_prob, cfg.allow_quadratic)
        mutation = JointMutation(space, dist, cfg.mutation_prob, cfg.allow_quadratic)
    else:
        sampling = GenomeSampling(dist, cfg.init_genomes, cfg.allow_quadratic)
        cross = GenomeCrossover(dist, cfg.crossover_prob, cfg.allow_quadratic)
        mutation = GenomeMutation(dist, cfg.mutation_prob, cfg.allow_quadratic)
    return NSGA2(
        pop_size=cfg.pop_size,
        n_offsprings=cfg.n_offsprings or cfg.pop_size,
        sampling=sampling,
        crossover=cross,
        mutation=mutation,
        eliminate_duplicates=FECDuplicateElimination() if cfg.cache else TextDuplicateElimination(),
    )
