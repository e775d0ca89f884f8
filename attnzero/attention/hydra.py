"""Hydra attention -- Bolya et al., "Hydra Attention: Efficient Attention with Many Heads",
ECCVW 2022.

With as many heads as features and the cosine-similarity kernel, attention becomes::

    q^ = q / ||q||,  k^ = k / ||k||          (L2 over the feature channels, per token)
    out_n = q^_n (elementwise) sum_m (k^_m (elementwise) v_m)

O(N C): a global feature vector ``sum_m k^_m * v_m`` gated per token by ``q^_n``. There is no
softmax normaliser in the paper and none here.

Within the per-head interface ``(B, heads, N, d)``: by default (``per_head=False``) the L2 norms are
taken over all ``heads * d`` channels jointly, which is exactly Hydra on the merged ``C`` channels
regardless of how the module split its heads (the product and sum are channel-wise, so the head
split does not matter otherwise). ``per_head=True`` normalises within each head of ``d`` channels
instead (Hydra applied independently per head).
"""
from __future__ import annotations

from typing import Optional

import torch

from .base import HW, AttentionKernel, acc_dtype, register_attention


@register_attention('hydra')
class HydraAttention(AttentionKernel):
    """Hydra attention (see module docstring). ``v_branch`` is accepted and ignored."""

    linear = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0, per_head: bool = False,
                 eps: float = 1e-6) -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        self.per_head = per_head
        self.eps = eps

    def _l2(self, x: torch.Tensor) -> torch.Tensor:
        if self.per_head:
            n = x.norm(dim=-1, keepdim=True)
        else:  # over heads and d: (B, h, N, d) -> norm over dims 1 and 3
            n = x.pow(2).sum(dim=(1, 3), keepdim=True).sqrt()
        return x / n.clamp_min(self.eps)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        dt = acc_dtype(q.dtype)
        qh, kh = self._l2(q.to(dt)), self._l2(k.to(dt))
        g = (kh * v.to(dt)).sum(dim=-2, keepdim=True)  # (B, h, 1, d)
        return (qh * g).to(q.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', per_head={self.per_head}'
