"""Successive-halving rungs in the search (``SearchConfig.rungs``, issue 17): a rung continues the
training of the rung below (segments equal to the one-piece training), promotion of the best
``1/eta``, non-promoted candidates kept with their rung's result, the last rung equal to a one-rung
training with no compute spent twice, and SIGKILL in the middle of a rung: no rung training lost or
repeated, the same final population."""
from __future__ import annotations

import json
import math
import os
import re

import pytest

from attnzero.search import Search, preset
from attnzero.search.config import ConfigError, SearchConfig
from conftest import kill_search_when


def _cfg(**kw):
    # no rejection protocol: on the tiny proxy it stops most candidates at epoch 1, inside rung 0,
    # and the promotions would have nothing to choose from
    return preset('tiny').replace(epochs=3, checkpoint_epoch=1, rungs=2, eta=2, seed=3, rejection=False, **kw)


def test_rung_budgets_and_bad_values():
    assert SearchConfig(epochs=9, rungs=3).rung_epochs == [1, 3, 9]
    assert SearchConfig(epochs=7, rungs=2, eta=2).rung_epochs == [3.5, 7]
    assert SearchConfig(epochs=2, rungs=2, eta=3).validate().rung_epochs == pytest.approx([2 / 3, 2])
    assert SearchConfig().rung_epochs == [SearchConfig().epochs]   # off by default
    with pytest.raises(ConfigError, match='eta=1'):
        SearchConfig(eta=1).validate()
    with pytest.raises(ConfigError, match='rungs=0'):
        SearchConfig(rungs=0).validate()


@pytest.mark.parametrize('cuts', [[0.7, 1.5], [1.0], [0.2, 0.4, 2.5]])
def test_training_in_segments_equals_one_training(cuts):
    """Pausing the training and resuming from its state (the rungs) gives exactly the one-piece
    training: accuracy, test predictions, losses; the segments' images add up to it."""
    from attnzero.search.proxies import load_proxy
    from attnzero.search.train import train_proxy

    cfg = preset('tiny').replace(epochs=3, checkpoint_epoch=1)
    data, arch = load_proxy(cfg.proxy), cfg.archs[0]
    one = train_proxy(arch, 'relu_linear', None, cfg, data, 7)
    state, parts = None, []
    for stop in cuts + [None]:
        part = train_proxy(arch, 'relu_linear', None, cfg, data, 7, stop_epochs=stop, resume=state)
        assert part['status'] == 'ok' and part.get('paused', False) == (stop is not None)
        state = part.pop('state', None)
        parts.append(part)
    last = parts[-1]
    for k in ('acc', 'ckpt_acc', 'test_pred', 'loss_first', 'loss_last', 'steps'):
        assert last[k] == one[k], k
    assert sum(p['samples'] for p in parts) == one['samples']
    assert all(0 < p['acc'] < 1 for p in parts[:-1])


def test_rungs_promote_the_best_and_keep_the_others(tmp_path):
    cfg = _cfg(generations=1, pop_size=6)
    assert cfg.rung_epochs == [1.5, 3]
    s = Search(cfg, str(tmp_path / 'rungs'), progress=False)
    s.run()
    one = Search(cfg.replace(rungs=1), str(tmp_path / 'one'), progress=False)
    one.run()
    trained = [r for r in s.state.records.values() if 'rung' in r]
    assert trained, 'no candidate went to training'
    promoted = [r for r in trained if r['rung'] == 1]
    ok0 = [r for r in trained if r['rungs'][0]['status'] == 'ok']
    assert promoted and len(ok0) > len(promoted), 'nothing promoted, or everything'
    assert len(promoted) == min(len(ok0), math.ceil(len(trained) / cfg.eta))
    mean0 = lambda r: sum(r['rungs'][0]['accs'].values()) / len(r['rungs'][0]['accs'])  # noqa: E731
    # the promoted are the best of rung 0
    assert min(mean0(r) for r in promoted) >= max(mean0(r) for r in ok0 if r['rung'] == 0)
    for r in trained:
        if r['rung'] == 0:   # deferred, not dropped: its rung-0 result, its budget, the reason
            assert r['stage'] == 'rung0' and r['fidelity_epochs'] == 1.5 and len(r['rungs']) == 1
            assert 'not promoted after rung 0' in r['message']
        else:                # the full budget: exactly the one-rung search's result
            assert r['fidelity_epochs'] == 3 and [x['epochs'] for x in r['rungs']] == [1.5, 3]
            assert r['F'] == one.state.records[r['idx']]['F']
            assert r['cpu_seconds'] == pytest.approx(sum(x['cpu_seconds'] for x in r['rungs']))
            # rung 1 continued rung 0: the images trained are those of one full-budget training
            assert r['samples'] == one.state.records[r['idx']]['samples']
            assert [x['samples'] for x in r['rungs']] == [r['samples'] // 2] * 2
    # the rung-0 results stay in the state (a resume recomputes the promotions from them)
    assert set(s.state.rungs) == {r['idx'] for r in trained}
    # the training states are removed once their generation is final
    assert not os.path.exists(os.path.join(s.run_dir, 'rungs'))  # the states are gone, and their folder


def test_rungs_at_the_default_epochs_train_and_are_counted(tmp_path):
    """2 epochs, 2 rungs, eta 2 (budgets [1, 2], the default preset's epochs): a rung's training is
    a plain 1-epoch training (its worker config must not re-check the rung budgets, which a 1-epoch
    config cannot hold), and the summary counts a candidate stopped at rung 0 as trained, not lost."""
    from attnzero.search.report import _counts

    cfg = preset('tiny').replace(epochs=2, checkpoint_epoch=1, rungs=2, eta=2, seed=3, generations=1, pop_size=6)
    assert cfg.rung_epochs == [1.0, 2]
    s = Search(cfg, str(tmp_path / 'r'), progress=False)
    s.run()
    recs = list(s.state.records.values())
    assert not [r for r in recs if r['reason'] in ('crash', 'worker_died', 'timeout')], \
        [(r['reason'], r['message']) for r in recs]
    trained = [r for r in recs if 'rung' in r]
    assert trained and any(r['stage'] == 'rung0' for r in trained)
    c = _counts(s.state)
    assert c['trained'] == len(trained) and c['lost'] == 0
    assert c['not_promoted'] == sum(r['stage'] == 'rung0' for r in trained)


def test_a_missing_training_state_is_named(tmp_path):
    from attnzero.search.state import RunDirError

    s = Search(_cfg(generations=1, pop_size=6), str(tmp_path / 'r'), progress=False)
    with pytest.raises(RunDirError, match=r'3-r0-deit\.pt: the training state of evaluation 3 after rung 0'):
        s._rung_states(3, 0)


def test_kill_in_the_middle_of_a_rung_and_resume(tmp_path):
    killed = str(tmp_path / 'killed')
    cfg_file = tmp_path / 'cfg.json'
    cfg_file.write_text(_cfg(generations=2, pop_size=6).to_json())
    before = kill_search_when(str(cfg_file), killed, lambda st: len(st.get('rungs', {})) >= 2, 200)
    had_rung0 = {int(i) for i in before['rungs']}
    # killed inside the rungs: candidates with a rung result but no final record yet
    assert had_rung0 - {r['idx'] for r in before['records']}

    resumed = Search(None, killed, resume=True, progress=False)
    resumed.run()
    log = open(os.path.join(killed, 'search.log')).read()
    session2 = log.split('session 2 in')[1]
    rerun = {int(m) for m in re.findall(r'rung 0 \([\d.]+ epochs\) idx=(\d+)', session2)} & had_rung0
    assert not rerun, f'rung-0 trainings {sorted(rerun)} were run twice'
    for i in had_rung0:   # the saved rung results are the ones used
        assert resumed.state.rungs[i][0]['per_arch'] == [
            dict(x) for x in before['rungs'][str(i)][0]['per_arch']]

    fresh = Search(SearchConfig.from_dict(json.loads(cfg_file.read_text())), str(tmp_path / 'fresh'),
                   progress=False)
    fresh.run()
    assert resumed.state.population == fresh.state.population
    assert {i: (r['F'], r.get('rung')) for i, r in resumed.state.records.items()} == \
        {i: (r['F'], r.get('rung')) for i, r in fresh.state.records.items()}


# ---- pre-screen deferral ------------------------------------------------------------------------
def test_prescreen_defers_the_lowest_scored_and_records_them(tmp_path):
    cfg = preset('tiny').replace(generations=1, pop_size=6, seed=5, prescreen='attn_rank', prescreen_keep=0.5)
    s = Search(cfg, str(tmp_path / 'p'), progress=False)
    s.run()
    scored = [r for r in s.state.records.values() if 'prescreen' in r]
    assert scored and set(s.state.prescreen) == {r['idx'] for r in scored}
    deferred = [r for r in scored if r['stage'] == 'prescreen']
    kept = [r for r in scored if r['prescreen']['kept']]
    assert len(kept) == math.ceil(0.5 * len(scored)) and len(deferred) == len(scored) - len(kept)
    assert max(r['prescreen']['rank'] for r in kept) < min(r['prescreen']['rank'] for r in deferred)
    for r in deferred:   # deferred, not dropped: reason, rank, score, the compute it cost
        assert r['status'] == 'rejected' and r['reason'] == 'deferred' and r['G'] == [1.0]
        assert 'pre-screen attn_rank: rank' in r['message'] and r['check_cpu_seconds'] > 0
        assert set(r['prescreen']['scores']) == set(cfg.archs)
    for r in kept:
        assert r['stage'] != 'prescreen' and r['check_cpu_seconds'] >= s.state.prescreen[r['idx']]['cpu_seconds']
    # a deferral is no verdict: the same genome proposed again is not answered from the cache
    assert all(r['hash'] not in s._by_hash for r in deferred)
    with pytest.raises(ConfigError, match="prescreen='bogus'"):
        SearchConfig(prescreen='bogus').validate()
    with pytest.raises(ConfigError, match='prescreen_keep=0'):
        SearchConfig(prescreen_keep=0).validate()


def test_prescreen_scores_survive_a_kill(tmp_path):
    """Killed after some candidates were scored: the resumed run scores no candidate twice and
    ends with the population of an uninterrupted run."""
    cfg = preset('tiny').replace(generations=2, pop_size=6, seed=5, prescreen='attn_rank', prescreen_keep=0.5)

    class _Killed(BaseException):
        pass

    run = str(tmp_path / 'killed')
    dying = Search(cfg, run, progress=False)
    save = dying.state.save

    def save_then_die():   # killed right after the second score is checkpointed (mid-scoring)
        save()
        if len(dying.state.prescreen) >= 2:
            raise _Killed()
    dying.state.save = save_then_die
    with pytest.raises(_Killed):
        dying.run()
    with open(os.path.join(run, 'state.json')) as f:
        before = {int(k): v for k, v in json.load(f)['prescreen'].items()}
    assert len(before) == 2
    resumed = Search(None, run, resume=True, progress=False)
    resumed.run()
    for i, v in before.items():
        assert resumed.state.prescreen[i] == v
    fresh = Search(cfg, str(tmp_path / 'fresh'), progress=False)
    fresh.run()
    assert resumed.state.population == fresh.state.population
    assert {i: r['F'] for i, r in resumed.state.records.items()} == {i: r['F'] for i, r in fresh.state.records.items()}


# ---- Pareto order in the promotions and the pre-screen (promote_by / prescreen_by) ------------
def _order_by_pareto(F):
    from attnzero.search.operators import pareto_order
    return pareto_order(F)[0]


def test_rungs_promote_by_pareto_order_of_accuracy_and_cost(tmp_path):
    """``promote_by='pareto'``: a rung promotes the first ``1/eta`` of NSGA-II's order of
    (rung accuracy, cost), which may include a cheaper, less accurate candidate that the accuracy
    order would stop; the rest of the rung protocol is unchanged."""
    cfg = _cfg(generations=1, pop_size=8, promote_by='pareto')
    s = Search(cfg, str(tmp_path / 'pareto'), progress=False)
    s.run()
    trained = [r for r in s.state.records.values() if 'rung' in r]
    ok0 = [r for r in trained if r['rungs'][0]['status'] == 'ok']
    promoted = {r['idx'] for r in trained if r['rung'] == 1}
    assert promoted and len(ok0) > len(promoted)
    n = len(ok0[0]['rungs'][0]['accs'])
    F = {r['idx']: [-sum(r['rungs'][0]['accs'].values()) / n, math.log10(r['cost'])] for r in ok0}
    expect = _order_by_pareto(F)[:len(promoted)]
    assert promoted == set(expect)
    by_acc = sorted(F, key=lambda i: (F[i][0], i))[:len(promoted)]
    assert promoted != set(by_acc), 'this seed should promote other candidates than the accuracy order'
    assert len(promoted) == min(len(ok0), math.ceil(len(trained) / cfg.eta))
    # every promoted candidate is in a front no later than any stopped one
    from attnzero.search.operators import pareto_order
    front = pareto_order(F)[1]
    assert max(front[i] for i in promoted) <= min(front[r['idx']] for r in ok0 if r['idx'] not in promoted)
    with pytest.raises(ConfigError, match="promote_by='best'"):
        SearchConfig(promote_by='best').validate()


def test_prescreen_by_pareto_order_of_score_rank_and_cost(tmp_path):
    cfg = preset('tiny').replace(generations=1, pop_size=8, seed=5, prescreen='attn_rank', prescreen_keep=0.5,
                                 prescreen_by='pareto')
    s = Search(cfg, str(tmp_path / 'p'), progress=False)
    s.run()
    scored = [r for r in s.state.records.values() if 'prescreen' in r]
    assert len(scored) >= 3
    # the mean per-architecture rank of the score (1 = best), as the pre-screen computes it
    rank = {r['idx']: 0.0 for r in scored}
    for a in cfg.archs:
        order = sorted(scored, key=lambda r: (-r['prescreen']['scores'][a], r['idx']))
        for k, r in enumerate(order):
            rank[r['idx']] += (k + 1) / len(cfg.archs)
    expect = _order_by_pareto({r['idx']: [rank[r['idx']], math.log10(r['cost'])] for r in scored})
    assert [r['idx'] for r in sorted(scored, key=lambda r: r['prescreen']['rank'])] == expect
    kept = {r['idx'] for r in scored if r['prescreen']['kept']}
    assert kept == set(expect[:math.ceil(0.5 * len(scored))])
    for r in scored:
        if r['idx'] not in kept:
            assert r['reason'] == 'deferred' and '(Pareto order with cost)' in r['message']
    with pytest.raises(ConfigError, match="prescreen_by='cost'"):
        SearchConfig(prescreen_by='cost').validate()
