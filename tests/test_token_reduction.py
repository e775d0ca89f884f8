"""PatchMerger token reduction in DeiT (``token_reduction=dict(type='patchmerger', ...)``, issue 20):
token counts, FLOPs counted at the reduced counts, the feature API after the merge, bad options,
gradients and export."""
from __future__ import annotations

import pytest
import timm
import torch

import attnzero  # noqa: F401  (registers the models)
from attnzero.flops import count_flops
from attnzero.models.layers import PatchMerger


def deit(**kw):
    return timm.create_model('attnzero_deit_tiny', **kw).eval()


def test_blocks_after_the_merge_see_the_merged_tokens():
    m = deit(attn='softmax', token_reduction=dict(type='patchmerger', num_tokens=16, after=4))
    seen = []
    for blk in m.blocks:
        blk.register_forward_pre_hook(lambda mod, args: seen.append(args[0].shape[1]))
    with torch.no_grad():
        assert m(torch.randn(2, 3, 224, 224)).shape == (2, 1000)
    assert seen == [197] * 4 + [17] * 8


def test_flops_are_counted_at_the_reduced_token_count():
    """Reduced model = stem at 224 + 6 blocks at 197 tokens + merger + 6 blocks at 50 tokens + head.
    The full models at 224 (197 tokens) and 112 (50 tokens) give the block costs, the stems differ
    by the patch-embedding conv, and the merger costs two N x C x M products."""
    x224, x112 = torch.zeros(1, 3, 224, 224), torch.zeros(1, 3, 112, 112)
    f224 = count_flops(deit(attn='softmax'), inputs=(x224,)).flops
    f112 = count_flops(deit(attn='softmax'), inputs=(x112,)).flops
    red = count_flops(deit(attn='softmax', token_reduction=dict(type='patchmerger', num_tokens=49)),
                      inputs=(x224,)).flops
    C, K = 192, 3 * 16 * 16
    stem = lambda n: 2 * n * K * C  # noqa: E731
    merger = 2 * 196 * C * 49 + 2 * 49 * 196 * C
    assert red == (f224 + f112) // 2 + (stem(196) - stem(49)) // 2 + merger
    assert red < 0.7 * f224


def test_intermediates_and_bad_options():
    m = deit(token_reduction=dict(type='patchmerger', num_tokens=9))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        maps = m.forward_intermediates(x, indices=[0, 5], intermediates_only=True)
        assert [t.shape for t in maps] == [(1, 192, 4, 4)] * 2
        with pytest.raises(ValueError, match="output_fmt='NLC'"):
            m.forward_intermediates(x, indices=[6])
        late = m.forward_intermediates(x, indices=[6, 11], output_fmt='NLC', intermediates_only=True)
        assert [t.shape for t in late] == [(1, 9, 192)] * 2
    for bad, msg in [(dict(type='tome', num_tokens=9), "type 'tome' is not known"),
                     (dict(type='patchmerger', num_tokens=10), 'square number'),
                     (dict(type='patchmerger', num_tokens=9, after=12), 'block index in 1..11'),
                     (dict(type='patchmerger', num_tokens=9, keep=0.5), r"unknown option\(s\) \['keep'\]")]:
        with pytest.raises(ValueError, match=msg):
            deit(token_reduction=bad)
    with pytest.raises(ValueError, match='classification'):
        deit(token_reduction=dict(type='patchmerger', num_tokens=9), features_only=True)


def test_merger_is_a_softmax_average_and_learns_and_exports():
    pm = PatchMerger(8, 4).double()
    x = torch.randn(2, 10, 8, dtype=torch.float64)
    w = pm.queries(pm.norm(x)).softmax(dim=1)
    torch.testing.assert_close(pm(x), torch.einsum('bnm,bnc->bmc', w, x))
    m = deit(token_reduction=dict(type='patchmerger', num_tokens=16), num_classes=5, img_size=64)
    m.train()
    m(torch.randn(2, 3, 64, 64)).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.merger.parameters())
    m.eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        ep = torch.export.export(m, (x,))
        torch.testing.assert_close(ep.module()(x), m(x), rtol=1e-5, atol=1e-5)
