"""ViT-Slim-style slimming (attnzero.search.slim, tools/slim.py; issue 21): soft masks, the cut to
a FLOPs target, the static model with the masks folded in, the tool end to end."""
from __future__ import annotations

import json

import pytest
import timm
import torch

from attnzero.flops import count_flops
from attnzero.space import ELU_LINEAR, TRIAL_105
from attnzero.space.shape import ViTShape, ratio_for_hidden
from attnzero.search.cli import slim_main
from attnzero.search.slim import SlimError, SlimMasks, heads_separable, plan_cut, static_model, unit_flops

SHAPE = 'e32:hd16:h2,3:r2,1.5'
KW = dict(patch_size=4, global_pool='avg', img_size=16, num_classes=3, drop_path_rate=0.0)
ATTNS = {'softmax': dict(attn='softmax'),
         'elu_linear_genome': dict(attn='attnzero', genome=ELU_LINEAR.to_string()),
         'trial_105': dict(attn='attnzero', genome=TRIAL_105.to_string())}


def _builder(name):
    return lambda text: timm.create_model('attnzero_vit', arch=text, **KW, **ATTNS[name])


def _model(name, shape=SHAPE):
    torch.manual_seed(0)
    return _builder(name)(shape).eval()


def _random_masks(masks, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in masks.parameters():
            p.copy_(torch.rand(p.shape, generator=g) * 1.5 + 0.2)


X = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize('name', ['softmax', 'trial_105'])
def test_masks_at_one_leave_the_output_unchanged(name):
    m = _model(name)
    with torch.no_grad():
        ref = m(X)
        masks = SlimMasks(m)
        assert [p.numel() for p in masks.heads] == [2, 3] and [p.numel() for p in masks.units] == [64, 48]
        assert torch.equal(m(X), ref)
        _random_masks(masks)
        assert not torch.allclose(m(X), ref)        # the hooks are live
        masks.remove()
        assert torch.equal(m(X), ref)
    assert not any('mask' in n for n, _ in m.named_parameters())


# head 1 of block 0 and head 1 of block 1 cut; some hidden units of each block
KEEP_H = [[0], [0, 2]]
KEEP_U = [list(range(0, 64, 3)), [1, 5, 6, 40, 47]]


@pytest.mark.parametrize('name', ['softmax', 'elu_linear_genome'])
def test_static_model_equals_the_masked_model_with_cut_units_at_zero(name):
    m = _model(name)
    masks = SlimMasks(m)
    _random_masks(masks)
    if name != 'softmax':
        assert m.blocks[0].attn.kernel.dwc is not None      # the genome's depthwise conv on V
    static = static_model(m, masks, KEEP_H, KEEP_U, _builder(name)).eval()
    assert static.vit_shape == ViTShape.with_hidden(32, (1, 2), (22, 5), 16)
    with torch.no_grad(), masks.zeroed(KEEP_H, KEEP_U):
        diff = (static(X) - m(X)).abs().max().item()
        full = m(X)
    assert diff <= 1e-5, diff
    with torch.no_grad():
        assert (static(X) - m(X)).abs().max().item() > 1e-3   # the masks are back: the cut matters
    assert not torch.allclose(static(X), full + 1) and heads_separable(m)
    # no mask parameters, no hooks: exactly the parameters of a fresh model of that shape
    fresh = _builder(name)(static.vit_shape.to_string())
    assert set(static.state_dict()) == set(fresh.state_dict())
    assert all(not mod._forward_pre_hooks and not mod._forward_hooks for mod in static.modules())


def test_trial_105_takes_statistics_across_heads_but_units_cut_exactly():
    m = _model('trial_105')
    assert not heads_separable(m) and heads_separable(_model('softmax'))
    masks = SlimMasks(m)
    _random_masks(masks)
    all_heads = [[0, 1], [0, 1, 2]]
    static = static_model(m, masks, all_heads, KEEP_U, _builder('trial_105')).eval()
    with torch.no_grad(), masks.zeroed(all_heads, KEEP_U):
        assert (static(X) - m(X)).abs().max().item() <= 1e-5
    # with heads cut the kept heads change (whole-tensor min-max / normalisation): not equal
    static = static_model(m, masks, KEEP_H, KEEP_U, _builder('trial_105')).eval()
    with torch.no_grad(), masks.zeroed(KEEP_H, KEEP_U):
        assert (static(X) - m(X)).abs().max().item() > 1e-5


@pytest.mark.parametrize('target', [0.7, 0.4])
def test_cut_meets_the_flops_target_and_keeps_a_head_per_block(target):
    m = _model('elu_linear_genome')
    masks = SlimMasks(m)
    _random_masks(masks, seed=5)
    total, per_head, per_unit = unit_flops(m, 16)
    assert total == count_flops(m, torch.zeros(1, 3, 16, 16)).flops

    def measure(kh, ku):
        return count_flops(static_model(m, masks, kh, ku, _builder('elu_linear_genome')),
                           torch.zeros(1, 3, 16, 16)).flops

    kh, ku, flops = plan_cut(masks, per_head, per_unit, total, target, measure)
    static = static_model(m, masks, kh, ku, _builder('elu_linear_genome'))
    assert flops == count_flops(static, torch.zeros(1, 3, 16, 16)).flops <= target * total
    assert flops > (target - 0.1) * total          # not cut far below the target
    assert all(len(k) >= 1 for k in kh) and all(len(k) >= 1 for k in ku)
    # the smallest mask of all was cut first
    smallest = min((abs(v), kind, i, j) for kind, ms in (('h', masks.heads), ('u', masks.units))
                   for i, p in enumerate(ms) for j, v in enumerate(p.tolist()))
    _, kind, i, j = smallest
    assert j not in (kh if kind == 'h' else ku)[i]
    # accounting per head / unit: the model's attention and MLP FLOPs spread over them
    assert per_head[1] * 3 == pytest.approx(count_flops(m, torch.zeros(1, 3, 16, 16), depth=3)
                                            .by_module['DeiT.blocks.1.attn'])


def test_unreachable_target_is_an_error_naming_it():
    m = _model('softmax')
    masks = SlimMasks(m)
    total, ph, pu = unit_flops(m, 16)
    with pytest.raises(SlimError, match='target 0.01'):
        plan_cut(masks, ph, pu, total, 0.01,
                 lambda kh, ku: count_flops(static_model(m, masks, kh, ku, _builder('softmax')),
                                            torch.zeros(1, 3, 16, 16)).flops)


def test_static_model_exports():
    m = _model('trial_105')
    masks = SlimMasks(m)
    _random_masks(masks)
    static = static_model(m, masks, KEEP_H, KEEP_U, _builder('trial_105')).eval()
    with torch.no_grad():
        ep = torch.export.export(static, (X,))
        assert (ep.module()(X) - static(X)).abs().max().item() <= 1e-5


def test_ratio_for_hidden_round_trips_any_unit_count():
    for embed in (32, 48, 192):
        for hidden in range(1, 4 * embed + 1):
            s = ViTShape.with_hidden(embed, (1,), (hidden,), 16)
            assert s.mlp_hidden(0) == hidden and ViTShape.parse(s.to_string()) == s
    assert ratio_for_hidden(48, 37) == 0.78
    # shapes with short ratios keep their text
    assert ViTShape.parse('e48:hd24:h2,2,2,2:r2,2,2,1.5').to_string() == 'e48:hd24:h2,2,2,2:r2,2,2,1.5'


def test_tool_end_to_end(tmp_path, capsys):
    out = tmp_path / 'slim'
    rc = slim_main(['--preset', 'tiny', '--out', str(out), '--shape', SHAPE, '--quiet'])
    assert rc == 0, capsys.readouterr().err
    for f in ('slim.md', 'slim.csv', 'slim.png', 'summary.json', 'static_model.pth', 'static_model.json'):
        assert (out / f).stat().st_size > 0, f
    s = json.loads((out / 'summary.json').read_text())
    assert s['flops_fraction'] <= 0.7 and s['after']['flops'] <= 0.7 * s['before']['flops']
    assert s['after']['params'] < s['before']['params'] and 0 < s['full_size_gmacs']['fraction'] < 1
    assert all(b['heads_after'] >= 1 for b in s['blocks']) and s['heads_separable'] is False
    for k in ('before', 'cut', 'after', 'control'):
        assert 0.0 <= s[k]['val'] <= 1.0 and 0.0 <= s[k]['test'] <= 1.0
    assert 'tools/slim.py --preset tiny' in (out / 'slim.md').read_text()
    # the static model rebuilds with timm from static_model.json
    spec = json.loads((out / 'static_model.json').read_text())
    model = timm.create_model(spec['model'], arch=spec['arch'], **spec['kwargs'])
    model.load_state_dict(torch.load(out / spec['state_dict']))
    assert model.vit_shape.to_string() == s['shape_after'] != s['shape_before']
    # a second run with another target reuses the trained and searched models
    rc = slim_main(['--preset', 'tiny', '--out', str(out), '--shape', SHAPE, '--quiet', '--target', '0.5',
                    '--no-control'])
    s2 = json.loads((out / 'summary.json').read_text())
    assert rc == 0 and s2['pretrain']['source'] == 'cache' and s2['search']['source'] == 'cache'
    assert s2['before'] == s['before'] and s2['flops_fraction'] <= 0.5


@pytest.mark.parametrize('argv,needle', [
    (['--target', '0'], '0.0'), (['--target', '1.5'], '1.5'), (['--attn', 'nope'], "'nope'"),
    (['--genome', 'i3n303:bogus'], "'i3n303:bogus'"), (['--shape', 'e32:h2'], "'e32:h2'"),
    (['--lam', '-1'], '-1'), (['--preset', 'nope'], "'nope'")])
def test_bad_arguments_are_one_line_naming_the_value(argv, needle, tmp_path, capsys):
    out = tmp_path / 'o'
    rc = slim_main(['--preset', 'tiny', '--out', str(out), '--quiet'] + argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith('slim.py: error: ') and needle in err[0], err
    assert not out.exists()
