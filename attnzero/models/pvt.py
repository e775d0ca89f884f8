"""PVT v1 (Wang et al., "Pyramid Vision Transformer", ICCV 2021) with a selectable attention per stage.

Four stages of non-overlapping patch embedding (4, 2, 2, 2), absolute position embeddings
(resampled to any grid) and blocks whose keys/values are spatially reduced by ``sr_ratio`` (PVT's
SRA). The last stage carries the cls token used by the classifier.

AttnZero placement (paper): all four stages AttnZero *without* spatial reduction. Generally: a
stage whose attention is linear in the number of tokens runs with ``sr_ratio=1`` unless
``sr_for_linear=True``; softmax stages keep PVT's reduction.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.layers import resample_abs_pos_embed, to_2tuple, trunc_normal_
from timm.models import register_model
from torch import nn

from ._base import BackboneBase, create_model, default_cfg
from .layers import (run_blocks, Mlp, PatchEmbed, TransformerBlock, attention_is_linear, attention_needs_full_kv, drop_path_rates,
                     make_attention, per_stage, resolve_stage_attn, tokens_to_nchw)

__all__ = ['PVT', 'PVTStage', 'PVT_ARCHS']

_PVT_COMMON = dict(embed_dims=(64, 128, 320, 512), num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4),
                   sr_ratios=(8, 4, 2, 1))
PVT_ARCHS: Dict[str, Dict[str, Any]] = {
    'tiny': dict(_PVT_COMMON, depths=(2, 2, 2, 2)),
    'small': dict(_PVT_COMMON, depths=(3, 4, 6, 3)),
}


class PVTStage(nn.Module):
    """Patch embedding + (cls token) + absolute position embedding + transformer blocks."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, grid: Tuple[int, int], depth: int,
                 num_heads: int, mlp_ratio: float, sr_ratio: int, attn: str, genome: Any,
                 drop_path: Sequence[float], qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, cls_token: bool = False,
                 attn_kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        self.grid = grid
        self.num_prefix_tokens = 1 if cls_token else 0
        self.patch_embed = PatchEmbed(in_chans, dim, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim)) if cls_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + grid[0] * grid[1], dim))
        self.pos_drop = nn.Dropout(drop_rate)
        self.blocks = nn.ModuleList([
            TransformerBlock(
                dim,
                make_attention(dim, num_heads, attn, genome, qkv_bias=qkv_bias,
                               attn_drop=attn_drop_rate, proj_drop=drop_rate,
                               num_prefix_tokens=self.num_prefix_tokens, sr_ratio=sr_ratio,
                               attn_kwargs=attn_kwargs),
                Mlp(dim, int(dim * mlp_ratio), drop=drop_rate),
                drop_path=drop_path[j])
            for j in range(depth)])

    def forward(self, x: torch.Tensor, run=None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x, hw = self.patch_embed(x)
        pe = self.pos_embed
        if torch.compiler.is_exporting() or hw != self.grid:  # exported: any grid
            pe = resample_abs_pos_embed(pe, list(hw), list(self.grid),
                                        num_prefix_tokens=self.num_prefix_tokens)
        if self.cls_token is not None:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.pos_drop(x + pe)
        x = run_blocks(self.blocks, x, hw, run)
        return x, hw


class PVT(BackboneBase):
    """PVT v1.

    Args:
        img_size: size the position embeddings are stored for (any input size works).
        patch_size: first-stage patch size (later stages: 2).
        embed_dims, num_heads, mlp_ratios, depths, sr_ratios: per stage.
        attn: kernel name for all stages or one per stage; ``genome``: AttnZero genome (or one per
            stage); ``attn_kwargs``: extra kernel kwargs.
        sr_for_linear: keep the spatial reduction in stages with a linear attention.
        features_only / out_indices: dense mode (NCHW maps at strides 4/8/16/32).
    """

    num_prefix_tokens = 1

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, patch_size: int = 4,
                 in_chans: int = 3, num_classes: int = 1000, global_pool: str = 'token',
                 embed_dims: Sequence[int] = (64, 128, 320, 512),
                 num_heads: Sequence[int] = (1, 2, 5, 8), mlp_ratios: Sequence[float] = (8, 8, 4, 4),
                 depths: Sequence[int] = (2, 2, 2, 2), sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, attn: Union[str, Sequence[str]] = 'attnzero',
                 genome: Any = None, attn_kwargs: Optional[Dict[str, Any]] = None,
                 sr_for_linear: bool = False, features_only: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3)) -> None:
        super().__init__()
        n = len(depths)
        self.img_size = to_2tuple(img_size)
        embed_dims = per_stage(embed_dims, n, 'embed_dims')
        num_heads = per_stage(num_heads, n, 'num_heads')
        mlp_ratios = per_stage(mlp_ratios, n, 'mlp_ratios')
        sr_ratios = per_stage(sr_ratios, n, 'sr_ratios')
        attns, genomes = resolve_stage_attn(attn, genome, n, 'pvt')
        self.attn_names = attns
        self.sr_ratios = tuple(1 if attention_needs_full_kv(a) or (attention_is_linear(a, g) and not sr_for_linear)
                               else int(r) for a, g, r in zip(attns, genomes, sr_ratios))
        dpr = drop_path_rates(drop_path_rate, sum(depths))
        stages, cur, reduction = [], 0, 1
        reductions = []
        for i in range(n):
            p = patch_size if i == 0 else 2
            reduction *= p
            reductions.append(reduction)
            grid = (self.img_size[0] // reduction, self.img_size[1] // reduction)
            stages.append(PVTStage(
                in_chans if i == 0 else embed_dims[i - 1], embed_dims[i], p, grid, depths[i],
                num_heads[i], mlp_ratios[i], self.sr_ratios[i], attns[i], genomes[i],
                dpr[cur:cur + depths[i]], qkv_bias=qkv_bias, drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate, cls_token=(i == n - 1), attn_kwargs=attn_kwargs))
            cur += depths[i]
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(embed_dims[-1])
        self._build_head(embed_dims[-1], num_classes, global_pool, drop_rate, features_only,
                         out_indices, embed_dims, reductions)
        self.init_model_weights()
        for s in self.stages:
            if s.cls_token is not None:
                trunc_normal_(s.cls_token, std=0.02)

    def stage_groups(self) -> List[List[Any]]:
        """Stem: stage 1's patch embedding, position embedding and dropout (its blocks are stage
        1); every later stage whole (patch embedding included); the final norm with stage 4."""
        s0 = self.stages[0]
        groups = [[s0.patch_embed, s0.pos_embed, s0.pos_drop]] + [[s] for s in self.stages]
        groups[-1].append(self.norm)
        return groups

    def pos_embed_grids(self) -> Dict[str, Tuple[int, Tuple[int, int]]]:
        return {f'stages.{i}.pos_embed': (s.num_prefix_tokens, s.grid) for i, s in enumerate(self.stages)}

    def _num_prefix(self, i: int) -> int:
        return self.stages[i].num_prefix_tokens

    def _iter_stages(self, x: torch.Tensor, n: Optional[int] = None):
        for stage in self.stages[:n]:
            t, hw = stage(x, run=self._run)
            yield t, hw
            x = tokens_to_nchw(t[:, stage.num_prefix_tokens:], hw)


default_cfgs = {
    'attnzero_pvt_tiny': default_cfg(first_conv='stages.0.patch_embed.proj'),
    'attnzero_pvt_small': default_cfg(first_conv='stages.0.patch_embed.proj'),
}


@register_model
def attnzero_pvt_tiny(pretrained: bool = False, **kwargs) -> PVT:
    """PVT-Tiny (13.2M params with softmax); default: AttnZero in all stages, no spatial reduction."""
    return create_model(PVT, 'attnzero_pvt_tiny', PVT_ARCHS['tiny'], pretrained, **kwargs)


@register_model
def attnzero_pvt_small(pretrained: bool = False, **kwargs) -> PVT:
    """PVT-Small (24.5M params with softmax); default: AttnZero in all stages, no spatial reduction."""
    return create_model(PVT, 'attnzero_pvt_small', PVT_ARCHS['small'], pretrained, **kwargs)
