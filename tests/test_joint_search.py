"""The joint attention + ViT shape search (``SearchConfig.space='joint'``, ``tools/search.py --space
joint``): end to end on the tiny proxy, its outputs (best_archs.json, the create_model line, the mm
config fragment, the plot), kill and resume, and its errors (tiny configurations: seconds)."""
from __future__ import annotations

import json
import os
import re
import shlex

import numpy as np
import pytest
import timm
import torch

import attnzero.models  # noqa: F401  (registers attnzero_vit in timm)
from attnzero.flops import count_flops
from attnzero.search import ConfigError, Search, SearchConfig, preset
from attnzero.search.config import JOINT_SEED_SHAPE
from attnzero.search.evaluate import precheck
from attnzero.space import SOFTMAX, TRIAL_105, Genome, fingerprint
from attnzero.space.shape import SHAPE_SPACES, JointGenome, ViTShape, vit_macs, vit_params
from conftest import has_mm_stack, kill_search_when

#: Trial-105 written differently (a scale before a scale-invariant l2norm_last): the same function
TWIN = 'i3n303:elu;min_max_normalize;scale,l2norm_last;normalize;-;l2norm_last:einsum2,matmul,product'
SEED = f'{JOINT_SEED_SHAPE}|{TRIAL_105}'


def _cfg(**kw) -> SearchConfig:
    return preset('joint-tiny').replace(**kw)


@pytest.fixture(scope='module')
def joint_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp('joint') / 'run')
    s = Search(_cfg(), run_dir, progress=False)
    summary = s.run()
    return s, summary


def test_tiny_joint_search_end_to_end(joint_run):
    s, summary = joint_run
    d = s.run_dir
    for name in ('best_archs.json', 'best_arch_mmconfig.py', 'pareto.png', 'pareto.csv', 'summary.json',
                 'final_population.json', 'evaluations.jsonl'):
        assert os.path.getsize(os.path.join(d, name)) > 0, name
    with open(os.path.join(d, 'pareto.png'), 'rb') as f:
        assert f.read(8) == b'\x89PNG\r\n\x1a\n'
    # a joint front is models, not attention genomes: no best_genomes.json for the attention tools
    assert not os.path.exists(os.path.join(d, 'best_genomes.json'))
    assert s.state.done and s.state.generation == 2
    space = SHAPE_SPACES['proxy']
    for r in s.state.records.values():   # every candidate a joint text of the space, costed at full size
        j = JointGenome.parse(r['genome'])
        assert space.contains(j.shape) and r['shape'] == j.shape.to_string() and r['hash'] == j.hash
        assert r['params'] == vit_params(j.shape, j.attention) and r['macs'] == vit_macs(j.shape, j.attention)
        assert r['F'][1:] == [r['params'] / 1e6, r['macs'] / 1e9] and len(r['F']) == 3
    assert s.state.records[0]['genome'] == SEED   # the initial genome first
    trained = [r for r in s.state.records.values() if r['stage'] == 'train']
    assert len({r['shape'] for r in trained}) > 1   # shapes were searched, not only attentions
    best = json.load(open(os.path.join(d, 'best_archs.json')))
    assert best and summary['objectives'] == ['neg_acc_mean', 'params_M', 'macs_G']
    assert [b['joint'] for b in best] == [p['genome'] for p in summary['pareto']]
    assert [b['val_acc'] for b in best] == sorted((b['val_acc'] for b in best), reverse=True)
    for b in best:
        rec = s.state.records[b['idx']]
        assert rec['status'] == 'ok' and b['joint'] == f'{b["shape"]}|{b["genome"]}' == rec['genome']
        assert b['val_acc'] == rec['acc_mean'] and b['test_acc'] is not None
        assert (b['params'], b['macs']) == (rec['params'], rec['macs'])
        assert b['full_size'] == dict(img_size=224, patch_size=16, num_classes=1000)
    assert any(b['acc_params_front'] for b in best)
    # the front is the non-dominated set of the completed candidates (one per function and shape)
    ok = [r for r in s.state.records.values() if r['status'] == 'ok']
    F = np.array([r['F'] for r in ok])
    for b in best:
        f = np.array(s.state.records[b['idx']]['F'])
        assert not any((g <= f).all() and (g < f).any() for g in F)
    log = open(os.path.join(d, 'search.log')).read()
    assert 'dispatch' in log


def test_front_params_and_macs_are_those_of_the_full_size_model(joint_run):
    """Every front point's ``python`` line builds it (timm's attnzero_vit at 224 px, 1000 classes);
    its parameter count is the recorded one exactly. Its MACs are the counter's exactly outside the
    attention kernels; inside, the analytic count is the genome's static cost (which also counts
    its elementwise work, left out by the counter) plus the depthwise conv on V."""
    s, _ = joint_run
    best = json.load(open(os.path.join(s.run_dir, 'best_archs.json')))
    for b in best:
        assert re.fullmatch(r"import timm, attnzero\.models; model = timm\.create_model\('attnzero_vit', "
                            r"arch='[^']+', attn='attnzero', genome='[^']+'\)", b['python'])
        scope: dict = {}
        exec(b['python'], scope)  # noqa: S102 - the line the search wrote for users to run
        model = scope['model'].eval()
        assert model.vit_shape == ViTShape.parse(b['shape'])
        assert model.num_classes == 1000 and model.img_size == (224, 224)
        assert sum(p.numel() for p in model.parameters()) == b['params']
        c = count_flops(model, torch.zeros(1, 3, 224, 224), depth=6)
        kernels = sum(v for k, v in c.by_module.items() if k.endswith('.attn.kernel')) // 2   # with their DWC
        shape, genome = ViTShape.parse(b['shape']), Genome.parse(b['genome'])
        n_patch = (224 // 16) ** 2
        static = sum(genome.complexity().flops(n_patch + 1, shape.head_dim, heads=h) for h in shape.num_heads)
        dwc = sum(n_patch * shape.attn_dim(i) * 9 for i in range(shape.depth))
        assert kernels > 0 and c.macs - kernels == b['macs'] - static - dwc
        assert kernels - dwc <= static < 2 * (kernels - dwc)


def test_front_point_exports_to_onnx_with_its_export_line(joint_run, tmp_path, capsys):
    """The ``export`` line of best_archs.json runs through tools/export.py: the found model (shape and
    genome) goes to ONNX and onnxruntime matches eager (at a small input, for test time)."""
    from attnzero.models.export import main as export_main

    s, _ = joint_run
    b = json.load(open(os.path.join(s.run_dir, 'best_archs.json')))[0]
    argv = shlex.split(b['export'])
    assert argv[:3] == ['python', 'tools/export.py', 'attnzero_vit'] and '--format' in argv
    out = tmp_path / 'best.onnx'
    rc = export_main(argv[2:] + ['--img-size', '32', '--num-classes', '10', '--out', str(out),
                                 '--json', str(tmp_path / 'r.json')])
    assert rc == 0, capsys.readouterr().err
    r = json.load(open(tmp_path / 'r.json'))
    assert out.exists() and r['arch'] == b['shape'] and r['genome'] == b['genome'] and r['max_abs_err'] <= 1e-4


def test_export_arch_is_for_attnzero_vit_only(tmp_path, capsys):
    from attnzero.models.export import main as export_main

    rc = export_main(['attnzero_deit_tiny', '--arch', 'e48:hd24:h2:r2', '--out', str(tmp_path / 'x.pt2')])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "'e48:hd24:h2:r2'" in err[0]


def test_proxy_trains_at_the_candidate_shape_with_common_seed_weights():
    from attnzero.search.proxies import load_proxy
    from attnzero.search.train import init_proxy_model

    cfg = _cfg(common_seed=True)
    data = load_proxy(cfg.proxy)
    shape = 'e40:hd24:h1,2,1:r1.5,2,1.5'
    model = init_proxy_model('deit', 'attnzero', TRIAL_105.to_string(), data, cfg, 3, shape)
    assert model.vit_shape == ViTShape.parse(shape) and model.patch_size == data.patch_size
    ref = init_proxy_model('deit', 'softmax', None, data, cfg, 3, shape).state_dict()
    own = model.state_dict()
    shared = [k for k in own if '.kernel.' not in k]
    assert 'blocks.2.mlp.fc1.weight' in shared and own['blocks.2.mlp.fc1.weight'].shape == (60, 40)
    for k in shared:   # every weight outside the kernel is the softmax model's of the same shape
        assert torch.equal(own[k], ref[k]), k
    from attnzero.search.archs import ArchError, build_proxy_model
    with pytest.raises(ArchError, match="'pvt' takes no ViT shape"):
        build_proxy_model('pvt', 'softmax', None, 16, 4, shape=shape)


def test_kill_and_resume_joint_search_same_final_population(tmp_path):
    cfg = _cfg(generations=3, seed=7)
    killed = str(tmp_path / 'killed')
    cfg_file = tmp_path / 'cfg.json'
    cfg_file.write_text(cfg.to_json())
    before = kill_search_when(str(cfg_file), killed, lambda st: len(st.get('records', [])) >= 4)
    finished = {r['idx']: r for r in before['records']}
    assert not before.get('done')

    resumed = Search(None, killed, resume=True, progress=False)
    resumed.run()
    session2 = open(os.path.join(killed, 'search.log')).read().split('session 2 in')[1]
    redone = {int(m) for m in re.findall(r'dispatch idx=(\d+)', session2)} & set(finished)
    assert not redone, f'evaluations {sorted(redone)} were run twice'

    fresh = Search(cfg, str(tmp_path / 'fresh'), progress=False)
    fresh.run()
    assert resumed.state.population == fresh.state.population
    assert all('|' in p['genome'] for p in fresh.state.population)
    assert resumed.state.generation == fresh.state.generation == 3
    assert {i: (r['genome'], r['F']) for i, r in resumed.state.records.items()} == \
        {i: (r['genome'], r['F']) for i, r in fresh.state.records.items()}
    best = [json.load(open(os.path.join(d, 'best_archs.json'))) for d in (killed, str(tmp_path / 'fresh'))]
    assert best[0] == best[1]


def test_precheck_of_joint_texts():
    cfg = _cfg()
    ok = precheck(SEED, cfg)
    j = JointGenome.parse(SEED)
    assert ok['ok'] and ok['hash'] == j.hash and ok['shape'] == JOINT_SEED_SHAPE
    assert ok['params'] == SHAPE_SPACES['proxy'].params(j.shape, TRIAL_105) and ok['cost'] == ok['params'] / 1e6
    outside = f'e64:hd24:h2,2:r2,2|{TRIAL_105}'
    for text, needle in ((outside, "'e64:hd24:h2,2:r2,2' is not in the 'proxy' shape space: embed_dim 64"),
                         ('e48:hd24:h2:r2|nonsense', "'e48:hd24:h2:r2|nonsense'"),
                         (str(TRIAL_105), repr(str(TRIAL_105))),
                         ('e48:hd24:hx:r2|' + str(TRIAL_105), "'x'")):
        pre = precheck(text, cfg)
        assert (pre['ok'], pre['reason']) == (False, 'invalid'), text
        assert needle in pre['message'] and '\n' not in pre['message'], pre['message']
    quad = precheck(f'{JOINT_SEED_SHAPE}|{SOFTMAX}', cfg)   # the attention part is checked as before
    assert (quad['ok'], quad['reason']) == (False, 'quadratic')


def test_joint_config_errors_are_one_line_naming_the_value(tmp_path, capsys):
    from attnzero.search.cli import search_main

    cases = [(dict(archs=['deit', 'pvt']), "archs=['deit', 'pvt']: the joint space shapes the DeiT proxy only"),
             (dict(shape_space='huge'), "shape_space='huge'"),
             (dict(cost='latency'), "cost='latency'"),
             (dict(init_genomes=['e64:hd24:h2:r2|' + str(TRIAL_105)]), "'e64:hd24:h2:r2' is not in the 'proxy' space"),
             (dict(init_genomes=[str(TRIAL_105)]), repr(str(TRIAL_105)))]
    for kw, needle in cases:
        with pytest.raises(ConfigError) as e:
            SearchConfig(space='joint', **kw).validate()
        assert needle in str(e.value) and '\n' not in str(e.value), str(e.value)
    with pytest.raises(ConfigError, match="space='nope'"):
        SearchConfig(space='nope').validate()
    assert search_main(['--space', 'joint', '--archs', 'deit,pvt', '--run-dir', str(tmp_path / 'r'),
                        '--no-progress']) == 2
    err = capsys.readouterr().err
    assert err.startswith("search.py: error: archs=['deit', 'pvt']") and err.count('\n') == 1
    assert not os.path.exists(tmp_path / 'r')
    from attnzero.search.fidelity import FidelityError, run_fidelity
    with pytest.raises(FidelityError, match="space='joint'"):   # it ranks attentions in fixed proxies
        run_fidelity(_cfg(), out_dir=str(tmp_path / 'f'))
    assert not os.path.exists(tmp_path / 'f')


def test_cli_space_joint_picks_the_joint_preset():
    from attnzero.search.cli import config_from_args, search_parser

    def cfg(*argv):
        return config_from_args(search_parser().parse_args(list(argv)))

    assert cfg('--space', 'joint') == preset('joint')
    assert preset('joint').space == 'joint' and preset('joint').archs == ['deit'] and preset('joint').workers == 2
    assert cfg('--space', 'joint', '--preset', 'joint-tiny') == preset('joint-tiny')
    assert cfg('--space', 'joint', '--shape-space', 'autoformer_t', '--set', 'init_genomes=[]').shape_space == \
        'autoformer_t'
    assert cfg() == preset('default') and cfg().space == 'default'


def test_joint_operators_and_duplicates():
    from pymoo.core.population import Population

    from attnzero.search.operators import (FECDuplicateElimination, GenomeProblem, JointCrossover,
                                           JointMutation, JointSampling, TextDuplicateElimination,
                                           build_algorithm, fec_key, space_distribution)
    from attnzero.space import is_valid

    space, dist, prob = SHAPE_SPACES['proxy'], space_distribution('joint'), GenomeProblem(3)
    X1 = JointSampling(space, dist, [SEED]).do(prob, 6, random_state=np.random.default_rng(3)).get('X')
    X2 = JointSampling(space, dist, [SEED]).do(prob, 6, random_state=np.random.default_rng(3)).get('X')
    assert (X1 == X2).all() and X1[0, 0] == SEED

    def valid(x):
        j = JointGenome.parse(x)
        return space.contains(j.shape) and is_valid(j.attention) and j.to_string() == x

    assert all(valid(x) for x in X1[:, 0])
    rng = np.random.default_rng(0)
    M = JointMutation(space, dist, prob=1.0)._do(prob, X1, random_state=rng)
    assert all(valid(x) for x in M[:, 0]) and all(a != b for a, b in zip(M[:, 0], X1[:, 0]))
    C = JointCrossover(space, dist)._do(prob, np.stack([X1[:3], X1[3:]]), random_state=rng)
    assert C.shape == (1, 3, 1) and all(valid(x) for x in C[0, :, 0])
    # duplicates: the same shape with the same function; another shape is another model
    assert fingerprint(Genome.parse(TWIN)) == fingerprint(TRIAL_105)
    twin = f'{JOINT_SEED_SHAPE}|{TWIN}'
    other = f'e32:hd24:h2,2,2,2:r2,2,2,2|{TRIAL_105}'
    assert fec_key(twin) == fec_key(SEED) != fec_key(other)
    X = np.array([[SEED], [twin], [other]], dtype=object)
    assert len(FECDuplicateElimination().do(Population.new('X', X))) == 2
    assert len(TextDuplicateElimination().do(Population.new('X', X))) == 3
    alg = build_algorithm(_cfg())
    assert isinstance(alg.mating.mutation, JointMutation) and isinstance(alg.initialization.sampling, JointSampling)


@pytest.mark.skipif(not has_mm_stack('mmpretrain'), reason='OpenMMLab stack with mmpretrain not installed')
def test_mm_config_fragment_builds_the_chosen_model(joint_run, tmp_path):
    """best_arch_mmconfig.py as a second _base_ of the repository's ImageNet and Mask R-CNN bases:
    the classifier's timm arguments and the dense AttnZeroDeiT backbone of the chosen shape."""
    from mmengine.config import Config
    from mmengine.registry import MODELS

    import attnzero.mm  # noqa: F401  (registers the backbones)

    s, _ = joint_run
    best = json.load(open(os.path.join(s.run_dir, 'best_archs.json')))[0]
    frag = os.path.join(s.run_dir, 'best_arch_mmconfig.py')
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    (tmp_path / 'cls.py').write_text(
        f"_base_ = [{os.path.join(root, 'mmconfigs/_base_/in1k_8xb128-300e.py')!r}, {frag!r}]\n"
        "model = dict(model_name='attnzero_vit', **_base_.attnzero_vit)\n")
    m = Config.fromfile(str(tmp_path / 'cls.py')).model
    assert (m.type, m.model_name, m.arch, m.attn, m.genome) == ('TimmClassifier', 'attnzero_vit', best['shape'],
                                                               'attnzero', best['genome'])
    vit = timm.create_model(m.model_name, arch=m.arch, attn=m.attn, genome=m.genome, num_classes=m.num_classes)
    assert sum(p.numel() for p in vit.parameters()) == best['params']
    (tmp_path / 'det.py').write_text(
        f"_base_ = [{os.path.join(root, 'mmconfigs/_base_/mask-rcnn_fpn_1x_coco.py')!r}, {frag!r}]\n"
        "model = dict(backbone=dict(_delete_=True, **_base_.attnzero_backbone),\n"
        "             neck=dict(in_channels=_base_.attnzero_channels))\n")
    m = Config.fromfile(str(tmp_path / 'det.py')).model
    backbone = MODELS.build(m.backbone).eval()
    assert backbone.vit_shape == ViTShape.parse(best['shape'])
    with torch.no_grad():
        feats = backbone(torch.randn(1, 3, 64, 64))
    assert len(feats) == 4 and [f.shape[1] for f in feats] == list(m.neck.in_channels)
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]


def test_the_seed_shape_presets_build_the_seed_shape_deit():
    """The presets whose DeiT is the joint search's seed shape (scenes-v2/-v3, joint) override it
    to exactly that shape's width and depth."""
    from attnzero.search.config import JOINT_SEED_SHAPE, PRESETS
    from attnzero.space.shape import ViTShape

    seed = ViTShape.parse(JOINT_SEED_SHAPE)
    for name in ('scenes-v2', 'scenes-v3', 'joint'):
        assert PRESETS[name]['arch_overrides'] == {'deit': {'depth': len(seed.num_heads), 'embed_dim': seed.embed_dim}}
    PRESETS['joint']['arch_overrides']['deit']['depth'] = 99   # no preset shares another's dict
    try:
        assert PRESETS['scenes-v3']['arch_overrides']['deit']['depth'] == len(seed.num_heads)
    finally:
        PRESETS['joint']['arch_overrides']['deit']['depth'] = len(seed.num_heads)
