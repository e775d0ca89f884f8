"""Pre-norm transformer block around any token mixer that takes ``(x, hw, attn_bias)``."""
from __future__ import annotations

from typing import Any, Callable, Iterable, Optional, Tuple, Type

import torch
from timm.layers import DropPath
from torch import nn


class TransformerBlock(nn.Module):
    """``x + DropPath(mixer(norm1(x), hw)); x + DropPath(mlp(norm2(x), hw))``.

    Args:
        dim: channels.
        attn: the token mixer, usually :class:`attnzero.attention.Attention` (called as
            ``attn(x, hw, attn_bias=...)`` when a bias is given, else ``attn(x, hw)``).
        mlp: the feed-forward module, called as ``mlp(x, hw)``.
        drop_path: stochastic depth rate.
    """

    def __init__(self, dim: int, attn: nn.Module, mlp: nn.Module, drop_path: float = 0.0,
                 norm_layer: Type[nn.Module] = nn.LayerNorm) -> None:
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = attn
        self.norm2 = norm_layer(dim)
        self.mlp = mlp
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: Tuple[int, int],
                attn_bias: Optional[torch.Tensor] = None, mask: Optional[Any] = None) -> torch.Tensor:
        """``mask``: a :class:`attnzero.attention.TokenMask` for the attention (token pruning)."""
        kw = {}
        if attn_bias is not None:
            kw['attn_bias'] = attn_bias
        if mask is not None:
            kw['mask'] = mask
        y = self.attn(self.norm1(x), hw, **kw)
        x = x + self.drop_path(y)
        x = x + self.drop_path(self.mlp(self.norm2(x), hw))
        return x


def run_blocks(blocks: Iterable[nn.Module], x: torch.Tensor, hw: Tuple[int, int],
               run: Optional[Callable[..., torch.Tensor]] = None) -> torch.Tensor:
    """Apply ``blocks`` in order as ``blk(x, hw)``, each through ``run(blk, x, hw)`` when given
    (the model's gradient-checkpointing switch, :meth:`BackboneBase._run`)."""
    for blk in blocks:
        x = run(blk, x, hw) if run is not None else blk(x, hw)
    return x
