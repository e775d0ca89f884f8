"""attnzero.flops against hand-computed counts (multiply-adds of every matrix product)."""
from __future__ import annotations

import torch
from torch import nn

from attnzero.attention import Attention
from attnzero.flops import count_flops, count_params, flop_counter, model_cost

B, N, C, h = 2, 14 * 14, 64, 4
d = C // h


def proj_macs(n=N, m=N):
    return B * n * C * C + B * m * 2 * C * C + B * n * C * C   # q, k/v, out projections


def test_softmax_attention_counts():
    a = Attention(C, h, attn='softmax')
    c = count_flops(a, torch.randn(B, N, C), hw=(14, 14))
    attn_macs = B * h * N * N * d * 2                          # QK^T and AV
    assert c.macs == proj_macs() + attn_macs
    assert c.flops == 2 * c.macs
    assert c.params == count_params(a) == 4 * C * C + 4 * C
    assert any('scaled_dot_product' in k for k in c.by_op)


def test_linear_attention_counts():
    a = Attention(C, h, attn='linear')
    c = count_flops(a, torch.randn(B, N, C), hw=(14, 14))
    # phi(K)^T V: N d^2; phi(Q) (.): N d^2; normaliser phi(Q) . sum phi(K): N d  (per batch and head)
    attn_macs = B * h * (N * d * d + N * d * d + N * d)
    assert c.macs == proj_macs() + attn_macs


def test_spatial_reduction_and_dwc_counts():
    r, H = 2, 14
    M = (H // r) ** 2
    a = Attention(C, h, attn='focused', sr_ratio=r)
    c = count_flops(a, torch.randn(B, N, C), hw=(H, H))
    sr_macs = B * M * C * C * r * r                           # Conv2d(C, C, r, stride r)
    attn_macs = B * h * (M * d * d + N * d * d + N * d)
    dwc_macs = B * h * N * d * 5 * 5                          # 5x5 depthwise on V (bilinear-upsampled)
    assert c.macs == proj_macs(N, M) + sr_macs + attn_macs + dwc_macs


def test_einsum_and_backward_sdpa_counted():
    x = torch.randn(3, 5, 7, requires_grad=True)
    y = torch.randn(3, 7, 11)
    q = torch.randn(1, 2, 8, 4, requires_grad=True)
    with flop_counter() as fc:
        torch.einsum('bij,bjk->bik', x, y)
        torch.nn.functional.scaled_dot_product_attention(q, q, q).sum().backward()
    counts = {str(k): v for k, v in fc.get_flop_counts()['Global'].items()}
    assert counts['aten.bmm'] == 2 * 3 * 5 * 7 * 11
    assert sum(v for k, v in counts.items() if 'scaled_dot_product' in k and 'backward' in k) > 0


def test_model_cost_on_an_image_model():
    m = nn.Sequential(nn.Conv2d(3, 8, 4, stride=4), nn.Flatten(), nn.Linear(8 * 8 * 12, 10))
    params, gmacs = model_cost(m, (32, 48))
    assert round(params * 1e6) == sum(p.numel() for p in m.parameters())
    assert abs(gmacs * 1e9 - (8 * 12 * 8 * 3 * 16 + 8 * 8 * 12 * 10)) < 1e-3
    assert m.training                                         # mode restored
