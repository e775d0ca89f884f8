"""The search's online accuracy surrogate (``SearchConfig.surrogate``; issue 17, surrogate warm start).

Before a generation's candidates train, a Bayesian ridge regression (scikit-learn, standardised
features) is fitted on the run's own full-budget results of the earlier generations: the genome
features of :func:`attnzero.space.features.genome_features` (the bench surrogate's), plus the
candidate's ``log10`` cost (and ``log10`` MACs in the joint space), against its mean validation
accuracy. Its uncertainty ``std`` is the root of the sum of squares of the model's predictive
standard deviation and its cross-validated error on the training results (the predictive one alone
is over-confident when there are fewer results than features). A candidate is **deferred** when
even its optimistic prediction, mean + ``surrogate_z`` x ``std``, is dominated by a result the run
already has (no more costly and at least as accurate, better in one): it is recorded as ``rejected`` with reason ``deferred``,
stage ``surrogate``, the prediction and the result that dominates it, and it is never a cache
source. Nothing acts before ``surrogate_min`` results exist.

Why online: within a search, whose offspring are variations of the results it learns from, a
genome-feature surrogate has some signal (``docs/efficiency/surrogate/surrogate.md``); over the
fidelity run's 30 random genomes it had none (leave-one-out Kendall tau-b -0.12). Results measured
before the search on the same proxy (Attn-Bench-101 v2) are the other source: the search's prior
(:mod:`attnzero.search.prior`, ``SearchConfig.prior``) ranks candidates by a model fitted on them.

The decision for a candidate depends only on results of earlier generations, which a resumed
search has in full: a resumed search defers the same candidates.
"""
from __future__ import annotations

import math
import time
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
from pymoo.util.dominator import Dominator

from attnzero.space import Genome
from attnzero.space.features import genome_features

from .config import ConfigError, SearchConfig

__all__ = ['training_set', 'fit', 'decide', 'require_sklearn']


def require_sklearn() -> None:
    """Raise :class:`ConfigError` (one line) when scikit-learn, which the surrogate needs, is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise ConfigError('surrogate=True needs scikit-learn (pip install scikit-learn, or '
                          'pip install attnzero[bench])') from e


def _log10(v: Optional[float]) -> float:
    return math.log10(v) if v is not None and math.isfinite(v) and v > 0 else 0.0


def features(rec: Dict[str, Any], cfg: SearchConfig) -> np.ndarray:
    """The feature vector of a record (its genome, its cost)."""
    genome = Genome.parse(rec['genome'].split('|')[-1])
    extra = [_log10(rec.get('cost'))]
    if cfg.space == 'joint':
        extra.append(_log10(rec.get('macs')))
    return np.concatenate([genome_features(genome), np.asarray(extra, dtype=float)])


def training_set(records: Sequence[Dict[str, Any]], before_gen: int) -> List[Dict[str, Any]]:
    """The full-budget results of generations before ``before_gen`` (first-hand, completed: no
    cache copies, no lower successive-halving rung), in evaluation order."""
    out = [r for r in records if r['gen'] < before_gen and r['status'] == 'ok'
           and not str(r.get('stage', '')).startswith('rung') and r.get('acc_mean') is not None]
    return sorted(out, key=lambda r: r['idx'])


def _model():
    from sklearn.linear_model import BayesianRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), BayesianRidge())


#: folds of the cross-validated error (fewer results: leave-one-out)
FOLDS = 8


def fit(train: Sequence[Dict[str, Any]], cfg: SearchConfig):
    """``(model, cv_rmse)``: a ``StandardScaler -> BayesianRidge`` pipeline fitted on ``train``
    and its root-mean-square error over :data:`FOLDS` contiguous cross-validation folds."""
    X = np.stack([features(r, cfg) for r in train])
    y = np.asarray([float(r['acc_mean']) for r in train])
    folds = np.array_split(np.arange(len(y)), min(FOLDS, len(y)))
    err = []
    for te in folds:
        tr = np.setdiff1d(np.arange(len(y)), te)
        err.extend(_model().fit(X[tr], y[tr]).predict(X[te]) - y[te])
    return _model().fit(X, y), float(np.sqrt(np.mean(np.square(err))))


def decide(candidates: Sequence[Dict[str, Any]], records: Sequence[Dict[str, Any]], gen: int,
           cfg: SearchConfig, objectives) -> Dict[str, Any]:
    """Predict ``candidates`` (records not yet trained) from the results of generations ``< gen``.

    Returns ``{'active', 'n_train', 'seconds', 'cpu_seconds', 'decisions': {idx: {...}}}``; each
    decision has ``pred``, ``std``, ``optimistic`` and ``deferred`` (with ``dominated_by``: the
    index of the result that dominates the optimistic prediction). ``objectives``: the search's
    ``(cfg, status, accs, cost, macs) -> (F, G)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    train = training_set(records, gen)
    out: Dict[str, Any] = dict(active=len(train) >= cfg.surrogate_min, n_train=len(train), decisions={})
    if out['active'] and candidates:
        model, cv_rmse = fit(train, cfg)
        # one candidate at a time: a prediction must not depend on which others are pending (after
        # a resume fewer are; a batched product may round differently)
        pred = [model[-1].predict(model[:-1].transform(features(c, cfg)[None]), return_std=True)
                for c in candidates]
        mu = [float(m[0]) for m, _ in pred]
        sd = [float(np.sqrt(s[0] ** 2 + cv_rmse ** 2)) for _, s in pred]
        front = sorted((r for r in records if r['gen'] < gen and r.get('G') is not None and r['G'][0] <= 0
                        and r.get('F') is not None), key=lambda r: r['idx'])
        for c, m, s in zip(candidates, mu, sd):
            opt = float(m + cfg.surrogate_z * s)
            F, _ = objectives(cfg, 'ok', {a: opt for a in cfg.archs}, c.get('cost'), c.get('macs'))
            by = next((r['idx'] for r in front if Dominator.get_relation(r['F'], F) == 1), None)
            out['decisions'][c['idx']] = dict(pred=float(m), std=float(s), cv_rmse=cv_rmse, z=cfg.surrogate_z,
                                              optimistic=opt, n_train=len(train), deferred=by is not None,
                                              dominated_by=by)
    out['seconds'] = time.perf_counter() - t0
    out['cpu_seconds'] = time.process_time() - c0
    return out
