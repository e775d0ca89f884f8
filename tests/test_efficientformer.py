"""EfficientFormer hybrid backbone (``attnzero_efficientformer_{l1,l3}``, issue 20): published
parameter counts, timm's conv trunk, forward at any size, the feature API, ``attn=`` / ``genome=``
in the 3D blocks, the V2-style stride-16 attention, the distillation head and the mm backbone
(BatchNorm trunk: ``norm_eval`` / ``frozen_stages``).

The timm contract (tests/test_timm_contract.py), the full-size and tiny matrices
(tests/test_models.py), the mm options (tests/test_mm_backbone_options.py) and export
(tests/test_export.py) cover the new models through their model lists as well.
"""
from __future__ import annotations

import pytest
import timm
import torch
from torch import nn

import attnzero  # noqa: F401  (registers the models)
from attnzero.attention import Attention, AttentionKernel
from attnzero.models import EfficientFormer
from attnzero.models.efficientformer import MetaBlock3d, matched_mlp_hidden
from attnzero.space import TRIAL_105, TRIAL_140
from conftest import requires_mm

L1, L3 = 'attnzero_efficientformer_l1', 'attnzero_efficientformer_l3'
SIZE = (96, 160)  # non-square, not 224, divisible by 32


def _n(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def _meta(name: str, **kw) -> nn.Module:
    with torch.device('meta'):  # shapes only: fast
        return timm.create_model(name, **kw)


def _kernels(m: nn.Module):
    return [k for k in m.modules() if isinstance(k, AttentionKernel)]


def _tiny(**kw) -> EfficientFormer:
    args = dict(embed_dims=(16, 32, 48, 64), depths=(2, 2, 3, 2), num_vit=1, num_heads=2,
                num_classes=10)
    args.update(kw)
    return EfficientFormer(**args)


# ---- parameter counts --------------------------------------------------------------------------

@pytest.mark.parametrize('name,timm_name,published', [
    (L1, 'efficientformer_l1', 12.3), (L3, 'efficientformer_l3', 31.4)])
def test_softmax_param_counts_match_the_published_and_timms(name, timm_name, published):
    """Distillation head included (as the paper and timm count it); each 3D block's MLP carries the
    parameters by which EfficientFormer's attention (key dim 32, 8 heads, attn_ratio 4) exceeds a
    C-wide MHSA."""
    m = _meta(name, attn='softmax')
    n = _n(m)
    assert abs(n / 1e6 - published) / published <= 0.02, n
    ref = _n(_meta(timm_name))
    assert abs(n - ref) / ref <= 1e-3, (n, ref)  # (timm's has 392 attention-bias entries per block)
    # without the matching the counts are more than 2% low: it is what keeps them published
    plain = _n(_meta(name, attn='softmax', match_params=False))
    assert (published - plain / 1e6) / published > 0.02, plain
    # without the distillation head: exactly one Linear(C, 1000) less
    C = m.num_features
    assert _n(_meta(name, attn='softmax', distilled=False)) == n - (C * 1000 + 1000)


def test_matched_mlp_width():
    # EfficientFormer's attention: C * 8 * 32 * (2 + 2 * 4) = 2560 C weights; ours 4 C^2
    assert matched_mlp_hidden(448) == 4 * 448 + (2560 * 448 - 4 * 448 ** 2) // (2 * 448) == 2176
    assert matched_mlp_hidden(512) == 2304
    m = _meta(L1, attn='softmax')
    blk = m.stages[3].blocks[-1]
    assert isinstance(blk, MetaBlock3d) and blk.mlp.fc1.out_features == 2176
    attn_w = sum(p.numel() for n, p in blk.named_parameters() if n.endswith('weight')
                 and (n.startswith('token_mixer') or n.startswith('mlp')))
    assert attn_w == 2560 * 448 + 2 * 4 * 448 ** 2  # EfficientFormer's attention + MLP weights


# ---- the conv trunk is timm's -----------------------------------------------------------------

def test_conv_stages_are_timms_efficientformer():
    """With timm's weights for the stem and stages 1-3, the stride-4/8/16 maps equal timm's."""
    ref = timm.create_model('efficientformer_l1').eval()
    m = timm.create_model(L1, attn='softmax', features_only=True, out_indices=(0, 1, 2)).eval()
    trunk = ('stem.', 'stages.0.', 'stages.1.', 'stages.2.')
    sd = {k: v for k, v in ref.state_dict().items() if k.startswith(trunk)}
    res = m.load_state_dict(sd, strict=False)
    assert not res.unexpected_keys
    assert all(k.startswith('stages.3.') or k.startswith('norm.') for k in res.missing_keys)
    x = torch.randn(1, 3, *SIZE)
    with torch.no_grad():
        want = ref.forward_intermediates(x, indices=[0, 1, 2], stop_early=True,
                                         intermediates_only=True)
        got = m(x)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


# ---- forward, feature API ----------------------------------------------------------------------

def test_forward_at_224_and_another_size():
    m = timm.create_model(L1, attn='softmax', drop_path_rate=0.1)
    y = m(torch.randn(1, 3, *SIZE))
    assert y.shape == (1, 1000) and torch.isfinite(y).all()
    y.square().mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in m.parameters())
    m.eval()
    with torch.no_grad():
        y = m(torch.randn(2, 3, 224, 224))
        feats = m.forward_features(torch.randn(1, 3, *SIZE))
    assert y.shape == (2, 1000) and torch.isfinite(y).all()
    assert feats.shape == (1, (SIZE[0] // 32) * (SIZE[1] // 32), 448)


def test_features_only_channels_and_strides():
    m = timm.create_model(L1, features_only=True).eval()
    assert m.feature_info.channels() == [48, 96, 224, 448]
    assert m.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        outs = m(torch.randn(1, 3, *SIZE))
    assert [tuple(o.shape) for o in outs] == [(1, c, SIZE[0] // s, SIZE[1] // s)
                                              for c, s in zip((48, 96, 224, 448), (4, 8, 16, 32))]
    # the last map is the 3D blocks' tokens through the final LayerNorm, back on the grid
    with torch.no_grad():
        t = m.forward_features(torch.randn(1, 3, *SIZE))
    assert t.shape[1] == outs[-1].shape[-2] * outs[-1].shape[-1]
    l3 = _meta(L3, features_only=True, out_indices=(1, 3))
    assert l3.feature_info.channels() == [128, 512] and l3.out_channels == [128, 512]


# ---- attn= and genome= ---------------------------------------------------------------------------

def test_attention_only_in_the_last_blocks_and_attn_genome_honoured():
    for name, n_vit in ((L1, 1), (L3, 4)):
        m = _meta(name)
        depth = len(m.stages[3].blocks)
        kinds = [isinstance(b, MetaBlock3d) for b in m.stages[3].blocks]
        assert kinds == [False] * (depth - n_vit) + [True] * n_vit
        assert all(not isinstance(b, MetaBlock3d) for s in m.stages[:3] for b in s.blocks)
        ks = _kernels(m)
        assert len(ks) == n_vit and {k.name for k in ks} == {'attnzero'}  # the default
        assert {k.genome.to_string() for k in ks} == {TRIAL_105.to_string()}
        assert all(isinstance(b.token_mixer, Attention) for b in m.stages[3].blocks[depth - n_vit:])
    g = TRIAL_140.to_string()
    assert {k.genome.to_string() for k in _kernels(_meta(L3, genome=g))} == {g}
    assert {k.name for k in _kernels(_meta(L3, attn='softmax'))} == {'softmax'}
    assert {k.name for k in _kernels(_meta(L1, attn='hydra'))} == {'hydra'}
    per = _meta(L1, attn=('softmax', 'softmax', 'softmax', 'focused'))
    assert [k.name for k in _kernels(per)] == ['focused'] and per.attn_names[3] == 'focused'
    with pytest.raises(KeyError):
        _meta(L1, attn='nope')


def test_the_chosen_kernel_runs_in_the_3d_blocks():
    """A forward calls exactly the 3D blocks' kernels, on the stride-32 tokens."""
    m = _tiny(attn='linear').eval()
    seen = []
    for k in _kernels(m):
        k.register_forward_hook(
            lambda mod, args, out: seen.append((mod.name, tuple(args[0].shape))))
    with torch.no_grad():
        m(torch.randn(1, 3, 64, 96))
    assert seen == [('linear', (1, 2, 2 * 3, 32))]


# ---- V2-style stride-16 attention ---------------------------------------------------------------

def test_v2_style_stride16_attention_reduces_keys_and_values():
    assert all(not isinstance(b, MetaBlock3d) for b in _meta(L1).stages[2].blocks)  # off by default
    m = timm.create_model(L1, attn='softmax', num_vit_s16=2).eval()
    blocks = m.stages[2].blocks
    assert [isinstance(b, MetaBlock3d) for b in blocks] == [False] * 4 + [True] * 2
    assert m.sr_ratios == (1, 1, 2, 1)
    assert all(b.token_mixer.sr_ratio == 2 and isinstance(b.token_mixer.sr, nn.Conv2d)
               for b in blocks[4:])
    shapes = []
    for k in _kernels(m):
        k.register_forward_hook(lambda mod, args, out: shapes.append((tuple(args[0].shape),
                                                                      tuple(args[1].shape))))
    with torch.no_grad():
        outs = timm.create_model(L1, attn='softmax', num_vit_s16=2, features_only=True).eval()(
            torch.randn(1, 3, *SIZE))
        y = m(torch.randn(1, 3, *SIZE))
    assert y.shape == (1, 1000) and [o.shape[1] for o in outs] == [48, 96, 224, 448]
    h16, w16 = SIZE[0] // 16, SIZE[1] // 16
    # stage 3: queries on the stride-16 grid, keys on the 2x-reduced grid; stage 4: full
    assert shapes[:2] == [((1, 8, h16 * w16, 28), (1, 8, (h16 // 2) * (w16 // 2), 28))] * 2
    assert shapes[2] == ((1, 8, (h16 // 2) * (w16 // 2), 56),) * 2
    # PVT's rule: a linear kernel runs without the reduction unless sr_for_linear=True, a kernel
    # that needs keys at the query resolution always does
    assert _meta(L1, num_vit_s16=1).sr_ratios == (1, 1, 1, 1)
    assert _meta(L1, num_vit_s16=1, sr_for_linear=True).sr_ratios == (1, 1, 2, 1)
    assert _meta(L1, attn='lsh', num_vit_s16=1, sr_for_linear=True).sr_ratios == (1, 1, 1, 1)
    # the stride-16 blocks follow the per-stage attention choice
    mix = _meta(L1, attn=('softmax', 'softmax', 'attnzero', 'softmax'), num_vit_s16=1)
    assert [k.name for k in _kernels(mix)] == ['attnzero', 'softmax']


# ---- classifier --------------------------------------------------------------------------------

def test_distillation_head():
    m = _tiny(attn='softmax').eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        f = m.forward_head(m.forward_features(x), pre_logits=True)
        torch.testing.assert_close(m(x), (m.head(f) + m.head_dist(f)) / 2)
    m.train()
    m.set_distilled_training(True)
    y, y_dist = m(x)
    assert y.shape == y_dist.shape == (2, 10)
    m.reset_classifier(5)
    assert m.head.out_features == m.head_dist.out_features == 5
    m.reset_classifier(0)
    m.eval()
    assert m(x).shape == (2, m.num_features)
    plain = _tiny(attn='softmax', distilled=False)
    assert isinstance(plain.head_dist, nn.Identity) and plain(x).shape == (2, 10)


def test_bad_options_are_named():
    with pytest.raises(ValueError, match='num_vit=3'):
        _tiny(num_vit=3)
    with pytest.raises(ValueError, match='4 stages'):
        _tiny(depths=(1, 1, 1))
    with pytest.raises(ValueError, match='global_pool'):
        _tiny(global_pool='token')


# ---- OpenMMLab backbone: BatchNorm trunk -------------------------------------------------------

def _bns(module):
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


@requires_mm
@pytest.mark.mm
def test_mm_backbone_norm_eval_freezes_the_batchnorm_statistics():
    import attnzero.mm  # noqa: F401
    from mmdet.registry import MODELS

    x = torch.randn(2, 3, 64, 64)
    b = MODELS.build(dict(type='AttnZeroEfficientFormer', arch='l1', attn='softmax'))
    assert b.out_channels == [48, 96, 224, 448] and b.arch == 'l1'
    frozen = MODELS.build(dict(type='AttnZeroEfficientFormer', arch='l1', attn='softmax',
                               norm_eval=True))
    frozen.load_state_dict(b.state_dict())
    b.eval()
    with torch.no_grad():
        want = b(x)  # the eval-mode function
    frozen.train()
    bns = _bns(frozen)
    assert bns and not any(m.training for m in bns)
    before = {k: v.clone() for k, v in frozen.state_dict().items() if 'running_' in k}
    got = frozen(x)
    for k, v in frozen.state_dict().items():
        if 'running_' in k:
            assert torch.equal(v, before[k]), k  # norm_eval: statistics untouched
    for a, w in zip(got, want):  # and normalisation with them, not with the batch's
        torch.testing.assert_close(a, w)
    # without norm_eval the BatchNorms train: batch statistics, updated running statistics
    b.train()
    assert all(m.training for m in _bns(b))
    outs = b(x)
    assert len(outs) == 4 and not torch.allclose(outs[0], want[0])
    assert any(not torch.equal(v, before[k]) for k, v in b.state_dict().items() if 'running_' in k)


@requires_mm
@pytest.mark.mm
def test_mm_backbone_frozen_stages_keeps_frozen_batchnorms_in_eval():
    import attnzero.mm  # noqa: F401
    from mmseg.registry import MODELS

    b = MODELS.build(dict(type='AttnZeroEfficientFormer', arch='l1', frozen_stages=2))
    b.train()
    frozen_bns = _bns(b.stem) + _bns(b.stages[0]) + _bns(b.stages[1])
    assert frozen_bns and not any(m.training for m in frozen_bns)
    assert all(m.training for m in _bns(b.stages[2]) + _bns(b.stages[3]))
    assert not any(p.requires_grad for m in (b.stem, b.stages[0], b.stages[1])
                   for p in m.parameters())
    assert all(p.requires_grad for m in (b.stages[2], b.stages[3], b.norm) for p in m.parameters())
    stats = b.stem.norm1.running_mean.clone()
    b(torch.randn(2, 3, 64, 64))
    assert torch.equal(b.stem.norm1.running_mean, stats)


@requires_mm
@pytest.mark.mm
def test_classification_checkpoint_loads_into_the_mm_backbone(tmp_path):
    """What the dense configs' init_cfg does with the ImageNet configs' checkpoints: every trunk
    weight loads; both classifier heads are dropped."""
    import attnzero.mm  # noqa: F401
    from mmdet.registry import MODELS

    cls = timm.create_model(L1)
    ckpt = str(tmp_path / 'l1.pth')
    torch.save({'state_dict': {'backbone.' + k: v for k, v in cls.state_dict().items()}}, ckpt)
    b = MODELS.build(dict(type='AttnZeroEfficientFormer', arch='l1',
                          init_cfg=dict(type='Pretrained', checkpoint=ckpt)))
    b.init_weights()
    rep = b.load_report
    assert not rep['missing'] and not rep['unexpected'] and not rep['mismatched'], rep
    assert sorted(rep['dropped_head']) == ['head.bias', 'head.weight', 'head_dist.bias',
                                           'head_dist.weight']
    for k, v in b.state_dict().items():
        torch.testing.assert_close(v, cls.state_dict()[k], msg=k)
