"""Token reduction for plain ViTs (the compact-ViT survey's token-merging methods).

:class:`PatchMerger` -- Renggli et al., "Learning to Merge Tokens in Vision Transformers", 2022:
one learned merge of the ``N`` patch tokens into ``M`` output tokens. Each output token ``j`` is a
softmax-weighted average of the inputs, with weights from a linear score on the layer-normed tokens:
``out_j = sum_n softmax_n(W_j . LN(x_n)) x_n``. Prefix tokens (cls) are kept as they are.

:func:`build_token_reduction` reads the backbone option ``token_reduction=dict(type='patchmerger',
num_tokens=M, after=K)`` (merge after block ``K``, default the middle of the network). ``M`` must
be a square: the blocks after the merge see the ``M`` tokens as a ``sqrt(M) x sqrt(M)`` grid, so
kernels with a spatial branch (the depthwise conv on V of ``attnzero``/``focused``, agent
pooling) keep working (the grid is a layout of the merged tokens, not an image region).
"""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

__all__ = ['PatchMerger', 'build_token_reduction', 'TOKEN_REDUCTIONS']

TOKEN_REDUCTIONS = ('patchmerger',)


class PatchMerger(nn.Module):
    """``(B, N, C)`` patch tokens -> ``(B, M, C)`` merged tokens (see the module docstring)."""

    def __init__(self, dim: int, num_tokens: int) -> None:
        super().__init__()
        self.num_tokens = num_tokens
        self.norm = nn.LayerNorm(dim)
        self.queries = nn.Linear(dim, num_tokens, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = self.queries(self.norm(x)).softmax(dim=1)       # (B, N, M), softmax over inputs
        return weights.transpose(1, 2) @ x

    def extra_repr(self) -> str:
        return f'num_tokens={self.num_tokens}'


def build_token_reduction(cfg: Optional[Dict[str, Any]], dim: int, depth: int
                          ) -> Tuple[Optional[nn.Module], Optional[int]]:
    """``(module, after)`` for a ``token_reduction`` option (``(None, None)`` for ``None``); a bad
    option raises ``ValueError`` naming it."""
    if cfg is None:
        return None, None
    cfg = dict(cfg)
    kind = cfg.pop('type', None)
    if kind not in TOKEN_REDUCTIONS:
        raise ValueError(f'token_reduction type {kind!r} is not known; known: {", ".join(TOKEN_REDUCTIONS)}')
    m = cfg.pop('num_tokens', None)
    after = cfg.pop('after', depth // 2)
    if cfg:
        raise ValueError(f'token_reduction {kind!r}: unknown option(s) {sorted(cfg)}')
    if not isinstance(m, int) or m < 1 or math.isqrt(m) ** 2 != m:
        raise ValueError(f'token_reduction {kind!r}: num_tokens must be a square number >= 1, got {m!r}')
    if not isinstance(after, int) or not 1 <= after < depth:
        raise ValueError(f'token_reduction {kind!r}: after must be a block index in 1..{depth - 1}, got {after!r}')
    return PatchMerger(dim, m), after
