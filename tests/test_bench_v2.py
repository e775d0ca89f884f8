"""Attn-Bench-101 v2: the multi-fidelity builder (rungs, promotions, long budget, references), its
resume guarantees, the format-2 loader and the v1 / v2 query API."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from attnzero import bench as ab
from attnzero.bench.evaluate import BenchSettings, evaluate_task, level_task
from attnzero.bench.format import LEVELS_FILE, BenchError
from attnzero.bench.multifidelity import (STATES_DIR, ZOO_REFERENCES, LevelPlan, build_levels,
                                          candidate_sequence)
from attnzero.bench.records import budget_key
from attnzero.search.config import PRESETS, SearchConfig
from attnzero.space import REFERENCE_GENOMES, Genome

VOLATILE = ('eval_seconds', 'seconds', 'cpu_seconds', 'check', 'train_seconds')


def _settings():
    cfg = SearchConfig(**PRESETS['tiny']).to_dict()
    cfg['archs'] = ['deit']
    return BenchSettings(cfg, seeds=[0], budgets=[1, 2], rungs=[0.5])


def _plan(**kw):
    d = dict(n=6, n_full=2, n_long=2, long_top=1, batch=3, promote_top=1, promote_random=1,
             reference_seeds=[0, 1], reference_long_seeds=[0], cross_archs=['pvt'], n_cross=2, n_retest=3)
    d.update(kw)
    return LevelPlan(**d)


def _strip(x, drop=()):
    """A record without its timings (what two builds of the same plan must agree on)."""
    if isinstance(x, dict):
        return {k: _strip(v, drop) for k, v in x.items() if k not in VOLATILE + tuple(drop)}
    if isinstance(x, list):
        return [_strip(v, drop) for v in x]
    return x


def _content(path, drop=()):
    b = ab.load(path)
    return ({r['hash']: _strip(r, drop) for r in b.records},
            {(r.get('hash') or r['name']): _strip(r, drop) for r in b.baselines})


@pytest.fixture(scope='module')
def built(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('v2') / 'bench')
    counts = build_levels(out, _settings(), _plan(), progress=False, command='test')
    return out, counts


def test_build_levels_fills_every_level(built):
    out, counts = built
    assert counts['stopped'] == 0 and counts['rung'] >= 6 and counts['full'] >= 2 and counts['long'] == 2
    b = ab.load(out)
    assert b.format_version == 2 and b.rungs == [0.5] and b.budgets == [1, 2]
    assert b.manifest['format_version'] == 2 and LEVELS_FILE in b.manifest['files']
    trained = b.filter(trained=True)
    assert len(b.at_level(0.5)) == len(trained) == counts['rung']
    assert len(b.at_level(1)) == counts['full'] and len(b.at_level(2)) == 2
    for r in trained:
        assert r['source']['kind'] == 'random' and r['batch'] is not None
        assert set(r['scores']) <= {'0.5', '1', '2'} and r['fidelity'] == max(r['scores'], key=float)
        # the score is the first budget's (the search's), None below it
        assert (r['score'] is None) == ('1' not in r['scores'])
    # per batch: at most promote_top + promote_random promoted, never a genome rejected at the rung
    by_batch = {}
    for r in b.at_level(1):
        assert r['acc']['deit']['0.5'][0] is not None
        by_batch.setdefault(r['batch'], []).append(r['promotions'][0]['selection'])
    for sel in by_batch.values():
        assert sel.count('top') <= 1 and sel.count('random') <= 1
    # the long budget: the best first-budget genome and one drawn from the rest
    sel = sorted(p['selection'] for r in b.at_level(2) for p in r['promotions'] if p['budget'] == 2)
    assert sel == ['random', 'top']
    best = max(b.at_level(1), key=lambda r: (r['scores']['1'], r['genome']))
    assert '2' in best['scores']
    # the references: every zoo attention and published genome, at the reference seeds, the first
    # budget through its rung, and the long budget at one seed
    names = {r['name'] for r in b.baselines}
    assert set(ZOO_REFERENCES) | {'elu_linear', 'trial_105', 'trial_140'} <= names
    soft = b.baseline('softmax')
    assert len(soft['acc']['deit']['1']) == 2 and len(soft['acc']['deit']['0.5']) == 2
    assert len(soft['acc']['deit']['2']) == 1
    # the cross-architecture level: the genomes promoted at random and the references, in PVT
    rnd = [r for r in b.at_level(1) if r['promotions'][0]['selection'] == 'random']
    crossed = [r for r in b.records if 'cross' in r]
    assert counts['cross'] == len(crossed) == min(2, len(rnd))
    for r in crossed:
        assert set(r['cross']) == {'pvt'} and '0.5' in r['cross_scores']['pvt']  # (1 ep unless rejected)
        assert set(r['cross_scores']['pvt']) <= {'0.5', '1'}
        assert set(r['acc']) == {'deit'}  # the bench's own tables stay its architectures'
    assert 'pvt' in soft['cross_scores']
    # the retest level: the first 3 genomes of the random stream, the rung again at seed 1, kept
    # apart from the record's own scores (seed 0), status and promotions
    retested = [r for r in b.records if 'retest' in r]
    first = sorted(trained, key=lambda r: (r['batch'], r['source']['index']))[:3]
    assert counts['retest'] == 3 and sorted(r['hash'] for r in retested) == sorted(r['hash'] for r in first)
    for r in retested:
        assert set(r['retest']) == {'0.5'} and set(r['retest']['0.5']) == {'1'}
        assert set(r['retest_scores']['0.5']) == {'1'}
        assert len(r['acc']['deit']['0.5']) == 1  # the seed-0 run only
        assert all(p['selection'] != 'retest' for p in r.get('promotions') or [])
        seed1 = [x for x in r['runs'] if x['seed_index'] == 1]
        assert len(seed1) == 1 and seed1[0]['epochs'] == 0.5
    # no training state is left behind; the compute is in the manifest
    assert os.listdir(os.path.join(out, STATES_DIR)) == []
    assert b.manifest['compute']['runs'] > 0 and b.manifest['counts']['level:1'] == counts['full']
    # --status reads the same from the files: the plan is done, nothing is left
    from attnzero.bench.multifidelity import status
    st = status(out)
    assert (st['rung'], st['full'], st['long'], st['cross']) == (counts['rung'], counts['full'], 2, counts['cross'])
    assert st['retest'] == 3 and b.manifest['plan_progress']['retest'] == 3
    assert st['references'] == len(b.baselines) and st['states_waiting'] == 0
    assert st['cpu_hours_left_projected'] == 0.0 and st['cpu_hours_spent'] > 0
    assert st['complete'] and b.manifest['complete'] is True


def test_unfinished_bench_is_refused_unless_partial(tmp_path):
    part = str(tmp_path / 'part')
    c = build_levels(part, _settings(), _plan(), progress=False, max_seconds=0.0)
    while not os.path.exists(os.path.join(part, 'bench.jsonl')):  # past the references
        c = build_levels(part, progress=False, max_seconds=0.0)
    assert c['stopped']
    with pytest.raises(BenchError, match='partial=True'):
        ab.load(part)
    b = ab.load(part, partial=True)
    assert b.manifest['complete'] is False and b.manifest['plan_progress']['rung'] == len(b.filter(trained=True))
    from attnzero.bench.levels_report import levels_report_text
    text = levels_report_text(b, part)
    assert '**Unfinished build**' in text and f'rung {len(b.filter(trained=True))} of 6' in text


def test_promotion_continues_the_rung_exactly():
    st = _settings()
    g = REFERENCE_GENOMES['elu_linear'].to_string()
    r0 = evaluate_task(dict(genome=g, settings=st.to_dict(), level='rung'))
    assert r0['fidelity'] == '0.5' and r0['score'] is None and set(r0['_states']) == {'deit:0'}
    line = level_task(dict(key=r0['hash'], genome=g, settings=st.to_dict(), budget=1,
                           states=r0['_states']))
    whole = evaluate_task(dict(genome=g, settings=st.to_dict(), budgets=[1]))
    assert line['resumed'] and line['runs'][0]['resumed']
    # the record trained whole holds the rung and the budget of one training: the same accuracies
    assert [r['epochs'] for r in whole['runs']] == [0.5, 1]
    assert whole['runs'][0]['acc'] == r0['runs'][0]['acc']
    assert whole['runs'][1]['acc'] == line['runs'][0]['acc']
    assert whole['runs'][1]['status'] == line['runs'][0]['status']
    # a lost rung state is retrained: the same result
    again = level_task(dict(key=r0['hash'], genome=g, settings=st.to_dict(), budget=1, states=None))
    assert again['runs'][0]['acc'] == line['runs'][0]['acc']


def test_stopped_build_resumes_to_the_same_bench(built, tmp_path):
    out, _ = built
    part = str(tmp_path / 'part')
    # stop after every single evaluation (the time budget is spent at once) and resume each time
    stops = 0
    while True:
        c = build_levels(part, _settings(), _plan(), progress=False, max_seconds=0.0)
        if not c['stopped']:
            break
        stops += 1
        assert stops < 100
    assert stops > 5
    assert _content(part) == _content(out)
    assert os.listdir(os.path.join(part, STATES_DIR)) == []


def test_lost_states_and_torn_lines_are_recovered(built, tmp_path):
    out, _ = built
    part = str(tmp_path / 'part')
    # stop inside the first batch's promotions: its rung states wait in states/
    for _ in range(50):
        build_levels(part, _settings(), _plan(), progress=False, max_seconds=0.0)
        if os.listdir(os.path.join(part, STATES_DIR)):
            break
    waiting = os.listdir(os.path.join(part, STATES_DIR))
    assert waiting
    shutil.rmtree(os.path.join(part, STATES_DIR))  # a restart on another machine: no states
    with open(os.path.join(part, 'bench.jsonl'), 'a', encoding='utf-8') as f:
        f.write('{"torn": ')  # a crash in the middle of an append
    c = build_levels(part, progress=False)  # settings and plan from build.json
    assert c['stopped'] == 0
    # the same bench, but for the flag saying a promotion started from a saved rung state
    assert _content(part, drop=('resumed',)) == _content(out, drop=('resumed',))
    b = ab.load(part)
    assert any(not p['resumed'] for r in b.at_level(1) for p in r['promotions'][:1]
               if p['batch'] == 0)  # the promotion whose state was lost retrained its rung


def test_plan_changes_are_refused_or_grow(built, tmp_path):
    out, counts = built
    grown = str(tmp_path / 'grown')
    shutil.copytree(out, grown)
    with pytest.raises(BenchError, match='batch'):
        build_levels(grown, _settings(), _plan(batch=4), progress=False)
    other = BenchSettings(_settings().search, seeds=[0], budgets=[1, 2], rungs=[0.25])
    with pytest.raises(BenchError, match='other settings'):
        build_levels(grown, other, _plan(), progress=False)
    c = build_levels(grown, _settings(), _plan(n=9), progress=False)
    assert c['rung'] >= 9 and c['stopped'] == 0
    before, _ = _content(out)
    after, _ = _content(grown)
    assert all(_strip(after[h]) == rec for h, rec in before.items()
               if rec.get('fidelity') != '2')  # the first bench's records are kept as they were


@pytest.mark.parametrize('kw, match', [(dict(batch=0), 'batch 0'),
                                       (dict(promote_top=3, promote_random=1), 'exceeds the batch'),
                                       (dict(long_top=5), 'long_top'),
                                       (dict(retest_seeds=[0]), 'retest_seeds')])
def test_bad_plans_are_named(kw, match):
    with pytest.raises(ValueError, match=match):
        _plan(**kw)


def test_bad_rungs_are_named():
    cfg = SearchConfig(**PRESETS['tiny']).to_dict()
    with pytest.raises(ValueError, match='rungs'):
        BenchSettings(cfg, budgets=[1], rungs=[1.5])
    # a single-fidelity bench keeps its settings id (rungs are left out of it)
    assert 'rungs' not in BenchSettings(cfg, budgets=[1]).public()
    assert budget_key(2 / 3) == '0.6667' and budget_key(2) == '2'


def test_candidate_sequence_takes_search_runs_first(tmp_path):
    run = tmp_path / 'evaluations.jsonl'
    texts = [REFERENCE_GENOMES[n].to_string() for n in ('trial_105', 'elu_linear', 'trial_105')]
    run.write_text(''.join(json.dumps(dict(genome=t, idx=i)) + '\n' for i, t in enumerate(texts)))
    plan = _plan(runs=[str(run)])
    seq = candidate_sequence(plan, sampler_seed=0)
    got = [next(seq) for _ in range(5)]
    assert [s['kind'] for s, _, _ in got] == ['search', 'search', 'random', 'random', 'random']
    assert [g.to_string() for _, g, _ in got[:2]] == texts[:2]
    assert len({fp for _, _, fp in got}) == 5  # each function once
    again = candidate_sequence(plan, sampler_seed=0)
    assert [g.hash for _, g, _ in (next(again) for _ in range(5))] == [g.hash for _, g, _ in got]


def test_versions_by_name():
    v1 = ab.load('v1')
    assert v1.format_version == 1 and v1.rungs == [] and len(v1) > 1000
    assert ab.default_path('v1').endswith('attn-bench-101')
    with pytest.raises(ValueError, match='v9'):
        ab.default_path('v9')
    # the query API on v1: by canonical text, by original cfg, by an equivalent genome
    rec = v1.filter(trained=True).records[0]
    g = Genome.parse(rec['genome'])
    assert v1.lookup(rec['genome']) is rec and v1.lookup(g.to_attnzero_cfg()) is rec


def test_v2_query_api(built):
    out, _ = built
    b = ab.load(out)
    rec = b.at_level(1).records[0]
    g = Genome.parse(rec['genome'])
    assert b.lookup(rec['genome']) is rec and b.lookup(g.to_attnzero_cfg()) is rec
    assert b.match(g)[1] == 'hash'
    df = b.to_pandas()
    assert {'acc_deit_e0.5', 'acc_deit_e1'} <= set(df.columns)
    top = b.topk(1, 'acc:deit:1')[0]
    assert top['scores']['1'] == max(r['scores']['1'] for r in b.at_level(1))


def test_levels_report_is_deterministic_and_names_the_claims(built, tmp_path):
    from attnzero.bench.cli import analyze_main
    from attnzero.bench.levels_report import levels_report_text

    out, _ = built
    assert analyze_main(['--bench', out, '--out', str(tmp_path)]) == 0
    text = (tmp_path / 'REPORT.md').read_text(encoding='utf-8')
    assert text == levels_report_text(ab.load(out), out)  # regenerates identically from the files
    from attnzero.bench.report import report_text
    assert report_text(ab.load(out), out) == text  # the single entry point picks the levels report
    assert (tmp_path / 'levels_scores.png').exists() and (tmp_path / 'levels_agreement.png').exists()
    for claim in ('graphs i3n302 and i3n303 are preferred', 'advanced normalisation + activation',
                  "discovered module's operators"):
        assert claim in text
    assert '## Rank agreement between budgets' in text and 'references: 0.5 ep vs 1 ep' in text
    assert '`softmax`' in text and '`trial_105` (genome)' in text
    assert 'references: deit vs pvt at 1 ep' in text
    # the seed noise: from the references' seeds and from the retest, at the rung
    assert '## Seed noise: the ceiling of any predictor' in text
    assert 'retest: the same genomes at seed 1' in text and 'references (11, pooled over their seeds)' in text
    assert 'Unfinished build' not in text


def test_noise_paragraphs_say_what_limits_the_surrogate():
    from attnzero.bench.levels_report import _noise_paragraphs

    def row(level, name, source, ceiling, sur, retest_tau=None, n=11, n_genomes=2000, n_top=0):
        kind, _, what = source.partition(': ') if source.startswith('retest') else ('references', '', None)
        return dict(level=level, name=name, kind=kind, what=what, source=source, ceiling=ceiling, surrogate_tau=sur,
                    retest_tau=retest_tau, n=n, n_genomes=n_genomes, n_top=n_top, near_chance=0.5)

    refs = [dict(levels={'0.5': dict(mean=0.3)}), dict(levels={'0.5': dict(mean=0.4)})]
    rung_refs = row('0.5', 'rung (0.5 ep)', 'references (2, pooled over their seeds)', 0.38, 0.545)
    retest = row('0.5', 'rung (0.5 ep)', 'retest: the same genomes at seed 1', 0.674, 0.545, 0.546, n=100)
    full = row('2', 'full budget (2 ep)', 'references (2, pooled over their seeds)', 0.82, 0.46, n_genomes=504,
               n_top=336)
    text = ' '.join(_noise_paragraphs([rung_refs, retest, full], refs))
    assert 'above the ceiling computed from the references\' seed noise (0.380)' in text
    assert 'reference means of 0.300-0.400' in text and 'the same genomes at seed 1, tau ceiling 0.674' in text
    assert 'a second training of 100 of the genomes' in text and 'at tau 0.546' in text and 'level with it' in text
    assert 'well below the ceiling from the references\' seed noise (0.820)' in text
    assert 'fitted on 504 genomes (the rung (0.5 ep) has 2000), 336 of them promoted' in text
    # a retest far from the surrogate is said to be, in either direction; no retest: it is to be measured
    assert 'below it: training the genome again' in ' '.join(_noise_paragraphs([dict(retest, surrogate_tau=0.4)], refs))
    assert 'above it' in ' '.join(_noise_paragraphs([dict(retest, surrogate_tau=0.6)], refs))
    assert 'measures their noise' in ' '.join(_noise_paragraphs([rung_refs], refs))
    # a surrogate near the references' ceiling gets no paragraph
    assert _noise_paragraphs([dict(full, surrogate_tau=0.8)], refs) == []


def test_dask_build_equals_the_serial_one(built, tmp_path):
    distributed = pytest.importorskip('distributed')
    out, _ = built
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        c = build_levels(str(tmp_path / 'dask'), _settings(), _plan(), progress=False,
                         dask_scheduler=cluster.scheduler_address)
    assert c['stopped'] == 0
    assert _content(str(tmp_path / 'dask')) == _content(out)


def test_cli_builds_resumes_and_reports_status(tmp_path, capsys):
    from attnzero.bench.cli import build_main

    out = str(tmp_path / 'cli')
    argv = ['--out', out, '--preset', 'tiny', '--archs', 'deit', '--budgets', '1,2', '--rungs', '1/2',
            '-n', '3', '--n-full', '1', '--n-long', '1', '--long-top', '1', '--batch', '3',
            '--promote-top', '1', '--promote-random', '0', '--reference-seeds', '0', '--no-progress']
    assert build_main(argv) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first['rung'] >= 3 and first['stopped'] == 0
    assert build_main(['--out', out, '-n', '6', '--no-progress']) == 0  # grows with the saved settings
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])['rung'] >= 6
    assert build_main(['--out', out, '--status']) == 0
    st = json.loads(capsys.readouterr().out)
    assert st['complete'] and st['plan']['n'] == 6
    info = json.load(open(os.path.join(out, 'build.json')))
    assert info['settings']['rungs'] == [0.5] and len(info['commands']) == 2
    with pytest.raises(SystemExit, match='--rungs'):
        build_main(['--out', str(tmp_path / 'v1'), '--preset', 'tiny', '--n-full', '3'])
    with pytest.raises(SystemExit, match="'x'"):
        build_main(['--out', str(tmp_path / 'bad'), '--preset', 'tiny', '--rungs', 'x'])


def test_shipped_v2_is_complete_verified_and_the_default():
    path = ab.default_path('v2')
    assert ab.default_path() == path
    m = json.load(open(os.path.join(path, 'MANIFEST.json'), encoding='utf-8'))
    assert m['format_version'] == 2 and LEVELS_FILE in m['files'] and m['complete'] is True
    b = ab.load()  # v2, every sha256 verified
    assert b.path == path and len(b.records) >= 2000
    assert len(b.at_level(b.rungs[0])) >= 2000 and len(b.at_level(b.budgets[0])) >= 500
    assert len(b.at_level(b.budgets[-1])) >= 30
    prog = m['plan_progress']
    assert prog['rung'] == len(b.at_level(b.rungs[0])) and prog['full'] == len(b.at_level(b.budgets[0]))
    assert prog['cross'] >= 60 and prog['retest'] >= 100
    # the references at 5 seeds at the first budget
    for ref in b.baselines:
        assert len(ref['acc']['deit'][budget_key(b.budgets[0])]) == 5


def test_shipped_v2_report_regenerates_identically():
    """``docs/bench/REPORT.md`` is the report of the shipped v2 bench as committed."""
    from attnzero.bench.report import report_text

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, 'docs', 'bench', 'REPORT.md'), encoding='utf-8') as f:
        committed = f.read()
    assert report_text(ab.load('v2'), 'attnzero/data/attn-bench-101-v2') == committed


def test_surrogate_cv_tool_writes_its_tables(built, tmp_path):
    from attnzero.bench.cli import surrogate_cv_main

    out, _ = built
    dst = tmp_path / 'cv'
    assert surrogate_cv_main(['--bench', out, '--out', str(dst), '--reps', '1', '--folds', '2',
                              '--min-genomes', '4']) == 0
    md = (dst / 'surrogate_cv.md').read_text(encoding='utf-8')
    assert 'python tools/surrogate_cv.py --bench' in md and '| 0.5 ep | 6 |' in md
    assert all(f'| `{fs}` |' in md for fs in ('syntax', 'syntax+probe', 'syntax+probe+grad'))
    rows = (dst / 'surrogate_cv.csv').read_text(encoding='utf-8').splitlines()
    assert rows[0].startswith('level,features,n,folds') and len(rows) == 1 + 3 * 1  # the rung only: 3 sets
    assert (dst / 'surrogate_cv.png').stat().st_size > 0
    with pytest.raises(SystemExit):
        surrogate_cv_main(['--bench', out, '--out', str(dst), '--folds', '1'])


def test_probe_feature_correlations_of_the_levels_report(built, monkeypatch):
    from scipy.stats import kendalltau

    from attnzero.bench import levels_report
    from attnzero.space.features import GRAD_FEATURES, PROBE_FEATURES, gradient_features, probe_features

    out, _ = built
    b = ab.load(out)
    rung = budget_key(b.rungs[0])
    monkeypatch.setattr(levels_report, 'PROBE_MIN_GENOMES', 3)
    rows = levels_report._probe_rows([(rung, 'rung', b.view(b.rungs[0]))])
    trained = [r for r in b.view(b.rungs[0]).records if r['status'] != 'check_failed' and r['score'] is not None]
    assert set(rows) == {rung} and set(rows[rung]) == set(PROBE_FEATURES + GRAD_FEATURES) - {'probe_ok', 'grad_ok'}
    y = [r['score'] for r in trained]
    for name, fn, names in [('sens_q', probe_features, PROBE_FEATURES), ('gain_k', gradient_features, GRAD_FEATURES)]:
        x = [fn(Genome.parse(r['genome']))[names.index(name)] for r in trained]
        got = rows[rung][name]
        assert got['n'] == len(trained)
        assert got['tau'] == pytest.approx(kendalltau(x, y)[0], abs=1e-12)
    monkeypatch.setattr(levels_report, 'PROBE_MIN_GENOMES', len(trained) + 1)
    assert levels_report._probe_rows([(rung, 'rung', b.view(b.rungs[0]))]) == {}


def test_zero_cost_rows_read_a_level_and_its_4x(built, tmp_path):
    """The zero-cost study on a multi-fidelity bench: the genomes and references of one level with
    their score there, and their score at four times that level where they have one."""
    import math

    from attnzero.bench.analyze import zero_cost_rows
    from attnzero.bench.cli import zero_cost_main

    out, _ = built
    b = ab.load(out)
    rows, cfg, source = zero_cost_rows(b, level=0.5)
    samples = [r for r in rows if r['kind'] == 'sample']
    ok = {r['hash']: r for r in b.at_level(0.5).records if r['status'] == 'ok'}
    assert sorted(r['genome'] for r in samples) == sorted(r['genome'] for r in ok.values())
    by_genome = {r['genome']: r for r in ok.values()}
    for r in samples:
        scores = by_genome[r['genome']]['scores']
        assert r['trained_1x'] == scores['0.5']
        assert r['trained_4x'] == scores['2'] if '2' in scores else math.isnan(r['trained_4x'])
    assert any(math.isfinite(r['trained_4x']) for r in samples)  # the long level is 4x the rung
    refs = [r for r in rows if r['kind'] == 'reference']
    assert refs and all(r['trained_1x'] == next(x for x in b.baselines if x['name'] == r['name'])['scores']['0.5']
                        for r in refs)
    assert 'at 0.5 epochs (of its levels 0.5, 1, 2)' in source and list(cfg.archs) == ['deit']
    rows1, _, source1 = zero_cost_rows(b)  # default: the first budget; 4 epochs does not exist
    at1 = {r['genome']: r['scores']['1'] for r in b.at_level(1).records if r['status'] == 'ok'}
    assert sorted(r['genome'] for r in rows1 if r['kind'] == 'sample') == sorted(at1)
    assert all(r['trained_1x'] == at1[r['genome']] for r in rows1 if r['kind'] == 'sample')
    assert all(math.isnan(r['trained_4x']) for r in rows1)
    assert 'with no 4x score' in source1
    with pytest.raises(ValueError, match='level 3: the bench has the levels 0.5, 1, 2'):
        zero_cost_rows(b, level=3)
    z = tmp_path / 'z'
    assert zero_cost_main(['--bench', out, '--level', '0.5', '--limit', '3', '--archs', 'deit', '--batch', '8',
                           '--early-steps', '2', '--out', str(z)]) == 0
    md = (z / 'zero_cost.md').read_text()
    assert '--level 0.5' in md and 'at 0.5 epochs' in md
    with pytest.raises(SystemExit):
        zero_cost_main(['--bench', out, '--level', '3', '--out', str(tmp_path / 'bad')])


def test_reference_named_like_a_zoo_attention_is_told_apart():
    """v2 has the zoo's ``relu_linear`` module and the ``relu_linear`` reference genome: a plain
    look-up of that name is ambiguous (a one-line error), ``kind`` picks one, and the zero-cost rows
    name the genome apart (their cache is keyed by name)."""
    from attnzero.bench.analyze import zero_cost_rows

    b = ab.load('v2')
    with pytest.raises(ValueError, match="'relu_linear' names a zoo attention and a reference genome"):
        b.baseline('relu_linear')
    zoo, gen = b.baseline('relu_linear', kind='zoo'), b.baseline('relu_linear', kind='genome')
    assert zoo['attn'] == 'relu_linear' and not zoo.get('genome') and gen['genome'].startswith('i3n303:relu;')
    assert b.baseline('softmax')['attn'] == 'softmax' and b.baseline('trial_105', kind='zoo') is None
    assert b.baseline('nope') is None
    with pytest.raises(ValueError, match="kind 'module'"):
        b.baseline('softmax', kind='module')
    rows, _, _ = zero_cost_rows(b, 3)
    names = [r['name'] for r in rows if r['kind'] == 'reference']
    assert len(names) == len(set(names)) == len(b.baselines) and 'relu_linear (genome)' in names


def test_report_says_which_references_have_a_v_branch():
    """FLatten (focused) and Agent attention add a depthwise convolution on V, as their papers do;
    the other zoo attentions do not; every genome does. The report says so beside the references."""
    from attnzero.bench.levels_report import _v_branch_note, has_v_branch

    assert {n for n in ZOO_REFERENCES if has_v_branch(n)} == {'focused', 'agent'}
    refs = [dict(name='focused', role='baseline'), dict(name='relu_linear', role='baseline'),
            dict(name='relu_linear', role='reference'), dict(name='trial_105', role='reference')]
    note = _v_branch_note(dict(references=refs))
    assert '`focused` add a depthwise convolution on V' in note and '`relu_linear` do not' in note
    assert 'of the same name (`relu_linear`) differ by that branch' in note
    assert 'differ' not in _v_branch_note(dict(references=refs[:2]))
    assert _v_branch_note(dict(references=refs[2:])) == ''
