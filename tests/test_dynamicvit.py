"""DynamicViT token pruning in DeiT (``token_reduction=dict(type='dynamicvit', ...)``, issue 20):
the token masks of the kernels against slow float64 references, hard pruning equal to the masked
computation on the kept tokens, keep ratios, losses, FLOPs and bad options."""
from __future__ import annotations

import math

import pytest
import timm
import torch
import torch.nn.functional as F

import attnzero  # noqa: F401  (registers the models)
from attnzero.attention import ATTENTIONS, TokenMask, build_kernel, masked_softmax
from attnzero.flops import count_flops
from attnzero.models.layers import dynamicvit_loss

from conftest import MaxNumel, has_mm_stack

MASKED = ('softmax', 'linear', 'relu_linear', 'focused', 'hydra', 'agent', 'identity', 'attnzero', 'lsh',
          'sepvit')
KW = dict(agent=dict(agent_num=4), lsh=dict(bucket_size=8), sepvit=dict(window_size=4))
H, W, P = 6, 6, 1  # grid and prefix tokens of the kernel tests
#: a linear genome with an intermediate of N + 1 tokens-and-a-channel (ones_aug along tokens)
NO_MASKED_FORM = 'i3n303:elu;-;-;-;-;transpose,ones_aug:einsum1,matmul,first'


def _qkv(B=2, h=2, d=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, h, P + H * W, d, generator=g, dtype=torch.float64) for _ in range(3)]


def _subset(B=2, n_keep=20, seed=1):
    """Sorted positions of ``n_keep`` grid tokens per sample (prefix first) and their 0/1 weights."""
    g = torch.Generator().manual_seed(seed)
    idx = torch.stack([torch.randperm(H * W, generator=g)[:n_keep].sort().values + P for _ in range(B)])
    index = torch.cat([torch.zeros(B, P, dtype=torch.long), idx], dim=1)
    weight = torch.zeros(B, P + H * W, dtype=torch.float64).scatter(1, index, 1.0)
    return index, weight


def test_the_zoo_kernels_that_take_masks():
    assert {n for n, c in ATTENTIONS.items() if c.supports_token_mask} == set(MASKED)


@pytest.mark.parametrize('name', MASKED)
def test_pruned_kernel_equals_the_masked_one_on_the_kept_tokens(name):
    k = build_kernel(name, 8, 2, num_prefix_tokens=P, **KW.get(name, {})).double().eval()
    q, kk, v = _qkv()
    index, weight = _subset()
    full = k(q, kk, v, (H, W), mask=TokenMask(weight=weight))
    take = lambda t: t.gather(2, index[:, None, :, None].expand(-1, t.shape[1], -1, t.shape[-1]))  # noqa: E731
    pruned = k(take(q), take(kk), take(v), (H, W), mask=TokenMask(index=index))
    torch.testing.assert_close(pruned, take(full), rtol=1e-10, atol=1e-10)
    # ... and the masked call differs from the unmasked one (the mask does something), except for
    # identity, which mixes nothing
    plain = k(q, kk, v, (H, W))
    assert (name == 'identity') == torch.allclose(take(plain), take(full))


def test_masked_linear_attention_against_a_slow_reference():
    q, k, v = _qkv()
    _, w = _subset(n_keep=11)
    w = w * torch.rand(w.shape, dtype=torch.float64)  # soft weights too
    w[:, 0] = 1
    out = build_kernel('linear', 8, 2).double()(q, k, v, (H, W), mask=TokenMask(weight=w))
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    ref = torch.zeros_like(out)
    for b in range(q.shape[0]):
        for i in range(q.shape[2]):
            s = (fq[b, :, i:i + 1] * fk[b]).sum(-1) * w[b]                   # (h, M)
            ref[b, :, i] = (s.unsqueeze(-1) * v[b]).sum(1) / (s.sum(1, keepdim=True) + 1e-6)
    torch.testing.assert_close(out, ref, rtol=1e-9, atol=1e-9)


def test_masked_softmax_against_a_slow_reference_and_its_gradients():
    logits = torch.randn(2, 2, 5, 7, dtype=torch.float64) * 30  # large logits: no overflow
    w = torch.tensor([[1, 0, 1, 0.5, 0, 1, 1], [1, 1, 0, 0, 0, 0, 1]], dtype=torch.float64, requires_grad=True)
    p = masked_softmax(logits, w)
    e = torch.exp(logits - logits.amax(-1, keepdim=True)) * w[:, None, None, :]
    torch.testing.assert_close(p, e / e.sum(-1, keepdim=True))
    p[..., 0].sum().backward()
    assert torch.isfinite(w.grad).all() and (w.grad[:, 1] != 0).any()  # a dropped key gets a gradient


@pytest.mark.parametrize('name', ['linear', 'focused', 'hydra', 'attnzero'])
def test_linear_kernels_form_no_token_by_token_matrix_under_a_mask(name):
    n = 1 + 32 * 32
    q, k, v = (torch.randn(1, 1, n, 8) for _ in range(3))
    w = (torch.rand(1, n) > 0.5).float()
    w[:, 0] = 1
    kern = build_kernel(name, 8, 1, num_prefix_tokens=1)
    with torch.no_grad(), MaxNumel() as m:
        kern(q, k, v, (32, 32), mask=TokenMask(weight=w))
    assert m.max < n * n // 8


def _model(attn='softmax', keep=0.7, small=False, **kw):
    size = dict(embed_dim=64, depth=4, num_heads=2) if small else {}  # small: blocks 1, 2, 3 prune
    return timm.create_model('attnzero_deit_tiny', attn=attn, num_classes=10, img_size=64, patch_size=8,
                             token_reduction=dict(type='dynamicvit', keep=keep, **kw),
                             attn_kwargs=KW.get(attn), **size)


@pytest.mark.parametrize('attn', ['softmax', 'focused', 'agent', 'attnzero', 'lsh', 'sepvit'])
def test_hard_pruned_inference_equals_the_masked_computation(attn):
    """Eval forward (top-k pruning) against the same blocks on all 64 patch tokens with the 0/1
    weights of the kept set: the kept tokens' final features are equal."""
    torch.manual_seed(0)
    m = _model(attn, small=True).double().eval()
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    kept = []
    step = m.pruner.hard_step

    def spy(*a):
        out = step(*a)
        kept.append(out[1])
        return out
    m.pruner.hard_step = spy
    with torch.no_grad():
        pruned = m.forward_features(x)
        tokens, hw = m._embed(x)
        for i, blk in enumerate(m.blocks):
            s = m.pruner.stage_at(i)
            if s is not None:
                w = torch.zeros(tokens.shape[:2], dtype=x.dtype).scatter(1, kept[s], 1.0)
            tokens = blk(tokens, hw, None, TokenMask(weight=w)) if i >= m.pruner.locations[0] else blk(tokens, hw)
        masked = m.norm(tokens).gather(1, kept[-1].unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))
    torch.testing.assert_close(pruned, masked, rtol=1e-9, atol=1e-9)


def test_keep_ratios_token_counts_and_flops():
    m = _model(locations=(3, 6, 9)).eval()
    seen = []
    for blk in m.blocks:
        blk.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[1]))
    with torch.no_grad():
        m(torch.randn(2, 3, 64, 64))
    n = [int(64 * 0.7 ** s) for s in (1, 2, 3)]  # 44, 31, 21 of 64 patch tokens
    assert seen == [65] * 3 + [1 + n[0]] * 3 + [1 + n[1]] * 3 + [1 + n[2]] * 3
    assert m.pruner.keep_ratios == pytest.approx([0.7, 0.49, 0.343])
    full = timm.create_model('attnzero_deit_tiny', attn='softmax', num_classes=10, img_size=64, patch_size=8)
    f_full = count_flops(full, input_size=64).flops
    f_pruned = count_flops(m, input_size=64).flops
    # the blocks after each location run on fewer tokens (the predictors cost little)
    assert 0.45 * f_full < f_pruned < 0.75 * f_full


@pytest.mark.parametrize('attn', ['softmax', 'attnzero'])
def test_training_decisions_losses_and_gradients(attn):
    torch.manual_seed(0)
    m = _model(attn).train()
    x, y = torch.randn(4, 3, 64, 64), torch.randint(0, 10, (4,))
    out = m.forward_train(x)
    assert out['tokens'].shape == (4, 64, 192) and len(out['decisions']) == 3
    for a, b in zip(out['decisions'], out['decisions'][1:]):  # 0/1, and nested
        assert set(a.unique().tolist()) <= {0.0, 1.0} and (b <= a).all()
    with torch.no_grad():
        teacher = m.forward_train(x, prune=False)
    assert teacher['decisions'] == []
    losses = dynamicvit_loss(out['decisions'], m.pruner.keep_ratios, out['logits'], teacher['logits'],
                             out['tokens'], teacher['tokens'])
    r = [d.mean(1) for d in out['decisions']]
    expect = 2.0 * sum(((ri - k) ** 2).mean() for ri, k in zip(r, [0.7, 0.49, 0.343])) / 3
    torch.testing.assert_close(losses['loss_ratio'], expect)
    total = F.cross_entropy(out['logits'], y) + sum(losses.values())
    total.backward()
    for pred in m.pruner.predictors:  # the straight-through decisions train the predictors
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in pred.parameters())


def test_bad_options_and_kernels_without_masks():
    with pytest.raises(ValueError, match="keep must be in"):
        _model(keep=1.5)
    with pytest.raises(ValueError, match='locations'):
        timm.create_model('attnzero_deit_tiny', attn='softmax',
                          token_reduction=dict(type='dynamicvit', locations=(6, 3)))
    with pytest.raises(ValueError, match=r"attnzero \(i3n303.*do not"):   # a genome with no masked form
        timm.create_model('attnzero_deit_tiny', genome=NO_MASKED_FORM, token_reduction=dict(type='dynamicvit'))
    with pytest.raises(ValueError, match="global_pool"):
        timm.create_model('attnzero_deit_tiny', attn='softmax', global_pool='avg',
                          token_reduction=dict(type='dynamicvit'))
    # a genome without a masked form before the first location and a mask-aware kernel after it
    attns = ['attnzero'] * 3 + ['focused'] * 9
    m = timm.create_model('attnzero_deit_tiny', attn=attns, genome=NO_MASKED_FORM, num_classes=10, img_size=64,
                          patch_size=8, token_reduction=dict(type='dynamicvit'))
    assert m.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 10)


def test_nlc_intermediates_after_pruning():
    m = _model().eval()
    with torch.no_grad():
        final, inters = m.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[1, 11], output_fmt='NLC')
    assert [t.shape[1] for t in inters] == [64, int(64 * 0.7 ** 3)]
    with pytest.raises(ValueError, match='reduced tokens'):
        m.forward_intermediates(torch.randn(1, 3, 64, 64), indices=[11])
    assert math.isfinite(float(final.sum()))


MM = has_mm_stack('mmpretrain')


@pytest.mark.skipif(not MM, reason='OpenMMLab stack not importable')
@pytest.mark.mm
def test_toy_dynamicvit_config_trains_through_tools_train(tmp_path, monkeypatch):
    """mmconfigs/toy/deit-t-attnzero-dynamicvit_toy-in1k.py through what tools/train.py runs: the
    DynamicViT losses are logged, evaluation runs on the pruned model, the teacher is no part of
    the checkpoint."""
    import json
    import os
    import uuid

    from attnzero.data import toy
    from attnzero.mm import runner as train

    root = str(tmp_path / 'toy')
    assert toy.main([root, '--task', 'imagenet']) == 0
    monkeypatch.setenv('ATTNZERO_TOY_ROOT', root)
    u = uuid.uuid4().hex[:8]
    cfg = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'mmconfigs/toy/deit-t-attnzero-dynamicvit_toy-in1k.py')
    runner = train.train([cfg, '--work-dir', str(tmp_path / 'wd'), '--cfg-options', f'experiment_name=dvit-{u}',
                          f'visualizer.name=vis-dvit-{u}', 'train_cfg.max_epochs=1', 'train_cfg.val_interval=1',
                          'train_dataloader.batch_size=4', 'train_dataloader.dataset.indices=8',
                          'val_dataloader.dataset.indices=8', 'default_hooks.logger.interval=1'])
    logs = [json.loads(line) for p in sorted((tmp_path / 'wd').rglob('scalars.json')) for line in open(p)]
    train_logs = [r for r in logs if 'loss' in r]
    assert train_logs and all(k in train_logs[-1] for k in ('loss_ratio', 'loss_distill', 'loss_token'))
    assert any('accuracy/top1' in r for r in logs)
    sd = runner.model.state_dict()
    assert any('pruner.predictors' in k for k in sd) and not any('teacher' in k for k in sd)


@pytest.mark.parametrize('attn', ['focused', 'attnzero'])
def test_pruned_model_exports(attn):
    m = _model(attn).eval()
    x = torch.randn(2, 3, 64, 64)
    ep = torch.export.export(m, (x,))
    with torch.no_grad():
        torch.testing.assert_close(ep.module()(x), m(x))
