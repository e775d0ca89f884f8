"""Focused linear attention -- Han et al., "FLatten Transformer: Vision Transformer using Focused
Linear Attention", ICCV 2023.

Feature map (applied to q and k, per token over the ``d`` channels of a head)::

    x'      = ReLU(x) / softplus(s)                   s: learnable per-channel scale (C = heads*d)
    phi(x)  = f_p(x') = ||x'|| / ||x'^p|| * x'^p      (elementwise power, p = 3 by default)

Output::

    out = phi(Q)(phi(K)^T V) / (phi(Q) sum_m phi(K_m) + eps)  +  DWC(V)

where DWC is the paper's rank-restoration depthwise conv (kernel 5) on V on the spatial grid
(prefix tokens skipped; with spatially reduced keys/values V is resized to the query grid first).

Kept from the paper: the ReLU + focusing function with p=3, the learnable softplus scale, the
normaliser, the DWC (kernel 5, one ``d``-channel filter bank shared by all heads). Left out: the
learnable positional encoding FLatten adds to K, which fixes the token count (backbones have their
own position embeddings).
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from .base import (HW, AttentionKernel, TokenMask, VBranch, acc_dtype, add_branch, inplace_ok,
                   register_attention)
from .linear import linear_attention_apply, linear_attention_state


def focusing_function(x: torch.Tensor, p: float, inplace: bool = False) -> torch.Tensor:
    """``f_p(x) = ||x|| / ||x^p|| * x^p`` over the last dim for non-negative ``x``. Computed on
    ``u = x / max(x)`` (mathematically identical: ``||x|| = max(x) ||u||`` and ``f_p`` is
    scale-equivariant), so that neither ``x^p`` nor ``||x||`` overflows or underflows; all-zero rows
    (padding, or ReLU killing every channel) map to zero with zero (not NaN) gradients.

    ``inplace=True`` (only for an intermediate the caller owns, and only without autograd)
    overwrites ``x``: three read-write passes and three reductions, no temporaries of ``x``'s size.
    """
    tiny = torch.finfo(x.dtype).tiny
    if inplace and not (torch.is_grad_enabled() and x.requires_grad):
        m = x.amax(dim=-1, keepdim=True).clamp_min_(tiny)
        u = x.div_(m)
        nu = torch.linalg.vector_norm(u, dim=-1, keepdim=True)
        up = u.pow_(p)
        nup = torch.linalg.vector_norm(up, dim=-1, keepdim=True).clamp_min_(tiny)
        return up.mul_(m.mul_(nu).div_(nup))     # all-zero rows: up = 0 (and nu = 0)

    def norm(t: torch.Tensor) -> torch.Tensor:
        # sqrt of a clamped sum of squares: equal to ||t|| wherever max(u) = 1 (sum >= 1), and
        # differentiable at the all-zero row, where torch.linalg.norm's backward is 0/0.
        return t.square().sum(dim=-1, keepdim=True).clamp_min(tiny).sqrt()

    m = x.amax(dim=-1, keepdim=True).clamp_min(tiny)
    u = x / m
    up = u ** p
    return (m * norm(u)) * up / norm(up)


@register_attention('focused')
class FocusedLinearAttention(AttentionKernel):
    """FLatten's focused linear attention (see module docstring).

    Args:
        focusing_factor: ``p`` (3 in the paper).
        kernel_size: DWC kernel size (5 in the paper).
        eps: added to the normaliser.
        dwc_shared_heads: share the DWC filters across heads (FLatten's layout).
    """

    linear = True
    supports_token_mask = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0, focusing_factor: float = 3.0,
                 kernel_size: int = 5, eps: float = 1e-6, dwc_shared_heads: bool = True) -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        self.focusing_factor = focusing_factor
        self.eps = eps
        self.scale = nn.Parameter(torch.zeros(1, num_heads, 1, head_dim))  # softplus(0) = ln 2
        self.dwc = (VBranch(head_dim, num_heads, kernel_size, dwc_shared_heads, num_prefix_tokens)
                    if v_branch else None)

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        s = F.softplus(self.scale.to(x.dtype))
        if not inplace_ok(x, s):
            return focusing_function(F.relu(x) / s, self.focusing_factor)
        # ReLU's result is ours: scale and focus it in place (three read-write passes)
        return focusing_function(F.relu(x).div_(s), self.focusing_factor, inplace=True)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        dt = acc_dtype(q.dtype)
        fk = self.feature_map(k.to(dt))
        kv, ksum = linear_attention_state(fk if mask is None else mask.weigh(fk), v)   # phi(K) freed here
        out = linear_attention_apply(self.feature_map(q.to(dt)), kv, ksum, self.eps).to(q.dtype)
        if self.dwc is not None:
            out = add_branch(out, self._spatial(self.dwc, v, hw, q.shape[-2], kv_hw, mask), q, k, v)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f', p={self.focusing_factor}'
