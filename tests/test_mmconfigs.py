"""Every config of mmconfigs/ loads and builds its model; the recipes are the papers' (issue 6);
mmengine merges every file to exactly the contents recorded in tests/fixtures/mmconfigs_merged.json
(issue 15: the files are written by hand in mmdet's layout, each inheriting its nearest sibling)."""
from __future__ import annotations

import ast
import glob
import json
import os
import subprocess

import pytest

from conftest import has_mm_stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CFG_DIR = os.path.join(ROOT, 'mmconfigs')

MM = has_mm_stack('mmpretrain')


def needs_mm(fn):
    """Marks an OpenMMLab test (``mm``) and skips it without the stack."""
    return pytest.mark.mm(pytest.mark.skipif(not MM, reason='OpenMMLab stack not installed')(fn))


@pytest.fixture(scope='module', autouse=True)
def fast_base_lookup():
    """What the tools do before loading a config: skip mmengine's metafile scan for ``_base_/``
    files (attnzero.mm.runner.speed_up_base_lookup; the resolved paths are the same)."""
    if MM:
        from attnzero.mm.runner import speed_up_base_lookup
        speed_up_base_lookup()
    yield


def _rel(p: str) -> str:
    return os.path.relpath(p, ROOT)


ALL = sorted(glob.glob(os.path.join(CFG_DIR, '**', '*.py'), recursive=True))
CONFIGS = [_rel(p) for p in ALL]
RUNNABLE = [c for c in CONFIGS if '/_base_/' not in c]
# the default-suite build subset: every task family and every backbone family at least once
FAST_BUILD = [
    'mmconfigs/mask_rcnn/mask-rcnn_pvt-t-attnzero_fpn_1x_coco.py',
    'mmconfigs/mask_rcnn/mask-rcnn_swin-t-attnzero_fpn_1x_coco.py',
    'mmconfigs/retinanet/retinanet_pvtv2-b0-softmax_fpn_1x_coco.py',
    'mmconfigs/sem_fpn/fpn_pvtv2-b1-attnzero_8xb2-80k_ade20k-512x512.py',
    'mmconfigs/upernet/upernet_cswin-t-attnzero_8xb2-160k_ade20k-512x512.py',
    'mmconfigs/imagenet/deit-t-attnzero_8xb128-300e_in1k.py',
    'mmconfigs/imagenet/pvtv2-b0-softmax_8xb128-300e_in1k.py',
    'mmconfigs/retinanet/retinanet_efficientformer-l1-attnzero_fpn_1x_coco.py',
]  # (the toy configs are built and trained by tests/test_toy_train.py)

# ----------------------------------------------------------------------------- the config set
# backbone -> the config it inherits (its family's smallest size; None: a family file, which
# inherits the task base in mmconfigs/_base_/)
SIZES = {
    'deit-t': None, 'deit-s': 'deit-t',  # DeiT: ImageNet only
    'pvt-t': None, 'pvt-s': 'pvt-t',
    'pvtv2-b0': None, 'pvtv2-b1': 'pvtv2-b0', 'pvtv2-b2': 'pvtv2-b1',
    'swin-t': None, 'swin-s': 'swin-t',
    'cswin-t': None, 'cswin-s': 'cswin-t',
    'efficientformer-l1': None, 'efficientformer-l3': 'efficientformer-l1',
}
DENSE = [bb for bb in SIZES if not bb.startswith('deit')]
ATTNS = ('softmax', 'attnzero')
# task folder -> (its base in mmconfigs/_base_/, file-name pattern of its configs)
TASKS = {
    'imagenet': ('in1k_8xb128-300e.py', '{}_8xb128-300e_in1k.py'),
    'mask_rcnn': ('mask-rcnn_fpn_1x_coco.py', 'mask-rcnn_{}_fpn_1x_coco.py'),
    'retinanet': ('retinanet_fpn_1x_coco.py', 'retinanet_{}_fpn_1x_coco.py'),
    'sem_fpn': ('fpn_8xb2-80k_ade20k-512x512.py', 'fpn_{}_8xb2-80k_ade20k-512x512.py'),
    'upernet': ('upernet_8xb2-160k_ade20k-512x512.py', 'upernet_{}_8xb2-160k_ade20k-512x512.py'),
}


#: configs beside the backbone x attention matrix: token reduction of the compact-ViT survey (each
#: inherits the config of the model it fine-tunes)
TOKEN_REDUCTION = {'mmconfigs/imagenet/deit-t-attnzero-dynamicvit_8xb128-30e_in1k.py',
                   'mmconfigs/imagenet/deit-t-softmax-dynamicvit_8xb128-30e_in1k.py'}


def config_path(task: str, bb: str, attn: str) -> str:
    return f'mmconfigs/{task}/' + TASKS[task][1].format(f'{bb}-{attn}')


def _task_backbones(task: str):
    return list(SIZES) if task == 'imagenet' else DENSE


def test_config_set_is_complete():
    expected = {config_path(t, bb, a) for t in TASKS for bb in _task_backbones(t) for a in ATTNS}
    assert len(expected) == 4 * len(DENSE) * 2 + len(SIZES) * 2 == 114
    on_disk = {c for c in RUNNABLE if '/toy/' not in c}
    assert on_disk == expected | TOKEN_REDUCTION
    toys = {os.path.basename(c) for c in RUNNABLE if '/toy/' in c}
    assert any(t.startswith('mask-rcnn') for t in toys) and any(t.startswith('retinanet') for t in toys)
    assert any(t.startswith('fpn') for t in toys) and any(t.startswith('upernet') for t in toys)
    assert any(t.endswith('in1k.py') for t in toys)


def _base_of(rel: str):
    """The ``_base_`` of a config file as written (a string or a list), read without mmengine."""
    with open(os.path.join(ROOT, rel)) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        targets = [getattr(t, 'id', None) for t in getattr(node, 'targets', ())]
        if isinstance(node, ast.Assign) and targets == ['_base_']:
            return ast.literal_eval(node.value)
    return None


def test_layout_each_config_inherits_its_nearest_sibling():
    """mmdet's layout: the softmax baseline is its AttnZero sibling plus ``attn='softmax'``, a size
    inherits the next smaller one, a family file inherits the task base; no generated files."""
    for task, (base, _) in TASKS.items():
        for bb in _task_backbones(task):
            az = config_path(task, bb, 'attnzero')
            parent = SIZES[bb]
            want = (f'../_base_/{base}' if parent is None else
                    './' + os.path.basename(config_path(task, parent, 'attnzero')))
            assert _base_of(az) == want, az
            sm = config_path(task, bb, 'softmax')
            assert _base_of(sm) == './' + os.path.basename(az), sm
            with open(os.path.join(ROOT, sm)) as f:
                assert "attn='softmax'" in f.read(), sm
    assert not os.path.exists(os.path.join(CFG_DIR, '_generate.py'))
    for rel in CONFIGS:
        with open(os.path.join(ROOT, rel)) as f:
            text = f.read()
        assert 'Generated by' not in text and '_generate' not in text, rel


def test_docs_list_every_config():
    with open(os.path.join(ROOT, 'docs', 'mmconfigs.md')) as f:
        doc = f.read()
    missing = [c for c in RUNNABLE if f'`{c}`' not in doc]
    assert not missing, f'docs/mmconfigs.md does not list {missing}'


def _load(rel: str):
    from mmengine.config import Config
    return Config.fromfile(os.path.join(ROOT, rel))


# ----------------------------------------------------------------------------- merged contents
# tests/fixtures/mmconfigs_merged.json holds what mmengine makes of every file of mmconfigs/ (its
# ``cfg.to_dict()`` after all ``_base_`` merges): refactoring the files (inheritance between
# siblings, shared blocks in ``_base_/``) must leave it unchanged. After an *intended* change of a
# config, or a new config, rewrite it with ``python tests/fixtures/mmconfigs_update_merged.py``
# and review the diff.
MERGED_FIXTURE = os.path.join(ROOT, 'tests', 'fixtures', 'mmconfigs_merged.json')
ROOT_PLACEHOLDER = '<repo>'
TOY_ROOT_ENV = 'ATTNZERO_TOY_ROOT'  # read by the toy configs ({{$ATTNZERO_TOY_ROOT:data/toy}})


def to_jsonable(node):
    """A config value as plain JSON, deterministically: tuples become ``{"__tuple__": [...]}`` (so
    that a tuple turning into a list shows), the checkout's root in strings becomes ``<repo>``;
    any other type is an error."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if not isinstance(k, str):
                raise TypeError(f'non-string config key {k!r}')
            out[k] = to_jsonable(v)
        return out
    if isinstance(node, tuple):
        return {'__tuple__': [to_jsonable(v) for v in node]}
    if isinstance(node, list):
        return [to_jsonable(v) for v in node]
    if isinstance(node, str):
        return node.replace(ROOT, ROOT_PLACEHOLDER)
    if node is None or isinstance(node, (bool, int, float)):
        return node
    raise TypeError(f'config value of type {type(node).__name__}: {node!r}')


def merged_config(rel: str):
    """``Config.fromfile(rel).to_dict()`` as :func:`to_jsonable` JSON, with the toy data root at
    its default (``ATTNZERO_TOY_ROOT`` unset while loading)."""
    saved = os.environ.pop(TOY_ROOT_ENV, None)
    try:
        return to_jsonable(_load(rel).to_dict())
    finally:
        if saved is not None:
            os.environ[TOY_ROOT_ENV] = saved


def merged_configs():
    """{path relative to the repo: merged contents} of every config file in mmconfigs/."""
    return {rel: merged_config(rel) for rel in CONFIGS}


def dump_merged(path: str = MERGED_FIXTURE) -> None:
    with open(path, 'w') as f:
        json.dump(merged_configs(), f, indent=1, sort_keys=True)
        f.write('\n')


def _differences(got, want, where='cfg'):
    """Paths at which two :func:`to_jsonable` values differ."""
    if isinstance(got, dict) and isinstance(want, dict):
        out = []
        for k in sorted(set(got) | set(want)):
            if k not in want or k not in got:
                out.append(f'{where}.{k}: ' + ('extra' if k not in want else 'missing'))
            else:
                out += _differences(got[k], want[k], f'{where}.{k}')
        return out
    if isinstance(got, list) and isinstance(want, list) and len(got) == len(want):
        return [d for i, (g, w) in enumerate(zip(got, want))
                for d in _differences(g, w, f'{where}[{i}]')]
    return [] if got == want else [f'{where}: {got!r} != {want!r}']


@pytest.fixture(scope='module')
def merged_fixture():
    with open(MERGED_FIXTURE) as f:
        return json.load(f)


def test_merged_fixture_lists_every_config(merged_fixture):
    assert sorted(merged_fixture) == CONFIGS, \
        'a config was added or removed: run tests/fixtures/mmconfigs_update_merged.py'


@pytest.mark.parametrize('rel', CONFIGS)
@needs_mm
def test_config_merges_to_the_fixture(rel, merged_fixture):
    """What mmengine makes of the file is what it was (tests/fixtures/mmconfigs_merged.json)."""
    got = merged_config(rel)
    diffs = _differences(got, merged_fixture[rel])
    assert not diffs, f'{rel} merges differently: ' + '; '.join(diffs[:10])


def _strings(node):
    if isinstance(node, dict):
        for v in node.values():
            yield from _strings(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from _strings(v)
    elif isinstance(node, str):
        yield node


@pytest.mark.parametrize('rel', CONFIGS)
@needs_mm
def test_config_loads(rel):
    cfg = _load(rel)
    assert cfg.default_scope in ('mmdet', 'mmseg', 'mmpretrain')
    assert 'attnzero.mm' in cfg.custom_imports['imports']
    assert cfg.custom_imports['allow_failed_imports'] is False
    if cfg.default_scope == 'mmpretrain':
        assert cfg.model.type in ('TimmClassifier', 'DynamicViTClassifier')
        assert cfg.model.model_name.startswith('attnzero_')
    else:
        assert cfg.model.backbone.type.startswith('AttnZero')
    # no hub weights: only local checkpoints (user-given / produced by the ImageNet configs)
    for s in _strings(cfg.to_dict()):
        assert not s.startswith(('http://', 'https://', 'open-mmlab://', 'torchvision://',
                                 'mmcls://', 'pretrain://')), (rel, s)
    if rel.startswith(('mmconfigs/mask_rcnn', 'mmconfigs/retinanet', 'mmconfigs/sem_fpn',
                       'mmconfigs/upernet')):
        # ImageNet weights of the same backbone and attention flow in through init_cfg
        init = cfg.model.backbone.init_cfg
        assert init['type'] == 'Pretrained' and init['checkpoint'].startswith('work_dirs/'), init
        cls_name = init['checkpoint'].split('/')[1]
        cls_rel = os.path.join('mmconfigs', 'imagenet', cls_name + '.py')
        assert os.path.exists(os.path.join(ROOT, cls_rel)), cls_name
        cls_cfg = _load(cls_rel)
        assert cls_cfg.model.attn == cfg.model.backbone.attn


def _opt(cfg):
    return cfg.optim_wrapper.optimizer


def _sched(cfg, type_):
    return [s for s in cfg.param_scheduler if s['type'] == type_]


@needs_mm
def test_detection_recipes():
    for det, lr in (('mask_rcnn/mask-rcnn', 2e-4), ('retinanet/retinanet', 1e-4)):
        for bb in ('pvt-t', 'pvtv2-b2'):
            cfg = _load(f'mmconfigs/{det}_{bb}-attnzero_fpn_1x_coco.py')
            o = _opt(cfg)
            assert (o.type, o.lr, o.weight_decay) == ('AdamW', lr, 1e-4)
            assert 'momentum' not in o
        for bb in ('swin-s', 'cswin-t'):
            cfg = _load(f'mmconfigs/{det}_{bb}-softmax_fpn_1x_coco.py')
            o = _opt(cfg)
            assert (o.type, o.lr, o.weight_decay) == ('AdamW', 1e-4, 0.05)
            pw = cfg.optim_wrapper.paramwise_cfg
            assert pw.norm_decay_mult == 0.0
            assert pw.custom_keys['relative_position_bias_table'].decay_mult == 0.0
            assert pw.custom_keys['absolute_pos_embed'].decay_mult == 0.0
        assert cfg.train_cfg.max_epochs == 12
        assert _sched(cfg, 'MultiStepLR')[0].milestones == [8, 11]
        assert cfg.train_dataloader.batch_size * 8 == 16
        assert cfg.auto_scale_lr.base_batch_size == 16
    cfg = _load('mmconfigs/mask_rcnn/mask-rcnn_swin-t-attnzero_fpn_1x_coco.py')
    assert cfg.model.type == 'MaskRCNN' and cfg.val_evaluator.metric == ['bbox', 'segm']
    assert tuple(cfg.model.backbone.attn) == ('attnzero', 'attnzero', 'attnzero', 'softmax')
    assert cfg.model.neck.in_channels == [96, 192, 384, 768]
    cfg = _load('mmconfigs/retinanet/retinanet_pvtv2-b0-attnzero_fpn_1x_coco.py')
    assert cfg.model.type == 'RetinaNet' and cfg.model.neck.in_channels == [32, 64, 160, 256]


@needs_mm
def test_segmentation_recipes():
    cfg = _load('mmconfigs/sem_fpn/fpn_pvt-s-attnzero_8xb2-80k_ade20k-512x512.py')
    o = _opt(cfg)
    assert (o.type, o.lr, o.weight_decay) == ('AdamW', 1e-4, 1e-4)
    (poly,) = _sched(cfg, 'PolyLR')
    assert poly.end == cfg.train_cfg.max_iters == 80000 and poly.power == 0.9
    assert cfg.crop_size == (512, 512) and cfg.model.decode_head.num_classes == 150
    assert cfg.model.pretrained is None
    cfg = _load('mmconfigs/upernet/upernet_cswin-s-attnzero_8xb2-160k_ade20k-512x512.py')
    o = _opt(cfg)
    assert (o.type, o.lr, o.weight_decay) == ('AdamW', 6e-5, 0.01)
    (warm,) = _sched(cfg, 'LinearLR')
    (poly,) = _sched(cfg, 'PolyLR')
    assert warm.end == 1500 and poly.begin == 1500 and poly.power == 1.0
    assert poly.end == cfg.train_cfg.max_iters == 160000
    assert cfg.train_dataloader.batch_size * 8 == 16
    assert cfg.model.auxiliary_head.type == 'FCNHead' and cfg.model.auxiliary_head.in_channels == 256
    assert cfg.model.decode_head.in_channels == [64, 128, 256, 512]
    assert cfg.model.decode_head.num_classes == cfg.model.auxiliary_head.num_classes == 150


@needs_mm
def test_classification_recipe():
    cfg = _load('mmconfigs/imagenet/swin-t-attnzero_8xb128-300e_in1k.py')
    o = _opt(cfg)
    bs = cfg.train_dataloader.batch_size * 8
    assert (o.type, o.weight_decay) == ('AdamW', 0.05) and o.lr == pytest.approx(1e-3 * bs / 1024)
    assert cfg.train_cfg.max_epochs == 300
    assert _sched(cfg, 'CosineAnnealingLR')
    assert cfg.auto_scale_lr.base_batch_size == 1024
    augs = {a['type'] for a in cfg.model.train_cfg.augments}
    assert augs == {'Mixup', 'CutMix'}
    steps = {t['type'] for t in cfg.train_dataloader.dataset.pipeline}
    assert {'RandAugment', 'RandomErasing', 'RandomResizedCrop'} <= steps
    assert cfg.model.loss.type == 'LabelSmoothLoss' and cfg.model.type == 'TimmClassifier'
    assert cfg.model.drop_path_rate == 0.2 and cfg.model.model_name == 'attnzero_swin_tiny'
    assert tuple(cfg.model.attn) == ('attnzero', 'attnzero', 'attnzero', 'softmax')
    cfg = _load('mmconfigs/imagenet/cswin-t-attnzero_8xb128-300e_in1k.py')
    assert any(h['type'] == 'EMAHook' for h in cfg.custom_hooks)


def build_model(rel):
    from attnzero.mm.runner import setup_scope
    from mmengine.registry import MODELS

    cfg = _load(rel)
    setup_scope(cfg)
    from mmengine.utils import import_modules_from_strings
    import_modules_from_strings(**cfg.custom_imports)
    model_cfg = cfg.model
    if cfg.get('data_preprocessor') is not None:  # what Runner does with a top-level one
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    return cfg, MODELS.build(model_cfg)


def _kernel_names(module):
    """Names of the attention kernels inside a module (attnzero.attention registry names)."""
    return {getattr(m, 'name', None) for m in module.modules()
            if type(m).__module__.startswith('attnzero.attention') and hasattr(m, 'name')} - {None}


def _check_model(rel, cfg, model):
    assert sum(p.numel() for p in model.parameters()) > 1e5
    net = model.model if cfg.default_scope == 'mmpretrain' else model.backbone
    if cfg.default_scope == 'mmpretrain':
        assert type(net).__module__.startswith('attnzero.models')
    else:
        assert tuple(cfg.model.backbone.out_indices) == (0, 1, 2, 3)
        assert type(net).__name__ == cfg.model.backbone.type
    names = _kernel_names(net)
    if '-attnzero' in rel:
        assert 'attnzero' in names, names
    elif '-softmax' in rel:
        assert 'attnzero' not in names, names


@pytest.mark.parametrize('rel', FAST_BUILD)
@needs_mm
def test_config_builds_model(rel):
    cfg, model = build_model(rel)
    _check_model(rel, cfg, model)


@pytest.mark.slow
@pytest.mark.parametrize('rel', [c for c in RUNNABLE if c not in FAST_BUILD])
@needs_mm
def test_config_builds_model_all(rel):
    cfg, model = build_model(rel)
    _check_model(rel, cfg, model)


# ----------------------------------------------------------------------------- tools
@needs_mm
def test_get_flops_counts_attention_and_heads():
    from attnzero.perf import flops as get_flops

    r = get_flops.get_flops('mmconfigs/toy/mask-rcnn_pvtv2-b0-attnzero_fpn_toy-coco.py', [64, 96])
    assert r['scope'] == 'mmdet' and r['shape'] == [64, 96]
    assert 0 < r['backbone_gmacs'] < r['gmacs'] and r['mparams'] > r['backbone_mparams'] > 1
    # linear attention: the backbone cost grows linearly in the number of tokens
    r2 = get_flops.get_flops('mmconfigs/toy/fpn_pvtv2-b0-attnzero_toy-ade.py', [64, 64])
    r4 = get_flops.get_flops('mmconfigs/toy/fpn_pvtv2-b0-attnzero_toy-ade.py', [128, 128])
    assert r4['backbone_gmacs'] == pytest.approx(4 * r2['backbone_gmacs'], rel=0.02)
    r = get_flops.get_flops('mmconfigs/toy/pvtv2-b0-attnzero_toy-in1k.py', [112])
    assert r['scope'] == 'mmpretrain' and r['shape'] == [112, 112] and r['gmacs'] > 0.1


@needs_mm
def test_benchmark_fps_runs():
    from attnzero.perf import fps as benchmark_fps

    r = benchmark_fps.benchmark('mmconfigs/toy/retinanet_pvtv2-b0-attnzero_fpn_toy-coco.py',
                                shape=[96, 128], num_iters=2, warmup=1, device='cpu')
    assert r['fps'] > 0 and r['iters'] == 2 and r['shape'] == [96, 128]


def test_shell_launchers_parse():
    for sh in ('dist_train.sh', 'slurm_train.sh'):
        path = os.path.join(ROOT, 'tools', sh)
        assert subprocess.run(['bash', '-n', path]).returncode == 0
        r = subprocess.run(['bash', path], capture_output=True, text=True)
        assert r.returncode == 2 and 'tools/' in r.stdout  # usage text without arguments


@needs_mm
def test_train_cli_options_reach_the_config(tmp_path):
    from attnzero.mm.runner import build_train_cfg, parse_train_args

    g = 'i3n303:elu;min_max_normalize;l2norm_last;normalize;-;l2norm_last:einsum2,matmul,product'
    cfg = build_train_cfg(parse_train_args(['mmconfigs/imagenet/pvt-t-attnzero_8xb128-300e_in1k.py',
                                            '--genome', g, '--resume']))
    assert cfg.model.genome == g and cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir == './work_dirs/pvt-t-attnzero_8xb128-300e_in1k'
    cfg = build_train_cfg(parse_train_args([
        'mmconfigs/upernet/upernet_swin-t-attnzero_8xb2-160k_ade20k-512x512.py', '--genome', g,
        '--resume', 'x.pth', '--amp', '--work-dir', str(tmp_path), '--cfg-options',
        'model.backbone.init_cfg.checkpoint=/ckpt/swin.pth', 'train_dataloader.batch_size=4']))
    assert cfg.model.backbone.genome == g and cfg.load_from == 'x.pth' and cfg.resume is True
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper' and cfg.work_dir == str(tmp_path)
    assert cfg.model.backbone.init_cfg.checkpoint == '/ckpt/swin.pth'
    assert cfg.train_dataloader.batch_size == 4
