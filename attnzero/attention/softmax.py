"""Softmax attention (Vaswani et al., "Attention Is All You Need", NeurIPS 2017).

``out = softmax(q k^T * scale + attn_bias) v`` computed by
:func:`torch.nn.functional.scaled_dot_product_attention`. Quadratic in the number of tokens.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F

from .base import HW, AttentionKernel, TokenMask, masked_softmax, register_attention


@register_attention('softmax')
class SoftmaxAttention(AttentionKernel):
    """Scaled dot-product softmax attention.

    Args:
        scale: logit scale; default ``head_dim ** -0.5``.
    ``attn_bias``: additive float bias broadcastable to ``(B, heads, N, M)`` -- e.g. Swin's relative
    position bias ``(1, heads, N, N)`` plus its shift mask ``(nW, 1, N, N)`` reshaped to the window
    batch (the backbone combines them), or a boolean mask (True = keep).
    """

    supports_attn_bias = True
    linear = False
    supports_token_mask = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0, scale: Optional[float] = None) -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        self.scale = head_dim ** -0.5 if scale is None else float(scale)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        if mask is not None and mask.weight is not None:  # DynamicViT's masked softmax (train time)
            if attn_bias is not None:
                raise ValueError('softmax attention takes an attn_bias or weighted token masks, not both')
            logits = (q @ k.transpose(-1, -2)) * self.scale
            attn = masked_softmax(logits, mask.weight)
            if self.training and self.attn_drop > 0:
                attn = F.dropout(attn, self.attn_drop)
            return (attn @ v).to(q.dtype)
        if attn_bias is not None and attn_bias.dtype != torch.bool:
            attn_bias = attn_bias.to(q.dtype)
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_bias, dropout_p=self.attn_drop if self.training else 0.0,
            scale=self.scale)
