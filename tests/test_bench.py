"""Attn-Bench-101: the shipped bench, its query API, report, surrogate and the resumable builder."""
from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest

from attnzero import bench as ab
from attnzero.bench.format import BENCH_FILE, MANIFEST_FILE, sha256_file
from attnzero.space import UNARY_BY_NAME, Genome, same_function, sample

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.environ.get('ATTNZERO_TEST_BENCH', ab.default_path('v1'))
REPORT = os.environ.get('ATTNZERO_TEST_REPORT', os.path.join(ROOT, 'docs', 'bench', 'v1', 'REPORT.md'))
LABEL = os.environ.get('ATTNZERO_TEST_BENCH_LABEL', 'attnzero/data/attn-bench-101')


@pytest.fixture(scope='module')
def shipped():
    return ab.load(SHIPPED)


def test_shipped_bench_loads_and_matches_manifest(shipped):
    with open(os.path.join(SHIPPED, MANIFEST_FILE), encoding='utf-8') as f:
        manifest = json.load(f)
    assert manifest["format"] == ab.FORMAT_NAME and manifest["format_version"] in (1, ab.FORMAT_VERSION)
    assert manifest['files'][BENCH_FILE]['sha256'] == sha256_file(os.path.join(SHIPPED, BENCH_FILE))
    assert manifest['records'] == len(shipped) > 0
    assert {r["format_version"] for r in shipped} == {manifest["format_version"]}
    # distinct genomes, distinct functions
    assert len({r['hash'] for r in shipped}) == len(shipped)
    assert len({r['fec'] for r in shipped}) == len(shipped)
    # the jsonl is readable without this project
    with open(os.path.join(SHIPPED, BENCH_FILE), encoding='utf-8') as f:
        first = json.loads(f.readline())
    assert {'genome', 'hash', 'fec', 'graph', 'static', 'check', 'runs', 'acc', 'settings'} <= set(first)


def test_tampered_bench_is_refused(tmp_path, shipped):
    d = tmp_path / 'b'
    shutil.copytree(SHIPPED, d)
    with open(d / BENCH_FILE, 'ab') as f:
        f.write(b' ')
    with pytest.raises(ab.BenchIntegrityError, match='sha256'):
        ab.load(str(d))
    assert len(ab.load(str(d), verify=False)) == len(shipped)


def _idempotent_rewrite(rec):
    """A differently written genome computing the same function: repeat an idempotent operator."""
    g = Genome.parse(rec['genome'])
    for name in ('relu', 'abs', 'l2norm_last', 'sign', 'min_max_normalize_ps'):
        idx = UNARY_BY_NAME[name].index
        for i, lst in enumerate(g.unary):
            if lst and lst[-1] == idx:
                unary = [list(x) for x in g.unary]
                unary[i].append(idx)
                h = g.replace(unary=unary)
                if h.hash != g.hash and same_function(g, h):
                    return h
    return None


def test_lookup_any_equivalent_form(shipped):
    _check_lookup(shipped)


def test_lookup_any_equivalent_form_in_v2():
    """The query API works the same on v2, the default: canonical text, original cfg, equivalent genome."""
    v2 = ab.load()
    assert v2.path == ab.load('v2').path and v2.format_version == 2 and len(v2) >= 2000
    _check_lookup(v2)


def _check_lookup(shipped):
    rec = next(r for r in shipped if r['status'] != 'check_failed')
    g = Genome.parse(rec['genome'])
    # canonical text, Genome, indices text
    assert shipped.lookup(rec['genome']) is rec
    assert shipped.lookup(g) is rec
    # original cfg form with extra no_ops written in
    cfg = g.to_attnzero_cfg()
    cfg['unary_op'] = [[0] + list(lst) + [0] for lst in cfg['unary_op']]
    assert shipped.match(cfg) == (rec, 'hash')
    # a differently written, functionally equivalent genome: matched through the FEC fingerprint
    for r in shipped:
        h = _idempotent_rewrite(r)
        if h is not None:
            found, how = shipped.match(h)
            assert found is r and how == 'fec'
            assert shipped[h.to_string()] is r
            break
    else:
        pytest.fail('no record of the shipped bench admits an idempotent rewrite')
    # a genome not in the bench
    missing = Genome.parse('i3n303:elu;ones_aug;elu;-;-;homog_div:einsum1,matmul,second')
    if shipped.lookup(missing) is None:
        with pytest.raises(KeyError):
            shipped[missing]


def test_filter_topk_pandas(shipped):
    trained = shipped.filter(trained=True)
    assert 0 < len(trained) <= len(shipped)
    top = trained.topk(5, 'score')
    scores = [r['score'] for r in top]
    assert scores == sorted(scores, reverse=True)
    assert all(scores[0] >= (r['score'] or 0) for r in trained)
    g = top[0]['graph']
    assert all(r['graph'] == g for r in shipped.filter(graph=g))
    df = shipped.to_pandas()
    assert len(df) == len(shipped) and {'genome', 'score', 'graph', 'flops_ref'} <= set(df.columns)
    for a in shipped.archs:
        assert f'acc_{a}_e{shipped.budgets[-1]}' in df.columns


def test_report_regenerates_identically(shipped):
    from attnzero.bench.analyze import report_text

    with open(REPORT, encoding='utf-8') as f:
        committed = f.read()
    assert report_text(shipped, LABEL) == committed


def test_surrogate_trains_and_reports_tau(shipped):
    from scipy.stats import kendalltau  # optional dependency, like the surrogate itself

    s = shipped.surrogate(folds=0, refit=False)  # the model stays the one fitted on the train split
    assert s.n_test >= 2 and s.n_train > s.n_test
    assert len(s.test_hashes) == s.n_test and len(s.train_hashes) == s.n_train
    assert not set(s.test_hashes) & set(s.train_hashes)
    # the reported tau is Kendall's tau between the model's predictions and the measured scores of
    # the held-out genomes, recomputed here independently from the bench records
    by_hash = {r['hash']: r for r in shipped}
    held_out = [by_hash[h] for h in s.test_hashes]
    assert all(r['status'] != 'check_failed' and r['score'] is not None for r in held_out)
    expected = kendalltau(s.predict([r['genome'] for r in held_out]), [r['score'] for r in held_out])
    assert math.isfinite(s.tau)
    assert s.tau == pytest.approx(float(expected[0]), abs=1e-12)
    assert s.tau_p == pytest.approx(float(expected[1]), rel=1e-9)
    # ...and not the in-sample tau, which a model fitted on those genomes would inflate
    train = [by_hash[h] for h in s.train_hashes]
    in_sample = kendalltau(s.predict([r['genome'] for r in train]), [r['score'] for r in train])[0]
    assert in_sample > s.tau
    rng = np.random.default_rng(12345)
    new = [g for g in (sample(rng) for _ in range(20)) if g not in shipped][:3]
    pred = s.predict(new)
    assert pred.shape == (len(new),) and np.all(np.isfinite(pred))
    est = shipped.estimate(new[0], surrogate=s)
    assert est['source'] == 'surrogate' and est['score'] == pytest.approx(pred[0])
    rec = shipped.filter(trained=True).records[0]
    assert shipped.estimate(rec['genome'], surrogate=s)['source'] == 'bench:hash'


def test_tiny_build_is_resumable(tmp_path):
    from attnzero.bench.cli import build_main  # tools/build_bench.py

    out = str(tmp_path / 'bench')
    argv = ['--out', out, '-n', '2', '--preset', 'tiny', '--no-baselines', '--no-progress',
            '--set', 'proxy="relational?train=64&test=32"', '--sampler-seed', '3']
    assert build_main(argv) == 0
    b1 = ab.load(out)
    assert sum(r['status'] != 'check_failed' for r in b1) == 2
    # second run with the same target: nothing new is evaluated
    assert build_main(argv) == 0
    b2 = ab.load(out)
    assert [r['hash'] for r in b2] == [r['hash'] for r in b1]
    # grow by one (settings read back from build.json): the done genomes are skipped
    assert build_main(['--out', out, '-n', '3', '--no-progress', '--no-baselines',
                       '--sampler-seed', '3']) == 0
    b3 = ab.load(out)
    assert [r['hash'] for r in b3][:len(b1)] == [r['hash'] for r in b1]
    assert sum(r['status'] != 'check_failed' for r in b3) == 3
    assert len({r['fec'] for r in b3}) == len(b3)
    # per-arch results of every trained genome
    for r in b3:
        if r['status'] != 'check_failed':
            assert set(r['acc']) == {'deit', 'pvt'}
    # the score is a validation accuracy; the test column is separate, from the same runs
    assert b3.records[0]['proxy']['val'] >= 1
    for r in b3:
        done = [run for run in r['runs'] if run['status'] == 'ok']
        if done:
            assert all(0.0 <= run['test_acc'] <= 1.0 for run in done)
            assert r['test_score'] == pytest.approx(sum(run['test_acc'] for run in done) / len(done))


def test_surrogate_cross_validation_by_feature_set(shipped):
    from scipy.stats import kendalltau

    from attnzero.bench.surrogate import compare_feature_sets, cross_validate
    from attnzero.space.features import genome_features, regressor

    sub = shipped.filter(trained=True)
    sub = ab.Bench(sorted(sub.records, key=lambda r: r['hash'])[:120], sub.baselines, sub.manifest, sub.path)
    taus = cross_validate(sub, 'syntax', reps=2, folds=3)
    assert len(taus) == 6 and all(math.isfinite(t) for t in taus)
    # the first fold, recomputed independently
    recs = sorted(sub.records, key=lambda r: r['hash'])
    test, *rest = np.array_split(np.random.default_rng(0).permutation(len(recs)), 3)
    train = np.concatenate(rest)
    X = np.stack([genome_features(Genome.parse(r['genome'])) for r in recs])
    y = np.array([r['score'] for r in recs])
    m = regressor(0).fit(X[train], y[train])
    assert taus[0] == pytest.approx(kendalltau(m.predict(X[test]), y[test])[0], abs=1e-12)
    rows = compare_feature_sets(sub, reps=1, folds=3, min_genomes=10)
    assert [r['features'] for r in rows] == ['syntax', 'syntax+probe', 'syntax+probe+grad'] and {r['n'] for r in rows} == {120}
    with pytest.raises(ValueError, match="'bogus'"):
        cross_validate(sub, 'bogus')


def _synthetic_multifidelity(n=60, n_full=30, seed=0):
    """Records of a made-up two-level bench: a rung score for ``n`` genomes, a full-budget score
    (``score``) for the first ``n_full``, both driven by the graph."""
    rng = np.random.default_rng(seed)
    recs, seen = [], set()
    while len(recs) < n:
        g = sample(rng)
        if g.hash in seen:
            continue
        seen.add(g.hash)
        base = 0.6 if g.graph in ('i3n305', 'i3n302') else 0.3
        rung = base / 2 + 0.02 * rng.standard_normal()
        full = base + 0.05 * rng.standard_normal() if len(recs) < n_full else None
        recs.append(dict(genome=g.to_string(), hash=g.hash, status='ok', score=full, format_version=2,
                         scores={'0.5': rung, **({'2': full} if full is not None else {})}, static={}))
    return ab.Bench(recs, [], None, None)


def test_compare_feature_sets_has_the_sample_controls_of_a_budget():
    """A budget's row set has the stacked row, and the first rung gets two controls: its scores
    predicted on exactly the genomes that reached the budget, and on a random sample of the same
    size; each is the cross-validation of that sub-bench (so a lower tau at the budget can be told
    apart from its smaller, selected sample)."""
    from attnzero.bench.surrogate import compare_feature_sets, cross_validate

    b = _synthetic_multifidelity()
    settings = dict(rungs=[0.5], budgets=[2], search=dict(archs=['deit']))
    b = ab.Bench(b.records, [], dict(settings=settings, format_version=2), None)
    rows = compare_feature_sets(b, reps=1, folds=3, min_genomes=10)
    got = [(r['level'], r['features'], r['n']) for r in rows]
    assert got[:3] == [('0.5 ep', fs, 60) for fs in ('syntax', 'syntax+probe', 'syntax+probe+grad')]
    assert got[3:] == [('2 ep', 'syntax', 30), ('2 ep', 'syntax+probe', 30), ('2 ep', 'syntax+probe+grad', 30),
                       ('2 ep', 'syntax+probe+grad, stacked on 0.5 ep', 30),
                       ('0.5 ep', 'syntax+probe+grad, on the genomes of 2 ep', 30),
                       ('0.5 ep', 'syntax+probe+grad, on a random 30 of its genomes', 30)]
    rung = b.view(0.5)
    reached = {r['hash'] for r in b.records if r['score'] is not None}
    same = cross_validate(rung.filter(lambda r: r['hash'] in reached), reps=1, folds=3)
    assert rows[7]['tau_mean'] == pytest.approx(float(np.mean(same)), abs=1e-12)
    assert rows[8]['tau_mean'] != rows[7]['tau_mean']  # another sample of 30 (the first 30 are the reached ones)


def test_stacked_surrogate_never_sees_the_held_out_genomes():
    from attnzero.bench import surrogate as S

    b = _synthetic_multifidelity()
    FAST = dict(n_estimators=40)  # (small models: the test is about what each one sees)
    s = S.Surrogate.fit(b, aux='0.5', folds=0, refit=False, features='syntax', n_estimators=40)
    assert s.summary()['aux'] == '0.5' and s.n_test == 6 and s.aux_model is None
    with pytest.raises(ValueError, match='refit=False'):
        s.predict([b.records[0]['genome']])
    # the held-out genomes' own rung scores reach nothing: changing them changes no figure
    held = set(s.test_hashes)
    for r in b.records:
        if r['hash'] in held:
            r['scores']['0.5'] = -r['scores']['0.5']
    s2 = S.Surrogate.fit(b, aux='0.5', folds=0, refit=False, features='syntax', n_estimators=40)
    assert s2.tau == s.tau and s2.test_hashes == s.test_hashes
    # a training genome's own rung score does not reach its own stacked feature
    pool = S._design(b, None, 'syntax', 10, 'x', aux='0.5')
    recs, X, _, _ = S._design(b, 'score', 'syntax', 10, 'x')
    hashes = [r['hash'] for r in recs]
    col = S._stacked(X, hashes, pool, [], 0, FAST)[0][:, -1]
    precs, PX, py, ref = pool
    j = next(i for i, r in enumerate(precs) if r['hash'] == hashes[0])
    py2 = py.copy()
    py2[j] += 10.0
    col2 = S._stacked(X, hashes, (precs, PX, py2, ref), [], 0, FAST)[0][:, -1]
    assert col2[0] == col[0] and not np.array_equal(col2, col)
    # a level's view holds only the genomes that reached it: the rung's scores are read from aux_bench
    view = ab.Bench([r for r in b.records if r['score'] is not None], [], None, None)
    sv = S.Surrogate.fit(view, aux='0.5', aux_bench=b, folds=0, refit=False, features='syntax', **FAST)
    assert (sv.tau, sv.test_hashes) == (s2.tau, s2.test_hashes)
    assert len(S._aux_pool(view, 'syntax', '0.5')[0]) == 30 < len(S._aux_pool(b, 'syntax', '0.5')[0]) == 60
    # refitted, it predicts any genome; a bench without the level is a one-line error
    s3 = S.Surrogate.fit(b, aux='0.5', folds=2, features='syntax', **FAST)
    assert np.all(np.isfinite(s3.predict([r['genome'] for r in b.records[:3]]))) and len(s3.cv_taus) == 2
    with pytest.raises(ValueError, match="'0.25'"):
        S.Surrogate.fit(b, aux='0.25', folds=0)
