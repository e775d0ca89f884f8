"""Training-free pre-screen scores (:mod:`attnzero.search.prescreen`, ``tools/zero_cost.py``; issue
17): every score on a tiny proxy, failures as nan, and the correlation study on a small fidelity
folder (tables, plot, cached scores)."""
from __future__ import annotations

import csv
import dataclasses
import json
import math

import pytest

from attnzero.search import prescreen
from attnzero.search.config import SearchConfig
from attnzero.search.proxies import load_proxy
from attnzero.space import TRIAL_105

PROXY = 'relational?train=96&test=32'
GENOMES = [TRIAL_105.to_string(), 'i3n303:relu;-;-;-;-;sigmoid:einsum2,matmul,product',
           'i3n303:exp;-;scale;-;abs;-:einsum2,matmul,sum']


def _cfg():
    return SearchConfig(proxy=PROXY, archs=['deit'])


def test_every_score_of_one_candidate():
    sc = prescreen.zero_cost_scores('deit', 'attnzero', GENOMES[0], load_proxy(PROXY), _cfg(), batch=16,
                                    early_steps=4)
    assert set(prescreen.SCORES) <= set(sc)
    for s in prescreen.SCORES:
        assert math.isfinite(sc[s]), s
    assert sc['grad_norm'] > 0 and sc['snip'] > 0 and sc['attn_rank'] >= 1.0
    assert sc['seconds'] > 0 and sc['early_loss_seconds'] > 0


def test_a_failing_candidate_scores_nan():
    sc = prescreen.zero_cost_scores('deit', 'no_such_kernel', None, load_proxy(PROXY), _cfg(), batch=8,
                                    early_steps=2)
    assert all(math.isnan(sc[s]) for s in prescreen.SCORES)


def _fidelity_dir(path):
    path.mkdir()
    (path / 'settings.json').write_text(json.dumps(dict(config=dataclasses.asdict(_cfg()))))
    with open(path / 'stability.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['genome', 'score_1x', 'score_4x', 'seconds_1x'])
        for g, a, b in zip(GENOMES, (0.5, 0.4, 0.3), (0.6, 0.5, 0.2)):
            w.writerow([g, a, b, 3.0])
    with open(path / 'fidelity.csv', 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['attention', 'score', 'mean'])
        w.writerow(['softmax', 'objective', 0.55])
        w.writerow(['linear', 'objective', 0.45])
    return path


def test_study_writes_tables_and_reuses_its_scores(tmp_path, monkeypatch):
    fid = _fidelity_dir(tmp_path / 'fid')
    out = tmp_path / 'out'
    res = prescreen.study(str(fid), str(out), archs=('deit',), batch=8, early_steps=2)
    assert [e['score'] for e in res['table']] == list(prescreen.SCORES)
    assert [r['name'] for r in res['rows']] == GENOMES + ['softmax', 'linear']
    for e in res['table']:
        assert -1.0 <= e['tau_trained_1x'] <= 1.0 and e['n_trained_1x'] == 5 and e['n_trained_4x'] == 3
    md = (out / 'zero_cost.md').read_text()
    assert 'python tools/zero_cost.py' in md and '| attn_rank |' in md and '3.0 s for one trained' in md
    assert (out / 'zero_cost.png').stat().st_size > 0
    assert len(list(csv.DictReader(open(out / 'zero_cost.csv')))) == 5

    def no_recompute(*a, **k):
        raise AssertionError('scores were recomputed')
    monkeypatch.setattr(prescreen, 'zero_cost_scores', no_recompute)
    again = prescreen.study(str(fid), str(out), archs=('deit',), batch=8, early_steps=2)
    assert [e['tau_trained_1x'] for e in again['table']] == [e['tau_trained_1x'] for e in res['table']]


def test_cli_names_a_folder_that_is_not_a_fidelity_run(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        prescreen.main(['--fidelity', str(tmp_path), '--out', str(tmp_path / 'o')])
    assert e.value.code == 2 and 'has no settings.json' in capsys.readouterr().err
