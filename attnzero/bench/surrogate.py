"""Accuracy surrogate: gradient boosting on features of a genome
(:func:`attnzero.space.features.genome_features`): by default its operator / graph features and its
probe features (what its attention does on a fixed input; ``features='syntax'`` leaves them out).

:meth:`Surrogate.fit` holds out a fixed random ``test_frac`` of the trained genomes, fits
:class:`sklearn.ensemble.GradientBoostingRegressor` on the rest and reports the held-out Kendall tau
(:func:`scipy.stats.kendalltau`) -- whatever it is -- plus a k-fold estimate; then (``refit=True``)
refits on every trained genome for :meth:`Surrogate.predict`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence

import numpy as np

from attnzero.space import Genome, as_genome
from attnzero.space.features import FEATURE_SETS, feature_names, genome_features, regressor

from .records import budget_key

__all__ = ['Surrogate', 'fit_surrogate', 'genome_features', 'feature_names', 'DEFAULT_FEATURES',
           'cross_validate', 'compare_feature_sets']

#: the feature set of :meth:`Surrogate.fit` unless told otherwise
DEFAULT_FEATURES = 'syntax+probe'


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

    @staticmethod
    def _model(seed: int, **params):
        return regressor(seed, **params)

    @classmethod
    def fit(cls, bench, target: str = 'score', test_frac: float = 0.2, seed: int = 0,
            folds: int = 5, refit: bool = True, features: str = DEFAULT_FEATURES,
            **params) -> 'Surrogate':
        """Fit on the trained genomes of ``bench`` (a :class:`attnzero.bench.Bench`)."""
        from scipy.stats import kendalltau, spearmanr

        recs, X, y, ref = _design(bench, target, features, 10, 'the surrogate needs')
        rng = np.random.default_rng(seed)
        perm = rng.permutation(len(recs))
        n_test = max(2, int(round(test_frac * len(recs))))
        test, train = perm[:n_test], perm[n_test:]
        model = cls._model(seed, **params).fit(X[train], y[train])
        pred = model.predict(X[test])
        tau, p = kendalltau(pred, y[test])
        rho = spearmanr(pred, y[test])[0]
        cv = _fold_taus(X, y, perm, folds, seed, params) if folds and folds >= 2 else []
        if refit:
            model = cls._model(seed, **params).fit(X, y)
        return cls(target, model, float(tau), float(p), float(rho), cv, len(train), len(test),
                   test_frac, seed, dict(params), ref, [recs[i]['hash'] for i in train],
                   [recs[i]['hash'] for i in test], features)

    def predict(self, genomes: Sequence[Any]) -> np.ndarray:
        """Predicted ``target`` for genomes in any form (Genome, text, original cfg dict;
        :func:`attnzero.space.as_genome`)."""
        X = np.stack([genome_features(as_genome(g), **self.ref, features=self.features) for g in genomes])
        return self.model.predict(X)

    def summary(self) -> Dict[str, Any]:
        cv = np.array(self.cv_taus) if self.cv_taus else np.array([np.nan])
        return dict(target=self.target, model='GradientBoostingRegressor', features=self.features, tau=self.tau,
                    tau_p=self.tau_p, spearman=self.spearman, n_train=self.n_train,
                    n_test=self.n_test, cv_tau_mean=float(np.mean(cv)), cv_tau_sd=float(np.std(cv)),
                    folds=len(self.cv_taus))


def fit_surrogate(bench, **kw) -> Surrogate:
    return Surrogate.fit(bench, **kw)


def _trained(bench, target: str) -> List[Dict[str, Any]]:
    recs = [r for r in bench.records if r['status'] != 'check_failed' and r.get(target) is not None]
    recs.sort(key=lambda r: r['hash'])
    return recs


def _design(bench, target: str, features: str, min_n: int, who: str):
    """``(records, X, y, ref)`` of ``bench``'s trained genomes with a ``target``, sorted by hash
    (an order-independent split); fewer than ``min_n`` or an unknown feature set is a one-line error."""
    if features not in FEATURE_SETS:
        raise ValueError(f'unknown surrogate feature set {features!r}; known: {", ".join(FEATURE_SETS)}')
    recs = _trained(bench, target)
    if len(recs) < min_n:
        raise ValueError(f'{who} at least {min_n} trained genomes with a {target!r}, the bench has {len(recs)}')
    st = (recs[0].get('static') or {})
    ref = dict(ref_tokens=int(st.get('ref_tokens', 3136)), ref_head_dim=int(st.get('ref_head_dim', 32)))
    X = np.stack([genome_features(Genome.parse(r['genome']), **ref, features=features) for r in recs])
    y = np.array([float(r[target]) for r in recs])
    return recs, X, y, ref


def _fold_taus(X: np.ndarray, y: np.ndarray, perm: np.ndarray, folds: int, seed: int,
               params: Dict[str, Any]) -> List[float]:
    """Kendall tau of each fold of a k-fold split of ``perm`` (a model fitted on the other folds)."""
    from scipy.stats import kendalltau

    chunks = np.array_split(perm, folds)
    taus = []
    for k in range(folds):
        tr = np.concatenate([chunks[i] for i in range(folds) if i != k])
        m = regressor(seed, **params).fit(X[tr], y[tr])
        taus.append(float(kendalltau(m.predict(X[chunks[k]]), y[chunks[k]])[0]))
    return taus


def cross_validate(bench, features: str = DEFAULT_FEATURES, target: str = 'score', reps: int = 3,
                   folds: int = 5, seed: int = 0, **params) -> List[float]:
    """Kendall tau of each fold of ``reps`` repetitions of ``folds``-fold cross-validation (the
    repetition ``i`` shuffles with seed ``seed + i``) of the surrogate on ``bench``'s trained
    genomes: a steadier estimate than one split."""
    recs, X, y, _ = _design(bench, target, features, 2 * folds, f'{folds}-fold cross-validation needs')
    taus: List[float] = []
    for i in range(reps):
        taus += _fold_taus(X, y, np.random.default_rng(seed + i).permutation(len(recs)), folds, seed, params)
    return taus


def compare_feature_sets(bench, reps: int = 3, folds: int = 5, seed: int = 0,
                         min_genomes: int = 50) -> List[Dict[str, Any]]:
    """One row per fidelity level (a multi-fidelity bench's rungs and budgets with at least
    ``min_genomes`` trained genomes; a version 1 bench's one level) and feature set: the number of
    genomes and the mean and standard error of the cross-validated Kendall tau
    (:func:`cross_validate`)."""
    views = ([(f'{budget_key(lv)} ep', bench.view(lv)) for lv in list(bench.rungs) + list(bench.budgets)]
             if bench.rungs else [(f'{bench.budgets[-1]} ep' if bench.budgets else 'score', bench)])
    rows = []
    for level, view in views:
        n = len(_trained(view, 'score'))
        if n < min_genomes:
            continue
        for fs in FEATURE_SETS:
            t = np.array(cross_validate(view, fs, reps=reps, folds=folds, seed=seed))
            rows.append(dict(level=level, features=fs, n=n, folds=len(t), tau_mean=float(t.mean()),
                             tau_se=float(t.std(ddof=1) / np.sqrt(len(t))), tau_min=float(t.min()),
                             tau_max=float(t.max())))
    return rows
