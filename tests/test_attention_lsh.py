"""Reformer LSH attention (``attn='lsh'``, issue 20): float64 agreement with a slow reference written
here with Python loops, no N x N tensor, shared-QK gradients, bad input, and use in a backbone
(forward, torch.export)."""
from __future__ import annotations

import math

import pytest
import torch
from conftest import MaxNumel

from attnzero.attention import TokenMask, build_kernel


def reference(kern, q, v, kept=None):
    """LSH attention as the Reformer paper describes it, token by token: shared keys ``q/||q||``;
    per round, buckets from the kernel's rotations (``argmax [xR, -xR]`` per factor), tokens
    sorted by (bucket, position) and cut into chunks; a token attends to the keys of its own bucket
    in its chunk and the previous one (the first chunk's previous is the last), itself only if no
    other; rounds combined with weights softmax(log-normaliser).

    ``kept`` (a set of token indices per sample; DynamicViT): dropped tokens take the padding
    bucket (after every real one), so they are no key of a kept token and the kept tokens' buckets
    and chunks do not depend on them."""
    B, h, N, d = q.shape
    c, H = kern.bucket_size, kern.n_hashes
    want = math.ceil(N / c)
    b1 = 2 * math.ceil(math.ceil(math.sqrt(want)) / 2)
    b2 = 2 * math.ceil(math.ceil(want / b1) / 2)
    out = torch.zeros_like(q)
    for b in range(B):
        for hh in range(h):
            x = q[b, hh] / q[b, hh].norm(dim=-1, keepdim=True)
            outs, lses = [], []
            for r in range(H):
                p1 = x @ kern.rotations[0, r, :, : b1 // 2].double()
                p2 = x @ kern.rotations[1, r, :, : b2 // 2].double()
                bucket = (torch.cat([p1, -p1], -1).argmax(-1) * b2 + torch.cat([p2, -p2], -1).argmax(-1)).tolist()
                bucket = [bk if kept is None or i in kept[b] else b1 * b2 for i, bk in enumerate(bucket)]
                order = sorted(range(N), key=lambda i: (bucket[i], i))
                chunks = [order[i:i + c] for i in range(0, N, c)]
                o_r, l_r = torch.zeros(N, d, dtype=q.dtype), torch.zeros(N, dtype=q.dtype)
                for ci, chunk in enumerate(chunks):
                    cand = chunk + (chunks[ci - 1] if len(chunks) > 1 else [])
                    for i in chunk:
                        keys = [j for j in cand if bucket[j] == bucket[i] and j != i]
                        if not keys:
                            o_r[i], l_r[i] = v[b, hh, i], -1e5
                            continue
                        logits = torch.stack([q[b, hh, i] @ x[j] / math.sqrt(d) for j in keys])
                        w = torch.softmax(logits, 0)
                        o_r[i] = sum(wj * v[b, hh, j] for wj, j in zip(w, keys))
                        l_r[i] = torch.logsumexp(logits, 0)
                outs.append(o_r)
                lses.append(l_r)
            wts = torch.softmax(torch.stack(lses), 0)
            out[b, hh] = sum(wts[r].unsqueeze(-1) * outs[r] for r in range(H))
    return out


@pytest.mark.parametrize('N, c, H', [(30, 4, 2), (16, 16, 1), (37, 8, 3), (64, 8, 2)])
def test_matches_the_slow_reference_in_float64(N, c, H):
    kern = build_kernel('lsh', head_dim=8, num_heads=2, bucket_size=c, n_hashes=H, seed=3).double()
    g = torch.Generator().manual_seed(N)
    q, k, v = (torch.randn(2, 2, N, 8, generator=g, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(kern(q, k, v), reference(kern, q, v), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('hw, c, H', [((6, 6), 4, 2), ((5, 8), 8, 3)])
def test_token_mask_matches_the_reference_on_the_kept_tokens(hw, c, H):
    """DynamicViT masks: 0/1 weights against the slow reference with the dropped tokens in the
    padding bucket; hard pruning (the kept tokens only) gives the same rows."""
    kern = build_kernel('lsh', head_dim=8, num_heads=2, bucket_size=c, n_hashes=H, seed=1).double()
    N = hw[0] * hw[1]
    g = torch.Generator().manual_seed(N)
    q, k, v = (torch.randn(2, 2, N, 8, generator=g, dtype=torch.float64) for _ in range(3))
    index = torch.stack([torch.randperm(N, generator=g)[:N // 2].sort().values for _ in range(2)])
    weight = torch.zeros(2, N, dtype=torch.float64).scatter(1, index, 1.0)
    out = kern(q, k, v, hw, mask=TokenMask(weight=weight))
    ref = reference(kern, q, v, [set(i.tolist()) for i in index])
    take = lambda t: t.gather(2, index[:, None, :, None].expand(-1, 2, -1, 8))  # noqa: E731
    torch.testing.assert_close(take(out), take(ref), rtol=1e-10, atol=1e-10)
    pruned = kern(take(q), take(k), take(v), hw, mask=TokenMask(index=index))
    torch.testing.assert_close(pruned, take(out), rtol=1e-10, atol=1e-10)



def test_never_forms_n_by_n():
    N, c, H = 4096, 32, 2
    kern = build_kernel('lsh', head_dim=8, num_heads=1, bucket_size=c, n_hashes=H)
    q, k, v = (torch.randn(1, 1, N, 8) for _ in range(3))
    with torch.no_grad(), MaxNumel() as m:
        out = kern(q, k, v)
    assert out.shape == q.shape and torch.isfinite(out).all()
    assert m.max <= H * N * 2 * c, m.max    # the chunked logits; an N x N map would be 16.7M


def test_shared_qk_gradients_and_bad_input():
    kern = build_kernel('lsh', head_dim=8, num_heads=2, bucket_size=4)
    q, k, v = (torch.randn(1, 2, 20, 8, requires_grad=True) for _ in range(3))
    kern(q, k, v).square().sum().backward()
    assert q.grad.abs().sum() > 0 and v.grad.abs().sum() > 0
    assert k.grad is None  # the keys are the normalised queries (shared QK)
    with pytest.raises(ValueError, match='as many key/value tokens as queries, got 10 for 20'):
        kern(q, torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8))
    with pytest.raises(ValueError, match='rotation columns'):
        build_kernel('lsh', head_dim=8, num_heads=2, bucket_size=1, max_half_buckets=2)(q, k, v)


def test_in_a_backbone_and_exported():
    import timm

    model = timm.create_model('attnzero_deit_tiny', attn='lsh', img_size=64, num_classes=5).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        y = model(x)
        ep = torch.export.export(model, (x,))
        torch.testing.assert_close(ep.module()(x), y, rtol=1e-5, atol=1e-5)
    assert y.shape == (2, 5)


@pytest.mark.parametrize('name', ['attnzero_pvt_tiny', 'attnzero_pvt_v2_b0'])
def test_pvt_stages_run_lsh_without_spatial_reduction(name):
    import timm

    model = timm.create_model(name, attn='lsh', img_size=64, num_classes=3).eval()
    assert model.sr_ratios == (1, 1, 1, 1)
    softmax = timm.create_model(name, attn='softmax', img_size=64, num_classes=3)
    assert softmax.sr_ratios == (8, 4, 2, 1)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 64, 64)).shape == (1, 3)
