"""SepViT depthwise separable self-attention (``attn='sepvit'``, issue 20): float64 agreement with a
window-by-window reference written here, window count from the input size, no N x N tensor,
gradients to its own parameters, and use in PVTv2 / Swin / DeiT stages (forward, torch.export)."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from conftest import MaxNumel

from attnzero.attention import TokenMask, build_kernel


def reference(kern, q, k, v, hw, kept=None):
    """DSA then PSA as the SepViT paper describes them, one window at a time: a window holds the grid
    tokens of its ws x ws cell (fewer at the right/bottom edges) plus the window token; softmax
    attention inside; the window tokens (LayerNorm, GELU, a linear map to query/key) attend across
    windows, and each token position of a window receives the map-weighted sum of the other
    windows' DSA outputs at that position (0 where that position is outside the grid).

    ``kept`` (a set of token indices per sample; DynamicViT): only kept tokens are keys, in their
    window and for the prefix tokens, and a dropped position adds nothing to the mixing."""
    B, h, N, d = q.shape
    p = kern.num_prefix_tokens
    H, W = hw
    ws = kern.window_size
    nh, nw = math.ceil(H / ws), math.ceil(W / ws)
    out = torch.zeros_like(q)
    tq, tk, tv = kern.window_token.double()
    for b in range(B):
        for hh in range(h):
            cells = [(i, j) for i in range(nh) for j in range(nw)]
            dsa, wtok = {}, []
            for ci, (i, j) in enumerate(cells):
                idx = {(r, c): p + r * W + c for r in range(i * ws, min((i + 1) * ws, H))
                       for c in range(j * ws, min((j + 1) * ws, W))}
                keys = [t for t in idx.values() if kept is None or t in kept[b]]
                K = torch.stack([tk[hh]] + [k[b, hh, t] for t in keys])
                V = torch.stack([tv[hh]] + [v[b, hh, t] for t in keys])
                for pos, qv in [(None, tq[hh])] + [((r - i * ws, c - j * ws), q[b, hh, t]) for (r, c), t in idx.items()]:
                    o = torch.softmax(K @ qv / math.sqrt(d), 0) @ V
                    if pos is None:
                        wtok.append(o)
                    else:
                        dsa[(ci, pos)] = o
            z = F.gelu(F.layer_norm(torch.stack(wtok), (d,), kern.psa_norm.weight.double(), kern.psa_norm.bias.double(),
                                    kern.psa_norm.eps))
            qk = z @ kern.psa_qk.weight.double().T + kern.psa_qk.bias.double()
            A = torch.softmax(qk[:, :d] @ qk[:, d:].T / math.sqrt(d), -1)
            for ci, (i, j) in enumerate(cells):
                for r in range(i * ws, min((i + 1) * ws, H)):
                    for c in range(j * ws, min((j + 1) * ws, W)):
                        pos = (r - i * ws, c - j * ws)
                        out[b, hh, p + r * W + c] = sum(
                            A[ci, cj] * dsa[(cj, pos)] for cj in range(len(cells)) if (cj, pos) in dsa
                            and (kept is None or p + (cells[cj][0] * ws + pos[0]) * W + cells[cj][1] * ws + pos[1]
                                 in kept[b]))
            keys = [t for t in range(N) if kept is None or t in kept[b]]
            for t in range(p):
                out[b, hh, t] = torch.softmax(k[b, hh, keys] @ q[b, hh, t] / math.sqrt(d), 0) @ v[b, hh, keys]
    return out


@pytest.mark.parametrize('hw, ws, prefix', [((6, 6), 3, 0), ((5, 7), 3, 1), ((4, 4), 7, 0), ((7, 9), 4, 2)])
def test_matches_the_window_by_window_reference(hw, ws, prefix):
    kern = build_kernel('sepvit', head_dim=8, num_heads=2, window_size=ws, num_prefix_tokens=prefix).double()
    with torch.no_grad():
        for prm in kern.parameters():
            prm.copy_(torch.randn_like(prm) * 0.5)
    g = torch.Generator().manual_seed(hw[0] * 10 + hw[1])
    N = prefix + hw[0] * hw[1]
    q, k, v = (torch.randn(2, 2, N, 8, generator=g, dtype=torch.float64) for _ in range(3))
    torch.testing.assert_close(kern(q, k, v, hw), reference(kern, q, k, v, hw), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('hw, ws, prefix', [((6, 6), 3, 1), ((7, 9), 4, 2)])
def test_token_mask_matches_the_reference_on_the_kept_tokens(hw, ws, prefix):
    """DynamicViT masks: 0/1 weights against the window-by-window reference restricted to the kept
    tokens (including a window whose tokens are all dropped)."""
    kern = build_kernel('sepvit', head_dim=8, num_heads=2, window_size=ws, num_prefix_tokens=prefix).double()
    g = torch.Generator().manual_seed(5)
    N = prefix + hw[0] * hw[1]
    q, k, v = (torch.randn(2, 2, N, 8, generator=g, dtype=torch.float64) for _ in range(3))
    weight = (torch.rand(2, N, generator=g) > 0.4).double()
    weight[:, :prefix] = 1
    weight[0, prefix:prefix + ws] = 0              # the first window's top row
    weight[1, [prefix + r * hw[1] + c for r in range(ws) for c in range(ws)]] = 0   # window 0 of sample 1
    kept = [set(weight[b].nonzero().flatten().tolist()) for b in range(2)]
    out = kern(q, k, v, hw, mask=TokenMask(weight=weight))
    ref = reference(kern, q, k, v, hw, kept)
    for b in range(2):
        rows = sorted(kept[b])
        torch.testing.assert_close(out[b, :, rows], ref[b, :, rows], rtol=1e-10, atol=1e-10)



def test_window_count_follows_the_input_and_no_n_by_n():
    kern = build_kernel('sepvit', head_dim=8, num_heads=1, window_size=7)
    for H, W in ((64, 64), (30, 45)):
        q, k, v = (torch.randn(1, 1, H * W, 8) for _ in range(3))
        with torch.no_grad(), MaxNumel() as m:
            out = kern(q, k, v, (H, W))
        assert out.shape == q.shape and torch.isfinite(out).all()
        n_win = math.ceil(H / 7) * math.ceil(W / 7)
        assert m.max <= max(n_win * 50 * 50, n_win * n_win, n_win * 49 * 8), m.max
        assert m.max < (H * W) ** 2 // 16


def test_gradients_reach_every_parameter_and_bad_input():
    kern = build_kernel('sepvit', head_dim=8, num_heads=2, window_size=3)
    q, k, v = (torch.randn(1, 2, 36, 8, requires_grad=True) for _ in range(3))
    kern(q, k, v, (6, 6)).square().sum().backward()
    for name, prm in kern.named_parameters():
        assert prm.grad is not None and prm.grad.abs().sum() > 0, name
    with pytest.raises(ValueError, match='keys/values at the query resolution'):
        kern(q, k[:, :, :9], v[:, :, :9], (6, 6))
    with pytest.raises(ValueError, match='needs the token grid'):
        kern(q, k, v)


@pytest.mark.parametrize('name', ['attnzero_pvt_v2_b0', 'attnzero_swin_tiny', 'attnzero_deit_tiny'])
def test_in_backbones_and_exported(name):
    import timm

    model = timm.create_model(name, attn='sepvit', img_size=64, num_classes=3).eval()
    if hasattr(model, 'global_stages'):
        assert model.global_stages == (True, True, True, True)  # the kernel makes its own windows
    if hasattr(model, 'sr_ratios'):
        assert model.sr_ratios == (1, 1, 1, 1)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        y = model(x)
        ep = torch.export.export(model, (x,))
        torch.testing.assert_close(ep.module()(x), y, rtol=1e-5, atol=1e-5)
