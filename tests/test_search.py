"""Search: pipeline, rejection reasons, pymoo operators, outputs, CLI errors (tiny configurations)."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os

import numpy as np
import pytest

from attnzero.search import ConfigError, ProxyError, Search, SearchConfig, preset
from attnzero.space import ELU_LINEAR, SOFTMAX, TRIAL_105, Genome

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool():
    spec = importlib.util.spec_from_file_location('search_tool', os.path.join(ROOT, 'tools', 'search.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope='module')
def faulty_run(tmp_path_factory):
    """A tiny search whose initial population holds a quadratic genome, one whose training goes
    NaN and one that crashes."""
    run_dir = str(tmp_path_factory.mktemp('faulty') / 'run')
    cfg = preset('tiny').replace(
        init_genomes=[SOFTMAX.to_string(), TRIAL_105.to_string(), ELU_LINEAR.to_string()],
        fault_injection={TRIAL_105.to_string(): 'nan', ELU_LINEAR.to_string(): 'raise'})
    s = Search(cfg, run_dir, progress=False)
    summary = s.run()
    return s, summary


def test_nan_quadratic_crash_rejected_and_search_continues(faulty_run):
    s, summary = faulty_run
    by_genome = {r['genome']: r for r in s.state.records.values()}
    quad = by_genome[SOFTMAX.to_string()]
    assert (quad['status'], quad['reason'], quad['stage']) == ('rejected', 'quadratic', 'check')
    assert quad['seconds'] == 0.0 and quad['samples'] == 0  # never trained
    nan = by_genome[TRIAL_105.to_string()]
    assert (nan['status'], nan['reason'], nan['stage']) == ('rejected', 'nonfinite_loss', 'train')
    assert 0 < nan['samples'] < nan['per_arch'][0]['total_steps'] * s.cfg.batch_size  # stopped early
    crash = by_genome[ELU_LINEAR.to_string()]
    assert (crash['status'], crash['reason']) == ('rejected', 'crash')
    assert 'injected crash' in crash['message']
    # the search went on: a second generation was evaluated and the run finished
    assert s.state.done and s.state.generation == 2
    assert any(r['gen'] == 2 for r in s.state.records.values())
    for r in (quad, nan, crash):
        assert r['G'] == [1.0]  # infeasible for NSGA-II
    assert summary['counts']['reject_reasons']['quadratic'] >= 1


def test_outputs(faulty_run):
    s, summary = faulty_run
    d = s.run_dir
    for name in ('config.json', 'state.json', 'evaluations.jsonl', 'pareto.csv', 'pareto.png',
                 'best_genomes.json', 'search.log', 'summary.json', 'final_population.json'):
        assert os.path.getsize(os.path.join(d, name)) > 0, name
    lines = [json.loads(x) for x in open(os.path.join(d, 'evaluations.jsonl'))]
    assert len(lines) == len(s.state.records) == len({x['idx'] for x in lines})
    with open(os.path.join(d, 'pareto.csv')) as f:
        rows = list(csv.DictReader(f))
    best = json.load(open(os.path.join(d, 'best_genomes.json')))
    assert len(rows) == len(best)
    for b in best:
        assert b['attn'] == 'attnzero'
        assert Genome.parse(b['genome']).to_string() == b['genome']
    if best:  # the backbones accept the output as is
        from attnzero.search.archs import build_proxy_model

        build_proxy_model('deit', b['attn'], b['genome'], 16, 3)
    eff = summary['efficiency']
    assert eff['naive']['seconds'] > 0 and eff['spent']['seconds'] > 0
    assert eff['naive']['train_samples'] >= eff['spent']['train_samples'] - sum(
        b['samples'] for b in s.state.baselines.values())
    assert json.load(open(os.path.join(d, 'summary.json')))['efficiency']['speedup_samples'] > 1


def test_cache_by_hash_and_fec(tmp_path):
    """A genome seen before, and a functionally equivalent one, are answered from the cache."""
    from attnzero.search.executor import SerialExecutor
    from attnzero.space import fingerprint

    base = TRIAL_105
    # written differently, same function: a scale before a scale-invariant l2norm_last
    twin = Genome.parse('i3n303:elu;min_max_normalize;scale,l2norm_last;normalize;-;l2norm_last:'
                        'einsum2,matmul,product')
    assert twin != base and fingerprint(twin) == fingerprint(base)
    cfg = preset('tiny').replace(init_genomes=[base.to_string(), twin.to_string()], generations=1)
    s = Search(cfg, str(tmp_path / 'run'), progress=False)
    s.run()
    # pymoo's duplicate elimination (by fingerprint) already kept the twin out of the population
    genomes = [r['genome'] for r in s.state.records.values()]
    assert base.to_string() in genomes and twin.to_string() not in genomes
    # the runner's evaluation cache answers both without training
    recs = s._evaluate_generation(99, 1000, [twin.to_string(), base.to_string()], SerialExecutor())
    assert [r['status'] for r in recs] == ['cached', 'cached']
    src = next(r for r in s.state.records.values() if r['genome'] == base.to_string())
    assert recs[0]['cached_from'] == src['idx'] and 'equivalent' in recs[0]['message']
    assert recs[1]['cached_from'] == src['idx'] and 'same genome' in recs[1]['message']
    assert recs[0]['samples'] == 0 and recs[0]['F'][:-1] == src['F'][:-1]


def test_operators_valid_and_reproducible():
    from pymoo.core.population import Population

    from attnzero.search.operators import (FECDuplicateElimination, GenomeCrossover,
                                           GenomeMutation, GenomeProblem, GenomeSampling,
                                           space_distribution)
    from attnzero.space import is_valid

    dist = space_distribution('default')
    prob = GenomeProblem(2)
    X1 = GenomeSampling(dist, [TRIAL_105.to_string()]).do(prob, 6, random_state=np.random.default_rng(3)).get('X')
    X2 = GenomeSampling(dist, [TRIAL_105.to_string()]).do(prob, 6, random_state=np.random.default_rng(3)).get('X')
    assert (X1 == X2).all() and X1[0, 0] == TRIAL_105.to_string()
    for x in X1[:, 0]:
        assert is_valid(Genome.parse(x))
    rng = np.random.default_rng(0)
    M = GenomeMutation(dist, prob=1.0)._do(prob, X1, random_state=rng)
    assert all(is_valid(Genome.parse(x)) for x in M[:, 0])
    assert any(a != b for a, b in zip(M[:, 0], X1[:, 0]))
    C = GenomeCrossover(dist)._do(prob, np.stack([X1[:3], X1[3:]]), random_state=rng)
    assert C.shape == (1, 3, 1) and all(is_valid(Genome.parse(x)) for x in C[0, :, 0])
    pop = Population.new('X', np.array([[TRIAL_105.to_string()], [TRIAL_105.to_string()], [X1[1, 0]]], dtype=object))
    kept = FECDuplicateElimination().do(pop)
    assert len(kept) == 2


def test_config_errors_name_the_value():
    with pytest.raises(ConfigError, match='bogus-genome'):
        SearchConfig(init_genomes=['bogus-genome']).validate()
    with pytest.raises(ProxyError, match='nosuchproxy'):
        SearchConfig(proxy='nosuchproxy').validate()
    with pytest.raises(ConfigError, match='vit_huge'):
        SearchConfig(archs=['deit', 'vit_huge']).validate()
    with pytest.raises(ConfigError, match='colour'):
        SearchConfig.from_dict({'colour': 'red'})


def test_cli_bad_inputs(tmp_path, capsys):
    tool = _tool()
    assert tool.main(['--init-genome', 'i3n303:nope;;:x', '--run-dir', str(tmp_path / 'a'), '--no-progress']) == 2
    assert 'i3n303:nope;;:x' in capsys.readouterr().err
    assert tool.main(['--proxy', 'imagenet22k', '--run-dir', str(tmp_path / 'b')]) == 2
    assert 'imagenet22k' in capsys.readouterr().err
    assert tool.main(['--proxy', 'cifar10:' + str(tmp_path / 'missing'), '--run-dir', str(tmp_path / 'c')]) == 2
    assert 'missing' in capsys.readouterr().err
    assert tool.main(['--resume', str(tmp_path / 'no_such_run')]) == 2
    assert 'no_such_run' in capsys.readouterr().err
    (tmp_path / 'notrun').mkdir()
    (tmp_path / 'notrun' / 'data.txt').write_text('precious')
    assert tool.main(['--resume', str(tmp_path / 'notrun')]) == 2
    assert 'not a search run directory' in capsys.readouterr().err
    # a non-empty directory is never reused for a new run (nothing is overwritten)
    assert tool.main(['--preset', 'tiny', '--run-dir', str(tmp_path / 'notrun')]) == 2
    assert 'not empty' in capsys.readouterr().err
    assert (tmp_path / 'notrun' / 'data.txt').read_text() == 'precious'
    assert tool.main(['--preset', 'huge']) == 2
    assert 'huge' in capsys.readouterr().err


def test_objectives_and_costs():
    from attnzero.search.evaluate import genome_cost, objectives

    cfg = preset('default').replace(archs=['deit', 'pvt'])
    F, G = objectives(cfg, 'ok', {'deit': 0.9, 'pvt': 0.5}, 100.0)
    assert F == pytest.approx([-0.7, 2.0]) and G == [0.0]
    per = cfg.replace(acc_objective='per_arch')
    assert per.n_objectives == 3 and per.objective_names == ['neg_acc_deit', 'neg_acc_pvt', 'cost_flops']
    F, G = objectives(per, 'rejected', {}, 100.0)
    assert F == pytest.approx([0.0, 0.0, 2.0]) and G == [1.0]
    flops = genome_cost(TRIAL_105, cfg)
    assert flops == pytest.approx(TRIAL_105.complexity().flops(3136, 32) / 1e6)
    ms = genome_cost(TRIAL_105, cfg.replace(cost='latency', cost_tokens=256))
    assert ms > 0


@pytest.mark.parametrize('arch', ['pvt_v2', 'swin', 'cswin'])
def test_other_proxy_archs_train(arch):
    """Swin / CSwin / PVT v2 proxies (used with --archs) build with a genome and train."""
    from attnzero.search import load_proxy
    from attnzero.search.train import train_proxy

    cfg = preset('tiny').replace(archs=[arch], checkpoint_epoch=0)
    r = train_proxy(arch, 'attnzero', TRIAL_105.to_string(), cfg, load_proxy(cfg.proxy), seed=0,
                    reject=False)
    assert r['status'] == 'ok', r
    assert 0.0 <= r['acc'] <= 1.0 and r['samples'] == 192


def test_search_selects_on_validation_and_reads_test_labels_only_in_the_final_report(tmp_path, monkeypatch):
    """Every test-label read happens after the last evaluation, from the final report, and only
    for the Pareto front; the objective of every evaluation is its validation accuracy."""
    from attnzero.search import report
    from attnzero.search.proxies import ProxyData

    phase = {'final': False, 'reads': 0}
    real_test_accuracy = ProxyData.test_accuracy
    real_add = report.add_test_scores

    def guarded(self, predictions):
        if not phase['final']:
            raise AssertionError('a test label was read before the final report')
        phase['reads'] += 1
        return real_test_accuracy(self, predictions)

    def final(cfg, front):
        phase['final'] = True
        return real_add(cfg, front)

    monkeypatch.setattr(ProxyData, 'test_accuracy', guarded)
    monkeypatch.setattr(report, 'add_test_scores', final)
    # no loss check: every candidate that passes the program check completes, so the front is not empty
    cfg = preset('tiny').replace(init_genomes=[TRIAL_105.to_string()], loss_check_frac=1.0)
    s = Search(cfg, str(tmp_path / 'run'), progress=False)
    summary = s.run()
    front = summary['pareto']
    assert front and phase['reads'] == len(front) * len(cfg.archs)
    for p in front:
        assert p['test_acc_mean'] is not None and 0.0 <= p['test_acc_mean'] <= 1.0
    for r in s.state.records.values():
        if r['status'] == 'ok':
            assert r['F'][0] == pytest.approx(-r['acc_mean'])
            assert all(pa['acc'] == r['accs'][pa['arch']] and pa['test_pred'] for pa in r['per_arch'])
    rows = list(csv.DictReader(open(os.path.join(s.run_dir, 'pareto.csv'))))
    assert rows and all(0.0 <= float(row['test_acc_mean']) <= 1.0 for row in rows)


def test_unknown_flops_are_recorded_not_estimated(monkeypatch):
    """A FLOP count that fails is recorded as unknown (None), never replaced by an estimate."""
    from attnzero.search import archs, load_proxy
    from attnzero.search.train import train_proxy

    def broken(model, x):
        raise RuntimeError('no FLOP rule for this op')

    monkeypatch.setattr(archs, 'count_flops', broken)
    cfg = preset('tiny').replace(archs=['deit'], checkpoint_epoch=0)
    r = train_proxy('deit', 'attnzero', TRIAL_105.to_string(), cfg, load_proxy(cfg.proxy), seed=0,
                    reject=False)
    assert r['status'] == 'ok' and r['samples'] > 0          # the evaluation itself is unaffected
    assert r['flops_per_image'] is None and r['gflops'] is None


def test_efficiency_leaves_out_and_flags_unknown_flops():
    from attnzero.search import report
    from attnzero.search.state import RunState

    cfg = preset('tiny')  # archs deit, pvt

    def arch(name, gflops):
        return dict(arch=name, status='ok', seconds=1.0, gflops=gflops, samples=10)

    st = RunState('unused')
    st.records = {0: dict(status='ok', seconds=2.0, gflops=6.0, samples=20,
                          per_arch=[arch('deit', 2.0), arch('pvt', 4.0)]),
                  1: dict(status='ok', seconds=2.0, gflops=None, samples=20,
                          per_arch=[arch('deit', None), arch('pvt', 4.0)])}
    st.baselines = {'deit': dict(status='ok', seconds=1.0, gflops=2.0, samples=10),
                    'pvt': dict(status='ok', seconds=1.0, gflops=4.0, samples=10)}
    e = report.efficiency(cfg, st)
    assert e['naive']['full_budget_gflops_per_arch'] == {'deit': 2.0, 'pvt': 4.0}  # known ones only
    assert e['naive']['gflops_unknown'] == 1 and e['spent']['gflops_unknown'] == 1
    assert e['spent']['gflops'] == 12.0                        # 6 (record 0) + 6 (baselines)
    assert math.isnan(e['speedup_gflops'])                     # the spent total is incomplete
    assert e['speedup_samples'] == pytest.approx(2 * 20 / 60)  # unaffected
    st.records[1].update(gflops=6.0, per_arch=[arch('deit', 2.0), arch('pvt', 4.0)])
    e = report.efficiency(cfg, st)
    assert e['spent']['gflops_unknown'] == 0
    assert e['speedup_gflops'] == pytest.approx(2 * 6.0 / 18.0)
