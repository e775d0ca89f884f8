"""The backbone options every MMDetection user sets (issue 22): ``frozen_stages``, ``norm_eval`` and
``with_cp`` on every mm backbone family, with softmax and with AttnZero."""
from __future__ import annotations

import importlib

import pytest
import torch
from torch import nn

from conftest import requires_mm

pytestmark = [pytest.mark.mm, requires_mm]


@pytest.fixture(scope='module', autouse=True)
def _backbones_registered():
    importlib.import_module('attnzero.mm')  # registers the AttnZero* backbones


# family -> number of stages frozen_stages counts (DeiT: transformer blocks, as mmpretrain's ViT)
FAMILIES = {'AttnZeroPVT': 4, 'AttnZeroPVTv2': 4, 'AttnZeroSwin': 4, 'AttnZeroCSwin': 4,
            'AttnZeroDeiT': 12, 'AttnZeroEfficientFormer': 4}
# the blocks with_cp checkpoints one by one (EfficientFormer: its 4D and 3D Meta blocks)
BLOCKS = ('TransformerBlock', 'MetaBlock2d', 'MetaBlock3d')
ATTNS = ('softmax', None)  # None: the family's AttnZero default
SIZE = 64


def build(family, attn, **kw):
    from mmdet.registry import MODELS
    return MODELS.build(dict(type=family, attn=attn, **kw))


def loss_of(model, x):
    return sum((f.float() ** 2).mean() for f in model(x))


def _ids(v):
    return 'attnzero' if v is None else str(v)


@pytest.mark.parametrize('attn', ATTNS, ids=_ids)
@pytest.mark.parametrize('family', list(FAMILIES))
def test_all_stages_frozen_leaves_nothing_trainable_and_a_step_changes_nothing(family, attn):
    torch.manual_seed(0)
    n = FAMILIES[family]
    model = build(family, attn, frozen_stages=n)
    trainable = [k for k, p in model.named_parameters() if p.requires_grad]
    if family == 'AttnZeroDeiT':  # only ViTDet's simple pyramid (dense adapter, not a stage)
        assert trainable and all(k.startswith('pyramid.') for k in trainable), trainable
    else:
        assert trainable == []
    model.train()
    frozen = {k: p.detach().clone() for k, p in model.named_parameters() if not p.requires_grad}
    assert frozen
    # every frozen module stays in eval mode across train() (no dropout / drop-path there)
    for item in model._frozen():
        if isinstance(item, nn.Module):
            assert not any(m.training for m in item.modules())
    params = list(model.parameters())
    opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.05)
    x = torch.randn(2, 3, SIZE, SIZE)
    before_out = [f.detach().clone() for f in model(x)]
    for _ in range(2):
        opt.zero_grad()
        loss = loss_of(model, x) if trainable else None
        if loss is not None:
            loss.backward()
        opt.step()
    for k, p in model.named_parameters():
        if k in frozen:
            assert p.grad is None, k
            assert torch.equal(p, frozen[k]), k
    if not trainable:  # the whole backbone is a fixed function now
        model.eval()
        for a, b in zip(before_out, model(x)):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize('family', ['AttnZeroPVT', 'AttnZeroPVTv2', 'AttnZeroSwin', 'AttnZeroDeiT',
                                    'AttnZeroEfficientFormer'])
def test_partial_freeze_follows_mmdet_semantics(family):
    model = build(family, None, frozen_stages=1)
    groups = model.stage_groups()

    def names(items):
        ids = set()
        for it in items:
            ps = it.parameters() if isinstance(it, nn.Module) else [it]
            ids |= {id(p) for p in ps}
        return {k for k, p in model.named_parameters() if id(p) in ids}

    frozen, later = names([i for g in groups[:2] for i in g]), names(groups[2])
    assert frozen and later
    for k, p in model.named_parameters():
        assert p.requires_grad == (k not in frozen), k
    # frozen_stages=0: only the stem; -1: nothing
    stem = names(groups[0])
    model0 = build(family, None, frozen_stages=0)
    assert {k for k, p in model0.named_parameters() if not p.requires_grad} == stem
    assert all(p.requires_grad for p in build(family, None).parameters())


@pytest.mark.parametrize('bad', [5, -2, 1.5, True, '2'])
def test_bad_frozen_stages_is_named(bad):
    with pytest.raises(ValueError, match=f'frozen_stages={bad!r}'):
        build('AttnZeroPVT', None, frozen_stages=bad)


@pytest.mark.parametrize('attn', ATTNS, ids=_ids)
@pytest.mark.parametrize('family', list(FAMILIES))
def test_with_cp_gives_the_same_loss_and_gradients(family, attn, monkeypatch):
    import attnzero.models._base as base

    calls = []
    real = base.checkpoint

    def counting(*a, **k):
        calls.append(k.get('use_reentrant'))
        return real(*a, **k)

    monkeypatch.setattr(base, 'checkpoint', counting)
    torch.manual_seed(0)
    ref = build(family, attn)
    cp = build(family, attn, with_cp=True)
    cp.load_state_dict(ref.state_dict())
    ref.train(), cp.train()
    x = torch.randn(2, 3, SIZE, SIZE)
    out = []
    for m in (ref, cp):
        torch.manual_seed(1)  # the same drop-path draws (checkpoint replays the RNG state)
        loss = loss_of(m, x)
        loss.backward()
        out.append((loss.detach(), {k: p.grad for k, p in m.named_parameters()}))
    n_blocks = sum(1 for mod in cp.modules() if type(mod).__name__ in BLOCKS)
    assert len(calls) == n_blocks and set(calls) == {False}  # one checkpoint per block
    (l0, g0), (l1, g1) = out
    assert torch.allclose(l0, l1, atol=1e-5, rtol=0), (l0, l1)
    assert g0.keys() == g1.keys()
    for k in g0:
        assert (g0[k] is None) == (g1[k] is None), k
        if g0[k] is not None:
            assert (g0[k] - g1[k]).abs().max() <= 1e-5, k
    # no checkpointing outside training
    calls.clear()
    cp.eval()
    with torch.no_grad():
        cp(x)
    assert calls == []


def test_norm_eval_keeps_norms_in_eval_mode():
    model = build('AttnZeroPVTv2', None, norm_eval=True)
    model.extra_bn = nn.BatchNorm2d(4)  # (BatchNorm trunk: tests/test_efficientformer.py)
    model.train()
    assert model.training
    norms = [m for m in model.modules() if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d))]
    assert norms and not any(m.training for m in norms)
    assert any(m.training for m in model.modules() if isinstance(m, nn.Dropout)) or \
        any(type(m).__name__ == 'DropPath' and m.training for m in model.modules())
    bn = model.extra_bn
    mean = bn.running_mean.clone()
    bn(torch.randn(2, 4, 3, 3) + 5)
    assert torch.equal(bn.running_mean, mean)  # running statistics frozen
    # LayerNorm: the same output in either mode (documented as a no-op for the LN trunks)
    torch.manual_seed(0)
    a = build('AttnZeroPVTv2', None, drop_path_rate=0.0, norm_eval=True)
    b = build('AttnZeroPVTv2', None, drop_path_rate=0.0)
    b.load_state_dict(a.state_dict())
    a.train(), b.train()
    x = torch.randn(1, 3, SIZE, SIZE)
    for fa, fb in zip(a(x), b(x)):
        torch.testing.assert_close(fa, fb)


@pytest.mark.parametrize('pkg', ['mmdet', 'mmseg', 'mmpretrain'])
def test_options_reach_every_registry(pkg):
    try:
        registry = importlib.import_module(f'{pkg}.registry').MODELS
    except Exception:
        pytest.skip(f'{pkg} not importable')
    for family in FAMILIES:
        m = registry.build(dict(type=family, attn='softmax', frozen_stages=1, norm_eval=True,
                                with_cp=True))
        assert (m.frozen_stages, m.norm_eval, m.with_cp, m.grad_checkpointing) == (1, True, True, True)


@pytest.mark.parametrize('rel', [
    'mmconfigs/mask_rcnn/mask-rcnn_swin-t-attnzero_fpn_1x_coco.py',
    'mmconfigs/retinanet/retinanet_pvt-t-softmax_fpn_1x_coco.py',
    'mmconfigs/sem_fpn/fpn_pvtv2-b0-attnzero_8xb2-80k_ade20k-512x512.py',
    'mmconfigs/upernet/upernet_cswin-t-attnzero_8xb2-160k_ade20k-512x512.py',
])
def test_dense_configs_show_the_options_and_overrides_reach_the_backbone(rel):
    import os

    from mmengine.config import Config

    from attnzero.mm.runner import setup_scope, speed_up_base_lookup

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    speed_up_base_lookup()
    cfg = Config.fromfile(os.path.join(root, rel))
    bb = cfg.model.backbone
    assert (bb.frozen_stages, bb.norm_eval, bb.with_cp) == (-1, False, False)
    cfg.merge_from_dict({'model.backbone.frozen_stages': 2, 'model.backbone.with_cp': True,
                         'model.backbone.init_cfg': None})
    setup_scope(cfg)
    from mmengine.registry import MODELS
    backbone = MODELS.build(cfg.model.backbone)
    assert backbone.frozen_stages == 2 and backbone.grad_checkpointing
    assert not any(p.requires_grad for p in backbone.stages[1].parameters())
    assert all(p.requires_grad for p in backbone.stages[2].parameters())


def test_memory_benchmark_measures_a_real_training_step():
    """tools/benchmark_cp_memory.py's measurement, at a small size: a real step, the same loss
    and backbone gradients with and without with_cp."""
    import os

    from attnzero.perf.memory import measure_step

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = os.path.join(root, 'mmconfigs/mask_rcnn/mask-rcnn_pvtv2-b0-attnzero_fpn_1x_coco.py')
    a = measure_step(cfg, False, (128, 160), n_objects=2)
    b = measure_step(cfg, True, (128, 160), n_objects=2)
    assert a['input_shape'] == [1, 3, 128, 160] and a['peak_rss_mib'] >= a['rss_before_mib'] > 0
    assert abs(a['loss'] - b['loss']) <= 1e-5 and a['loss'] > 0
    assert abs(a['backbone_grad_norm'] - b['backbone_grad_norm']) <= 1e-4 * a['backbone_grad_norm']
