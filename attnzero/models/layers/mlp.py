"""Feed-forward layers: timm's ``Mlp`` and the PVT v2 MLP with a depthwise conv."""
from __future__ import annotations

from typing import Optional, Tuple, Type

import torch
from timm.layers import Mlp as _TimmMlp
from torch import nn

from .padding import tokens_to_nchw


class Mlp(_TimmMlp):
    """timm's ``Mlp`` (fc1 -> act -> drop -> fc2 -> drop) accepting (and ignoring) the grid size."""

    def forward(self, x: torch.Tensor, hw: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        return super().forward(x)


class DWMlp(nn.Module):
    """PVT v2 feed-forward: fc1 -> depthwise 3x3 conv on the grid -> GELU -> fc2.

    Prefix tokens (if any) skip the depthwise conv.
    """

    def __init__(self, in_features: int, hidden_features: Optional[int] = None,
                 out_features: Optional[int] = None, act_layer: Type[nn.Module] = nn.GELU,
                 drop: float = 0.0, num_prefix_tokens: int = 0) -> None:
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.num_prefix_tokens = num_prefix_tokens
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.dwconv = nn.Conv2d(hidden_features, hidden_features, 3, 1, 1, groups=hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = self.fc1(x)
        p = self.num_prefix_tokens
        grid = self.dwconv(tokens_to_nchw(x[:, p:], hw)).flatten(2).transpose(1, 2)
        x = torch.cat([x[:, :p], grid], dim=1) if p else grid
        x = self.drop(self.act(x))
        return self.drop(self.fc2(x))
