"""Search efficiency (issue 17): the accelerator switches, the hypervolume-vs-compute measurement,
its resume and its command line (tiny configurations)."""
from __future__ import annotations

import csv
import importlib.util
import json
import math
import os
import shutil

import numpy as np
import pytest

from attnzero.search import ConfigError, Search, SearchConfig, efficiency, preset
from attnzero.search.evaluate import precheck
from attnzero.search.executor import SerialExecutor
from attnzero.search.state import RunState, atomic_write_json
from attnzero.space import SOFTMAX, TRIAL_105, Genome, fingerprint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# TRIAL_105 written differently: the same function (see test_search.test_cache_by_hash_and_fec)
TWIN = 'i3n303:elu;min_max_normalize;scale,l2norm_last;normalize;-;l2norm_last:einsum2,matmul,product'


def _tool():
    spec = importlib.util.spec_from_file_location('search_efficiency_tool',
                                                  os.path.join(ROOT, 'tools', 'search_efficiency.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Killed(BaseException):
    """Stands for a kill in the middle of a search."""


@pytest.fixture(scope='module')
def measured(tmp_path_factory):
    """The CLI on ``tiny`` with one seed, killed after two evaluations of its third search, then
    run again with the same command (which finishes it)."""
    out = str(tmp_path_factory.mktemp('eff') / 'out')
    argv = ['--preset', 'tiny', '--seeds', '1', '--out', out, '--no-progress']
    tool = _tool()
    victim = efficiency.variants()
    victim = list(victim)[2]

    class Dying(Search):
        def _commit(self, rec):
            super()._commit(rec)
            if self.run_dir.endswith(os.sep + victim) and len(self.state.records) >= 2:
                raise _Killed()

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(efficiency, 'Search', Dying)
        with pytest.raises(_Killed):
            tool.main(argv)
    before = {name: RunState.load(os.path.join(out, 'seed-0', name)) for name in os.listdir(os.path.join(out, 'seed-0'))}
    assert tool.main(argv) == 0
    return dict(out=out, argv=argv, victim=victim, before=before)


def _state(out, name, seed=0):
    return RunState.load(os.path.join(out, f'seed-{seed}', name))


def _cfg(out, name, seed=0):
    with open(os.path.join(out, f'seed-{seed}', name, 'config.json')) as f:
        return SearchConfig.from_dict(json.load(f))


# ---- the switches ------------------------------------------------------------------------------
def test_config_switches_default_on_validated_and_saved():
    cfg = SearchConfig()
    assert (cfg.program_check, cfg.cache, cfg.rejection) == (True, True, True)
    assert {'program_check', 'cache', 'rejection'} <= set(json.loads(cfg.to_json()))
    with pytest.raises(ConfigError, match="cache='no'"):
        SearchConfig(cache='no').validate()
    with pytest.raises(ConfigError, match='rejection=1'):
        SearchConfig(rejection=1).validate()
    naive = efficiency.variant_config(preset('tiny'), 'naive', seed=5)
    assert (naive.program_check, naive.cache, naive.rejection, naive.seed) == (False, False, False, 5)
    ablation = efficiency.variant_config(preset('tiny'), 'no_cache', seed=0)
    assert (ablation.program_check, ablation.cache, ablation.rejection) == (True, False, True)


def test_naive_run_trains_every_candidate_for_the_full_budget(measured):
    out = measured['out']
    naive, full = _state(out, 'naive'), _state(out, 'full')
    cfg = _cfg(out, 'naive')
    budget = 192 * len(cfg.archs)  # tiny: 192 training images per architecture, 1 epoch
    assert naive.records and not naive.baselines  # no baselines: only the protocol needs them
    for r in naive.records.values():
        assert r['stage'] == 'train' and r['status'] != 'cached', r
        assert r['reason'] not in efficiency.PROTOCOL_REASONS, r
        if r['reason'] != 'crash':
            assert r['samples'] == budget, r
        assert all(pa['ckpt_acc'] is None for pa in r['per_arch'])  # no checkpoint evaluation
    # some of what it trained is what the full search's checks reject: those cost it compute and
    # are left out of its hypervolume
    full_cfg = cfg.replace(program_check=True)
    failing = [r for r in naive.records.values() if not precheck(r['genome'], full_cfg)['ok']]
    assert failing and all(r['samples'] > 0 for r in failing)
    # the same configuration with the accelerators on does use them
    c = efficiency._counts(full)
    assert c['check'] > 0 and c['protocol'] > 0 and full.baselines


def test_program_check_off_passes_what_the_check_rejects():
    cfg = preset('tiny')
    quad = SOFTMAX.to_string()
    pre_on = precheck(quad, cfg)
    pre_off = precheck(quad, cfg.replace(program_check=False))
    assert (pre_on['ok'], pre_on['reason']) == (False, 'quadratic')
    assert pre_off['ok'] and pre_off['cost'] > 0 and pre_off['cpu_seconds'] >= 0
    assert pre_off['hash'] == pre_on['hash']  # same training seeds in both searches
    bad = precheck('not a genome', cfg.replace(program_check=False))
    assert not bad['ok'] and bad['reason'] == 'invalid'  # nothing to train


def test_cache_off_trains_duplicates_again(measured, tmp_path):
    genomes = [TRIAL_105.to_string(), TRIAL_105.to_string(), TWIN]
    assert fingerprint(Genome.parse(TWIN)) == fingerprint(TRIAL_105)
    got = {}
    for name in ('naive', 'full'):
        d = str(tmp_path / name)
        shutil.copytree(os.path.join(measured['out'], 'seed-0', name), d)
        s = Search(None, d, resume=True, progress=False)
        s.run()  # finished: replays only
        got[name] = s._evaluate_generation(99, 1000, genomes, SerialExecutor())
    assert [r['status'] for r in got['full']][1:] == ['cached', 'cached']
    for r in got['naive']:
        assert r['stage'] == 'train' and r['samples'] > 0 and r['cached_from'] is None
    # trained again, with the same seed: the same result
    assert got['naive'][0]['F'] == got['naive'][1]['F']


def test_nsga2_duplicate_elimination_by_function_or_text():
    from pymoo.core.population import Population

    from attnzero.search.operators import (FECDuplicateElimination, TextDuplicateElimination,
                                           build_algorithm)

    X = np.array([[TRIAL_105.to_string()], [TWIN], [TRIAL_105.to_string()]], dtype=object)
    assert len(FECDuplicateElimination().do(Population.new('X', X))) == 1
    assert len(TextDuplicateElimination().do(Population.new('X', X))) == 2
    assert isinstance(build_algorithm(preset('tiny')).eliminate_duplicates, FECDuplicateElimination)
    assert isinstance(build_algorithm(preset('tiny').replace(cache=False)).eliminate_duplicates,
                      TextDuplicateElimination)


def test_resume_of_a_run_written_before_the_switches(measured, tmp_path):
    d = str(tmp_path / 'old')
    shutil.copytree(os.path.join(measured['out'], 'seed-0', 'full'), d)
    path = os.path.join(d, 'config.json')
    old = json.load(open(path))
    for k in ('program_check', 'cache', 'rejection'):
        del old[k]
    atomic_write_json(path, old)
    s = Search(None, d, resume=True, progress=False)
    assert (s.cfg.program_check, s.cfg.cache, s.cfg.rejection) == (True, True, True)
    n = len(s.state.records)
    s.run()
    assert len(s.state.records) == n and s.state.done
    with pytest.raises(ConfigError, match='cannot change'):
        Search(None, d, resume=True, progress=False, overrides={'cache': False})


def test_older_bench_and_fidelity_folders_keep_matching():
    from attnzero.bench.evaluate import BenchSettings
    from attnzero.search.fidelity import _trained_fields

    new = SearchConfig().to_dict()
    old = {k: v for k, v in new.items() if k not in ('program_check', 'cache', 'rejection')}
    assert BenchSettings(search=new).id == BenchSettings(search=old).id
    assert BenchSettings(search=dict(new, rejection=False)).id != BenchSettings(search=old).id
    assert _trained_fields(old) == _trained_fields(new)
    assert _trained_fields(dict(new, rejection=False)) != _trained_fields(old)


# ---- hypervolume and ratios on synthetic records -----------------------------------------------
def _rec(idx, F, ok=True, cpu=1.0, gflops=2.0, genome=None, check=0.0):
    return dict(idx=idx, F=list(F), G=[0.0 if ok else 1.0], status='ok' if ok else 'rejected',
                stage='train', reason='' if ok else 'loss_not_decreasing', seconds=cpu, check_seconds=check,
                cpu_seconds=cpu, check_cpu_seconds=check, gflops=gflops, samples=1, per_arch=[],
                genome=genome or TRIAL_105.to_string())


def test_hypervolume_matches_a_hand_computation_and_never_decreases():
    cfg = preset('tiny')  # 2 objectives
    recs = [_rec(0, (0.5, 0.5)), _rec(1, (0.2, 0.8), check=0.5), _rec(2, (0.0, 0.0), ok=False),
            _rec(3, (0.6, 0.6), gflops=None), _rec(4, (0.8, 0.1)), _rec(5, (0.1, 0.1), genome='x')]
    baselines = {'deit': dict(cpu_seconds=0.25, seconds=9.0, gflops=1.0),
                 'pvt': dict(cpu_seconds=0.25, seconds=9.0, gflops=1.0)}
    c = efficiency.curve(list(reversed(recs)), baselines, cfg, lambda r: r['genome'] != 'x',
                         lambda F: F)
    # reference point 1.1: 0.6^2; + 0.9 x 0.3 - 0.6 x 0.3; infeasible, dominated: same;
    # + 0.3 x 1.0 - 0.3 x 0.6; an inadmissible genome: same
    assert c['hv'] == pytest.approx([0.36, 0.45, 0.45, 0.45, 0.57, 0.57])
    assert all(b >= a for a, b in zip(c['hv'], c['hv'][1:]))
    assert c['idx'] == [0, 1, 2, 3, 4, 5] and c['excluded'] == 1 and c['points'] == 4
    assert c['offset_cpu_s'] == 0.5  # CPU time of the baselines, not their wall seconds
    assert c['cpu_s'] == pytest.approx([1.5, 3.0, 4.0, 5.0, 6.0, 7.0])  # incl. check seconds
    assert c['gflops'][:3] == pytest.approx([4.0, 6.0, 8.0])
    assert all(math.isnan(g) for g in c['gflops'][3:])  # unknown from there on, never estimated
    # without the rejection protocol no baseline is charged
    c2 = efficiency.curve(recs, baselines, cfg.replace(rejection=False), lambda r: True, lambda F: F)
    assert c2['offset_cpu_s'] == 0.0 and c2['cpu_s'][0] == 1.0
    norm, box = efficiency.hv_normaliser(np.array([[-0.8, 1.0], [-0.4, 3.0]]))
    assert norm(np.array([[-0.8, 3.0], [-0.6, 2.0]])) == pytest.approx(np.array([[0.0, 1.0], [0.5, 0.5]]))
    assert box == dict(ideal=[-0.8, 1.0], nadir=[-0.4, 3.0])


def test_reach_and_median_ratio():
    c = dict(idx=[0, 1, 2], hv=[0.1, 0.5, 0.7], cpu_s=[1.0, 2.0, 3.0])
    assert efficiency.reach(c, 0.5) == (1, 2.0)
    assert efficiency.reach(c, 0.5 + 1e-12) == (1, 2.0)  # rounding of the same front
    assert efficiency.reach(c, 0.8) is None
    assert efficiency.median_ratio([2.0, None, 3.0]) == (2.0, '2.00x')
    assert efficiency.median_ratio([1.0, 2.0, 3.0, 4.0])[0] == 2.5
    m, text = efficiency.median_ratio([None, None, 3.0])
    assert m is None and text == 'not reached'
    assert efficiency.median_ratio([None, 1.0])[0] is None


def _write_run(d, cfg, records, baselines=None):
    os.makedirs(d)
    atomic_write_json(os.path.join(d, 'config.json'), cfg.to_dict())
    st = RunState(d)
    st.records = {r['idx']: r for r in records}
    st.baselines = baselines or {}
    st.done = True
    st.save()


def test_compute_to_reach_ratio_on_synthetic_runs(tmp_path):
    base = preset('tiny')
    out = str(tmp_path / 'm')
    seed_dir = os.path.join(out, 'seed-0')
    # union of the points: ideal (0, 0), nadir (1, 1): the normalisation is the identity
    _write_run(os.path.join(seed_dir, 'naive'), efficiency.variant_config(base, 'naive', 0),
               [_rec(0, (1, 0)), _rec(1, (0.5, 0.5)), _rec(2, (0, 0), ok=False), _rec(3, (0, 1)),
                _rec(4, (0.6, 0.6))])
    half = dict(cpu_seconds=0.25, seconds=0.25, gflops=0.5, status='ok', acc=0.5, samples=1)
    _write_run(os.path.join(seed_dir, 'full'), efficiency.variant_config(base, 'full', 0),
               [_rec(0, (0.5, 0.5), cpu=0.5, gflops=1.0), _rec(1, (1, 0), cpu=0.5, gflops=1.0),
                _rec(2, (0, 1), cpu=0.5, gflops=1.0)], baselines={'deit': half, 'pvt': half})
    _write_run(os.path.join(seed_dir, 'no_cache'), efficiency.variant_config(base, 'no_cache', 0),
               [_rec(0, (0.5, 0.5))], baselines={'deit': half, 'pvt': half})
    _write_run(os.path.join(seed_dir, 'no_rejection'), efficiency.variant_config(base, 'no_rejection', 0),
               [_rec(0, (0, 1), gflops=None), _rec(1, (1, 0)), _rec(2, (0.5, 0.5))])
    res = efficiency.analyse(out)
    s = res['seeds'][0]
    assert s['target_hv'] == pytest.approx(0.46)  # 0.11 + 0.30 + 0.05
    naive, full = s['runs']['naive'], s['runs']['full']
    assert naive['curve']['hv'] == pytest.approx([0.11, 0.41, 0.41, 0.46, 0.46])
    rc = full['reach']['cpu_s']
    assert (rc['reached'], rc['at_idx'], rc['compute']) == (True, 2, pytest.approx(2.0))
    assert rc['naive_to_reach'] == 4.0 and rc['naive_total'] == 5.0
    assert rc['ratio_to_reach'] == pytest.approx(2.0) and rc['ratio_total'] == pytest.approx(2.5)
    rg = full['reach']['gflops']
    assert rg['ratio_to_reach'] == pytest.approx(2.0) and rg['ratio_total'] == pytest.approx(2.5)
    assert not s['runs']['no_cache']['reach']['cpu_s']['reached']
    # the oracle: the naive run's own non-dominated results (0, 1, 3; not 4, dominated) cost 3 CPU-s
    o = s['oracle']
    assert (o['n'], sorted(o['idx']), o['cpu_s']) == (3, [0, 1, 3], pytest.approx(3.0))
    assert o['ratio_cpu_s'] == pytest.approx(4 / 3)
    summ = res['summary']
    nr = summ['no_rejection']  # reached with 3 CPU-s; its GFLOPs are unknown: no GFLOPs ratio
    assert nr['ratio_to_reach_cpu_s'] == pytest.approx(4 / 3) and nr['ratio_to_reach_gflops_text'] == 'n/a'
    assert summ['full']['ratio_to_reach_cpu_s'] == pytest.approx(2.0)
    assert summ['no_cache']['ratio_to_reach_cpu_s_text'] == 'not reached' and summ['no_cache']['reached'] == 0
    paths = efficiency.write_report(res, out, 'python tools/search_efficiency.py --out m')
    md = open(paths['md']).read()
    assert '2.00x less CPU time' in md and 'reached in 1 of 1 seeds' in md and 'not reached (HV' not in md
    assert '| no_cache | 1 | 0.3600 |' in md and 'missing runs: seed 0 no_program_check.' in md
    assert '| 0 | 3 | 3.0 | 4.0 | 1.33x |' in md


# ---- the measurement and its command line -------------------------------------------------------
def test_interrupted_measurement_resumes_and_reuses_finished_runs(measured):
    out, victim, before = measured['out'], measured['victim'], measured['before']
    names = list(efficiency.variants())
    assert names[:2] == ['naive', 'full'] and set(os.listdir(os.path.join(out, 'seed-0'))) == set(names)
    assert before['naive'].done and before['full'].done and not before[victim].done
    sessions = [json.loads(x) for x in open(os.path.join(out, 'sessions.jsonl'))]
    actions = {(s['variant'], s['action']) for s in sessions}
    # the killed search logged no session; the second invocation resumed it and ran the rest
    assert actions == {('naive', 'new'), ('full', 'new'), (victim, 'resumed')} | {
        (n, 'new') for n in names[3:]}
    for name in ('naive', 'full'):  # reused: not run again
        st = _state(out, name)
        assert st.sessions == 1 and st.records == before[name].records
    st = _state(out, victim)
    assert st.done and st.sessions == 2
    for idx, r in before[victim].records.items():  # nothing evaluated before the kill was redone
        assert st.records[idx]['F'] == r['F'] and st.records[idx]['session'] == 1
    assert all(s['load_start'] and s['load_end'] for s in sessions)


def test_cli_writes_md_csv_png_json(measured, capsys):
    out = measured['out']
    for name in ('efficiency.md', 'efficiency.csv', 'efficiency.json', 'efficiency.png', 'curves.csv'):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    md = open(os.path.join(out, 'efficiency.md')).read()
    command = 'python tools/search_efficiency.py ' + ' '.join(measured['argv'])
    assert command in md
    assert 'Load average' in md and 'not wall time' in md and 'Provisional' not in md
    rows = list(csv.DictReader(open(os.path.join(out, 'efficiency.csv'))))
    assert [r['variant'] for r in rows] == list(efficiency.variants())
    naive = rows[0]
    assert naive['rejected_check'] == naive['rejected_protocol'] == naive['cached'] == '0'
    assert int(naive['trained']) == int(naive['evaluations']) > 0
    data = json.load(open(os.path.join(out, 'efficiency.json')))
    assert data['command'] == command and '0' in data['seeds']
    curves = list(csv.DictReader(open(os.path.join(out, 'curves.csv'))))
    for name in efficiency.variants():
        hv = [float(r['hv']) for r in curves if r['variant'] == name]
        cpu = [float(r['cpu_s']) for r in curves if r['variant'] == name]
        assert hv and all(b >= a for a, b in zip(hv, hv[1:])) and all(b >= a for a, b in zip(cpu, cpu[1:]))
    # --report-only reads what is there, runs nothing
    tool = _tool()
    mtime = os.path.getmtime(os.path.join(out, 'seed-0', 'naive', 'state.json'))
    assert tool.main(measured['argv'] + ['--report-only']) == 0
    assert '# Search efficiency' in capsys.readouterr().out
    assert os.path.getmtime(os.path.join(out, 'seed-0', 'naive', 'state.json')) == mtime


def test_cli_bad_inputs_name_the_value(measured, tmp_path, capsys):
    tool = _tool()
    out = measured['out']

    def err(argv):
        assert tool.main(argv) == 2
        e = capsys.readouterr().err
        assert e.count('\n') == 1 and e.startswith('search_efficiency.py: error:'), e
        return e

    assert '--seeds 0' in err(['--preset', 'tiny', '--seeds', '0', '--out', str(tmp_path / 'a')])
    assert 'huge' in err(['--preset', 'huge', '--out', str(tmp_path / 'a')])
    assert 'program_check' in err(['--preset', 'tiny', '--set', 'program_check=false', '--out', str(tmp_path / 'a')])
    assert 'cache=3' in err(['--preset', 'tiny', '--set', 'cache=3', '--out', str(tmp_path / 'a')])
    (tmp_path / 'file').write_text('x')
    assert str(tmp_path / 'file') in err(['--preset', 'tiny', '--out', str(tmp_path / 'file')])
    (tmp_path / 'empty').mkdir()
    assert str(tmp_path / 'empty') in err(['--preset', 'tiny', '--out', str(tmp_path / 'empty'), '--report-only'])
    # another configuration than the runs in OUT: refused before anything runs
    e = err(['--preset', 'tiny', '--seeds', '1', '--epochs', '2', '--out', out, '--no-progress'])
    assert 'epochs=1' in e and 'epochs=2' in e
    assert not os.path.exists(os.path.join(out, 'seed-1'))
    assert not os.path.exists(tmp_path / 'a')


@pytest.mark.slow
def test_rungs_and_prescreen_measured_as_accelerators(tmp_path):
    """``--rungs N`` / ``--prescreen SCORE``: on in the full search, off in the naive one, one
    ablation each (seven tiny searches: about 30 s)."""
    tool = _tool()
    out = str(tmp_path / 'r')
    argv = ['--preset', 'tiny', '--epochs', '3', '--set', 'checkpoint_epoch=1', '--set', 'generations=1',
            '--seeds', '1', '--rungs', '2', '--prescreen', 'attn_rank', '--out', out, '--no-progress']
    assert tool.main(argv) == 0
    rows = list(csv.DictReader(open(os.path.join(out, 'efficiency.csv'))))
    extra = (efficiency.rungs_accelerator(2), efficiency.prescreen_accelerator('attn_rank'))
    assert [r['variant'] for r in rows] == list(efficiency.variants(efficiency.ACCELERATORS + extra))
    full, naive = _cfg(out, 'full'), _cfg(out, 'naive')
    assert (full.rungs, full.prescreen) == (2, 'attn_rank') and (naive.rungs, naive.prescreen) == (1, '')
    assert _cfg(out, 'no_rungs').rungs == 1 and _cfg(out, 'no_prescreen').prescreen == ''
    assert _cfg(out, 'no_rungs').prescreen == 'attn_rank'
    recs = _state(out, 'full').records.values()
    trained = [r for r in recs if 'rung' in r]
    assert trained and all(r['fidelity_epochs'] in full.rung_epochs for r in trained)
    assert any(r['reason'] == 'deferred' for r in recs)


def test_rungs_and_prescreen_accelerators_and_bad_values(tmp_path, capsys):
    """The variants the two opt-in accelerators add, and the refusals (before anything runs):
    set on the base config, the naive search would get them too."""
    extra = (efficiency.rungs_accelerator(2), efficiency.prescreen_accelerator('early_loss'))
    table = efficiency.variants(efficiency.ACCELERATORS + extra)
    assert list(table)[-2:] == ['no_rungs', 'no_prescreen']
    assert table['naive']['rungs'] == 1 and table['naive']['prescreen'] == ''
    assert table['full']['rungs'] == 2 and table['full']['prescreen'] == 'early_loss'
    assert table['no_rungs']['prescreen'] == 'early_loss' and table['no_prescreen']['rungs'] == 2
    tool = _tool()
    assert tool.main(['--preset', 'tiny', '--epochs', '3', '--set', 'rungs=2', '--out', str(tmp_path / 'b')]) == 2
    assert '--rungs 2' in capsys.readouterr().err
    assert tool.main(['--preset', 'tiny', '--set', 'prescreen=snip', '--out', str(tmp_path / 'b')]) == 2
    assert '--prescreen snip' in capsys.readouterr().err
    assert tool.main(['--preset', 'tiny', '--rungs', '5', '--out', str(tmp_path / 'c')]) == 2
    assert 'rungs=5' in capsys.readouterr().err and not os.path.exists(tmp_path / 'c' / 'seed-0')
    assert tool.main(['--preset', 'tiny', '--prescreen', 'bogus', '--out', str(tmp_path / 'c')]) == 2
    assert "'bogus'" in capsys.readouterr().err
    # --prescreen-pool K: a pre-screened generation proposes K offspring; off, the base config's number
    pooled = efficiency.variants(efficiency.ACCELERATORS + (efficiency.prescreen_accelerator('attn_rank', 24, 6),))
    assert pooled['full']['n_offsprings'] == 24 and pooled['full']['prescreen'] == 'attn_rank'
    assert pooled['naive']['n_offsprings'] == 6 == pooled['no_prescreen']['n_offsprings']
    assert pooled['no_cache']['n_offsprings'] == 24
    assert tool.main(['--preset', 'tiny', '--prescreen-pool', '8', '--out', str(tmp_path / 'c')]) == 2
    assert '--prescreen-pool 8: needs --prescreen' in capsys.readouterr().err
    assert tool.main(['--preset', 'tiny', '--prescreen', 'attn_rank', '--prescreen-pool', '0',
                      '--out', str(tmp_path / 'c')]) == 2
    assert '--prescreen-pool 0' in capsys.readouterr().err and not os.path.exists(tmp_path / 'c' / 'seed-0')
    out = str(tmp_path / 'pool')
    assert tool.main(['--preset', 'tiny', '--set', 'generations=1', '--seeds', '1', '--prescreen', 'attn_rank',
                      '--prescreen-pool', '6', '--variants', 'naive,full', '--out', out, '--no-progress']) == 0
    assert _cfg(out, 'full').n_offsprings == 6 and _cfg(out, 'naive').n_offsprings is None


def test_variants_option_runs_only_those_and_refuses_unknown_names(tmp_path, capsys):
    """``--variants naive,full`` runs just those two searches of every seed (the ablations can
    follow later in the same folder); an unknown name is refused before anything runs."""
    tool = _tool()
    out = str(tmp_path / 'v')
    base = ['--preset', 'tiny', '--set', 'generations=1', '--seeds', '1', '--out', out, '--no-progress']
    assert tool.main(base + ['--variants', 'no_cache,bogus']) == 2
    assert "'bogus'" in capsys.readouterr().err and not os.path.exists(out)
    assert tool.main(base + ['--variants', 'naive,full']) == 0
    assert sorted(os.listdir(os.path.join(out, 'seed-0'))) == ['full', 'naive']
    rows = list(csv.DictReader(open(os.path.join(out, 'efficiency.csv'))))
    assert [r['variant'] for r in rows] == ['naive', 'full']


def test_searches_may_run_longer_and_stop_at_the_naive_result(measured):
    """``--extend 3`` (the default): every search but the naive one may run 3x the generations and
    stops after the first generation at which it reaches the naive run's final hypervolume, in
    the naive run's box -- the box the report measures every run of the seed in."""
    out = measured['out']
    naive_cfg = _cfg(out, 'naive')
    target = efficiency.naive_target(os.path.join(out, 'seed-0', 'naive'))
    assert target is not None
    normalise, goal = target
    rows = {r['variant']: r for r in csv.DictReader(open(os.path.join(out, 'efficiency.csv')))}
    assert float(rows['naive']['target_hv']) == pytest.approx(goal, abs=1e-6)
    for name in efficiency.variants():
        cfg, state = _cfg(out, name), _state(out, name)
        assert cfg.generations == naive_cfg.generations * (1 if name == 'naive' else 3)
        stop = efficiency.stop_at_target(target, cfg)
        gens = sorted({r['gen'] for r in state.records.values()})
        assert state.done and gens[-1] == state.generation
        upto = lambda g: {i: r for i, r in state.records.items() if r['gen'] <= g}  # noqa: E731
        if state.stopped:   # stopped at the first generation that reaches the target, not later
            assert state.generation < cfg.generations and 'reached' in state.stopped
            assert stop(upto(state.generation)) and not any(stop(upto(g)) for g in gens[:-1])
            assert rows[name]['reached'] == '1'
        elif name != 'naive':
            assert state.generation == cfg.generations and not any(stop(upto(g)) for g in gens[:-1])
    assert efficiency.naive_target(os.path.join(out, 'seed-0', 'missing')) is None
    with pytest.raises(efficiency.EfficiencyError, match='--extend 0'):
        efficiency.run_measurement(preset('tiny'), os.path.join(out, 'x'), extend=0)


def test_stop_criterion_before_any_feasible_result():
    """A search whose first generation has no feasible admissible result is not stopped (and
    the criterion does not fail on the empty set)."""
    cfg = preset('tiny')
    target = (lambda f: f, 0.5)
    stop = efficiency.stop_at_target(target, cfg)
    rejected = dict(idx=0, status='rejected', reason='check:ignores_input', stage='check', F=[0.0, 1.0], G=[1.0])
    assert stop({0: rejected}) == ''
    assert efficiency._admissible_points([rejected], cfg, efficiency._admissibility()).shape == (0, cfg.n_objectives)


@pytest.mark.parametrize('field,value,flag', [('rungs', 2, '--rungs 2'), ('prescreen', 'snip', '--prescreen snip'),
                                              ('surrogate', True, '--surrogate')])
def test_an_opt_in_accelerator_on_the_base_config_is_refused(tmp_path, field, value, flag):
    """Set on the base config (``--set``) an opt-in accelerator would be on in the naive search too."""
    base = preset('tiny').replace(**{field: value})
    with pytest.raises(efficiency.EfficiencyError, match=f'{field}={value!r}: the naive search would have it too.*{flag}'):
        efficiency.run_measurement(base, str(tmp_path / 'o'), seeds=1, progress=False)
    assert not os.path.exists(tmp_path / 'o')
