"""Padding and token/grid layout helpers."""
from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: Tuple[int, int]) -> torch.Tensor:
    """Zero-pad an NCHW tensor at the bottom/right so that H and W are multiples of ``multiple``."""
    H, W = x.shape[-2:]
    ph = (-H) % multiple[0]
    pw = (-W) % multiple[1]
    if ph or pw or torch.compiler.is_compiling():  # traced: pad by a symbolic (maybe 0) amount
        x = F.pad(x, (0, pw, 0, ph))
    return x


def pad_hw_to_multiple(x: torch.Tensor, multiple: Tuple[int, int]) -> torch.Tensor:
    """Zero-pad a channels-last ``(B, H, W, C)`` tensor at the bottom/right to multiples."""
    H, W = x.shape[1:3]
    ph = (-H) % multiple[0]
    pw = (-W) % multiple[1]
    if ph or pw:
        x = F.pad(x, (0, 0, 0, pw, 0, ph))
    return x


def tokens_to_nchw(x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
    """``(B, H*W, C)`` -> ``(B, C, H, W)``."""
    B, N, C = x.shape
    return x.transpose(1, 2).reshape(B, C, hw[0], hw[1])


def nchw_to_tokens(x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
    """``(B, C, H, W)`` -> ``((B, H*W, C), (H, W))``."""
    H, W = x.shape[-2:]
    return x.flatten(2).transpose(1, 2), (H, W)
