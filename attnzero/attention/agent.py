"""Agent attention -- Han et al., "Agent Attention: On the Integration of Softmax and Linear
Attention", ECCV 2024.

A small set of ``n`` agent tokens ``A`` (``n << N``) mediates between queries and keys::

    A       = AdaptiveAvgPool_{a x a}(Q on the H x W grid)        (n = a^2 agents per head)
    V_A     = softmax(A K^T * scale) V                             agent aggregation  (n x d)
    out     = softmax(Q A^T * scale) V_A  +  DWC(V)                agent broadcast    (N x d)

Cost O(N n d + M n d): linear in the number of tokens for fixed ``n``.

Kept from the paper: agents pooled from the queries (spatial tokens only; prefix tokens such as a
cls token are queries and keys but not pooled into agents), the two softmax attentions, and the
depthwise 3x3 conv on V (one filter per channel of C). Simplified: the paper's agent/position biases
(learned additive biases in both softmaxes, which depend on the window/grid size) are omitted.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F

from .base import HW, AttentionKernel, TokenMask, VBranch, acc_dtype, add_branch, masked_softmax, register_attention


@register_attention('agent')
class AgentAttention(AttentionKernel):
    """Agent attention (see module docstring).

    Args:
        agent_num: number of agents ``n``; must be a square (``a x a`` pooling), 49 in the paper.
        scale: softmax temperature, default ``head_dim ** -0.5``.
        kernel_size: DWC kernel size (3).
    """

    linear = True
    supports_token_mask = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0, agent_num: int = 49,
                 scale: Optional[float] = None, kernel_size: int = 3) -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        a = math.isqrt(agent_num)
        if a * a != agent_num:
            raise ValueError(f'agent_num must be a square, got {agent_num}')
        self.agent_num, self.pool_size = agent_num, a
        self.scale = head_dim ** -0.5 if scale is None else float(scale)
        self.dwc = VBranch(head_dim, num_heads, kernel_size, False, num_prefix_tokens) if v_branch else None

    def agents(self, q: torch.Tensor, hw: HW) -> torch.Tensor:
        """``(B, h, N, d)`` queries -> ``(B, h, n, d)`` agent tokens."""
        B, h, N, d = q.shape
        H, W = hw
        g = q[:, :, self.num_prefix_tokens:].transpose(-1, -2).reshape(B * h, d, H, W)
        a = F.adaptive_avg_pool2d(g, self.pool_size)
        return a.reshape(B, h, d, self.agent_num).transpose(-1, -2)

    def _softmax(self, x: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = masked_softmax(x, weight)
        if self.training and self.attn_drop > 0:
            x = F.dropout(x, self.attn_drop)
        return x

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        if hw is None:
            raise ValueError('agent attention needs hw=(H, W) to pool agent tokens')
        dt = acc_dtype(q.dtype)
        qf, kf, vf = q.to(dt), k.to(dt), v.to(dt)
        # agents pool the queries of the present tokens (zero where missing, weighted), and attend
        # to the keys with their token weights
        pooled_q = qf if mask is None else mask.scatter(qf, self.num_prefix_tokens + hw[0] * hw[1])
        a = self.agents(pooled_q, hw) * self.scale    # the scale of both softmaxes, on n tokens
        agent_v = self._softmax(a @ kf.transpose(-1, -2), None if mask is None else mask.weight) @ vf
        out = self._softmax(qf @ a.transpose(-1, -2)) @ agent_v             # (B,h,N,d)
        out = out.to(q.dtype)
        if self.dwc is not None:
            out = add_branch(out, self._spatial(self.dwc, v, hw, q.shape[-2], kv_hw, mask), q, k, v)
        return out

    def extra_repr(self) -> str:
        return super().extra_repr() + f', agent_num={self.agent_num}'
