"""The search's prior: an accuracy model fitted on results measured before the search (issue 17,
surrogate warm start), for example the genomes of a shipped Attn-Bench-101 on the same proxy.

``SearchConfig.prior`` names a JSON-lines file with one result per line: a ``genome`` (canonical
text) and a score at ``SearchConfig.prior_key`` (a ``:``-separated path into the line: ``score``,
or ``scores:0.6667`` for a multi-fidelity bench's rung score). ``SearchConfig.prior_where``
(``path=value[,path=value]``) keeps only matching lines: ``source:kind=random`` keeps a bench's
random-stream genomes and leaves out the ones it took from search runs (which may be the very
runs an efficiency measurement compares against). Lines without a genome or a finite score are
skipped.

The model is :class:`sklearn.ensemble.GradientBoostingRegressor` (seeded) on the genome features
of :func:`attnzero.space.features.genome_features` (the bench surrogate's): the genome's text, and
with ``SearchConfig.prior_features='syntax+probe'`` its probe features too. Before a generation's
candidates train, they are ranked as NSGA-II ranks a population (:func:`pareto_order`) on their
objectives with the predicted score in place of the accuracy (the cost is their own), and only the
best ``prior_keep`` fraction train; the others are recorded as ``rejected`` with reason ``deferred`` (``stage='prior'``), their
prediction and rank: never silently dropped, never trained, never a cache source.

The file's sha256 is kept in the run's state: a resumed search refuses a changed prior (its
decisions would differ). The model is refitted from the file on every session, deterministically.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from attnzero.io import sha256_file
from attnzero.space import Genome
from attnzero.space.features import genome_features, regressor

from .config import ConfigError
from .operators import pareto_order

__all__ = ['Prior', 'load_rows', 'parse_where', 'pareto_order']

#: the fewest usable lines a prior is fitted on
MIN_ROWS = 20


def _get(line: Dict[str, Any], path: str) -> Any:
    cur: Any = line
    for part in path.split(':'):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return cur


def parse_where(where: str) -> List[Tuple[str, str]]:
    """``'a:b=x,c=y'`` -> ``[('a:b', 'x'), ('c', 'y')]``; a clause without ``=`` is a one-line error."""
    out = []
    for clause in (c.strip() for c in where.split(',') if c.strip()):
        if '=' not in clause:
            raise ConfigError(f'prior_where: {clause!r} is not path=value (e.g. source:kind=random)')
        k, v = clause.split('=', 1)
        out.append((k.strip(), v.strip()))
    return out


def load_rows(path: str, key: str, where: str = '') -> Tuple[List[str], np.ndarray]:
    """``(genome texts, scores)`` of the usable lines of ``path`` (see the module docstring)."""
    conds = parse_where(where)
    texts: List[str] = []
    ys: List[float] = []
    try:
        f = open(path, encoding='utf-8')
    except OSError as e:
        raise ConfigError(f'prior: cannot read {path!r} ({e.strerror})') from None
    with f:
        for n, raw in enumerate(f, 1):
            raw = raw.strip()
            if not raw:
                continue
            try:
                line = json.loads(raw)
            except json.JSONDecodeError:
                raise ConfigError(f'prior: {path}:{n} is not a JSON line') from None
            if any(str(_get(line, k)) != v for k, v in conds):
                continue
            y = _get(line, key)
            text = line.get('genome') if isinstance(line, dict) else None
            if not text or not isinstance(y, (int, float)) or not math.isfinite(float(y)):
                continue
            texts.append(str(text))
            ys.append(float(y))
    if len(texts) < MIN_ROWS:
        raise ConfigError(f'prior: {path} has {len(texts)} usable lines (a genome and a number at '
                          f'{key!r}{" where " + where if where else ""}); at least {MIN_ROWS} are needed')
    return texts, np.asarray(ys, dtype=float)


@dataclass
class Prior:
    """A fitted prior: ``predict(texts)`` gives the predicted score of genome texts."""

    model: Any
    n: int
    sha256: str
    path: str
    features: str = 'syntax'

    @classmethod
    def fit(cls, path: str, key: str = 'score', where: str = '', seed: int = 0,
            features: str = 'syntax') -> 'Prior':
        texts, y = load_rows(path, key, where)
        model = regressor(seed).fit(np.stack([_features(t, features) for t in texts]), y)
        return cls(model, len(texts), sha256_file(path), path, features)

    def predict(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros(0)
        return self.model.predict(np.stack([_features(t, self.features) for t in texts]))


def _features(text: str, features: str) -> np.ndarray:
    return genome_features(Genome.parse(text.split('|')[-1]), features=features)


def describe(prior: Optional[Prior]) -> Dict[str, Any]:
    return {} if prior is None else dict(path=prior.path, sha256=prior.sha256, n=prior.n, features=prior.features)
