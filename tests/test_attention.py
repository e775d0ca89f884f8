"""The attention zoo against independent slow references written here from the papers' formulas.

References use explicit N x M matrices, per-token Python loops and a hand-rolled depthwise conv, in
float64, so that they share no code path with the (associativity-reordered) kernels.
"""
from __future__ import annotations

import math
import types

import pytest
import torch
import torch.nn.functional as F
from conftest import MaxNumel

from attnzero.attention import ATTENTIONS, Attention, AttentionKernel, build_kernel
from attnzero.space import TRIAL_105, TRIAL_140, Genome

ALL = ['softmax', 'linear', 'relu_linear', 'focused', 'hydra', 'agent', 'attnzero']
LINEAR = ['linear', 'relu_linear', 'focused', 'hydra', 'agent', 'attnzero']


def rand(*shape, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def qkv(B=2, h=2, N=16, M=None, d=8, seed=0):
    M = N if M is None else M
    return rand(B, h, N, d, seed=seed), rand(B, h, M, d, seed=seed + 1), rand(B, h, M, d, seed=seed + 2)


def make(name, d=8, h=2, **kw):
    torch.manual_seed(0)
    k = build_kernel(name, head_dim=d, num_heads=h, **kw).double()
    with torch.no_grad():  # non-trivial learnable parameters
        for p in k.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return k.eval()


# ----------------------------------------------------------------------------- slow references
def ref_dwc(v, weight, bias, hw, p, shared):
    """Depthwise 'same' conv of the spatial tokens of v (B,h,M,d) with M - p == H*W, by explicit
    shifted sums; prefix rows of the result are zero."""
    B, h, M, d = v.shape
    H, W = hw
    ks = weight.shape[-1]
    r = ks // 2
    g = v[:, :, p:].reshape(B, h, H, W, d)
    gp = torch.zeros(B, h, H + 2 * r, W + 2 * r, d, dtype=v.dtype)
    gp[:, :, r:r + H, r:r + W] = g
    w = weight[:, 0]                                     # (ch, ks, ks)
    w = w.reshape(1, d, ks, ks) if shared else w.reshape(h, d, ks, ks)
    b = bias.reshape(1, d) if shared else bias.reshape(h, d)
    out = torch.zeros(B, h, H, W, d, dtype=v.dtype)
    for i in range(ks):
        for j in range(ks):
            out += gp[:, :, i:i + H, j:j + W] * w[:, :, i, j][None, :, None, None, :]
    out += b[None, :, None, None, :]
    full = torch.zeros(B, h, M if M == p + H * W else p + H * W, d, dtype=v.dtype)
    full[:, :, p:] = out.reshape(B, h, H * W, d)
    return full


def ref_kernelized(fq, fk, v, eps):
    A = fq @ fk.transpose(-1, -2)                          # explicit N x M
    return (A @ v) / (A.sum(-1, keepdim=True) + eps)


def ref_focus_token(x, s, p=3.0):
    """FLatten feature map of ONE token x (d,) with per-channel scale parameter s (d,)."""
    x = torch.relu(x) / F.softplus(s)
    xp = x ** p
    n_p = torch.sqrt((xp * xp).sum())
    if n_p == 0:
        return torch.zeros_like(x)
    return torch.sqrt((x * x).sum()) / n_p * xp


def ref_focused(kern, q, k, v, hw):
    B, h, N, d = q.shape
    s = kern.scale.detach().reshape(h, d)
    fq = torch.stack([torch.stack([torch.stack([ref_focus_token(q[b, i, n], s[i]) for n in range(N)])
                                   for i in range(h)]) for b in range(B)])
    fk = torch.stack([torch.stack([torch.stack([ref_focus_token(k[b, i, m], s[i]) for m in range(k.shape[2])])
                                   for i in range(h)]) for b in range(B)])
    out = ref_kernelized(fq, fk, v, kern.eps)
    if kern.dwc is not None:
        out = out + ref_dwc(v, kern.dwc.weight.detach(), kern.dwc.bias.detach(), hw,
                            kern.num_prefix_tokens, kern.dwc.shared_across_heads)
    return out


def ref_hydra(q, k, v, per_head=False):
    """Hydra on merged channels: per token cosine-normalise over all C features."""
    B, h, N, d = q.shape
    if per_head:
        return torch.cat([ref_hydra(q[:, i:i + 1], k[:, i:i + 1], v[:, i:i + 1]) for i in range(h)], 1)
    Q = q.transpose(1, 2).reshape(B, N, h * d)
    K = k.transpose(1, 2).reshape(B, k.shape[2], h * d)
    V = v.transpose(1, 2).reshape(B, k.shape[2], h * d)
    out = torch.zeros_like(Q)
    for b in range(B):
        glob = torch.zeros(h * d, dtype=q.dtype)
        for t in range(K.shape[1]):
            glob += K[b, t] / K[b, t].norm() * V[b, t]
        for n in range(N):
            out[b, n] = Q[b, n] / Q[b, n].norm() * glob
    return out.reshape(B, N, h, d).transpose(1, 2)


def ref_agent(kern, q, k, v, hw):
    """Per-token loops; agents by explicit block means (grid divisible by the pool size)."""
    B, h, N, d = q.shape
    p, a = kern.num_prefix_tokens, kern.pool_size
    H, W = hw
    bh, bw = H // a, W // a
    assert bh * a == H and bw * a == W
    sc = kern.scale
    out = torch.zeros_like(q)
    for b in range(B):
        for i in range(h):
            grid = q[b, i, p:].reshape(H, W, d)
            agents = torch.stack([grid[y * bh:(y + 1) * bh, x * bw:(x + 1) * bw].reshape(-1, d).mean(0)
                                  for y in range(a) for x in range(a)])
            agent_v = []
            for A in agents:
                w = torch.exp(torch.stack([(A * kk).sum() * sc for kk in k[b, i]]))
                agent_v.append((w[:, None] * v[b, i]).sum(0) / w.sum())
            agent_v = torch.stack(agent_v)
            for n in range(N):
                w = torch.exp(torch.stack([(q[b, i, n] * A).sum() * sc for A in agents]))
                out[b, i, n] = (w[:, None] * agent_v).sum(0) / w.sum()
    if kern.dwc is not None:
        out = out + ref_dwc(v, kern.dwc.weight.detach(), kern.dwc.bias.detach(), hw, p, False)
    return out


def ref_trial105(q, k, v):
    """Trial-105 written out by hand (i3n303; [[elu],[min_max],[l2norm_last],[normalize],[],[l2norm_last]];
    [einsum2, matmul, product])."""
    fk = F.elu(k) + 1
    fv = (v - v.min()) / (v.max() - v.min() + 1e-9)
    B1 = torch.einsum('bhnd,bhne->bhed', fk, fv)              # (phi(K)^T V)^T
    fq = q / q.norm(dim=-1, keepdim=True)
    B1n = (B1 - B1.mean()) / B1.std()
    B2 = fq @ B1n
    return q * (B2 / B2.norm(dim=-1, keepdim=True))


# ----------------------------------------------------------------------------- kernel tests
def test_registry_and_flags():
    assert set(ALL) <= set(ATTENTIONS)
    assert ATTENTIONS['softmax'].linear is False and ATTENTIONS['softmax'].supports_attn_bias
    for n in ['linear', 'relu_linear', 'focused', 'hydra', 'agent']:
        assert ATTENTIONS[n].linear is True and not ATTENTIONS[n].supports_attn_bias
        assert ATTENTIONS[n].__doc__
    with pytest.raises(KeyError, match='known'):
        build_kernel('nope', 8, 2)


@pytest.mark.parametrize('M', [16, 6])
def test_softmax_reference(M):
    q, k, v = qkv(N=16, M=M)
    kern = make('softmax')
    ref = (q @ k.transpose(-1, -2) / math.sqrt(8)).softmax(-1) @ v
    torch.testing.assert_close(kern(q, k, v), ref, rtol=1e-10, atol=1e-10)
    bias = rand(1, 2, 16, M, seed=7)                      # relative-position-bias-like, broadcast over B
    mask = torch.zeros(2, 1, 16, M, dtype=torch.float64)  # shift-mask-like, per batch element
    mask[1, :, :, : M // 2] = -100.0
    ref = (q @ k.transpose(-1, -2) / math.sqrt(8) + bias + mask).softmax(-1) @ v
    torch.testing.assert_close(kern(q, k, v, attn_bias=bias + mask), ref, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize('M', [16, 5])
@pytest.mark.parametrize('name,phi', [('linear', lambda x: F.elu(x) + 1), ('relu_linear', torch.relu)])
def test_feature_map_linear_reference(name, phi, M):
    q, k, v = qkv(N=16, M=M)
    kern = make(name)
    torch.testing.assert_close(kern(q, k, v), ref_kernelized(phi(q), phi(k), v, kern.eps),
                               rtol=1e-10, atol=1e-10)
    with pytest.raises(ValueError):
        kern(q, k, v, attn_bias=torch.zeros(1))


@pytest.mark.parametrize('p', [0, 1])
def test_focused_reference(p):
    hw = (3, 4)
    q, k, v = qkv(B=1, N=p + 12)
    kern = make('focused', num_prefix_tokens=p)
    torch.testing.assert_close(kern(q, k, v, hw), ref_focused(kern, q, k, v, hw), rtol=1e-9, atol=1e-10)
    # spatially reduced keys/values: the attention part against the reference
    q, k, v = qkv(B=1, N=12, M=5)
    kern = make('focused', v_branch=False)
    torch.testing.assert_close(kern(q, k, v, hw), ref_focused(kern, q, k, v, hw), rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize('name', ALL)
def test_inference_fast_path_equals_autograd_path(name):
    """Without autograd, kernels update their own intermediates in place (fewer passes over memory);
    the result must equal the autograd path and the inputs must be left untouched. Zero rows cover
    the all-zero case of the in-place focusing function."""
    hw = (4, 4)
    q, k, v = qkv(N=17, d=8)
    q[:, :, 3] = -1.0                                   # ReLU zeroes the whole row (focused)
    k[:, :, 5] = 0.0
    kern = make(name, num_prefix_tokens=1)
    before = [t.clone() for t in (q, k, v)]
    with torch.no_grad():
        fast = kern(q, k, v, hw)
    for t, b in zip((q, k, v), before):
        assert torch.equal(t, b), f'{name} modified its input in place'
    qg, kg, vg = (t.clone().requires_grad_() for t in (q, k, v))
    slow = kern(qg, kg, vg, hw)
    assert slow.requires_grad
    torch.testing.assert_close(fast, slow.detach(), rtol=1e-12, atol=1e-12)
    slow.square().sum().backward()
    assert all(torch.isfinite(t.grad).all() for t in (qg, kg, vg))


def test_add_branch_never_writes_into_an_input():
    from attnzero.attention.base import add_branch
    v = torch.ones(2, 3)
    with torch.no_grad():
        out = add_branch(v[:1], torch.ones(1, 3), v)          # a view of an input: out of place
        assert torch.equal(v, torch.ones(2, 3)) and torch.equal(out, torch.full((1, 3), 2.0))
        own = torch.zeros(2, 3)
        assert add_branch(own, v, v) is own and torch.equal(own, v)   # its own tensor: in place
    w = torch.zeros(2, 3, requires_grad=True)
    y = w * 1
    assert add_branch(y, v, v) is not y                        # autograd records it: out of place


def test_focusing_function_inplace_matches():
    from attnzero.attention.focused import focusing_function
    x = torch.rand(3, 5, 8, dtype=torch.float64)
    x[1, 2] = 0.0
    x[0, 0] = torch.tensor([1e30] * 8, dtype=torch.float64)
    ref = focusing_function(x, 3.0)
    y = x.clone()
    out = focusing_function(y, 3.0, inplace=True)
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=0)
    assert (out[1, 2] == 0).all()


def test_focusing_function_extreme_values():
    from attnzero.attention.focused import focusing_function
    x = torch.tensor([[1e30, 2e30, 0.0], [1e-30, 3e-30, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float32)
    y = focusing_function(x, 3.0)
    assert torch.isfinite(y).all() and (y[2] == 0).all()
    torch.testing.assert_close(y[0].norm(), x[0].norm(), rtol=1e-5, atol=0)  # norm preserved


@pytest.mark.parametrize('per_head', [False, True])
@pytest.mark.parametrize('M', [10, 4])
def test_hydra_reference(per_head, M):
    q, k, v = qkv(N=10, M=M)
    kern = make('hydra', per_head=per_head)
    torch.testing.assert_close(kern(q, k, v), ref_hydra(q, k, v, per_head), rtol=1e-10, atol=1e-10)


def test_hydra_is_head_split_invariant():
    q, k, v = qkv(h=4, d=4)
    merge = lambda t: t.transpose(1, 2).reshape(t.shape[0], t.shape[2], 1, -1).transpose(1, 2)  # noqa: E731
    out4 = make('hydra', d=4, h=4)(q, k, v)
    out1 = make('hydra', d=16, h=1)(merge(q), merge(k), merge(v))
    torch.testing.assert_close(merge(out4), out1)


@pytest.mark.parametrize('p,M', [(0, None), (1, None), (0, 5)])
def test_agent_reference(p, M):
    hw = (4, 6)                                             # pooled to 2x2 agents = 2x3 blocks
    q, k, v = qkv(B=1, N=p + 24, M=M)
    kern = make('agent', agent_num=4, num_prefix_tokens=p, v_branch=M is None)
    torch.testing.assert_close(kern(q, k, v, hw), ref_agent(kern, q, k, v, hw), rtol=1e-9, atol=1e-10)


def test_prefix_tokens_skip_the_v_branch():
    hw, p = (3, 3), 2
    q, k, v = qkv(B=1, N=p + 9)
    for name in ['focused', 'agent', 'attnzero']:
        kern = make(name, num_prefix_tokens=p)
        with_b = kern(q, k, v, hw)
        kern.dwc = None
        without = kern(q, k, v, hw)
        diff = with_b - without
        assert diff[:, :, :p].abs().max() == 0, name
        assert diff[:, :, p:].abs().max() > 0, name


def test_attnzero_default_is_trial105():
    q, k, v = qkv(N=12)
    kern = make('attnzero', v_branch=False)
    torch.testing.assert_close(kern(q, k, v), ref_trial105(q, k, v), rtol=1e-8, atol=1e-9)
    hw = (3, 4)
    kern = make('attnzero')
    ref = ref_trial105(q, k, v) + ref_dwc(v, kern.dwc.weight.detach(), kern.dwc.bias.detach(), hw, 0, False)
    torch.testing.assert_close(kern(q, k, v, hw), ref, rtol=1e-8, atol=1e-9)
    assert kern.linear
    q, k, v = qkv(N=12, M=5)                                # spatially reduced keys/values
    kern = make('attnzero', v_branch=False)
    torch.testing.assert_close(kern(q, k, v), ref_trial105(q, k, v), rtol=1e-8, atol=1e-9)


def test_attnzero_genome_forms():
    text = TRIAL_140.to_string()
    cfg = {'graph_type': 'i3n302', 'unary_op': [[16], [15], [0, 5], [9, 0], [20], [25]],
           'binary_op': [5, 5, 0]}
    for g in (text, Genome.parse(text), cfg, types.MappingProxyType(cfg)):
        kern = build_kernel('attnzero', 8, 2, genome=g)
        assert kern.genome.to_string() == text
    with pytest.raises(TypeError, match='not a genome: list'):  # not passed through to fail later
        build_kernel('attnzero', 8, 2, genome=[text])
    q, k, v = qkv(N=12, M=12)
    assert build_kernel('attnzero', 8, 2, genome=text).double()(q, k, v, (3, 4)).shape == q.shape
    assert build_kernel('attnzero', 8, 2).genome.to_string() == TRIAL_105.to_string()
    with pytest.raises(ValueError, match='different token count'):  # Trial-140 needs M == N
        build_kernel('attnzero', 8, 2, genome=text).double()(q, k[:, :, :4], v[:, :, :4], (3, 4))


# ----------------------------------------------------------------------------- module tests
def test_attention_parameter_names_and_counts():
    C = 32
    a = Attention(C, 4)
    assert [n for n, _ in a.named_parameters()] == ['qkv.weight', 'qkv.bias', 'proj.weight', 'proj.bias']
    assert sum(p.numel() for p in a.parameters()) == 4 * C * C + 4 * C
    a = Attention(C, 4, qkv_fused=False)
    assert {n.split('.')[0] for n, _ in a.named_parameters()} == {'q', 'kv', 'proj'}
    assert sum(p.numel() for p in a.parameters()) == 4 * C * C + 4 * C
    a = Attention(C, 1, sr_ratio=4)
    assert {n.split('.')[0] for n, _ in a.named_parameters()} == {'q', 'kv', 'sr', 'norm', 'proj'}
    with pytest.raises(ValueError):
        Attention(C, 1, sr_ratio=2, qkv_fused=True)
    # genome goes only to kernels that take one
    assert isinstance(Attention(C, 4, attn='linear', genome='anything').kernel, AttentionKernel)


def test_attention_spatial_reduction_matches_manual():
    torch.manual_seed(0)
    C, h, H, W, p, r = 16, 2, 6, 4, 1, 2
    a = Attention(C, h, attn='softmax', sr_ratio=r, num_prefix_tokens=p).double().eval()
    x = rand(2, p + H * W, C)
    q = a.q(x).reshape(2, -1, h, C // h).transpose(1, 2)
    grid = F.conv2d(x[:, p:].transpose(1, 2).reshape(2, C, H, W), a.sr.weight, a.sr.bias, stride=r)
    xr = torch.cat([x[:, :p], grid.flatten(2).transpose(1, 2)], 1)
    xr = F.layer_norm(xr, (C,), a.norm.weight, a.norm.bias)
    k, v = a.kv(xr).reshape(2, -1, 2, h, C // h).permute(2, 0, 3, 1, 4)
    o = ((q @ k.transpose(-1, -2)) * (C // h) ** -0.5).softmax(-1) @ v
    ref = a.proj(o.transpose(1, 2).reshape(2, -1, C))
    torch.testing.assert_close(a(x, (H, W)), ref)


@pytest.mark.parametrize('name', ALL)
def test_module_forward_backward(name):
    torch.manual_seed(0)
    C, hw = 32, (5, 7)                 # non-square, not divisible by sr or by the 7x7 agent pool
    for p, sr in [(0, 1), (1, 1), (1, 2)]:
        a = Attention(C, 2, attn=name, num_prefix_tokens=p, sr_ratio=sr)
        x = torch.randn(2, p + 35, C, requires_grad=True)
        y = a(x, hw)
        assert y.shape == x.shape and torch.isfinite(y).all()
        y.square().mean().backward()
        assert torch.isfinite(x.grad).all()
        assert all(torch.isfinite(q.grad).all() for q in a.parameters() if q.grad is not None)


@pytest.mark.parametrize('name', ALL)
def test_dtypes(name):
    """float64 and bfloat16 on CPU: bfloat16 close to the float64 result, dtype preserved."""
    torch.manual_seed(0)
    a = Attention(32, 2, attn=name, num_prefix_tokens=1).double().eval()
    x = torch.randn(2, 1 + 36, 32, dtype=torch.float64)
    ref = a(x, (6, 6))
    assert ref.dtype == torch.float64
    out = a.to(torch.bfloat16)(x.to(torch.bfloat16), (6, 6))
    assert out.dtype == torch.bfloat16 and torch.isfinite(out).all()
    err = (out.double() - ref).abs().max() / ref.abs().max()
    assert err < 0.05, err



@pytest.mark.parametrize('name', LINEAR)
def test_linear_kernels_never_form_n_by_n(name):
    N, h, d = 64 * 64, 1, 8
    kern = build_kernel(name, head_dim=d, num_heads=h, **({'genome': None} if name == 'attnzero' else {}))
    q, k, v = (torch.randn(1, h, N, d) for _ in range(3))
    with torch.no_grad(), MaxNumel() as m:
        out = kern(q, k, v, (64, 64))
    assert out.shape == q.shape
    assert m.max <= 64 * N * h * d, m.max        # an N x N map would be N * N = 16.7M elements
    assert m.max < N * N // 16


def test_max_numel_detects_a_quadratic_formulation():
    q = torch.randn(1, 1, 1024, 8)
    with MaxNumel() as m:
        ref_kernelized(q, q, q, 1e-6)
    assert m.max >= 1024 * 1024


def test_focused_zero_rows_have_finite_gradients():
    """Rows that ReLU zeroes entirely (padding tokens, or every channel negative) must not produce
    NaN gradients for the learnable scale (the norm of an all-zero row has a 0/0 backward)."""
    from attnzero.attention import build_kernel

    kern = build_kernel('focused', head_dim=8, num_heads=2, v_branch=False)
    q = torch.randn(1, 2, 16, 8)
    k = torch.randn(1, 2, 16, 8)
    q[:, :, :4] = -1.0          # all channels negative -> ReLU gives an all-zero row
    k[:, :, -3:] = 0.0          # zero padding
    q.requires_grad_(True)
    k.requires_grad_(True)
    out = kern(q, k, torch.randn(1, 2, 16, 8), hw=(4, 4))
    out.square().sum().backward()
    assert torch.isfinite(out).all()
    for t in (kern.scale.grad, q.grad, k.grad):
        assert torch.isfinite(t).all()
    assert kern.scale.grad.abs().sum() > 0


def test_identity_control_does_no_mixing():
    from attnzero.attention import build_kernel

    kern = build_kernel('identity', head_dim=8, num_heads=2)
    q, k, v = torch.randn(3, 1, 2, 10, 8).unbind(0)
    assert torch.equal(kern(q, k, v, hw=(2, 5)), v)
    with pytest.raises(ValueError, match='as many keys/values as queries'):
        kern(q, k[:, :, :5], v[:, :, :5], hw=(2, 5))
