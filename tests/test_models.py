"""Backbones of issue 4: parameter counts, forward/backward with every attention at any input size,
dense-prediction strides, timm registration and checkpoint adaptation.

Default suite (kept small: 2 CPU cores shared): parameter counts of all 13 models (built on the
meta device), every family at full size with its paper attention in dense mode at 200x320 (fwd +
bwd, strides), every attention at full size on PVTv2-b0 at 200x320, every attention x
every family at a tiny custom configuration on odd sizes (classification and dense), numerical
equivalence of the Swin-T and DeiT-T softmax baselines with timm's own models, timm API and
checkpoint adaptation, the full matrix (one model per family -- DeiT-T, PVT-T, PVTv2-b0, Swin-T,
CSwin-T -- x 7 attentions x 2 sizes at full size, classification fwd+bwd) and every backbone's
softmax/default runs. The full matrix of the larger siblings (:data:`LARGER_SIBLINGS`: the same
classes deeper and wider) is ``slow``.
EfficientFormer's attention is only in its last blocks, so its full matrix (28 full-size runs, about
30 s) adds little to the tiny-configuration matrix and to tests/test_efficientformer.py: it is
marked ``slow``.
"""
from __future__ import annotations

import math
import os

import pytest
import timm
import torch

import attnzero  # noqa: F401  (registers the models)
from attnzero.models import (MODEL_NAMES, CSwin, DeiT, EfficientFormer, PVT, PVTv2, Swin,
                             adapt_state_dict)
from attnzero.models.checkpoint import load_checkpoint_into
from attnzero.space import TRIAL_105, TRIAL_140

ATTNS = ('softmax', 'linear', 'focused', 'relu_linear', 'hydra', 'agent', 'attnzero')
SIZES = ((224, 224), (200, 320))
TINY_NAMES = ('attnzero_deit_tiny', 'attnzero_pvt_tiny', 'attnzero_pvt_v2_b0',
              'attnzero_swin_tiny', 'attnzero_cswin_tiny', 'attnzero_efficientformer_l1')

# published parameter counts (M) of the softmax models with 1000-class heads, and the tolerance
PUBLISHED = {
    'attnzero_deit_tiny': (5.7, 0.02), 'attnzero_deit_small': (22.1, 0.02),
    'attnzero_pvt_tiny': (13.2, 0.02), 'attnzero_pvt_small': (24.5, 0.02),
    'attnzero_pvt_v2_b0': (3.7, 0.02), 'attnzero_pvt_v2_b1': (14.0, 0.02),
    'attnzero_pvt_v2_b2': (25.4, 0.02), 'attnzero_swin_tiny': (28.3, 0.02),
    'attnzero_swin_small': (49.6, 0.02), 'attnzero_cswin_tiny': (23.0, 0.05),
    'attnzero_cswin_small': (35.0, 0.05),
    # distillation head included, as published (see attnzero/models/efficientformer.py)
    'attnzero_efficientformer_l1': (12.3, 0.02), 'attnzero_efficientformer_l3': (31.4, 0.02),
    # the joint search's ViT at its default shape, DeiT-T (AutoFormer-T: tests/test_shape_space.py)
    'attnzero_vit': (5.7, 0.02),
}


#: the larger variants of a family: the same class as its first model at more depth and width, so
#: their full matrix (6 x 7 x 2 full-size runs, about 3 min of the default suite) is ``slow``; each
#: still runs forward and backward in the default suite (softmax classification and its default
#: attention in dense mode) and has its parameter count checked
LARGER_SIBLINGS = ('attnzero_deit_small', 'attnzero_pvt_small', 'attnzero_pvt_v2_b1', 'attnzero_pvt_v2_b2',
                   'attnzero_swin_small', 'attnzero_cswin_small')


def _models(slow=()):
    """MODEL_NAMES as test parameters, those in ``slow`` marked ``slow``."""
    return [pytest.param(n, marks=pytest.mark.slow) if n in slow else n for n in MODEL_NAMES]


def _n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _kernels(m: torch.nn.Module):
    from attnzero.attention import AttentionKernel
    return [k for k in m.modules() if isinstance(k, AttentionKernel)]


def _fwd_bwd(model: torch.nn.Module, hw, check_grads: bool = True, batch: int = 1):
    x = torch.randn(batch, 3, *hw)
    out = model(x)
    outs = out if isinstance(out, (list, tuple)) else [out]
    loss = sum(o.float().square().mean() for o in outs)
    loss.backward()
    for o in outs:
        assert torch.isfinite(o).all()
    if check_grads:
        bad = [n for n, p in model.named_parameters()
               if p.grad is not None and not torch.isfinite(p.grad).all()]
        assert not bad, bad
    return outs


def _check_pyramid(model, outs, hw):
    assert len(outs) == len(model.out_indices)
    for o, i in zip(outs, model.out_indices):
        info = model.feature_info[i]
        s = info['reduction']
        assert info['num_chs'] == o.shape[1]
        assert tuple(o.shape[-2:]) == (math.ceil(hw[0] / s), math.ceil(hw[1] / s)), (i, o.shape, s)
    assert [model.feature_info[i]['reduction'] for i in model.out_indices] == \
        [(4, 8, 16, 32)[i] for i in model.out_indices]


# ---- registration ------------------------------------------------------------------------------

def test_registered_in_timm():
    names = set(timm.list_models('attnzero_*'))
    assert set(MODEL_NAMES) <= names
    assert len(MODEL_NAMES) == 14
    for n in MODEL_NAMES:
        assert timm.is_model(n)
        cfg = timm.models.get_pretrained_cfg(n)
        assert cfg is not None and cfg.input_size == (3, 224, 224)


# ---- parameter counts --------------------------------------------------------------------------

@pytest.mark.parametrize('name', MODEL_NAMES)
def test_param_count_softmax(name):
    with torch.device('meta'):  # shapes only: fast
        m = timm.create_model(name, attn='softmax')
    n = _n_params(m) / 1e6
    ref, tol = PUBLISHED[name]
    assert abs(n - ref) / ref <= tol, f'{name}: {n:.2f}M vs published {ref}M'


# ---- forward / backward ------------------------------------------------------------------------

@pytest.mark.parametrize('name', TINY_NAMES)
def test_each_family_default_attention_dense_full_size(name):
    """Full-size model, the paper's attention placement, dense mode at 200x320: strides 4..32."""
    m = timm.create_model(name, features_only=True, drop_path_rate=0.1)
    outs = _fwd_bwd(m, (200, 320))
    _check_pyramid(m, outs, (200, 320))


@pytest.mark.parametrize('attn', ATTNS)
def test_every_attention_full_size_pvt_v2_b0(attn):
    m = timm.create_model('attnzero_pvt_v2_b0', attn=attn)
    (y,) = _fwd_bwd(m, (200, 320))
    assert y.shape == (1, 1000)


@pytest.mark.parametrize('name', _models(slow=('attnzero_vit',)))  # attnzero_vit: the DeiT class again
def test_every_backbone_cls_softmax_and_dense_default(name):
    """Softmax classification at 224x224; default (paper) attention dense at 200x320."""
    m = timm.create_model(name, attn='softmax', drop_path_rate=0.1)
    (y,) = _fwd_bwd(m, (224, 224))
    assert y.shape == (1, 1000)
    m = timm.create_model(name, features_only=True)
    outs = _fwd_bwd(m, (200, 320))
    _check_pyramid(m, outs, (200, 320))


@pytest.mark.parametrize('hw', SIZES, ids=lambda s: f'{s[0]}x{s[1]}')
@pytest.mark.parametrize('attn', ATTNS)
@pytest.mark.parametrize('name', _models(slow=('attnzero_efficientformer_l1',
                                                'attnzero_efficientformer_l3',
                                                # the DeiT class of attnzero_deit_tiny, at another shape
                                                'attnzero_vit') + LARGER_SIBLINGS))
def test_full_matrix(name, attn, hw):
    """Every backbone x every attention x both sizes at full size."""
    m = timm.create_model(name, attn=attn)
    (y,) = _fwd_bwd(m, hw)
    assert y.shape == (1, 1000)
    m = timm.create_model(name, attn=attn, features_only=True)
    with torch.no_grad():
        _check_pyramid(m, m(torch.randn(1, 3, *hw)), hw)


# ---- tiny custom configurations (what the search uses for proxies) ---------------------------

def tiny_models(attn, features_only=False, **kw):
    common = dict(num_classes=10, attn=attn, features_only=features_only, **kw)
    return {
        'deit': DeiT(img_size=32, patch_size=4, embed_dim=64, depth=2, num_heads=2, **common),
        'pvt': PVT(img_size=32, embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 2, 4),
                   mlp_ratios=2, depths=(1, 1, 1, 1), sr_ratios=(4, 2, 1, 1), **common),
        'pvt_v2': PVTv2(img_size=32, embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 2, 4),
                        mlp_ratios=2, depths=(1, 1, 1, 1), sr_ratios=(4, 2, 1, 1), **common),
        'swin': Swin(img_size=32, embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4),
                     window_size=4, **common),
        'cswin': CSwin(img_size=32, embed_dim=16, depths=(1, 1, 1, 1), num_heads=(2, 2, 4, 4),
                       split_sizes=(1, 2, 2, 2), **common),
        # with the V2-style stride-16 attention block (keys/values reduced 2x)
        'efficientformer': EfficientFormer(embed_dims=(16, 32, 48, 64), depths=(1, 1, 2, 2),
                                           num_vit=1, num_vit_s16=1, num_heads=2, **common),
    }


@pytest.mark.parametrize('attn', ATTNS)
def test_tiny_configs_every_attention(attn):
    for fam, m in tiny_models(attn).items():
        # BatchNorm (EfficientFormer) trains on more than one value per channel: at 32x32 the
        # stride-32 map is 1x1, so two images
        b = 2 if fam == 'efficientformer' else 1
        for hw in ((32, 32), (37, 53)):
            (y,) = _fwd_bwd(m, hw, batch=b)
            assert y.shape == (b, 10), fam
    for fam, m in tiny_models(attn, features_only=True).items():
        hw = (45, 70)
        outs = _fwd_bwd(m, hw)
        _check_pyramid(m, outs, hw)


def test_tiny_config_batch_and_out_indices():
    m = Swin(img_size=32, embed_dim=16, depths=(1, 1, 1, 1), num_heads=(1, 2, 2, 4), window_size=4,
             attn='softmax', features_only=True, out_indices=(1, 3))
    outs = m(torch.randn(3, 3, 64, 48))
    assert [o.shape for o in outs] == [(3, 32, 8, 6), (3, 128, 2, 2)]
    assert m.out_channels == [32, 128]


# ---- the paper's placements and the attn / genome kwargs ---------------------------------------

def _attention_modules(m):
    from attnzero.attention import Attention
    return [a for a in m.modules() if isinstance(a, Attention)]


def test_default_placements():
    from attnzero.space import TRIAL_105, TRIAL_140
    with torch.device('meta'):
        deit = timm.create_model('attnzero_deit_tiny')
        pvt = timm.create_model('attnzero_pvt_tiny')
        swin = timm.create_model('attnzero_swin_tiny')
        cswin = timm.create_model('attnzero_cswin_tiny')
        pvt_soft = timm.create_model('attnzero_pvt_tiny', attn='softmax')
    assert {k.name for k in _kernels(deit)} == {'attnzero'}
    assert all(k.num_prefix_tokens == 1 and k.dwc is not None for k in _kernels(deit))
    assert all(k.genome.to_string() == TRIAL_105.to_string() for k in _kernels(deit))
    # PVT: AttnZero in all stages without spatial reduction; the softmax baseline keeps SRA
    assert pvt.sr_ratios == (1, 1, 1, 1) and pvt_soft.sr_ratios == (8, 4, 2, 1)
    assert all(a.sr_ratio == 1 for a in _attention_modules(pvt))
    assert {a.kernel.name for a in _attention_modules(pvt)} == {'attnzero'}
    # Swin: global AttnZero in stages 1-3 (no windows, no bias table), softmax windows in stage 4
    assert swin.attn_names == ('attnzero', 'attnzero', 'attnzero', 'softmax')
    assert swin.global_stages == (True, True, True, False)
    tables = [n for n, _ in swin.named_parameters() if n.endswith('relative_position_bias_table')]
    assert tables and all(n.startswith('stages.3.') for n in tables)
    # CSwin: Trial-140 with LePE (no kernel DWC) in stages 1-2, softmax in 3-4
    for i, stage in enumerate(cswin.stages):
        ks = _kernels(stage)
        assert {k.name for k in ks} == ({'attnzero'} if i < 2 else {'softmax'})
        for k in ks:
            if i < 2:
                assert k.dwc is None and k.genome.to_string() == TRIAL_140.to_string()


def test_attn_and_genome_kwargs():
    from attnzero.space import TRIAL_140
    g = TRIAL_140.to_string()
    with torch.device('meta'):
        m = timm.create_model('attnzero_pvt_tiny', attn='attnzero', genome=g)
        per = timm.create_model('attnzero_pvt_tiny', attn=('attnzero', 'attnzero', 'attnzero', 'softmax'))
        mix = timm.create_model('attnzero_swin_tiny', attn=['hydra', 'attnzero', 'agent', 'softmax'],
                                genome=g)
    assert {k.genome.to_string() for k in _kernels(m)} == {g}
    assert [s.blocks[0].attn.kernel.name for s in per.stages] == ['attnzero'] * 3 + ['softmax']
    assert per.sr_ratios == (1, 1, 1, 1)
    assert [s.blocks[0].attn.kernel.name if s.global_attn else s.blocks[0].attn.attn.kernel.name
            for s in mix.stages] == ['hydra', 'attnzero', 'agent', 'softmax']
    assert {k.genome.to_string() for k in _kernels(mix) if k.name == 'attnzero'} == {g}
    # a quadratic genome keeps PVT's spatial reduction and Swin's windows
    quad = 'i3n2:-;transpose;-;softmax:matmul,matmul'
    with torch.device('meta'):
        assert timm.create_model('attnzero_pvt_tiny', genome=quad).sr_ratios == (8, 4, 2, 1)
        assert not any(timm.create_model('attnzero_swin_tiny', genome=quad).global_stages)
    with pytest.raises(ValueError):
        timm.create_model('attnzero_pvt_tiny', attn=('softmax', 'attnzero'))
    with pytest.raises(KeyError):
        timm.create_model('attnzero_pvt_v2_b0', attn='nope')


def test_timm_api():
    m = timm.create_model('attnzero_pvt_v2_b0', attn='softmax', num_classes=7)
    cfg = timm.data.resolve_data_config({}, model=m)
    assert cfg['input_size'] == (3, 224, 224) and len(cfg['mean']) == 3
    assert m.default_cfg is m.pretrained_cfg and m.num_classes == 7
    x = torch.randn(2, 3, 64, 64)
    f = m.forward_features(x)
    assert m.forward_head(f, pre_logits=True).shape == (2, m.num_features)
    assert m(x).shape == (2, 7)
    m.reset_classifier(3)
    assert m(x).shape == (2, 3) and m.get_classifier().out_features == 3
    m.reset_classifier(0)
    assert m(x).shape == (2, m.num_features)
    m.set_grad_checkpointing(True)
    m.train()
    m(x).sum().backward()
    assert 'stages.0.pos_embed' not in m.no_weight_decay()
    assert {'cls_token', 'pos_embed'} <= timm.create_model('attnzero_deit_tiny').no_weight_decay()


# ---- numerical equivalence of the softmax baselines with timm's own models -------------------

def _map_timm_swin(sd):
    out = {}
    for k, v in sd.items():
        if k.endswith('relative_position_index') or 'attn_mask' in k:
            continue
        k = k.replace('layers.', 'stages.').replace('head.fc.', 'head.')
        if '.attn.relative_position_bias_table' in k:
            k = k.replace('.attn.', '.attn.rel_pos.')
        elif '.blocks.' in k and '.attn.' in k:
            k = k.replace('.attn.', '.attn.attn.')
        out[k] = v
    return out


def test_swin_softmax_matches_timm_swin():
    ref = timm.create_model('swin_tiny_patch4_window7_224').eval()
    m = timm.create_model('attnzero_swin_tiny', attn='softmax').eval()
    res = m.load_state_dict(_map_timm_swin(ref.state_dict()), strict=True)
    assert not res.missing_keys
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref(x), atol=1e-4, rtol=1e-4)


def test_deit_softmax_matches_timm_deit():
    ref = timm.create_model('deit_tiny_patch16_224').eval()
    m = timm.create_model('attnzero_deit_tiny', attn='softmax').eval()
    m.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(m(x), ref(x), atol=1e-4, rtol=1e-4)


# ---- checkpoints ---------------------------------------------------------------------------------

def test_timm_pretrained_file_roundtrip(tmp_path):
    m = timm.create_model('attnzero_pvt_v2_b0', attn='softmax').eval()
    path = os.path.join(tmp_path, 'ckpt.pth')
    torch.save({'state_dict': m.state_dict()}, path)
    m2 = timm.create_model('attnzero_pvt_v2_b0', attn='softmax', pretrained=True,
                           pretrained_cfg_overlay=dict(file=path)).eval()
    m3 = timm.create_model('attnzero_pvt_v2_b0', attn='softmax', checkpoint_path=path).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(m2(x), m(x))
        torch.testing.assert_close(m3(x), m(x))


def test_checkpoint_adaptation_resolution_window_head(tmp_path):
    src = PVT(img_size=32, embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 2, 4), mlp_ratios=2,
              depths=(1, 1, 1, 1), sr_ratios=(4, 2, 1, 1), attn='softmax', num_classes=10)
    dst = PVT(img_size=64, embed_dims=(16, 32, 48, 64), num_heads=(1, 2, 2, 4), mlp_ratios=2,
              depths=(1, 1, 1, 1), sr_ratios=(4, 2, 1, 1), attn='softmax', features_only=True)
    sd = {'model': {'backbone.' + k: v for k, v in src.state_dict().items()}}
    rep = load_checkpoint_into(dst, sd)
    assert not rep['missing'] and not rep['unexpected'] and not rep['mismatched']
    assert len(rep['resized']) == 4 and rep['dropped_head'] == ['head.weight', 'head.bias']
    assert dst.stages[3].pos_embed.shape[1] == 1 + 2 * 2
    # Swin relative position tables 4 -> 6
    kw = dict(embed_dim=16, depths=(2, 2, 2, 2), num_heads=(1, 2, 2, 4), attn='softmax')
    s_src, s_dst = Swin(window_size=4, **kw), Swin(window_size=6, features_only=True, **kw)
    sd, rep = adapt_state_dict(s_src.state_dict(), s_dst)
    assert any('relative_position_bias_table' in r for r in rep['resized'])
    res = s_dst.load_state_dict(sd, strict=False)
    assert not res.missing_keys
    outs = s_dst(torch.randn(1, 3, 61, 90))
    _check_pyramid(s_dst, outs, (61, 90))


@pytest.mark.parametrize('attn,genome', [('attnzero', TRIAL_105), ('attnzero', TRIAL_140), ('linear', None)])
def test_forward_creates_no_reference_cycles(attn, genome, no_gc):
    """A forward (and backward) leaves no garbage for the cycle collector: intermediates are freed
    as soon as the last reference goes, not whenever ``gc`` next runs. (A self-recursive closure in
    the genome executors once kept every attention intermediate of a call alive until then.)"""
    for fam, m in tiny_models(attn, genome=genome).items():
        x = torch.randn(2, 3, 32, 32)
        with torch.no_grad():
            m.eval()(x)
            assert no_gc(lambda: m(x)) == 0, fam
        m.train()
        assert no_gc(lambda: m(x).square().mean().backward()) == 0, fam
