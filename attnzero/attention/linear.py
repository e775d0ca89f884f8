"""Kernelised linear attention with a positive feature map phi:

    out_n = phi(q_n) (sum_m phi(k_m)^T v_m) / (phi(q_n) . sum_m phi(k_m) + eps)

computed right-to-left (``phi(K)^T V`` is ``d x d``), so no ``N x M`` matrix is ever formed.

* ``linear``: phi(x) = ELU(x) + 1 -- Katharopoulos et al., "Transformers are RNNs: Fast
  Autoregressive Transformers with Linear Attention", ICML 2020.
* ``relu_linear``: phi(x) = ReLU(x) -- Cai et al., "EfficientViT: Multi-Scale Linear Attention for
  High-Resolution Dense Prediction", ICCV 2023.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from ..space.ops import elu_plus_one
from .base import HW, AttentionKernel, TokenMask, acc_dtype, inplace_ok, register_attention


def linear_attention_state(fk: torch.Tensor, v: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """The token reduction of linear attention: ``fk (B,h,M,d)``, ``v (B,h,M,e)`` ->
    ``(phi(K)^T V (B,h,d,e), sum_m phi(k_m) (B,h,d))``, in float32 for half inputs."""
    dt = acc_dtype(v.dtype)
    fk, v = fk.to(dt), v.to(dt)
    return torch.einsum('bhmd,bhme->bhde', fk, v), fk.sum(dim=-2)


def linear_attention_apply(fq: torch.Tensor, kv: torch.Tensor, ksum: torch.Tensor,
                           eps: float = 1e-6) -> torch.Tensor:
    """``phi(Q) kv / (phi(Q) . ksum + eps)`` -> ``(B,h,N,e)`` in the state's dtype. Without autograd
    the division is done in place on the numerator (one pass over the output instead of two)."""
    fq = fq.to(kv.dtype)
    num = torch.einsum('bhnd,bhde->bhne', fq, kv)            # (B,h,N,e)
    den = torch.einsum('bhnd,bhd->bhn', fq, ksum).unsqueeze(-1) + eps
    return num.div_(den) if inplace_ok(fq, kv, ksum) else num / den


class _FeatureMapLinear(AttentionKernel):
    linear = True
    supports_token_mask = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0, eps: float = 1e-6) -> None:
        super().__init__(head_dim, num_heads, num_prefix_tokens, v_branch, attn_drop)
        self.eps = eps

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None, kv_hw: Optional[HW] = None,
                mask: Optional[TokenMask] = None) -> torch.Tensor:
        self._check_bias(attn_bias)
        dt = acc_dtype(q.dtype)
        fk = self.feature_map(k.to(dt))
        kv, ksum = linear_attention_state(fk if mask is None else mask.weigh(fk), v)
        return linear_attention_apply(self.feature_map(q.to(dt)), kv, ksum, self.eps).to(q.dtype)


@register_attention('linear')
class LinearAttention(_FeatureMapLinear):
    """Linear attention with the ELU+1 feature map (Katharopoulos et al., ICML 2020).

    ``phi(x) = ELU(x) + 1``; ``out = phi(Q)(phi(K)^T V) / (phi(Q) phi(K)^T 1 + eps)``. No V branch
    (``v_branch`` is accepted and ignored).
    """

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return elu_plus_one(x)


@register_attention('relu_linear')
class ReLULinearAttention(_FeatureMapLinear):
    """EfficientViT's ReLU linear attention (Cai et al., ICCV 2023).

    ``out = ReLU(Q)(ReLU(K)^T V) / (ReLU(Q) sum_m ReLU(K_m) + eps)``. EfficientViT's multi-scale
    token aggregation lives outside attention in its own backbone and is not part of this kernel;
    ``v_branch`` is accepted and ignored.
    """

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(x)
