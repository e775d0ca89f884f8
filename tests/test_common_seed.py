"""Common random numbers in the proxy training (``SearchConfig.common_seed``)."""
from __future__ import annotations

import json
import os

import torch

from attnzero.bench.evaluate import BenchSettings
from attnzero.search import load_proxy, preset
from attnzero.search.config import SearchConfig, with_defaults
from attnzero.search.evaluate import baseline_seed, candidate_seed
from attnzero.search.train import init_proxy_model, train_proxy
from attnzero.space import TRIAL_105, TRIAL_140

DATA = 'scenes?train=96&val=32&test=32'


def _cfg(common: bool) -> SearchConfig:
    return SearchConfig(common_seed=common, epochs=1, batch_size=32, rejection=False,
                        arch_overrides={'deit': dict(embed_dim=32, depth=2)})


def test_candidates_share_the_seed_and_every_weight_outside_the_kernel():
    cfg, data = _cfg(True), load_proxy(DATA)
    a, b = TRIAL_105.hash, TRIAL_140.hash
    assert candidate_seed(cfg, a, 'deit') == candidate_seed(cfg, b, 'deit') == baseline_seed(cfg, 'softmax', 'deit')
    assert candidate_seed(cfg, a, 'deit') != candidate_seed(cfg, a, 'pvt')
    assert candidate_seed(cfg, a, 'deit', 1) != candidate_seed(cfg, a, 'deit', 0)
    seed = candidate_seed(cfg, a, 'deit')
    models = {name: init_proxy_model('deit', attn, genome, data, cfg, seed) for name, attn, genome in
              [('softmax', 'softmax', None), ('t105', 'attnzero', TRIAL_105.to_string()),
               ('hydra', 'hydra', None)]}
    ref = models['softmax'].state_dict()
    for name in ('t105', 'hydra'):
        own = models[name].state_dict()
        shared = [k for k in own if '.kernel.' not in k]
        assert len(shared) == len(ref)
        assert all(torch.equal(own[k], ref[k]) for k in shared), name
    assert any('.kernel.' in k for k in models['t105'].state_dict())  # its DWC keeps its own init
    # the same data order too: one-step trainings of two candidates see the same first batch
    r1 = train_proxy('deit', 'attnzero', TRIAL_105.to_string(), cfg, data, seed, reject=False)
    r2 = train_proxy('deit', 'attnzero', TRIAL_105.to_string(), cfg, data, seed, reject=False)
    assert r1['acc'] == r2['acc'] and r1['loss_first'] == r2['loss_first']


def test_per_candidate_seeds_without_it():
    cfg, data = _cfg(False), load_proxy(DATA)
    assert candidate_seed(cfg, TRIAL_105.hash, 'deit') != candidate_seed(cfg, TRIAL_140.hash, 'deit')
    seed = candidate_seed(cfg, TRIAL_105.hash, 'deit')
    soft = init_proxy_model('deit', 'softmax', None, data, cfg, seed).state_dict()
    t105 = init_proxy_model('deit', 'attnzero', TRIAL_105.to_string(), data, cfg, seed).state_dict()
    # built from one seed, but the kernel's own parameters shift the stream for later layers
    assert not all(torch.equal(t105[k], soft[k]) for k in soft)


def test_stored_configs_that_predate_it_keep_their_protocol():
    assert SearchConfig().common_seed is True and preset('default').common_seed is True
    old = SearchConfig().to_dict()
    del old['common_seed']
    assert SearchConfig.from_dict(old).common_seed is False
    assert with_defaults(old)['common_seed'] is False
    for name in ('relational', 'scenes-v1', 'tiny'):
        assert preset(name).common_seed is False
    # a bench built before the field keeps its settings id and its seeds
    s_old = BenchSettings(search=old)
    s_new = BenchSettings(search=dict(old, common_seed=False))
    assert s_old.id == s_new.id and s_old.config('deit').common_seed is False
    assert BenchSettings(search=dict(old, common_seed=True)).id != s_old.id


def test_the_committed_bench_settings_still_load():
    path = os.path.join(os.path.dirname(__file__), '..', 'attnzero', 'data')
    builds = [os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs if f == 'build.json']
    for p in builds:
        with open(p, encoding='utf-8') as f:
            search = json.load(f).get('settings', {}).get('search')
        if search:
            assert BenchSettings(search=search).config('deit').common_seed is bool(search.get('common_seed', False))
