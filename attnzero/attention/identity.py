"""The no-mixing control: ``out = v``.

Every token keeps its own value; no token mixing and no local branch. It is the reference point for
"does this task / proxy need token mixing at all" (the search's embedded proxy is tested against
it), not an attention anyone should train.
"""
from __future__ import annotations

from typing import Optional

import torch

from .base import HW, AttentionKernel, TokenMask, register_attention


@register_attention('identity')
class IdentityAttention(AttentionKernel):
    """``out = v`` (no token mixing). Needs as many keys/values as queries."""

    linear = True
    supports_token_mask = True  # no mixing: a token's output does not depend on the others

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        if v.shape[-2] != q.shape[-2]:
            raise ValueError(f'identity attention needs as many keys/values as queries, got '
                             f'{v.shape[-2]} values for {q.shape[-2]} queries (sr_ratio > 1?)')
        return v
