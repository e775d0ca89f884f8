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

from .base import HW, AttentionKernel, TokenMask, acc_dtype, register_attention


@register_attention('hydra')
class HydraAttention(AttentionKernel):
    """Hydra attention (see module docstring). ``v_branch`` is accepted and ignored."""

    linear = True
    supports_token_mask = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0, per_head: bool = False,
                 eps: float = 1e-6) -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        self.per_head = per_head
        self.eps = eps

    def _inv_norm(self, x: torch.Tensor) -> torch.Tensor:
        """``1 / max(||x_n||, eps)`` per token: ``(B, h, N, 1)`` per head, else ``(B, 1, N, 1)``
        (the norm over heads and d, taken as the norm over heads of the per-head norms: a reduction
        over the contiguous last dim, which reads ``x`` once and forms no squared copy). All-zero
        tokens (padding) get zero, not NaN, gradients: the clamp comes before the square root."""
        n = torch.linalg.vector_norm(x, dim=-1, keepdim=True)
        if self.per_head:
            return n.clamp_min(self.eps).reciprocal()
        # (vector_norm over the strided heads dim is slow: square and sum the small per-head norms)
        return n.square().sum(dim=1, keepdim=True).clamp_min(self.eps ** 2).rsqrt()

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        dt = acc_dtype(q.dtype)
        qf, kf, vf = q.to(dt), k.to(dt), v.to(dt)
        # g = sum_m k^_m * v_m = sum_m (k_m * v_m) / ||k_m||: the 1/||k_m|| weighting is a
        # contraction over m (a batched matrix-vector product), so k^ is never materialised.
        wk = self._inv_norm(kf).squeeze(-1)                              # (B, h|1, M)
        if mask is not None and mask.weight is not None:  # token weights scale the key rows
            wk = wk * mask.weight.to(dt)[:, None, :]
        g = torch.einsum('bhmd,bhm->bhd', kf * vf, wk.expand(kf.shape[:3]))
        # out = q^ * g = (q * g) / ||q||: the scaling is applied in place to the product (mul saves
        # its inputs, not its result, so this is also valid under autograd).
        return (qf * g.unsqueeze(-2)).mul_(self._inv_norm(qf)).to(q.dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', per_head={self.per_head}'
