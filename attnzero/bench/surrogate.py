"""Accuracy surrogate: gradient boosting on features of a genome
(:func:`attnzero.space.features.genome_features`): by default its operator / graph features and its
probe features (what its attention does on a fixed input; ``features='syntax'`` leaves them out);
on a multi-fidelity bench optionally stacked on a cheaper level's model (``aux``).

:meth:`Surrogate.fit` holds out a fixed random ``test_frac`` of the trained genomes, fits
:class:`sklearn.ensemble.GradientBoostingRegressor` on the rest and reports the held-out Kendall tau
(:func:`scipy.stats.kendalltau`) -- whatever it is -- plus a k-fold estimate; then (``refit=True``)
refits on every trained genome for :meth:`Surrogate.predict`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from attnzero.space import Genome, as_genome
from attnzero.space.features import FEATURE_SETS, check_feature_set, feature_names, genome_features, regressor

from .records import budget_key, level_score, trained_with

__all__ = ['Surrogate', 'fit_surrogate', 'genome_features', 'feature_names', 'DEFAULT_FEATURES',
           'cross_validate', 'compare_feature_sets']

#: the feature set of :meth:`Surrogate.fit` unless told otherwise
DEFAULT_FEATURES = 'syntax+probe+grad'


@dataclass
class Surrogate:
    """A fitted surrogate and its honest held-out evaluation.

    Attributes:
        target: the record field predicted (``'score'``: mean final accuracy over archs/seeds).
        features: the feature set (:data:`attnzero.space.features.FEATURE_SETS`).
        tau, tau_p: held-out Kendall tau (and its p-value) on ``n_test`` genomes never seen in fitting.
        spearman: held-out Spearman rho.
        cv_taus: Kendall tau of each of the ``folds`` cross-validation folds.
        n_train, n_test: sizes of the split.
        train_hashes, test_hashes: the genomes (record ``hash``) of each side of the split, so the
            held-out figures can be recomputed (with ``refit=False`` the model is the one fitted on
            ``train_hashes`` only).
        aux: a multi-fidelity bench's cheaper level (a ``scores`` key, e.g. ``'0.6667'``) whose
            surrogate's prediction is one more feature (stacking), or ``None``.
        aux_model: that level's model, fitted on every genome it may see (see :meth:`fit`).
    """

    target: str
    model: Any
    tau: float
    tau_p: float
    spearman: float
    cv_taus: List[float]
    n_train: int
    n_test: int
    test_frac: float
    seed: int
    params: Dict[str, Any] = field(default_factory=dict)
    ref: Dict[str, int] = field(default_factory=dict)
    train_hashes: List[str] = field(default_factory=list)
    test_hashes: List[str] = field(default_factory=list)
    features: str = DEFAULT_FEATURES
    aux: Optional[str] = None
    aux_model: Any = None

    @classmethod
    def fit(cls, bench, target: str = 'score', test_frac: float = 0.2, seed: int = 0,
            folds: int = 5, refit: bool = True, features: str = DEFAULT_FEATURES,
            aux: Optional[str] = None, aux_bench=None, **params) -> 'Surrogate':
        """Fit on the trained genomes of ``bench`` (a :class:`attnzero.bench.Bench`).

        ``aux`` (a multi-fidelity bench's cheaper level, e.g. ``'0.6667'``: far more genomes reach
        it) stacks a model of that level's scores under this one: its prediction is one more
        feature. No genome's own scores ever reach its own feature, and no held-out genome's scores
        reach anything: for an evaluation the level's model is fitted on the level's genomes less the
        held-out ones, the training genomes get its out-of-fold predictions (5 folds) and the held-out
        ones the prediction of the model fitted on all of them. Each evaluation (the split and each
        cross-validation fold) fits 6 models of the level more. ``aux_bench``: where that level's
        scores are read (default ``bench``; a level's view holds only the genomes that reached it)."""
        from scipy.stats import kendalltau, spearmanr

        recs, X, y, ref = _design(bench, target, features, 10, 'the surrogate needs')
        pool = None if aux is None else _aux_pool(aux_bench if aux_bench is not None else bench, features, aux)
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(recs))
        n_test = max(2, int(round(test_frac * len(recs))))
        test, train = perm[:n_test], perm[n_test:]
        hashes = [r['hash'] for r in recs]
        Xs = X if pool is None else _stacked(X, hashes, pool, [hashes[i] for i in test], seed, params)[0]
        model = regressor(seed, **params).fit(Xs[train], y[train])
        pred = model.predict(Xs[test])
        tau, p = kendalltau(pred, y[test])
        rho = spearmanr(pred, y[test])[0]
        cv: List[float] = []
        if folds and folds >= 2:
            aux_of = None if pool is None else (
                lambda held: _stacked(X, hashes, pool, [hashes[i] for i in held], seed, params)[0])
            cv = _fold_taus(X, y, perm, folds, seed, params, aux_of)
        aux_model = None
        if refit:
            Xs, aux_model = (X, None) if pool is None else _stacked(X, hashes, pool, [], seed, params)
            model = regressor(seed, **params).fit(Xs, y)
        return cls(target, model, float(tau), float(p), float(rho), cv, len(train), len(test),
                   test_frac, seed, dict(params), ref, [recs[i]['hash'] for i in train],
                   [recs[i]['hash'] for i in test], features, aux, aux_model)

    def predict(self, genomes: Sequence[Any]) -> np.ndarray:
        """Predicted ``target`` for genomes in any form (Genome, text, original cfg dict;
        :func:`attnzero.space.as_genome`)."""
        X = np.stack([genome_features(as_genome(g), **self.ref, features=self.features) for g in genomes])
        if self.aux is not None:
            if self.aux_model is None:
                raise ValueError('this stacked surrogate was fitted with refit=False: it holds no model of '
                                 f'level {self.aux!r} to predict with')
            X = np.column_stack([X, self.aux_model.predict(X)])
        return self.model.predict(X)

    def summary(self) -> Dict[str, Any]:
        cv = np.array(self.cv_taus) if self.cv_taus else np.array([np.nan])
        return dict(target=self.target, model='GradientBoostingRegressor', features=self.features, aux=self.aux,
                    tau=self.tau,
                    tau_p=self.tau_p, spearman=self.spearman, n_train=self.n_train,
                    n_test=self.n_test, cv_tau_mean=float(np.mean(cv)), cv_tau_sd=float(np.std(cv)),
                    folds=len(self.cv_taus))


def fit_surrogate(bench, **kw) -> Surrogate:
    return Surrogate.fit(bench, **kw)


def _design(bench, target: Optional[str], features: str, min_n: int, who: str, aux: Optional[str] = None):
    """``(records, X, y, ref)`` of ``bench``'s trained genomes with a ``target`` (or, with ``aux``,
    a score at that level: ``scores[aux]``), sorted by hash (an order-independent split); fewer than
    ``min_n`` or an unknown feature set is a one-line error."""
    check_feature_set(features)
    value = (lambda r: r.get(target)) if aux is None else level_score(aux)
    recs = sorted(trained_with(bench.records, value), key=lambda r: r['hash'])
    if len(recs) < min_n:
        raise ValueError(f'{who} at least {min_n} trained genomes with a {aux or target!r} score, the bench '
                         f'has {len(recs)}')
    st = (recs[0].get('static') or {})
    ref = dict(ref_tokens=int(st.get('ref_tokens', 3136)), ref_head_dim=int(st.get('ref_head_dim', 32)))
    X = np.stack([genome_features(Genome.parse(r['genome']), **ref, features=features) for r in recs])
    y = np.array([float(value(r)) for r in recs])
    return recs, X, y, ref


#: folds of the out-of-fold predictions of a stacked surrogate's cheaper level
AUX_FOLDS = 5


def _aux_pool(bench, features: str, aux: str):
    """The design of the level ``aux`` a surrogate is stacked on (:func:`_design`)."""
    return _design(bench, None, features, 10, f'stacking on level {aux!r} needs', aux=aux)


def _stacked(X: np.ndarray, hashes: Sequence[str], pool, held_out: Sequence[str], seed: int,
             params: Dict[str, Any]) -> Tuple[np.ndarray, Any]:
    """``X`` with one more column, the cheaper level's predicted score (see :meth:`Surrogate.fit`),
    and the level's model fitted on its genomes less ``held_out``."""
    precs, PX, py, _ = pool
    held = set(held_out)
    keep = np.array([i for i, r in enumerate(precs) if r['hash'] not in held])
    full = regressor(seed, **params).fit(PX[keep], py[keep])
    oof: Dict[str, float] = {}
    chunks = np.array_split(np.random.default_rng(seed).permutation(keep), AUX_FOLDS)
    for k in range(AUX_FOLDS):
        tr = np.concatenate([chunks[i] for i in range(AUX_FOLDS) if i != k])
        pred = regressor(seed, **params).fit(PX[tr], py[tr]).predict(PX[chunks[k]])
        oof.update((precs[i]['hash'], float(v)) for i, v in zip(chunks[k], pred))
    col = full.predict(X)
    col = np.array([oof.get(h, c) if h not in held else c for h, c in zip(hashes, col)])
    return np.column_stack([X, col]), full


def _fold_taus(X: np.ndarray, y: np.ndarray, perm: np.ndarray, folds: int, seed: int,
               params: Dict[str, Any], aux_of=None) -> List[float]:
    """Kendall tau of each fold of a k-fold split of ``perm`` (a model fitted on the other folds;
    ``aux_of(held-out indices)`` gives the stacked design matrix of a fold)."""
    from scipy.stats import kendalltau

    chunks = np.array_split(perm, folds)
    taus = []
    for k in range(folds):
        tr = np.concatenate([chunks[i] for i in range(folds) if i != k])
        Xk = X if aux_of is None else aux_of(chunks[k])
        m = regressor(seed, **params).fit(Xk[tr], y[tr])
        taus.append(float(kendalltau(m.predict(Xk[chunks[k]]), y[chunks[k]])[0]))
    return taus


def cross_validate(bench, features: str = DEFAULT_FEATURES, target: str = 'score', reps: int = 3,
                   folds: int = 5, seed: int = 0, aux: Optional[str] = None, aux_bench=None,
                   **params) -> List[float]:
    """Kendall tau of each fold of ``reps`` repetitions of ``folds``-fold cross-validation (the
    repetition ``i`` shuffles with seed ``seed + i``) of the surrogate on ``bench``'s trained
    genomes: a steadier estimate than one split. ``aux``: stacked on that level's scores, read from
    ``aux_bench`` (default ``bench``; a level's view holds only the genomes that reached it), as
    :meth:`Surrogate.fit` does."""
    recs, X, y, _ = _design(bench, target, features, 2 * folds, f'{folds}-fold cross-validation needs')
    aux_of = None
    if aux is not None:
        pool = _aux_pool(aux_bench if aux_bench is not None else bench, features, aux)
        hashes = [r['hash'] for r in recs]
        aux_of = lambda held: _stacked(X, hashes, pool, [hashes[i] for i in held], seed, params)[0]  # noqa: E731
    taus: List[float] = []
    for i in range(reps):
        taus += _fold_taus(X, y, np.random.default_rng(seed + i).permutation(len(recs)), folds, seed, params,
                           aux_of)
    return taus


def compare_feature_sets(bench, reps: int = 3, folds: int = 5, seed: int = 0,
                         min_genomes: int = 50) -> List[Dict[str, Any]]:
    """One row per fidelity level (a multi-fidelity bench's rungs and budgets with at least
    ``min_genomes`` trained genomes; a version 1 bench's one level) and feature set: the number of
    genomes and the mean and standard error of the cross-validated Kendall tau
    (:func:`cross_validate`). A multi-fidelity bench's budgets get one row more: the default feature
    set stacked on the first rung (``aux``), and two sample controls at the first rung, so that a
    lower tau at a budget can be told apart from a smaller or selected sample: the rung's scores
    predicted on exactly the genomes that reached that budget, and on a random sample of the rung's
    genomes of the same size (drawn with ``seed``)."""
    views = ([(budget_key(lv), bench.view(lv)) for lv in list(bench.rungs) + list(bench.budgets)]
             if bench.rungs else [(budget_key(bench.budgets[-1]) if bench.budgets else 'score', bench)])
    rung = budget_key(bench.rungs[0]) if bench.rungs else None
    rung_view = dict(views).get(rung)
    rows = []

    def row(level, name, view, fs, aux=None):
        recs = trained_with(view.records)
        t = np.array(cross_validate(view, fs, reps=reps, folds=folds, seed=seed, aux=aux, aux_bench=bench))
        rows.append(dict(level=f'{level} ep' if level != 'score' else level, features=name, n=len(recs),
                         folds=len(t), tau_mean=float(t.mean()), tau_se=float(t.std(ddof=1) / np.sqrt(len(t))),
                         tau_min=float(t.min()), tau_max=float(t.max())))

    for level, view in views:
        trained = trained_with(view.records)
        if len(trained) < min_genomes:
            continue
        for fs in FEATURE_SETS:
            row(level, fs, view, fs)
        if rung is None or level in map(budget_key, bench.rungs):
            continue
        row(level, f'{DEFAULT_FEATURES}, stacked on {rung} ep', view, DEFAULT_FEATURES, rung)
        reached = {r['hash'] for r in trained}
        pool = [r['hash'] for r in trained_with(rung_view.records)]
        if not len(reached) < len(pool) or not reached <= set(pool):
            continue
        row(rung, f'{DEFAULT_FEATURES}, on the genomes of {level} ep', rung_view.filter(lambda r: r['hash'] in reached),
            DEFAULT_FEATURES)
        drawn = set(np.random.default_rng(seed).choice(sorted(pool), len(reached), replace=False).tolist())
        row(rung, f'{DEFAULT_FEATURES}, on a random {len(reached)} of its genomes',
            rung_view.filter(lambda r: r['hash'] in drawn), DEFAULT_FEATURES)
    return rows
