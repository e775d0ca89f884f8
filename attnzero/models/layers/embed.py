"""Patch embeddings (plain, overlapping, convolutional stem) and Swin's patch merging."""
from __future__ import annotations

from typing import Optional, Tuple, Type, Union

import torch
from timm.layers import to_2tuple
from torch import nn

from .padding import nchw_to_tokens, pad_hw_to_multiple, pad_to_multiple


class PatchEmbed(nn.Module):
    """Conv patch embedding on NCHW images -> ``(B, N, C)`` tokens and the grid size.

    One class covers the three families of stems:

    * non-overlapping (ViT / PVT v1 / Swin): ``kernel_size = stride = patch_size``, ``padding=0``;
    * overlapping (PVT v2): ``kernel_size=7, stride=4, padding=3`` and ``3/2/1`` between stages;
    * CSwin's stem ``7/4/2`` and CSwin's merge ``3/2/1``.

    With ``pad_input`` the input is zero-padded (bottom/right) to a multiple of the stride first, so
    that any H x W works and the output grid is ``ceil(H / stride) x ceil(W / stride)``.
    """

    def __init__(self, in_chans: int = 3, embed_dim: int = 96,
                 patch_size: Union[int, Tuple[int, int]] = 4,
                 stride: Optional[Union[int, Tuple[int, int]]] = None,
                 padding: Union[int, Tuple[int, int]] = 0,
                 norm_layer: Optional[Type[nn.Module]] = nn.LayerNorm,
                 pad_input: bool = True) -> None:
        super().__init__()
        self.patch_size = to_2tuple(patch_size)
        self.stride = to_2tuple(stride if stride is not None else patch_size)
        self.pad_input = pad_input
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=self.patch_size, stride=self.stride,
                              padding=to_2tuple(padding))
        self.norm = norm_layer(embed_dim) if norm_layer is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if self.pad_input:
            x = pad_to_multiple(x, self.stride)
        x, hw = nchw_to_tokens(self.proj(x))
        return self.norm(x), hw


class PatchMerging(nn.Module):
    """Swin's 2x2 patch merging on tokens: concat the 2x2 neighbours, LayerNorm, Linear(4C, out)."""

    def __init__(self, dim: int, out_dim: Optional[int] = None,
                 norm_layer: Type[nn.Module] = nn.LayerNorm) -> None:
        super().__init__()
        self.dim = dim
        self.out_dim = out_dim or 2 * dim
        self.norm = norm_layer(4 * dim)
        self.reduction = nn.Linear(4 * dim, self.out_dim, bias=False)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> Tuple[torch.Tensor, Tuple[int, int]]:
        B, N, C = x.shape
        H, W = hw
        x = pad_hw_to_multiple(x.reshape(B, H, W, C), (2, 2))
        Hp, Wp = x.shape[1] // 2, x.shape[2] // 2
        # (B, Hp, 2, Wp, 2, C) -> (B, Hp, Wp, [dw, dh], C): the 2x2 neighbours in Swin's order
        # x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]
        x = x.reshape(B, Hp, 2, Wp, 2, C).permute(0, 1, 3, 4, 2, 5).reshape(B, Hp * Wp, 4 * C)
        return self.reduction(self.norm(x)), (Hp, Wp)
