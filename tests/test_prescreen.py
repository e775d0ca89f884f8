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
    from attnzero.bench.cli import zero_cost_main

    with pytest.raises(SystemExit) as e:
        zero_cost_main(['--fidelity', str(tmp_path), '--out', str(tmp_path / 'o')])
    assert e.value.code == 2 and 'has no settings.json' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:   # one source, not both
        zero_cost_main(['--fidelity', str(tmp_path), '--bench', '--out', str(tmp_path / 'o')])
    assert e.value.code == 2 and 'not allowed with' in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        zero_cost_main(['--bench', str(tmp_path / 'nothing'), '--out', str(tmp_path / 'o')])
    assert e.value.code == 2 and 'nothing' in capsys.readouterr().err


def test_bench_scores_correlated_with_the_bench(tmp_path, capsys):
    """``--bench --limit N``: N of the shipped bench's trained genomes (a seeded draw) and its zoo
    baselines, scored in the bench's proxy configuration and correlated with the bench's scores."""
    from attnzero.bench.analyze import zero_cost_rows
    from attnzero.bench.cli import zero_cost_main
    from attnzero.bench.query import load

    bench = load()
    rows, cfg, source = zero_cost_rows(bench, 4, seed=1)
    samples = [r for r in rows if r['kind'] == 'sample']
    assert len(samples) == 4 and rows[4:] and all(r['kind'] == 'reference' for r in rows[4:])
    assert [r['genome'] for r in samples] == [r['genome'] for r in zero_cost_rows(bench, 4, seed=1)[0][:4]]
    by_genome = {r['genome']: r for r in bench.records}
    assert all(by_genome[r['genome']]['score'] == r['trained_1x'] for r in samples)
    assert cfg.proxy == bench.settings['search']['proxy'] and list(cfg.archs) == bench.archs
    assert '4 of its' in source
    out = tmp_path / 'z'
    assert zero_cost_main(['--bench', '--limit', '4', '--seed', '1', '--archs', 'deit', '--batch', '8',
                           '--early-steps', '2', '--out', str(out)]) == 0
    md = (out / 'zero_cost.md').read_text()
    assert 'python tools/zero_cost.py --bench --limit 4' in md and 'Attn-Bench-101' in md
    assert '| attn_rank |' in md and 'tau vs 1x' in capsys.readouterr().out
