"""Proxy fidelity tool, the embedded scenes proxy, and the held-out validation split."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from attnzero.search import ProxyError, load_proxy, preset
from attnzero.search.fidelity import (MIXING, REFERENCES, FidelityError, acceptance, published,
                                      run_fidelity, summarise, write_report)
from attnzero.search.proxies import DEFAULT_PROXY, decode_predictions, encode_predictions, parse_proxy_spec
from attnzero.search.scenes import make_scenes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_published_table_loads_with_sources():
    t = published()
    deit = t['backbones']['deit_t']['rows']
    assert set(deit) == {'hydra', 'linear', 'softmax', 'relu_linear', 'focused', 'agent', 'trial_105'}
    assert deit['trial_105']['top1'] == 74.9 and deit['hydra']['top1'] == 68.3
    assert set(t['backbones']['pvt_t']['rows']) == {'softmax', 'focused', 'trial_105', 'agent'}
    for bb in t['backbones'].values():
        for name, row in bb['rows'].items():
            assert name in REFERENCES
            assert row['source'] and isinstance(row['top1'], float)
    assert 'identity' not in MIXING and set(MIXING) | {'identity'} == set(REFERENCES)


def test_scenes_are_deterministic_balanced_and_validated():
    x1, y1 = make_scenes(400, seed=3)
    x2, y2 = make_scenes(400, seed=3)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2)
    assert x1.shape == (400, 3, 16, 16) and x1.dtype == np.float32
    assert np.bincount(y1, minlength=4).min() > 70
    assert not np.array_equal(make_scenes(400, seed=4)[0], x1)
    x, _ = make_scenes(4, seed=0, size=32, classes=8)
    assert x.shape == (4, 3, 32, 32)
    for kw, msg in ((dict(classes=9), 'classes'), (dict(size=4), 'size'), (dict(clutter=-1), 'clutter'),
                    (dict(d_max=0.3), 'd_max')):
        with pytest.raises(ValueError, match=msg):
            make_scenes(2, 0, **kw)
    with pytest.raises(ProxyError, match="'noise'"):
        load_proxy('scenes?noise=0.1')
    with pytest.raises(ProxyError, match='classes'):
        load_proxy('scenes?classes=1&train=10&val=5&test=5')


def test_validation_split_is_carved_from_training_data_and_disjoint_from_test():
    for spec in ('scenes?train=300&val=100&test=100', 'relational?train=300&val=100&test=100'):
        d = load_proxy(spec)
        assert (len(d.train_x), len(d.val_x), len(d.test_x)) == (300, 100, 100)
        flat = lambda t: {bytes(r.numpy().tobytes()) for r in t}  # noqa: E731
        tr, va, te = flat(d.train_x), flat(d.val_x), flat(d.test_x)
        assert not (tr & va) and not (va & te) and not (tr & te)
        # the validation images are a fixed-seed part of the training stream: same spec, same split
        again = load_proxy(spec + '&seed=0')
        assert torch.equal(again.val_x, d.val_x) and torch.equal(again.train_y, d.train_y)
    assert DEFAULT_PROXY.startswith('scenes?') and preset('default').proxy == DEFAULT_PROXY
    assert parse_proxy_spec(DEFAULT_PROXY)[2] == {'train': 14000, 'val': 4000}
    with pytest.raises(ProxyError, match='val=0'):
        load_proxy('scenes?train=10&val=0&test=5')


def test_test_labels_are_read_only_through_test_accuracy():
    d = load_proxy('relational?train=50&val=20&test=30')
    assert not hasattr(d, 'test_y')
    pred = torch.zeros(30, dtype=torch.int64)
    text = encode_predictions(pred)
    assert np.array_equal(decode_predictions(text), pred.numpy())
    reads = d.test_label_reads
    acc = d.test_accuracy(text)
    assert d.test_label_reads == reads + 1 and 0.0 <= acc <= 1.0
    with pytest.raises(ValueError, match='30 test images'):
        d.test_accuracy([0, 1])


def _tiny_cfg():
    return preset('tiny').replace(proxy='scenes?train=64&val=32&test=32', epochs=2, checkpoint_epoch=1)


def test_fidelity_tool_runs_on_a_tiny_setting(tmp_path):
    cfg = _tiny_cfg()
    refs = ['softmax', 'identity', 'linear', 'trial_105', 'hydra']
    res = run_fidelity(cfg, seeds=2, n_genomes=3, budget_factor=2, references=refs,
                       out_dir=str(tmp_path))
    n_ref = len(refs) * len(cfg.archs) * 2
    assert len(res['runs']) == n_ref + 3 * 2 * len(cfg.archs)
    assert all(r['acc'] is not None for r in res['runs'])
    s = summarise(res)
    for name in refs:
        st = s['scores'][name]['objective']
        assert st['n'] == 2 and st['lo'] <= st['mean'] <= st['hi']
    c = s['correlations']['deit_t|objective']
    tau = c['kendall_tau_b']  # undefined (nan) only if the tiny proxy scored all four alike
    assert c['names'] == ['hydra', 'linear', 'softmax', 'trial_105'] and (tau != tau or -1 <= tau <= 1)
    assert s['stability']['n'] == 3 and s['stability']['seconds_per_candidate'] > 0
    assert {a['criterion'].split(' ')[0] for a in s['acceptance']} >= {'Kendall', 'identity', 'rank', 'one'}
    paths = write_report(s, str(tmp_path), 'cmd', 'tiny')
    for k in ('md', 'csv', 'png', 'stability', 'json'):
        assert os.path.getsize(paths[k]) > 0
    assert 'Kendall tau-b' in open(paths['md']).read()
    # a second call reuses every finished run (resume) and refuses other settings
    lines = open(tmp_path / 'runs.jsonl').read().count('\n')
    res2 = run_fidelity(cfg, seeds=2, n_genomes=3, budget_factor=2, references=refs, out_dir=str(tmp_path))
    assert open(tmp_path / 'runs.jsonl').read().count('\n') == lines
    assert [r['acc'] for r in res2['runs']] == [r['acc'] for r in res['runs']]
    # report-only: nothing is trained; a partial log (as of a run still going) is summarised
    log = (tmp_path / 'runs.jsonl').read_text().splitlines()
    # (the last run torn by a kill mid-append: dropped and cut from the file)
    (tmp_path / 'runs.jsonl').write_text('\n'.join(log[:-2]) + '\n' + log[-2][:25])
    part = run_fidelity(cfg, seeds=2, n_genomes=3, budget_factor=2, references=refs,
                        out_dir=str(tmp_path), train=False)
    assert len(part['runs']) == len(res['runs']) - 2
    assert (tmp_path / 'runs.jsonl').read_text().endswith('}\n')
    assert summarise(part)['stability']['n'] == 2  # the genome with a missing run is left out
    # fields that change nothing trained (search-loop settings) keep the folder valid
    assert len(run_fidelity(cfg.replace(generations=7), seeds=2, n_genomes=3, budget_factor=2,
                            references=refs, out_dir=str(tmp_path), train=False)['runs']) == len(part['runs'])
    with pytest.raises(FidelityError, match='other settings'):
        run_fidelity(cfg.replace(lr=0.01), seeds=2, n_genomes=3, budget_factor=2, references=refs,
                     out_dir=str(tmp_path), train=False)
    with pytest.raises(FidelityError, match='other settings'):
        run_fidelity(cfg, seeds=3, n_genomes=3, budget_factor=2, references=refs, out_dir=str(tmp_path))
    with pytest.raises(FidelityError, match="'nope'"):
        run_fidelity(cfg, references=['nope'])


def test_acceptance_checks_read_the_summary():
    def st(m):
        return dict(mean=m, sd=0.0, lo=m - 0.01, hi=m + 0.01, n=3, values=[m] * 3)

    means = dict(hydra=0.5, linear=0.55, softmax=0.6, relu_linear=0.65, focused=0.7, agent=0.75,
                 trial_105=0.8, trial_140=0.7, identity=0.3)
    scores = {n: dict(deit=st(m), pvt=st(m), objective=st(m)) for n, m in means.items()}
    summary = dict(scores=scores, archs=['deit', 'pvt'], stability=dict(n=0),
                   correlations={'deit_t|objective': dict(kendall_tau_b=0.98)})
    out = {a['criterion'].split(' (')[0]: a['ok'] for a in acceptance(summary)}
    unmeasured = {'rank stability vs 4x budget >= 0.7', 'one candidate over all architectures <= 60 s'}
    assert {k for k, v in out.items() if v is None} == unmeasured  # no stability run: not measured
    assert all(v for k, v in out.items() if k not in unmeasured), out
    scores['trial_105'] = dict(deit=st(0.99), pvt=st(0.2), objective=st(0.2))
    out = {a['criterion'].split(' (')[0]: a['ok'] for a in acceptance(summary)}
    assert not out['no reference attention at >= 0.98'] and not out['identity clearly below every mixing attention']


def test_proxy_fidelity_cli_errors_and_compare(tmp_path):
    tool = os.path.join(ROOT, 'tools', 'proxy_fidelity.py')
    r = subprocess.run([sys.executable, tool, '--out', str(tmp_path), '--proxy', 'nope'],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "'nope'" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = subprocess.run([sys.executable, tool, '--out', str(tmp_path), '--compare', str(tmp_path / 'x')],
                       capture_output=True, text=True)
    assert r.returncode == 2 and 'summary.json' in r.stderr
    # --compare over two finished summaries
    for name, tau in (('a', 0.1), ('b', 0.7)):
        d = tmp_path / name
        d.mkdir()
        s = dict(label=name, scores={n: dict(objective=dict(mean=0.5, sd=0.01)) for n in REFERENCES},
                 correlations={'x': dict(backbone='deit_t', score='objective', kendall_tau_b=tau)},
                 stability=dict(n=0), acceptance=[dict(criterion='c', value='v', ok=True)])
        (d / 'summary.json').write_text(json.dumps(s))
    r = subprocess.run([sys.executable, tool, '--out', str(tmp_path), '--compare', str(tmp_path / 'a'),
                        str(tmp_path / 'b')], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    text = (tmp_path / 'comparison.md').read_text()
    assert '| a | b |' in text and '0.100 | 0.700' in text


def test_scenes_proxy_sets_the_proxy_vits_patch_size():
    """A 16x16 scene is 64 tokens (patch 2) in the DeiT/PVT proxies; the relational task keeps 16."""
    from attnzero.search.archs import build_proxy_model

    d = load_proxy('scenes?train=20&val=5&test=5')
    assert d.patch_size == 2 and load_proxy('relational?train=20&val=5&test=5').patch_size == 4
    m = build_proxy_model('deit', 'softmax', None, d.img_size, d.num_classes, None, d.patch_size)
    assert m.patch_embed.proj.kernel_size == (2, 2)
    tokens = m.forward_features(d.train_x[:2])
    assert tokens.shape[1] in (64, 65)  # with or without a cls token
    # an explicit override wins over the proxy's patch size
    m4 = build_proxy_model('deit', 'softmax', None, 16, 4, {'patch_size': 4}, 2)
    assert m4.patch_embed.proj.kernel_size == (4, 4)


@pytest.mark.parametrize('folder, name', [('relational', 'relational'), ('scenes', 'scenes-v1'),
                                          ('scenes-v2', 'scenes-v2'), ('scenes-v3', 'scenes-v3'),
                                          ('default', 'default')])
def test_committed_fidelity_tables_are_made_by_their_presets(folder, name):
    """Each committed table under ``docs/fidelity`` trains what its preset trains today, so its
    command makes it again (the run folder's config against the preset's)."""
    from attnzero.search.fidelity import _trained_fields

    path = os.path.join(os.path.dirname(__file__), '..', 'docs', 'fidelity', folder, 'settings.json')
    with open(path, encoding='utf-8') as f:
        stored = json.load(f)['config']
    assert _trained_fields(stored) == _trained_fields(preset(name).to_dict())
