"""CSWin Transformer (Dong et al., "CSWin Transformer: A General Vision Transformer Backbone with
Cross-Shaped Windows", CVPR 2022) with a selectable attention per stage.

Each block splits the heads in two halves: one attends within horizontal stripes of
``split_size`` rows, the other within vertical stripes of ``split_size`` columns (the last stage
attends over the whole map with all heads). A locally-enhanced positional encoding (LePE: a
depthwise 3x3 conv on V inside each stripe) is added to the kernel's output, so kernels are built
with ``v_branch=False``.

AttnZero placement (paper): the first two stages AttnZero (genome Trial-140) with CSwin's LePE
instead of the kernel's depthwise conv; the last two stages softmax.

Any input size: stripes are zero-padded to a multiple of ``split_size`` (the padded tokens are not
masked), the stem pads to a multiple of 4.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.models import register_model
from torch import nn

from ._base import BackboneBase, create_model, default_cfg
from .layers import (run_blocks, Mlp, PatchEmbed, TransformerBlock, drop_path_rates, make_kernel,
                     pad_hw_to_multiple, per_stage, resolve_stage_attn, tokens_to_nchw,
                     window_partition, window_reverse)

__all__ = ['CSwin', 'CSwinMixer', 'CSwinStage', 'CSWIN_ARCHS']

CSWIN_ARCHS: Dict[str, Dict[str, Any]] = {
    'tiny': dict(embed_dim=64, depths=(1, 2, 21, 1), num_heads=(2, 4, 8, 16),
                 split_sizes=(1, 2, 7, 7), drop_path_rate=0.2),
    'small': dict(embed_dim=64, depths=(2, 4, 32, 2), num_heads=(2, 4, 8, 16),
                  split_sizes=(1, 2, 7, 7), drop_path_rate=0.4),
}


class CSwinMixer(nn.Module):
    """Cross-shaped window token mixer: qkv projection, stripe layout, one kernel per branch, LePE,
    output projection. The token mixing itself is the kernel's."""

    def __init__(self, dim: int, num_heads: int, split_size: int, global_attn: bool, attn: str,
                 genome: Any = None, qkv_bias: bool = True, attn_drop: float = 0.0,
                 proj_drop: float = 0.0, attn_kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        self.dim = dim
        self.split_size = split_size
        self.global_attn = global_attn
        self.branches = 1 if global_attn else 2
        if num_heads % self.branches or dim % num_heads:
            raise ValueError(f'CSwin: dim {dim} / heads {num_heads} cannot be split in {self.branches}')
        self.branch_heads = num_heads // self.branches
        self.branch_dim = dim // self.branches
        head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.kernels = nn.ModuleList([
            make_kernel(attn, head_dim, self.branch_heads, genome, v_branch=False,
                        attn_drop=attn_drop, attn_kwargs=attn_kwargs)
            for _ in range(self.branches)])
        self.lepe = nn.ModuleList([
            nn.Conv2d(self.branch_dim, self.branch_dim, 3, 1, 1, groups=self.branch_dim)
            for _ in range(self.branches)])
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def _stripe(self, b: int, hw: Tuple[int, int]) -> Tuple[int, int]:
        H, W = hw
        if self.global_attn:
            return H, W
        return (min(self.split_size, H), W) if b == 0 else (H, min(self.split_size, W))

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw
        qkv = self.qkv(x).reshape(B, H, W, 3, C)
        outs = []
        for b in range(self.branches):
            cb = self.branch_dim
            part = qkv[..., b * cb:(b + 1) * cb].reshape(B, H, W, 3 * cb)
            win = self._stripe(b, hw)
            part = pad_hw_to_multiple(part, win)
            Hp, Wp = part.shape[1:3]
            stripes = window_partition(part, win)  # (B', n, 3 * cb)
            Bs, n, _ = stripes.shape
            h, d = self.branch_heads, cb // self.branch_heads
            q, k, v = stripes.reshape(Bs, n, 3, h, d).permute(2, 0, 3, 1, 4).unbind(0)
            y = self.kernels[b](q, k, v, win)  # (B', h, n, d)
            y = y.transpose(1, 2).reshape(Bs, n, cb)
            v_img = v.transpose(1, 2).reshape(Bs, n, cb).transpose(1, 2).reshape(Bs, cb, *win)
            y = y + self.lepe[b](v_img).flatten(2).transpose(1, 2)
            outs.append(window_reverse(y, win, (Hp, Wp))[:, :H, :W])
        x = torch.cat(outs, dim=-1).reshape(B, N, C)
        return self.proj_drop(self.proj(x))


class CSwinStage(nn.Module):
    """(Conv 3x3/2 merge + LayerNorm) + CSwin blocks."""

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, split_size: int,
                 global_attn: bool, attn: str, genome: Any, drop_path: Sequence[float],
                 downsample: bool, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 attn_kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        self.downsample = PatchEmbed(in_dim, dim, 3, stride=2, padding=1, pad_input=False) \
            if downsample else None
        self.blocks = nn.ModuleList([
            TransformerBlock(
                dim,
                CSwinMixer(dim, num_heads, split_size, global_attn, attn, genome, qkv_bias=qkv_bias,
                           attn_drop=attn_drop_rate, proj_drop=drop_rate, attn_kwargs=attn_kwargs),
                Mlp(dim, int(dim * mlp_ratio), drop=drop_rate),
                drop_path=drop_path[j])
            for j in range(depth)])

    def forward(self, x: torch.Tensor, hw: Tuple[int, int], run=None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if self.downsample is not None:
            x, hw = self.downsample(tokens_to_nchw(x, hw))
        x = run_blocks(self.blocks, x, hw, run)
        return x, hw


class CSwin(BackboneBase):
    """CSWin Transformer.

    Args:
        img_size: nominal training size (any input size works).
        embed_dim: stage-1 width (doubled per stage); depths, num_heads, split_sizes: per stage.
        global_last_stage: the last stage attends over the whole map (as CSwin at 224x224, where
            its split size equals the map).
        attn: kernel name for all stages or one per stage (default: AttnZero in stages 1-2,
            softmax in 3-4); ``genome``: AttnZero genome (default Trial-140) or one per stage.
        features_only / out_indices: dense mode (NCHW maps at strides 4/8/16/32).
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, in_chans: int = 3,
                 num_classes: int = 1000, global_pool: str = 'avg', embed_dim: int = 64,
                 depths: Sequence[int] = (1, 2, 21, 1), num_heads: Sequence[int] = (2, 4, 8, 16),
                 split_sizes: Sequence[int] = (1, 2, 7, 7), mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.2,
                 attn: Union[str, Sequence[str]] = ('attnzero', 'attnzero', 'softmax', 'softmax'),
                 genome: Any = None, attn_kwargs: Optional[Dict[str, Any]] = None,
                 global_last_stage: bool = True, features_only: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3), patch_size: int = 4) -> None:
        super().__init__()
        n = len(depths)
        self.img_size = img_size
        num_heads = per_stage(num_heads, n, 'num_heads')
        split_sizes = per_stage(split_sizes, n, 'split_sizes')
        attns, genomes = resolve_stage_attn(attn, genome, n, 'cswin')
        self.attn_names = attns
        dims = [embed_dim * 2 ** i for i in range(n)]
        # CSwin's stem: conv 7x7 stride 4 padding 2 (input padded to a multiple of 4) + LayerNorm
        self.patch_embed = PatchEmbed(in_chans, embed_dim, 7, stride=patch_size, padding=2)
        dpr = drop_path_rates(drop_path_rate, sum(depths))
        stages, cur = [], 0
        for i in range(n):
            stages.append(CSwinStage(
                dims[max(i - 1, 0)], dims[i], depths[i], num_heads[i], split_sizes[i],
                global_last_stage and i == n - 1, attns[i], genomes[i], dpr[cur:cur + depths[i]],
                downsample=i > 0, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate, attn_kwargs=attn_kwargs))
            cur += depths[i]
        self._finish_hw_trunk(stages, dims, patch_size, num_classes, global_pool, drop_rate,
                              features_only, out_indices)

    _iter_stages = BackboneBase._iter_hw_stages


default_cfgs = {
    'attnzero_cswin_tiny': default_cfg(),
    'attnzero_cswin_small': default_cfg(),
}


@register_model
def attnzero_cswin_tiny(pretrained: bool = False, **kwargs) -> CSwin:
    """CSWin-T (23M params with softmax); default: AttnZero (Trial-140, LePE) in stages 1-2,
    softmax in 3-4."""
    return create_model(CSwin, 'attnzero_cswin_tiny', CSWIN_ARCHS['tiny'], pretrained, **kwargs)


@register_model
def attnzero_cswin_small(pretrained: bool = False, **kwargs) -> CSwin:
    """CSWin-S (35M params with softmax); default: AttnZero (Trial-140, LePE) in stages 1-2,
    softmax in 3-4."""
    return create_model(CSwin, 'attnzero_cswin_small', CSWIN_ARCHS['small'], pretrained, **kwargs)
