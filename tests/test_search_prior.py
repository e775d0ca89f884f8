"""The search's prior (``SearchConfig.prior``, issue 17 surrogate warm start): a model fitted on results
measured before the search ranks each generation; what it defers is recorded; a resumed search
makes the same decisions and refuses a changed prior."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from attnzero.search import ConfigError, Search, efficiency, preset
from attnzero.search import prior as prior_mod
from attnzero.search.runner import keep_count
from attnzero.search.state import RunDirError
from attnzero.space import Genome, sample


def _write_prior(path, n=60, seed=0):
    """``n`` random genomes, scored high on graph i3n305 and low elsewhere, half of them marked as
    coming from a search run (a bench's ``source``), with the score at ``scores:0.6667``."""
    rng = np.random.default_rng(seed)
    lines, seen = [], set()
    while len(lines) < n:
        g = sample(rng)
        t = g.to_string()
        if t in seen:
            continue
        seen.add(t)
        score = (0.8 if g.graph == 'i3n305' else 0.3) + 0.01 * rng.standard_normal()
        kind = 'random' if len(lines) % 2 == 0 else 'search'
        lines.append(dict(genome=t, scores={'0.6667': score}, source=dict(kind=kind)))
    lines.append(dict(genome=lines[0]['genome'], scores={}, source=dict(kind='random')))  # no score: skipped
    with open(path, 'w', encoding='utf-8') as f:
        f.writelines(json.dumps(x) + '\n' for x in lines)
    return lines


def test_rows_filters_and_bad_input(tmp_path):
    p = str(tmp_path / 'prior.jsonl')
    lines = _write_prior(p)
    texts, y = prior_mod.load_rows(p, 'scores:0.6667')
    assert len(texts) == 60 and y.shape == (60,)
    texts, _ = prior_mod.load_rows(p, 'scores:0.6667', 'source:kind=random')
    assert texts == [x['genome'] for x in lines[:60:2]]
    with pytest.raises(ConfigError, match='nope.jsonl'):
        prior_mod.load_rows(str(tmp_path / 'nope.jsonl'), 'score')
    with pytest.raises(ConfigError, match="at 'score'"):   # the key names no number: no usable line
        prior_mod.load_rows(p, 'score')
    with pytest.raises(ConfigError, match="'kind'"):
        prior_mod.load_rows(p, 'scores:0.6667', 'kind')
    with pytest.raises(ConfigError, match='prior_keep=0'):
        preset('tiny').replace(prior=p, prior_keep=0).validate()
    # the model learns what the file says: i3n305 above the others
    pr = prior_mod.Prior.fit(p, 'scores:0.6667')
    hi = next(x['genome'] for x in lines if Genome.parse(x['genome']).graph == 'i3n305')
    lo = next(x['genome'] for x in lines if Genome.parse(x['genome']).graph != 'i3n305')
    assert pr.predict([hi])[0] > pr.predict([lo])[0] + 0.2 and pr.n == 60 and len(pr.sha256) == 64


class _Killed(BaseException):
    pass


def _cfg(p):
    return preset('tiny').replace(generations=2, pop_size=6, seed=3, rejection=False, prior=p,
                                  prior_key='scores:0.6667', prior_keep=0.5)


def test_search_ranks_by_the_prior_records_deferrals_and_resumes(tmp_path):
    p = str(tmp_path / 'prior.jsonl')
    _write_prior(p)
    fresh = Search(_cfg(p), str(tmp_path / 'fresh'), progress=False)
    fresh.run()
    recs = fresh.state.records
    ranked = [r for r in recs.values() if 'prior' in r]
    assert ranked and fresh.state.prior['sha256'] == prior_mod.sha256_file(p)
    for gen in {r['gen'] for r in ranked}:
        rs = [r for r in ranked if r['gen'] == gen]
        kept = [r for r in rs if r['prior']['kept']]
        deferred = [r for r in rs if not r['prior']['kept']]
        assert len(kept) == keep_count(len(rs), 0.5)
        assert {r['prior']['of'] for r in rs} == {len(rs)}
        assert sorted(r['prior']['rank'] for r in rs) == list(range(1, len(rs) + 1))
        # ranked as NSGA-II ranks a population on (predicted score, cost): fronts in order, and
        # no deferred candidate dominates a kept one in those objectives
        by_rank = sorted(rs, key=lambda r: r['prior']['rank'])
        assert [r['prior']['front'] for r in by_rank] == sorted(r['prior']['front'] for r in rs)
        for d in deferred:
            for k in kept:
                assert not (d['prior']['pred'] >= k['prior']['pred'] and d['cost'] <= k['cost']
                            and (d['prior']['pred'] > k['prior']['pred'] or d['cost'] < k['cost']))
        for r in deferred:
            assert r['stage'] == 'prior' and r['reason'] == 'deferred' and r['status'] == 'rejected'
            assert 'prior: predicted score' in r['message'] and 'front' in r['message'] and r['G'] == [1.0]
            assert fresh._by_hash.get(r['hash']) != r['idx']   # no cache source
        for r in kept:
            assert r['stage'] != 'prior'
    assert any(not r['prior']['kept'] for r in ranked)

    class Dying(Search):
        def _commit(self, rec):
            super()._commit(rec)
            if rec['gen'] == 2 and sum(r['gen'] == 2 for r in self.state.records.values()) == 2:
                raise _Killed()

    killed = str(tmp_path / 'killed')
    with pytest.raises(_Killed):
        Dying(_cfg(p), killed, progress=False).run()
    resumed = Search(None, killed, resume=True, progress=False)
    resumed.run()
    key = lambda rs: {i: (r['genome'], r['status'], r['reason'], r['F'], r.get('prior'))  # noqa: E731
                      for i, r in rs.items()}
    assert key(resumed.state.records) == key(recs)
    assert resumed.state.population == fresh.state.population
    # a changed prior is refused on resume, and the run is left as it was
    with open(p, 'a', encoding='utf-8') as f:
        f.write('\n')
    before = os.path.getsize(os.path.join(killed, 'evaluations.jsonl'))
    with pytest.raises(RunDirError, match='changed since this run started'):
        Search(None, killed, resume=True, progress=False)
    assert os.path.getsize(os.path.join(killed, 'evaluations.jsonl')) == before


def test_efficiency_measures_the_prior_as_an_accelerator(tmp_path):
    p = str(tmp_path / 'prior.jsonl')
    _write_prior(p)
    acc = efficiency.prior_accelerator(p, 'scores:0.6667', 'source:kind=random', 0.25)
    v = efficiency.variants(efficiency.ACCELERATORS + (acc,))
    assert v['full']['prior'] == p and v['full']['prior_keep'] == 0.25
    assert v['full']['prior_where'] == 'source:kind=random' and v['full']['prior_key'] == 'scores:0.6667'
    default = preset('tiny')   # off: the prior fields at their defaults (the runs without a prior)
    for name in ('naive', 'no_prior'):
        assert {k: v[name][k] for k in acc.off} == {k: getattr(default, k) for k in acc.off}
    with pytest.raises(efficiency.EfficiencyError, match='--prior'):
        efficiency.run_measurement(preset('tiny').replace(prior=p), str(tmp_path / 'x'))


def test_pareto_order_keeps_the_cheap_end_of_the_front():
    # the most accurate (3) and the cheapest (1) first, then the middle of the front (0), then
    # the dominated one (2): ranking by predicted score alone would put the cheap one third
    F = {0: (-0.9, 10.0), 1: (-0.5, 1.0), 2: (-0.4, 5.0), 3: (-0.95, 12.0)}
    order, front = prior_mod.pareto_order(F)
    assert order == [1, 3, 0, 2] and front == {0: 1, 1: 1, 2: 2, 3: 1}
    assert prior_mod.pareto_order({}) == ([], {})


def test_cli_flag_sets_the_prior(tmp_path):
    from attnzero.search.cli import config_from_args, search_parser

    p = str(tmp_path / 'prior.jsonl')
    args = search_parser().parse_args(['--preset', 'tiny', '--prior', p, '--set', 'prior_key=scores:0.6667',
                                       '--set', 'prior_where=source:kind=random'])
    cfg = config_from_args(args)
    assert (cfg.prior, cfg.prior_key, cfg.prior_where, cfg.prior_keep) == (p, 'scores:0.6667',
                                                                           'source:kind=random', 0.5)


def test_prior_features_are_a_setting(tmp_path):
    p = str(tmp_path / 'prior.jsonl')
    lines = _write_prior(p)
    syntax = prior_mod.Prior.fit(p, 'scores:0.6667')
    probe = prior_mod.Prior.fit(p, 'scores:0.6667', features='syntax+probe')
    assert syntax.features == 'syntax' and prior_mod.describe(probe)['features'] == 'syntax+probe'
    texts = [x['genome'] for x in lines[:10]]
    assert not np.allclose(probe.predict(texts), syntax.predict(texts))   # two different models
    grad = prior_mod.Prior.fit(p, 'scores:0.6667', features='syntax+probe+grad')
    assert grad.model.n_features_in_ == probe.model.n_features_in_ + 7 and preset('tiny').replace(
        prior=p, prior_features='syntax+probe+grad').prior_features == 'syntax+probe+grad'
    assert preset('tiny').prior_features == 'syntax'
    with pytest.raises(ConfigError, match="prior_features='text'"):
        preset('tiny').replace(prior=p, prior_features='text')
    acc = efficiency.prior_accelerator(p, 'scores:0.6667', features='syntax+probe')
    assert acc.on['prior_features'] == 'syntax+probe' and acc.off['prior_features'] == 'syntax'
