"""The one attention interface shared by every backbone.

Two levels, so that backbones with unusual token layouts (Swin windows, CSwin stripes) use the
same attention code as the plain ones:

* :class:`AttentionKernel` -- the token-mixing core. ``kernel(q, k, v, hw, attn_bias=None)`` takes
  per-head tensors of shape ``(B, heads, N, d)`` (keys/values may have ``M != N`` tokens) and
  returns ``(B, heads, N, d)``. ``hw`` is the ``(H, W)`` grid of the *spatial* tokens (prefix tokens
  such as a cls token come first and are not part of the grid). A kernel may own parameters
  (learnable scales, a depthwise conv on V, agent tokens).
* :class:`Attention` -- the module around a kernel: ``qkv`` projection, head split, kernel, head
  merge, output projection. ``Attention(x, hw) -> x`` on ``(B, N, C)`` tokens. Optional spatial
  reduction of keys/values (PVT) lives here.

Kernels register by name in :data:`ATTENTIONS`; ``build_kernel('linear', ...)`` makes one.
"""
from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple, Type

import torch
from torch import nn

HW = Tuple[int, int]

ATTENTIONS: Dict[str, Type['AttentionKernel']] = {}


def register_attention(name: str) -> Callable[[Type['AttentionKernel']], Type['AttentionKernel']]:
    """Class decorator: make a kernel selectable by ``name`` in configs."""

    def deco(cls: Type['AttentionKernel']) -> Type['AttentionKernel']:
        if name in ATTENTIONS and ATTENTIONS[name] is not cls:
            raise KeyError(f'attention {name!r} is already registered by {ATTENTIONS[name].__name__}')
        ATTENTIONS[name] = cls
        cls.name = name
        return cls

    return deco


class AttentionKernel(nn.Module):
    """Token-mixing core on per-head tensors ``(B, heads, N, d)``.

    Args:
        head_dim: channels per head ``d``.
        num_heads: number of heads.
        num_prefix_tokens: tokens at the start of the sequence that are not on the ``hw`` grid
            (e.g. DeiT's cls token); spatial operations (depthwise convs) skip them.
        v_branch: whether the kernel adds its own local branch on V (depthwise conv) when its
            formulation has one. Backbones with their own positional branch (CSwin's LePE) pass
            ``False``.
    """

    name: str = ''
    #: True if the kernel can take an additive attention bias (Swin relative position bias).
    supports_attn_bias: bool = False
    #: True if cost is linear in the number of tokens.
    linear: bool = True

    def __init__(self, head_dim: int, num_heads: int, num_prefix_tokens: int = 0,
                 v_branch: bool = True, attn_drop: float = 0.0) -> None:
        super().__init__()
        self.head_dim = head_dim
        self.num_heads = num_heads
        self.num_prefix_tokens = num_prefix_tokens
        self.v_branch = v_branch
        self.attn_drop = attn_drop

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, hw: Optional[HW] = None,
                attn_bias: Optional[torch.Tensor] = None) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f'head_dim={self.head_dim}, num_heads={self.num_heads}'


def build_kernel(name: str, head_dim: int, num_heads: int, **kwargs) -> AttentionKernel:
    """Build the kernel registered as ``name``; unknown names list the known ones."""
    from . import zoo  # noqa: F401  (registers the built-in kernels)

    if name not in ATTENTIONS:
        raise KeyError(f'unknown attention {name!r}; known: {sorted(ATTENTIONS)}')
    return ATTENTIONS[name](head_dim=head_dim, num_heads=num_heads, **kwargs)
