"""The search's online accuracy surrogate (``SearchConfig.surrogate``, issue 17): its decisions, the
records of what it defers, and a kill in the middle of a generation it acts on."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from attnzero.search import ConfigError, Search, SearchConfig, efficiency, preset
from attnzero.search import surrogate
from attnzero.search.evaluate import objectives
from attnzero.space import sample


def _records(n: int = 12, seed: int = 0):
    """``n`` trained records of generation 0: distinct genomes, equal cost, alternately good and bad."""
    rng = np.random.default_rng(seed)
    texts = []
    while len(texts) < n:
        t = str(sample(rng))
        if t not in texts:
            texts.append(t)
    cfg = SearchConfig(archs=['deit'])
    recs = []
    for i, t in enumerate(texts):
        acc = 0.9 if i % 2 == 0 else 0.1
        F, G = objectives(cfg, 'ok', {'deit': acc}, 1.0)
        recs.append(dict(idx=i, gen=0, genome=t, status='ok', stage='train', acc_mean=acc, cost=1.0, F=F, G=G))
    return cfg, recs


def test_a_twin_of_a_bad_result_is_deferred_and_nothing_acts_too_early():
    cfg, recs = _records()
    bad_twin = dict(recs[1], idx=100, gen=1, status='rejected', stage='', acc_mean=None, F=None, G=None)
    good_twin = dict(recs[0], idx=101, gen=1, status='rejected', stage='', acc_mean=None, F=None, G=None)
    strict = cfg.replace(surrogate=True, surrogate_z=0.0, surrogate_min=3)
    res = surrogate.decide([bad_twin, good_twin], recs, 1, strict, objectives)
    assert res['active'] and res['n_train'] == 12 and res['cpu_seconds'] >= 0
    d = res['decisions'][100]
    assert d['deferred'] and d['pred'] < 0.9
    assert recs[d['dominated_by']]['acc_mean'] == 0.9   # a good result, no more costly
    assert res['decisions'][101]['pred'] > d['pred']
    # a very wide margin defers nothing; too few results: no decision at all
    wide = surrogate.decide([bad_twin], recs, 1, strict.replace(surrogate_z=100.0), objectives)
    assert not wide['decisions'][100]['deferred']
    early = surrogate.decide([bad_twin], recs, 1, strict.replace(surrogate_min=13), objectives)
    assert not early['active'] and early['decisions'] == {}
    # only earlier generations, completed and first-hand, are learned from
    later = [dict(r, gen=1) for r in recs[:4]]
    assert surrogate.training_set(recs[4:] + later, 1) == recs[4:]
    rung = [dict(recs[0], idx=50, stage='rung0')]
    assert surrogate.training_set(rung, 1) == []


def test_rung_results_teach_the_surrogate():
    """``surrogate_rungs``: the lower rungs' results are learned from too, at their fraction of the
    budget; a run whose candidates mostly stopped at rung 0 has a surrogate that acts, where one
    that learns from full-budget results alone is still waiting for enough of them."""
    cfg, recs = _records()
    rung_recs = []
    for r in recs:   # every 3rd promoted to the full budget, the others stopped after rung 0
        r0 = dict(epochs=2 / 3, status='ok', reason='', accs={'deit': r['acc_mean'] - 0.05})
        if r['idx'] % 3 == 0:
            rung_recs.append(dict(r, rungs=[r0, dict(epochs=2, status='ok', reason='', accs={'deit': r['acc_mean']})]))
        else:
            rung_recs.append(dict(r, stage='rung0', acc_mean=r0['accs']['deit'], rungs=[r0]))
    rung_recs.append(dict(recs[0], idx=12, status='rejected', stage='train', acc_mean=None,
                          rungs=[dict(epochs=2 / 3, status='rejected', reason='below_baseline', accs={'deit': None})]))
    bad_twin = dict(recs[1], idx=100, gen=1, status='rejected', stage='', acc_mean=None, F=None, G=None)
    strict = cfg.replace(surrogate=True, surrogate_z=0.0, surrogate_min=6)
    assert strict.epochs == 2
    waiting = surrogate.decide([bad_twin], rung_recs, 1, strict, objectives)
    assert not waiting['active'] and waiting['n_train'] == 4   # the 4 full-budget results only
    on = strict.replace(surrogate_rungs=True)
    rows = surrogate.training_rows(rung_recs, 1, on)
    assert len(rows) == 12 + 4 and sorted({round(f, 9) for _, _, f in rows}) == [round(1 / 3, 9), 1.0]
    assert all(r['idx'] != 12 for r, _, _ in rows)   # a rejected rung teaches nothing
    res = surrogate.decide([bad_twin], rung_recs, 1, on, objectives)
    assert res['active'] and res['n_train'] == 12 and res['n_rows'] == 16
    d = res['decisions'][100]
    assert d['deferred'] and d['pred'] < 0.5 and np.isfinite(d['cv_rmse'])
    # without rungs in the records the rows are the full-budget results, and the fit is the plain one
    assert [(r['idx'], a, f) for r, a, f in surrogate.training_rows(recs, 1, on)] == \
        [(r['idx'], r['acc_mean'], 1.0) for r in recs]
    plain, plain_rmse = surrogate.fit(surrogate.training_rows(recs, 1, cfg), cfg)
    with_rungs, rungs_rmse = surrogate.fit(surrogate.training_rows(recs, 1, on), on)
    X = np.stack([surrogate.features(r, cfg) for r in recs])
    X_on = np.stack([surrogate.features(r, on) for r in recs])
    assert np.allclose(plain.predict(X), with_rungs.predict(X_on)) and np.isclose(plain_rmse, rungs_rmse)
    with pytest.raises(ConfigError, match="surrogate_rungs='yes'"):
        SearchConfig(surrogate_rungs='yes').validate()


def test_bad_values():
    with pytest.raises(ConfigError, match='surrogate_min=2'):
        SearchConfig(surrogate_min=2).validate()
    with pytest.raises(ConfigError, match='surrogate_z=-1'):
        SearchConfig(surrogate_z=-1).validate()
    with pytest.raises(ConfigError, match="acc_objective='mean'"):
        SearchConfig(surrogate=True, acc_objective='per_arch').validate()
    with pytest.raises(efficiency.EfficiencyError, match='--surrogate'):
        efficiency.run_measurement(SearchConfig(surrogate=True), '/nonexistent/x')


class _Killed(BaseException):
    pass


def _cfg():
    return preset('tiny').replace(generations=2, pop_size=6, seed=3, rejection=False, surrogate=True, surrogate_min=3,
                                  surrogate_z=0.0)


def test_search_records_its_decisions_and_resumes_after_a_kill(tmp_path):
    """A tiny search with the surrogate: every candidate after the first generation carries the
    surrogate's decision, a deferred one says why and is no cache source; a search killed in the
    middle of a later generation resumes to the records and population of an uninterrupted one."""
    fresh = Search(_cfg(), str(tmp_path / 'fresh'), progress=False)
    fresh.run()
    recs = fresh.state.records
    decided = [r for r in recs.values() if 'surrogate' in r]
    assert decided and all(r['gen'] >= 2 for r in decided)
    assert any(r['stage'] == 'surrogate' for r in decided)   # this seed defers some (z=0)
    for r in decided:
        d = r['surrogate']
        assert d['deferred'] == (r['stage'] == 'surrogate')
        assert d['n_train'] == len(surrogate.training_set(list(recs.values()), r['gen']))
        if d['deferred']:
            by = recs[d['dominated_by']]
            assert r['reason'] == 'deferred' and r['status'] == 'rejected' and r['G'] == [1.0]
            assert f'dominated by evaluation {by["idx"]}' in r['message']
            assert by['gen'] < r['gen'] and by['acc_mean'] > d['optimistic'] and by['cost'] <= r['cost']
            assert fresh._by_hash.get(r['hash']) != r['idx']

    class Dying(Search):
        def _commit(self, rec):
            super()._commit(rec)
            if rec['gen'] == 2 and sum(r['gen'] == 2 for r in self.state.records.values()) == 3:
                raise _Killed()

    killed = str(tmp_path / 'killed')
    with pytest.raises(_Killed):
        Dying(_cfg(), killed, progress=False).run()
    resumed = Search(None, killed, resume=True, progress=False)
    resumed.run()
    key = lambda rs: {i: (r['genome'], r['status'], r['reason'], r['F'], r.get('surrogate'))  # noqa: E731
                      for i, r in rs.items()}
    assert key(resumed.state.records) == key(recs)
    assert resumed.state.population == fresh.state.population
    with open(os.path.join(killed, 'config.json')) as f:
        assert json.load(f)['surrogate'] is True
