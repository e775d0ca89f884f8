"""The ViT shape genes of the joint attention + shape search (attnzero.space.shape) and the model
that builds any point of the space (timm's ``attnzero_vit``)."""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch

import attnzero.models  # noqa: F401  (registers the timm models)
from attnzero.attention import Attention
from attnzero.flops import count_flops
from attnzero.search.config import DEFAULT_ARCH_OVERRIDES, DEFAULT_PROXY_SHAPE, JOINT_SEED_SHAPE, PRESETS
from attnzero.search.archs import PROXY_ARCHS
from attnzero.space import TRIAL_105, VariationError
from attnzero.space.shape import (AUTOFORMER_T, DEIT_T, SHAPE_SPACES, JointGenome, ShapeError, ViTShape,
                                  vit_macs, vit_params)


def test_shape_text_round_trip_hash_and_errors():
    for s in (DEIT_T, AUTOFORMER_T, ViTShape(40, (1, 2, 2), (1.5, 2.0, 1.5), 24)):
        assert ViTShape.parse(s.to_string()) == s
        assert len(s.hash) == 16 and s.hash == ViTShape.parse(str(s)).hash
    assert DEIT_T.to_string() == 'e192:hd64:h' + ','.join(['3'] * 12) + ':r' + ','.join(['4'] * 12)
    assert DEIT_T.hash != AUTOFORMER_T.hash
    with pytest.raises(ShapeError, match="'x'"):
        ViTShape.parse('e192:hd64:h3,x:r4,4')
    with pytest.raises(ShapeError, match='2 per-block head counts but 1 MLP ratios'):
        ViTShape.parse('e192:hd64:h3,3:r4')
    with pytest.raises(ShapeError, match='expected e<width>'):
        ViTShape.parse('192:64:3:4')


def test_deit_t_and_autoformer_t_are_points_with_published_parameter_counts():
    space = SHAPE_SPACES['autoformer_t']
    assert space.contains(DEIT_T) and space.contains(AUTOFORMER_T)
    assert AUTOFORMER_T.depth == 13 and AUTOFORMER_T.embed_dim == 192
    for shape in (DEIT_T, AUTOFORMER_T):
        model = timm.create_model('attnzero_vit', arch=shape.to_string(), attn='softmax')
        n = sum(p.numel() for p in model.parameters())
        assert n == vit_params(shape) == space.params(shape)
        assert abs(n / 5.7e6 - 1) < 0.02, n            # both published at 5.7M
    assert vit_params(DEIT_T) == sum(p.numel() for p in
                                     timm.create_model('attnzero_deit_tiny', attn='softmax').parameters())
    # with the AttnZero module: the genome has no parameters, its DWC on V has 10 per channel
    m = timm.create_model('attnzero_vit', arch='autoformer_t', attn='attnzero', genome=TRIAL_105.to_string())
    assert sum(p.numel() for p in m.parameters()) == vit_params(AUTOFORMER_T, TRIAL_105)
    assert m.vit_shape == AUTOFORMER_T


def test_analytic_macs_match_the_counter():
    model = timm.create_model('attnzero_vit', arch='autoformer_t', attn='softmax').eval()
    assert count_flops(model, torch.zeros(1, 3, 224, 224)).macs == pytest.approx(vit_macs(AUTOFORMER_T), rel=1e-9)
    # a genome's static cost also counts its elementwise work, which the counter leaves out
    model = timm.create_model('attnzero_vit', arch='deit_t', attn='attnzero').eval()
    counted = count_flops(model, torch.zeros(1, 3, 224, 224)).macs
    assert counted <= vit_macs(DEIT_T, TRIAL_105) <= counted * 1.01


def _proxy_deit_shape(overrides):
    kw = dict(PROXY_ARCHS['deit'], **overrides)
    return ViTShape.uniform(kw['embed_dim'], kw['depth'], kw['num_heads'], kw['mlp_ratio'],
                            kw['embed_dim'] // kw['num_heads'])


def test_default_proxy_shape_is_the_default_proxy_deit():
    assert _proxy_deit_shape(DEFAULT_ARCH_OVERRIDES['deit']).to_string() == DEFAULT_PROXY_SHAPE


def test_proxy_space_holds_the_scenes_v3_proxy_deit_the_joint_seed():
    shape = _proxy_deit_shape(PRESETS['scenes-v3']['arch_overrides']['deit'])
    assert shape.to_string() == JOINT_SEED_SHAPE
    space = SHAPE_SPACES['proxy']
    assert space.contains(shape), space.problem(shape)
    model = timm.create_model('attnzero_vit', arch=shape.to_string(), img_size=16, patch_size=2,
                              num_classes=4, global_pool='avg', attn='attnzero')
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 4)
    assert sum(p.numel() for p in model.parameters()) == vit_params(shape, TRIAL_105, 16, 2, 4)
    full = timm.create_model('attnzero_vit', arch=shape.to_string(), attn='attnzero')  # costs: full size
    assert sum(p.numel() for p in full.parameters()) == space.params(shape, TRIAL_105)


def test_variation_stays_in_the_space_and_is_reproducible():
    for space in SHAPE_SPACES.values():
        rng = np.random.default_rng(0)
        shapes = [space.sample(rng) for _ in range(20)]
        again = [space.sample(np.random.default_rng(0)) for _ in range(1)]
        assert again[0] == shapes[0]
        for a, b in zip(shapes, shapes[1:]):
            assert space.contains(a)
            for kind in ('embed', 'depth', 'heads', 'ratio'):
                try:
                    child = space.mutate(a, rng, kinds=[kind])
                except VariationError:
                    continue
                assert child != a and space.contains(child)
            if a != b:
                try:
                    c = space.crossover(a, b, rng)
                except VariationError:  # only when one parent extends the other: nothing to mix
                    n = min(a.depth, b.depth)
                    assert a.embed_dim == b.embed_dim and a.num_heads[:n] == b.num_heads[:n]
                    assert a.mlp_ratio[:n] == b.mlp_ratio[:n]
                    continue
                assert c not in (a, b) and space.contains(c)
                assert c.embed_dim in (a.embed_dim, b.embed_dim) and c.depth in (a.depth, b.depth)
        assert space.size() > 1000
    with pytest.raises(ShapeError, match="not in the 'proxy' space"):
        SHAPE_SPACES['proxy'].mutate(DEIT_T, np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown shape mutations"):
        SHAPE_SPACES['proxy'].mutate(SHAPE_SPACES['proxy'].sample(np.random.default_rng(0)),
                                     np.random.default_rng(0), kinds=['width'])


def test_joint_genome_text_hash_and_variation():
    space = SHAPE_SPACES['proxy']
    rng = np.random.default_rng(3)
    a, b = JointGenome.sample(space, rng), JointGenome.sample(space, rng)
    for j in (a, b):
        assert JointGenome.parse(j.to_string()) == j and len(j.hash) == 16
    assert JointGenome(DEIT_T, TRIAL_105).to_string() == f'{DEIT_T}|{TRIAL_105}'
    m = a.mutate(space, rng)
    assert m != a and (m.shape == a.shape) != (m.attention == a.attention)
    c = a.crossover(b, space, rng)
    assert c not in (a, b) and space.contains(c.shape)
    with pytest.raises(ShapeError, match='<shape>|<attention genome>'):
        JointGenome.parse(str(TRIAL_105))


def test_attention_with_its_own_head_width():
    attn = Attention(48, num_heads=3, attn="attnzero", head_dim=64, num_prefix_tokens=1)
    assert attn.qkv.out_features == 3 * 192 and attn.proj.in_features == 192 and attn.inner_dim == 192
    x = torch.randn(2, 1 + 16, 48)
    assert attn(x, (4, 4)).shape == x.shape
    assert 'head_dim=64' in attn.extra_repr()
    plain = Attention(48, num_heads=3, attn='softmax')
    assert plain.head_dim == 16 and plain.inner_dim == 48 and 'head_dim' not in plain.extra_repr()
    with pytest.raises(ValueError, match="neither a named shape"):
        timm.create_model('attnzero_vit', arch='vit_huge')
