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

With ``SearchConfig.surrogate_rungs`` it also learns from the lower successive-halving rungs'
results (:func:`training_rows`), with the fraction of the full budget as one more feature, and
predicts at the full budget; its cross-validated error is then measured on the held-out genomes'
full-budget results. Measured on the default proxy it still deferred nothing
(``docs/efficiency/search/selection/README.md``).

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
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pymoo.util.dominator import Dominator

from attnzero.space import Genome
from attnzero.space.features import genome_features

from .config import ConfigError, SearchConfig

__all__ = ['training_set', 'training_rows', 'fit', 'decide', 'require_sklearn']


def require_sklearn() -> None:
    """Raise :class:`ConfigError` (one line) when scikit-learn, which the surrogate needs, is missing."""
    try:
        import sklearn  # noqa: F401
    except ImportError as e:
        raise ConfigError('surrogate=True needs scikit-learn (pip install scikit-learn, or '
                          'pip install attnzero[bench])') from e


def _log10(v: Optional[float]) -> float:
    return math.log10(v) if v is not None and math.isfinite(v) and v > 0 else 0.0


def features(rec: Dict[str, Any], cfg: SearchConfig, fidelity: float = 1.0) -> np.ndarray:
    """The feature vector of a record (its genome, its cost; with ``cfg.surrogate_rungs`` also the
    training budget of the result, as a fraction of the full budget: ``fidelity``)."""
    genome = Genome.parse(rec['genome'].split('|')[-1])
    extra = [_log10(rec.get('cost'))]
    if cfg.space == 'joint':
        extra.append(_log10(rec.get('macs')))
    if cfg.surrogate_rungs:
        extra.append(float(fidelity))
    return np.concatenate([genome_features(genome), np.asarray(extra, dtype=float)])


def training_set(records: Sequence[Dict[str, Any]], before_gen: int) -> List[Dict[str, Any]]:
    """The full-budget results of generations before ``before_gen`` (first-hand, completed: no
    cache copies, no lower successive-halving rung), in evaluation order."""
    out = [r for r in records if r['gen'] < before_gen and r['status'] == 'ok'
           and not str(r.get('stage', '')).startswith('rung') and r.get('acc_mean') is not None]
    return sorted(out, key=lambda r: r['idx'])


def _mean(accs: Dict[str, Any], cfg: SearchConfig) -> Optional[float]:
    vals = [accs.get(a) for a in cfg.archs]
    return None if any(v is None for v in vals) else float(sum(vals) / len(vals))


def training_rows(records: Sequence[Dict[str, Any]], before_gen: int, cfg: SearchConfig
                  ) -> List[Tuple[Dict[str, Any], float, float]]:
    """``(record, mean accuracy, fidelity)`` rows the surrogate learns from, in evaluation order.

    Without ``cfg.surrogate_rungs``: the full-budget results of :func:`training_set` (fidelity 1).
    With it, also every successive-halving rung a first-hand record of an earlier generation
    completed, at its fraction of the full budget (``epochs / cfg.epochs``): a candidate stopped at
    a lower rung, or rejected by the protocol in a later rung, still says how its genome trained
    that far. With the rungs on, those are most of a run's trainings (the full-budget ones alone
    were 5-11 per efficiency run)."""
    if not cfg.surrogate_rungs:
        return [(r, float(r['acc_mean']), 1.0) for r in training_set(records, before_gen)]
    rows = []
    for r in sorted(records, key=lambda r: r['idx']):
        if r['gen'] >= before_gen or r['status'] == 'cached' or r.get('lost'):
            continue
        if r.get('rungs'):
            for x in r['rungs']:
                acc = _mean(x.get('accs') or {}, cfg) if x.get('status') == 'ok' else None
                if acc is not None and x.get('epochs'):
                    rows.append((r, acc, float(x['epochs']) / cfg.epochs))
        elif r['status'] == 'ok' and r.get('acc_mean') is not None \
                and not str(r.get('stage', '')).startswith('rung'):
            rows.append((r, float(r['acc_mean']), 1.0))
    return rows


def _model():
    from sklearn.linear_model import BayesianRidge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), BayesianRidge())


#: folds of the cross-validated error (fewer results: leave-one-out)
FOLDS = 8


def fit(rows: Sequence[Tuple[Dict[str, Any], float, float]], cfg: SearchConfig):
    """``(model, cv_rmse)``: a ``StandardScaler -> BayesianRidge`` pipeline fitted on ``rows``
    (:func:`training_rows`) and its root-mean-square error over :data:`FOLDS` contiguous
    cross-validation folds of the records (the rungs of one record stay in one fold), on the
    full-budget rows where a fold has any: the error of the predictions the search makes."""
    X = np.stack([features(r, cfg, f) for r, _, f in rows])
    y = np.asarray([acc for _, acc, _ in rows])
    full = np.asarray([f == 1.0 for _, _, f in rows])
    ids = [r['idx'] for r, _, _ in rows]
    groups = list(dict.fromkeys(ids))
    err = []
    for fold in np.array_split(np.arange(len(groups)), min(FOLDS, len(groups))):
        held = {groups[g] for g in fold}
        te = np.asarray([i in held for i in ids])
        if te.all():   # one record only: nothing to fit on
            continue
        scored = te & full if (te & full).any() else te
        err.extend(_model().fit(X[~te], y[~te]).predict(X[scored]) - y[scored])
    return _model().fit(X, y), float(np.sqrt(np.mean(np.square(err)))) if err else float('inf')


def decide(candidates: Sequence[Dict[str, Any]], records: Sequence[Dict[str, Any]], gen: int,
           cfg: SearchConfig, objectives) -> Dict[str, Any]:
    """Predict ``candidates`` (records not yet trained) from the results of generations ``< gen``.

    Returns ``{'active', 'n_train', 'seconds', 'cpu_seconds', 'decisions': {idx: {...}}}``; each
    decision has ``pred``, ``std``, ``optimistic`` and ``deferred`` (with ``dominated_by``: the
    index of the result that dominates the optimistic prediction). ``objectives``: the search's
    ``(cfg, status, accs, cost, macs) -> (F, G)``."""
    t0, c0 = time.perf_counter(), time.process_time()
    rows = training_rows(records, gen, cfg)
    n_train = len({r['idx'] for r, _, _ in rows})   # genomes learned from (a record's rungs: one)
    out: Dict[str, Any] = dict(active=n_train >= cfg.surrogate_min, n_train=n_train, decisions={})
    if cfg.surrogate_rungs:
        out['n_rows'] = len(rows)
    if out['active'] and candidates:
        model, cv_rmse = fit(rows, cfg)
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
                                              optimistic=opt, n_train=n_train, deferred=by is not None,
                                              dominated_by=by)
    out['seconds'] = time.perf_counter() - t0
    out['cpu_seconds'] = time.process_time() - c0
    return out
