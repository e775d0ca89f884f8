"""PVT v2 (Wang et al., "PVT v2: Improved Baselines with Pyramid Vision Transformer", CVMJ 2022)
with a selectable attention per stage.

Overlapping patch embeddings (7/4 then 3/2), no absolute position embedding, a depthwise 3x3 conv
inside the MLP, spatial-reduction attention and a LayerNorm after every stage; average-pooled
classifier. As for PVT v1, stages with a linear attention drop the spatial reduction unless
``sr_for_linear=True``.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.models import register_model
from torch import nn

from ._base import BackboneBase, create_model, default_cfg
from .layers import (run_blocks, DWMlp, PatchEmbed, TransformerBlock, attention_is_linear, attention_needs_full_kv, drop_path_rates,
                     make_attention, per_stage, resolve_stage_attn, tokens_to_nchw)

__all__ = ['PVTv2', 'PVTv2Stage', 'PVT_V2_ARCHS']

_COMMON = dict(num_heads=(1, 2, 5, 8), mlp_ratios=(8, 8, 4, 4), sr_ratios=(8, 4, 2, 1))
PVT_V2_ARCHS: Dict[str, Dict[str, Any]] = {
    'b0': dict(_COMMON, embed_dims=(32, 64, 160, 256), depths=(2, 2, 2, 2)),
    'b1': dict(_COMMON, embed_dims=(64, 128, 320, 512), depths=(2, 2, 2, 2)),
    'b2': dict(_COMMON, embed_dims=(64, 128, 320, 512), depths=(3, 4, 6, 3)),
}


class PVTv2Stage(nn.Module):
    """Overlapping patch embedding + blocks (attention + DW-MLP) + LayerNorm."""

    def __init__(self, in_chans: int, dim: int, patch_size: int, stride: int, depth: int,
                 num_heads: int, mlp_ratio: float, sr_ratio: int, attn: str, genome: Any,
                 drop_path: Sequence[float], qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, attn_kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        self.patch_embed = PatchEmbed(in_chans, dim, patch_size, stride=stride,
                                      padding=patch_size // 2, pad_input=False)
        self.blocks = nn.ModuleList([
            TransformerBlock(
                dim,
                make_attention(dim, num_heads, attn, genome, qkv_bias=qkv_bias,
                               attn_drop=attn_drop_rate, proj_drop=drop_rate, sr_ratio=sr_ratio,
                               attn_kwargs=attn_kwargs),
                DWMlp(dim, int(dim * mlp_ratio), drop=drop_rate),
                drop_path=drop_path[j])
            for j in range(depth)])
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, run=None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x, hw = self.patch_embed(x)
        x = run_blocks(self.blocks, x, hw, run)
        return self.norm(x), hw


class PVTv2(BackboneBase):
    """PVT v2 (b0..b5 by widths/depths).

    Args: as :class:`attnzero.models.pvt.PVT` (no position embedding; ``img_size`` is only the
    nominal training size).
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, in_chans: int = 3,
                 num_classes: int = 1000, global_pool: str = 'avg',
                 embed_dims: Sequence[int] = (64, 128, 320, 512),
                 num_heads: Sequence[int] = (1, 2, 5, 8), mlp_ratios: Sequence[float] = (8, 8, 4, 4),
                 depths: Sequence[int] = (3, 4, 6, 3), sr_ratios: Sequence[int] = (8, 4, 2, 1),
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.1, attn: Union[str, Sequence[str]] = 'attnzero',
                 genome: Any = None, attn_kwargs: Optional[Dict[str, Any]] = None,
                 sr_for_linear: bool = False, features_only: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3), patch_size: int = 7) -> None:
        super().__init__()
        n = len(depths)
        self.img_size = img_size
        embed_dims = per_stage(embed_dims, n, 'embed_dims')
        num_heads = per_stage(num_heads, n, 'num_heads')
        mlp_ratios = per_stage(mlp_ratios, n, 'mlp_ratios')
        sr_ratios = per_stage(sr_ratios, n, 'sr_ratios')
        attns, genomes = resolve_stage_attn(attn, genome, n, 'pvt_v2')
        self.attn_names = attns
        self.sr_ratios = tuple(1 if attention_needs_full_kv(a) or (attention_is_linear(a, g) and not sr_for_linear)
                               else int(r) for a, g, r in zip(attns, genomes, sr_ratios))
        dpr = drop_path_rates(drop_path_rate, sum(depths))
        stages, cur, reductions = [], 0, []
        for i in range(n):
            k, s = (patch_size, 4) if i == 0 else (3, 2)
            reductions.append(4 * 2 ** i)
            stages.append(PVTv2Stage(
                in_chans if i == 0 else embed_dims[i - 1], embed_dims[i], k, s, depths[i],
                num_heads[i], mlp_ratios[i], self.sr_ratios[i], attns[i], genomes[i],
                dpr[cur:cur + depths[i]], qkv_bias=qkv_bias, drop_rate=drop_rate,
                attn_drop_rate=attn_drop_rate, attn_kwargs=attn_kwargs))
            cur += depths[i]
        self.stages = nn.ModuleList(stages)
        self._build_head(embed_dims[-1], num_classes, global_pool, drop_rate, features_only,
                         out_indices, embed_dims, reductions)
        self.init_model_weights()

    def stage_groups(self) -> List[List[Any]]:
        """Stem: stage 1's overlapping patch embedding; then every stage whole (its own
        patch embedding and norm included)."""
        return [[self.stages[0].patch_embed]] + [[s] for s in self.stages]

    def _iter_stages(self, x: torch.Tensor, n: Optional[int] = None):
        # each stage ends with its own norm; there is no final norm
        for stage in self.stages[:n]:
            t, hw = stage(x, run=self._run)
            yield t, hw
            x = tokens_to_nchw(t, hw)


default_cfgs = {
    'attnzero_pvt_v2_b0': default_cfg(first_conv='stages.0.patch_embed.proj'),
    'attnzero_pvt_v2_b1': default_cfg(first_conv='stages.0.patch_embed.proj'),
    'attnzero_pvt_v2_b2': default_cfg(first_conv='stages.0.patch_embed.proj'),
}


@register_model
def attnzero_pvt_v2_b0(pretrained: bool = False, **kwargs) -> PVTv2:
    """PVT v2-b0 (3.7M params with softmax); default: AttnZero in all stages, no spatial reduction."""
    return create_model(PVTv2, 'attnzero_pvt_v2_b0', PVT_V2_ARCHS['b0'], pretrained, **kwargs)


@register_model
def attnzero_pvt_v2_b1(pretrained: bool = False, **kwargs) -> PVTv2:
    """PVT v2-b1 (14.0M params with softmax); default: AttnZero in all stages, no spatial reduction."""
    return create_model(PVTv2, 'attnzero_pvt_v2_b1', PVT_V2_ARCHS['b1'], pretrained, **kwargs)


@register_model
def attnzero_pvt_v2_b2(pretrained: bool = False, **kwargs) -> PVTv2:
    """PVT v2-b2 (25.4M params with softmax); default: AttnZero in all stages, no spatial reduction."""
    return create_model(PVTv2, 'attnzero_pvt_v2_b2', PVT_V2_ARCHS['b2'], pretrained, **kwargs)
