"""ViTDet-style simple feature pyramid: one stride-16 map -> strides 4/8/16/32."""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
from timm.layers import LayerNorm2d
from torch import nn


class SimpleFeaturePyramid(nn.Module):
    """Deconv x2 (stride 4), deconv (stride 8), identity (stride 16), max-pool (stride 32).

    All levels keep the input channel count. Outputs are cropped to ``ceil(H / stride)`` of the
    (unpadded) input image so that the strides are exact for any input size.
    """

    strides = (4, 8, 16, 32)

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2), LayerNorm2d(dim), nn.GELU(),
            nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2))
        self.fpn2 = nn.ConvTranspose2d(dim, dim, kernel_size=2, stride=2)
        self.fpn3 = nn.Identity()
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)

    def forward(self, x: torch.Tensor, img_hw: Tuple[int, int]) -> List[torch.Tensor]:
        outs = []
        for s, op in zip(self.strides, (self.fpn1, self.fpn2, self.fpn3, self.fpn4)):
            y = op(x)
            h, w = math.ceil(img_hw[0] / s), math.ceil(img_hw[1] / s)
            outs.append(y[..., :h, :w].contiguous())
        return outs
