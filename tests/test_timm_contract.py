"""The timm model contract (as timm's own tests/test_models.py checks it) over every ``attnzero_*``
model with its default (AttnZero) attention (issue 16)."""
from __future__ import annotations

import math

import pytest
import timm
import torch
from timm.models import FeatureInfo

from attnzero.models import MODEL_NAMES

SIZE = (64, 96)  # small, non-square: every family, every stride


def _x(b=2):
    return torch.randn(b, 3, *SIZE)


@pytest.fixture(scope='module', params=MODEL_NAMES)
def model(request):
    torch.manual_seed(0)
    return timm.create_model(request.param, num_classes=7)


def test_forward_backward_every_parameter_gets_a_gradient(model):
    model.train()
    out = model(_x())
    assert out.shape == (2, 7) and torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, missing
    model.zero_grad(set_to_none=True)


def test_pretrained_cfg_names_exist(model):
    cfg = model.pretrained_cfg
    sd = model.state_dict()
    first = cfg['first_conv'] if isinstance(cfg['first_conv'], (list, tuple)) else [cfg['first_conv']]
    for name in first:
        assert name + '.weight' in sd, name
    assert cfg['classifier'] + '.weight' in sd
    assert sd[cfg['classifier'] + '.weight'].shape[0] == model.num_classes


def test_reset_classifier_and_num_features(model):
    model.eval()
    m = timm.create_model(model.default_cfg['architecture'], num_classes=7)
    m.load_state_dict(model.state_dict())
    m.eval()
    m.reset_classifier(0)
    with torch.no_grad():
        feats = m(_x())
    assert feats.shape == (2, m.num_features)
    m.reset_classifier(11)
    with torch.no_grad():
        assert m(_x()).shape == (2, 11)


def test_features_only_has_a_real_feature_info(model):
    name = model.default_cfg['architecture']
    m = timm.create_model(name, features_only=True, out_indices=(1, 2, 3)).eval()
    fi = m.feature_info
    assert isinstance(fi, FeatureInfo)
    with torch.no_grad():
        outs = m(_x())
    assert len(outs) == len(fi.channels()) == 3
    for c, r, o in zip(fi.channels(), fi.reduction(), outs):
        assert o.shape[1] == c
        assert o.shape[-2] == math.ceil(SIZE[0] / r) and o.shape[-1] == math.ceil(SIZE[1] / r)


def test_forward_intermediates_follows_timm(model):
    """timm's test_model_forward_intermediates, plus the index / norm / early-stop options."""
    model.eval()
    info = FeatureInfo(model.feature_info, len(model.feature_info))
    x = _x()
    with torch.no_grad():
        final, inters = model.forward_intermediates(x)
        assert torch.allclose(final, model.forward_features(x))
        assert len(inters) == len(info.channels()) >= 3
        for c, r, o in zip(info.channels(), info.reduction(), inters):
            assert o.shape[0] == 2 and o.shape[1] == c
            assert o.shape[-2] <= math.ceil(SIZE[0] / r) + 1 and o.shape[-1] <= math.ceil(SIZE[1] / r) + 1
            assert not torch.isnan(o).any()
        n = len(inters)
        # indices: last n (int) and explicit (negative from the end)
        last2 = model.forward_intermediates(x, indices=2, intermediates_only=True)
        assert len(last2) == 2 and all(torch.equal(a, b) for a, b in zip(last2, inters[-2:]))
        picked = model.forward_intermediates(x, indices=[0, -1], intermediates_only=True)
        assert torch.equal(picked[0], inters[0]) and torch.equal(picked[1], inters[-1])
        # stop_early: the same first intermediate without running the rest
        early, first = model.forward_intermediates(x, indices=[0], stop_early=True)
        assert torch.equal(first[0], inters[0])
        if n > 1:
            assert not torch.equal(early, final) or early.shape != final.shape
        # norm: the final norm on (the last / every) intermediate
        normed = model.forward_intermediates(x, norm=True, intermediates_only=True)
        assert normed[-1].shape == inters[-1].shape
        if getattr(model, 'norm', None) is not None and not isinstance(model.norm, torch.nn.Identity):
            assert not torch.allclose(normed[-1], inters[-1])
        # NLC: tokens as they come (prefix tokens included where the stage has them)
        nlc = model.forward_intermediates(x, indices=1, output_fmt='NLC', intermediates_only=True)
        assert nlc[0].dim() == 3 and nlc[0].shape[-1] == inters[-1].shape[1]
    with pytest.raises(ValueError, match='output_fmt'):
        model.forward_intermediates(x, output_fmt='NHWC')


def test_prune_intermediate_layers(model):
    name = model.default_cfg['architecture']
    m = timm.create_model(name, num_classes=7).eval()
    m.load_state_dict(model.state_dict())
    x = _x(1)
    with torch.no_grad():
        want = m.forward_intermediates(x, indices=[1], intermediates_only=True)
        kept = m.prune_intermediate_layers(indices=[1])
        assert kept == [1]
        got = m.forward_intermediates(x, indices=[1], intermediates_only=True)
        assert torch.allclose(got[0], want[0])
        assert len(m.feature_info) == 2 and m(x).dim() >= 2  # head pruned: features


def test_mmpretrain_timm_backbone_wraps_an_attnzero_model():
    mmpretrain = pytest.importorskip('mmpretrain')  # noqa: F841
    try:
        from mmpretrain.registry import MODELS
        from mmpretrain.utils import register_all_modules
    except Exception as e:  # pragma: no cover - depends on the install
        pytest.skip(f'mmpretrain not importable: {e!r}')
    from mmengine.registry import DefaultScope
    register_all_modules(init_default_scope=False)
    import attnzero.mm  # noqa: F401
    # mmpretrain's TIMMBackbone, whatever scope earlier tests left as default (mmseg has its own)
    scope = DefaultScope.overwrite_default_scope('mmpretrain')
    scope.__enter__()
    try:
        _timm_backbone_checks(MODELS)
    finally:
        scope.__exit__(None, None, None)


def _timm_backbone_checks(MODELS):
    dense = MODELS.build(dict(type='TIMMBackbone', model_name='attnzero_pvt_v2_b0',
                              features_only=True, out_indices=(1, 2, 3), pretrained=False))
    with torch.no_grad():
        outs = dense(_x())
    assert isinstance(outs, tuple) and [o.shape[1] for o in outs] == [64, 160, 256]
    assert dense.timm_model.feature_info.channels() == [64, 160, 256]
    # classification mode: TIMMBackbone resets the classifier with global_pool='' and gets the
    # unpooled tokens, as with timm's own ViT (cls token + 4x6 patch grid at 64x96)
    tokens = MODELS.build(dict(type='TIMMBackbone', model_name='attnzero_deit_tiny',
                               pretrained=False))
    assert type(tokens).__module__.startswith('mmpretrain')
    with torch.no_grad():
        feats = tokens(_x())
    assert feats[0].shape == (2, 1 + 4 * 6, 192)


def test_torchscript_is_not_supported_and_says_so():
    """Documented (docs/deploy.md): the models export with torch.export / ONNX, not TorchScript."""
    m = timm.create_model('attnzero_pvt_v2_b0', num_classes=3).eval()
    with pytest.raises(Exception):
        torch.jit.script(m)
