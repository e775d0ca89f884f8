"""OpenMMLab backbones of issue 4: registries, configs inheriting the installed packages' ``_base_``
with an AttnZero backbone (one loss step on CPU on a synthetic 128x128 batch), and classification
checkpoints saved from the timm model loading into the dense backbone at another resolution.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from conftest import has_mm_stack

pytestmark = [pytest.mark.mm,
              pytest.mark.skipif(not has_mm_stack(), reason='OpenMMLab stack (mmdet, mmseg) not installed')]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NAMES = ('AttnZeroDeiT', 'AttnZeroPVT', 'AttnZeroPVTv2', 'AttnZeroSwin', 'AttnZeroCSwin',
         'AttnZeroEfficientFormer')
IMG = 128


@pytest.fixture(scope='module')
def mm():
    import attnzero.mm
    return attnzero.mm


def _replace_syncbn(obj):
    """SyncBN -> BN everywhere in a config (CPU, not distributed)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k == 'type' and v == 'SyncBN':
                obj[k] = 'BN'
            else:
                _replace_syncbn(v)
    elif isinstance(obj, list):
        for v in obj:
            _replace_syncbn(v)


def _load_cfg(tmp_path, base: str, backbone: dict, widths, task: str):
    """Write a config inheriting ``base`` from the installed package, with ``custom_imports``."""
    from mmengine import Config

    text = textwrap.dedent(f"""
        _base_ = ['{base}']
        custom_imports = dict(imports=['attnzero.mm'], allow_failed_imports=False)
        model = dict(backbone=dict(_delete_=True, **{backbone!r}))
    """)
    path = os.path.join(tmp_path, f'{task}_cfg.py')
    with open(path, 'w') as f:
        f.write(text)
    cfg = Config.fromfile(path)
    if task in ('mask_rcnn', 'retinanet', 'sem_fpn'):
        cfg.model.neck.in_channels = list(widths)
    if task == 'upernet':
        cfg.model.decode_head.in_channels = list(widths)
        cfg.model.auxiliary_head.in_channels = widths[2]
    if task in ('upernet', 'sem_fpn'):
        cfg.model.data_preprocessor.size = (IMG, IMG)
        cfg.model.pretrained = None  # the base's ResNet checkpoint
    _replace_syncbn(cfg.model)
    return cfg


def _det_batch(model):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    g = torch.Generator().manual_seed(0)
    samples, imgs = [], []
    for _ in range(1):  # batch 1
        imgs.append(torch.randint(0, 256, (3, IMG, IMG), dtype=torch.uint8, generator=g))
        ds = DetDataSample(metainfo=dict(img_shape=(IMG, IMG), ori_shape=(IMG, IMG),
                                         scale_factor=(1.0, 1.0)))
        gt = InstanceData()
        boxes = torch.tensor([[8.0, 16.0, 72.0, 90.0], [40.0, 30.0, 120.0, 110.0]])
        masks = np.zeros((2, IMG, IMG), dtype=np.uint8)
        for i, (x0, y0, x1, y1) in enumerate(boxes.int().tolist()):
            masks[i, y0:y1, x0:x1] = 1
        gt.bboxes = boxes
        gt.labels = torch.tensor([1, 7])
        gt.masks = BitmapMasks(masks, IMG, IMG)
        ds.gt_instances = gt
        samples.append(ds)
    return model.data_preprocessor(dict(inputs=imgs, data_samples=samples), training=True)


def _seg_batch(model):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    g = torch.Generator().manual_seed(0)
    imgs, samples = [], []
    for _ in range(2):  # batch 2: UperNet's pyramid pooling has a BN on a 1x1 map
        imgs.append(torch.randint(0, 256, (3, IMG, IMG), dtype=torch.uint8, generator=g))
        ds = SegDataSample(metainfo=dict(img_shape=(IMG, IMG), ori_shape=(IMG, IMG),
                                         pad_shape=(IMG, IMG)))
        ds.gt_sem_seg = PixelData(data=torch.randint(0, 150, (1, IMG, IMG), generator=g))
        samples.append(ds)
    return model.data_preprocessor(dict(inputs=imgs, data_samples=samples), training=True)


def _loss_step(model, data):
    model.train()
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss), log_vars
    loss.backward()
    grads = [p.grad for n, p in model.named_parameters() if n.startswith('backbone.') and p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    return log_vars


# ---- registries ----------------------------------------------------------------------------------

@pytest.mark.parametrize('pkg', ['mmdet', 'mmseg', 'mmpretrain'])
def test_registered_in_the_root_and_built_in_every_scope(mm, pkg):
    """Each backbone is registered once, in mmengine's root ``MODELS``; mmdet's, mmseg's and
    mmpretrain's ``MODELS`` are children of the root and find it through their parent, also when
    building under the package's default scope (what their detectors / segmentors do)."""
    import importlib
    import importlib.util

    from mmengine.registry import MODELS as ROOT_MODELS
    from mmengine.registry import DefaultScope

    if importlib.util.find_spec(pkg) is None:  # pragma: no cover - mmpretrain is optional
        pytest.skip(f'{pkg} not installed')
    registry = importlib.import_module(f'{pkg}.registry').MODELS
    assert registry.parent is ROOT_MODELS
    assert [c.__name__ for c in mm.MM_BACKBONES] == list(NAMES)
    for cls in mm.MM_BACKBONES:
        name = cls.__name__
        assert ROOT_MODELS.module_dict[name] is cls
        assert name not in registry.module_dict  # nothing registered (or forced) in the child
        assert registry.get(name) is cls and registry.get(f'mmengine.{name}') is cls
        assert cls.default_arch in cls.arch_table
    # every family builds from every registry in tests/test_mm_backbone_options.py; here the
    # smallest one, under the package's default scope and with its default arch
    with DefaultScope.overwrite_default_scope(pkg):
        assert DefaultScope.get_current_instance().scope_name == pkg
        b = registry.build(dict(type='AttnZeroPVTv2'))
    assert type(b) is mm.AttnZeroPVTv2 and b.arch == 'b0' and b.out_channels == [32, 64, 160, 256]


def test_import_twice(mm):
    """Re-importing (and reloading) attnzero.mm registers nothing twice and fails nowhere."""
    import importlib

    from mmengine.registry import MODELS as ROOT_MODELS

    import attnzero.mm as again
    assert again is mm
    importlib.reload(mm)
    for name in NAMES:
        assert ROOT_MODELS.get(name) is getattr(mm, name)


@pytest.mark.parametrize('name,arch,widths', [
    ('AttnZeroDeiT', 'tiny', [192] * 4), ('AttnZeroPVT', 'tiny', [64, 128, 320, 512]),
    ('AttnZeroPVTv2', 'b0', [32, 64, 160, 256]), ('AttnZeroSwin', 'tiny', [96, 192, 384, 768]),
    ('AttnZeroCSwin', 'tiny', [64, 128, 256, 512]),
    ('AttnZeroEfficientFormer', 'l1', [48, 96, 224, 448])])
def test_backbone_from_config_dict(mm, name, arch, widths):
    from mmengine.model import BaseModule
    from mmseg.registry import MODELS

    b = MODELS.build(dict(type=name, arch=arch, attn=None, genome=None, out_indices=(0, 1, 2, 3),
                          drop_path_rate=0.1, init_cfg=None))
    assert isinstance(b, BaseModule) and b.out_channels == widths
    b.init_weights()
    outs = b(torch.randn(1, 3, 96, 160))
    assert isinstance(outs, tuple) and [o.shape[1] for o in outs] == widths
    assert [tuple(o.shape[-2:]) for o in outs] == [(96 // s, 160 // s) for s in (4, 8, 16, 32)]


# ---- detection / segmentation configs ---------------------------------------------------------

def test_mask_rcnn_pvt_attnzero_loss_step_with_pretrained(mm, tmp_path):
    """Mask R-CNN 1x from mmdet's _base_, AttnZero PVT-T initialised from a timm checkpoint."""
    import timm
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    cls = timm.create_model('attnzero_pvt_tiny', num_classes=1000)
    ckpt = os.path.join(tmp_path, 'pvt_t_cls.pth')
    torch.save({'state_dict': cls.state_dict()}, ckpt)
    backbone = dict(type='AttnZeroPVT', arch='tiny', attn='attnzero', genome=None,
                    out_indices=(0, 1, 2, 3), drop_path_rate=0.1, img_size=IMG,
                    init_cfg=dict(type='Pretrained', checkpoint=ckpt))
    cfg = _load_cfg(tmp_path, 'mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py', backbone,
                    [64, 128, 320, 512], 'mask_rcnn')
    model = MODELS.build(cfg.model)
    model.init_weights()
    rep = model.backbone.load_report
    assert not rep['missing'] and not rep['unexpected'] and not rep['mismatched']
    assert any('pos_embed' in r for r in rep['resized'])  # 224 -> 128 grids
    torch.testing.assert_close(model.backbone.stages[0].blocks[0].attn.qkv.weight,
                               cls.stages[0].blocks[0].attn.qkv.weight)
    log_vars = _loss_step(model, _det_batch(model))
    assert 'loss_mask' in log_vars and 'loss_rpn_cls' in log_vars


def test_retinanet_swin_attnzero_loss_step(mm, tmp_path):
    from mmdet.registry import MODELS
    from mmdet.utils import register_all_modules

    register_all_modules()
    # a narrow Swin (arch given as a dict) keeps the CPU step short; shifted windows still occur
    arch = dict(embed_dim=32, depths=(2, 2, 2, 2), num_heads=(1, 2, 4, 8), window_size=4)
    backbone = dict(type='AttnZeroSwin', arch=arch, attn=('attnzero', 'attnzero', 'attnzero', 'softmax'),
                    out_indices=(1, 2, 3), drop_path_rate=0.2)
    cfg = _load_cfg(tmp_path, 'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py', backbone,
                    [64, 128, 256], 'retinanet')
    cfg.model.neck.start_level = 0
    model = MODELS.build(cfg.model)
    log_vars = _loss_step(model, _det_batch(model))
    assert 'loss_cls' in log_vars and 'loss_bbox' in log_vars


def test_upernet_cswin_attnzero_loss_step(mm, tmp_path):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    backbone = dict(type='AttnZeroCSwin', arch='tiny', attn=None, out_indices=(0, 1, 2, 3),
                    drop_path_rate=0.2)
    cfg = _load_cfg(tmp_path, 'mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py', backbone,
                    [64, 128, 256, 512], 'upernet')
    cfg.model.decode_head.channels = 128  # narrower heads: CPU time
    cfg.model.auxiliary_head.channels = 64
    model = MODELS.build(cfg.model)
    log_vars = _loss_step(model, _seg_batch(model))
    assert 'decode.loss_ce' in log_vars and 'aux.loss_ce' in log_vars


def test_semantic_fpn_pvtv2_attnzero_loss_step(mm, tmp_path):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    register_all_modules()
    backbone = dict(type='AttnZeroPVTv2', arch='b0', attn='attnzero', out_indices=(0, 1, 2, 3),
                    drop_path_rate=0.1)
    cfg = _load_cfg(tmp_path, 'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py', backbone,
                    [32, 64, 160, 256], 'sem_fpn')
    model = MODELS.build(cfg.model)
    log_vars = _loss_step(model, _seg_batch(model))
    assert 'decode.loss_ce' in log_vars


def test_custom_imports_in_fresh_process(tmp_path):
    """``custom_imports`` alone (nothing of attnzero imported beforehand) registers the backbones."""
    cfg = tmp_path / 'fresh_cfg.py'
    cfg.write_text(textwrap.dedent("""
        _base_ = ['mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py']
        custom_imports = dict(imports=['attnzero.mm'], allow_failed_imports=False)
        norm_cfg = dict(type='BN', requires_grad=True)
        model = dict(
            backbone=dict(_delete_=True, type='AttnZeroPVTv2', arch='b0', out_indices=(0, 1, 2, 3)),
            neck=dict(in_channels=[32, 64, 160, 256]),
            decode_head=dict(norm_cfg=norm_cfg))
    """))
    code = textwrap.dedent(f"""
        import sys, torch
        from mmengine import Config
        from mmseg.registry import MODELS
        from mmseg.utils import register_all_modules
        register_all_modules()
        cfg = Config.fromfile({str(cfg)!r})
        assert 'attnzero.mm' in sys.modules
        m = MODELS.build(cfg.model)
        assert type(m.backbone).__name__ == 'AttnZeroPVTv2'
        with torch.no_grad():
            out = m.extract_feat(torch.randn(1, 3, 64, 64))
        print('OK', [tuple(o.shape) for o in out])
    """)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get('PYTHONPATH', ''))
    r = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert 'OK' in r.stdout


# ---- checkpoints -----------------------------------------------------------------------------------

@pytest.mark.parametrize('wrap', ['state_dict', 'module', None])
def test_init_cfg_prefix_selects_a_submodule(mm, tmp_path, wrap):
    """``init_cfg=dict(type='Pretrained', checkpoint=..., prefix='encoder.')``: the backbone's
    weights inside a bigger (wrapped) checkpoint, as mmengine's ``Pretrained`` initialiser reads them."""
    from mmdet.registry import MODELS

    arch = dict(embed_dims=(16, 32, 32, 32), depths=(1, 1, 1, 1), num_heads=(1, 1, 1, 1))
    src = MODELS.build(dict(type='AttnZeroPVTv2', arch=arch))
    sd = {'encoder.' + k: v for k, v in src.state_dict().items()}
    sd['decoder.weight'] = torch.zeros(3)
    ckpt = os.path.join(tmp_path, 'big.pth')
    torch.save(sd if wrap is None else {wrap: sd}, ckpt)
    b = MODELS.build(dict(type='AttnZeroPVTv2', arch=arch,
                          init_cfg=dict(type='Pretrained', checkpoint=ckpt, prefix='encoder.')))
    b.init_weights()
    assert not b.load_report['missing'] and not b.load_report['unexpected'], b.load_report
    for k, v in src.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, msg=k)


@pytest.mark.parametrize('timm_name,mm_cfg', [
    ('attnzero_swin_tiny', dict(type='AttnZeroSwin', arch='tiny', window_size=12)),
    ('attnzero_deit_tiny', dict(type='AttnZeroDeiT', arch='tiny', img_size=(256, 320))),
])
def test_timm_checkpoint_into_mmdet_backbone(mm, tmp_path, timm_name, mm_cfg):
    """A classification checkpoint (wrapped, ``backbone.``-prefixed) loads at another window /
    resolution: no missing backbone keys (DeiT's pyramid is reported as new dense layers)."""
    import timm
    from mmdet.registry import MODELS

    cls = timm.create_model(timm_name)
    ckpt = os.path.join(tmp_path, 'cls.pth')
    torch.save({'model': {'backbone.' + k: v for k, v in cls.state_dict().items()}}, ckpt)
    b = MODELS.build(dict(mm_cfg, init_cfg=dict(type='Pretrained', checkpoint=ckpt)))
    b.init_weights()
    rep = b.load_report
    assert not rep['missing'] and not rep['unexpected'] and not rep['mismatched'], rep
    assert rep['dropped_head'] == ['head.weight', 'head.bias']
    if 'Swin' in mm_cfg['type']:
        assert any('relative_position_bias_table' in r for r in rep['resized'])
        assert not rep['new_layers']
    else:
        assert any('pos_embed' in r for r in rep['resized'])
        assert rep['new_layers'] and all(k.startswith('pyramid.') for k in rep['new_layers'])
    sd = cls.state_dict()
    for k, v in b.state_dict().items():
        if k in sd and sd[k].shape == v.shape:
            torch.testing.assert_close(v, sd[k], msg=k)
    with torch.no_grad():
        outs = b(torch.randn(1, 3, 160, 224))
    assert len(outs) == 4 and all(torch.isfinite(o).all() for o in outs)
