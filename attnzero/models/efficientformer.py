"""EfficientFormer (Li et al., "EfficientFormer: Vision Transformers at MobileNet Speed", NeurIPS
2022) with a selectable attention in its attention blocks.

A hybrid: a conv stem (two stride-2 3x3 convs, each with BatchNorm and ReLU), then four stages of
*4D* Meta blocks on NCHW maps (pooling token mixer, 1x1-conv MLP with BatchNorm, layer scale)
with a strided 3x3 conv + BatchNorm between stages; only the last ``num_vit`` blocks of the last
stage are *3D* Meta blocks on tokens (LayerNorm, attention, LayerNorm, MLP, layer scale). L1 has
one 3D block, L3 four. The classifier flattens the last stage, applies a LayerNorm, averages the
tokens and averages a class head and a distillation head (the published models are DeiT-style
distilled).

The 4D parts are timm's own modules (``Stem4``, ``Downsample``, ``MetaBlock2d`` -- EfficientFormer's
``Meta4D`` with ``Pooling`` and ``ConvMlpWithNorm`` -- from ``timm.models.efficientformer``, and
``timm.layers`` ``Mlp`` / ``LayerScale`` / ``DropPath`` in the 3D blocks). The attention of the 3D
blocks is the project's (:func:`attnzero.models.layers.make_attention`): ``attn=`` / ``genome=``
select any zoo kernel or genome, AttnZero (Trial-105) by default.

Differences from the published attention, and how the parameter count is kept:

* EfficientFormer's attention has 8 heads of key dim 32 and value dim 128 (``attn_ratio`` 4):
  ``C * 2560`` projection weights whatever the width ``C``; the project's attention is a
  ``C``-wide multi-head attention (``4 C^2``): 344K fewer parameters per block at L1's ``C = 448``
  (2.8% of the model), 262K fewer at L3's ``C = 512`` (four blocks: 3.3%). With
  ``match_params=True`` (default) every last-stage 3D block gets back exactly that difference in
  its MLP: hidden width ``mlp_ratio * C + (2560 C - 4 C^2) / (2 C)`` (2176 instead of 1792 at L1,
  2304 instead of 2048 at L3), so each block has the parameter budget of EfficientFormer's. The
  softmax models then have 12.29M (L1) and 31.41M (L3) parameters, as timm's ``efficientformer_l1``
  (12.29M) / ``efficientformer_l3`` (31.41M) and the paper (12.3M / 31.4M).
* Those counts include the distillation head (``distilled=True``, as the published models and
  timm's count it: a second ``Linear(C, num_classes)``, 449K at L1, 513K at L3). Without it the
  models have 11.84M / 30.89M.
* No learned attention biases: EfficientFormer's are a 7x7 table tied to 224x224 input, and the
  linear kernels cannot add an ``N x N`` bias. Positions come from the conv stages (and the
  kernels' depthwise-conv branch on V, where they have one).

V2-style attention at stride 16 (off by default): ``num_vit_s16 = k > 0`` turns the last ``k``
blocks of stage 3 into 3D attention blocks whose keys and values are spatially reduced by
``sr_ratio_s16`` (the project's PVT mechanism: a strided conv + LayerNorm). As in the PVT
families, the reduction is there to cut a quadratic cost: a linear kernel (AttnZero's genomes,
``linear``, ``hydra`` ...) runs without it unless ``sr_for_linear=True``, and kernels that need keys
at the query resolution (``lsh``) always do. Their MLP is ``mlp_ratio * C`` wide.

Any input size: strides 4/8/16/32 with ``ceil`` rounding. ``features_only=True`` gives the NCHW
maps of the four stages (the last one's 3D blocks run on tokens and are reshaped back, through the
final LayerNorm).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.layers import DropPath, LayerScale, Mlp
from timm.models import register_model
from timm.models.efficientformer import Downsample, MetaBlock2d, Stem4
from torch import nn

from ._base import BackboneBase, create_model, default_cfg
from .layers import (attention_is_linear, attention_needs_full_kv, drop_path_rates, make_attention,
                     nchw_to_tokens, per_stage, resolve_stage_attn, tokens_to_nchw)

__all__ = ['EfficientFormer', 'EfficientFormerStage', 'MetaBlock3d', 'EFFICIENTFORMER_ARCHS',
           'matched_mlp_hidden']

EFFICIENTFORMER_ARCHS: Dict[str, Dict[str, Any]] = {
    'l1': dict(embed_dims=(48, 96, 224, 448), depths=(3, 2, 6, 4), num_vit=1),
    'l3': dict(embed_dims=(64, 128, 320, 512), depths=(4, 4, 12, 6), num_vit=4),
}


def matched_mlp_hidden(dim: int, mlp_ratio: float = 4.0, num_heads: int = 8, key_dim: int = 32,
                       attn_ratio: float = 4.0) -> int:
    """MLP hidden width of a 3D block whose ``dim``-wide attention (``4 dim^2`` projection weights)
    stands in for EfficientFormer's (``num_heads`` heads, key dim ``key_dim``, value dim
    ``attn_ratio * key_dim``: ``dim * heads * key_dim * (2 + 2 attn_ratio)`` weights), such that the
    block keeps EfficientFormer's parameter count: the weight difference goes to the MLP
    (``2 dim`` weights per hidden unit)."""
    ef_weights = dim * num_heads * key_dim * (2 + 2 * attn_ratio)
    extra = (ef_weights - 4 * dim * dim) / (2 * dim)
    hidden = int(dim * mlp_ratio) + int(round(extra))
    if hidden < 1:
        raise ValueError(f'no parameter-matched MLP at width {dim} (hidden {hidden})')
    return hidden


class MetaBlock3d(nn.Module):
    """EfficientFormer's 3D Meta block on tokens ``(B, N, C)``:
    ``x + DropPath(ls1 * attn(norm1(x), hw)); x + DropPath(ls2 * mlp(norm2(x)))``.

    Parameter names as timm's ``MetaBlock1d`` (``norm1``, ``token_mixer``, ``ls1``, ``norm2``,
    ``mlp``, ``ls2``); ``token_mixer`` is an :class:`attnzero.attention.Attention`.
    """

    def __init__(self, dim: int, attn: nn.Module, mlp_hidden: int, drop: float = 0.0,
                 drop_path: float = 0.0, layer_scale_init_value: float = 1e-5) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mixer = attn
        self.ls1 = LayerScale(dim, layer_scale_init_value)
        self.drop_path1 = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, hidden_features=mlp_hidden, act_layer=nn.GELU, drop=drop)
        self.ls2 = LayerScale(dim, layer_scale_init_value)
        self.drop_path2 = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        x = x + self.drop_path1(self.ls1(self.token_mixer(self.norm1(x), hw)))
        x = x + self.drop_path2(self.ls2(self.mlp(self.norm2(x))))
        return x


class EfficientFormerStage(nn.Module):
    """Optional downsampling (strided 3x3 conv + BatchNorm), then ``depth - num_vit`` 4D Meta
    blocks (timm's ``MetaBlock2d``) on the map and ``num_vit`` 3D Meta blocks on its tokens:
    ``blocks[:depth - num_vit]`` and ``blocks[depth - num_vit:]``.

    ``forward(x NCHW, run) -> (tokens (B, H*W, C), (H, W))``.
    """

    def __init__(self, in_chans: int, dim: int, depth: int, downsample: bool, num_vit: int,
                 attn: str, genome: Any, num_heads: int, mlp_ratio: float, mlp_hidden_3d: int,
                 drop_path: Sequence[float], sr_ratio: int = 1, pool_size: int = 3,
                 layer_scale_init_value: float = 1e-5, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 attn_kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        if not 0 <= num_vit <= depth:
            raise ValueError(f'num_vit={num_vit} attention blocks in a stage of depth {depth}')
        if downsample:
            self.downsample: nn.Module = Downsample(in_chans, dim)
        elif in_chans != dim:
            raise ValueError(f'a stage without downsampling keeps its width: {in_chans} != {dim}')
        else:
            self.downsample = nn.Identity()
        self.num_vit = num_vit
        self.num_conv = depth - num_vit
        blocks: List[nn.Module] = [
            MetaBlock2d(dim, pool_size=pool_size, mlp_ratio=mlp_ratio, proj_drop=drop_rate,
                        drop_path=drop_path[j], layer_scale_init_value=layer_scale_init_value)
            for j in range(self.num_conv)]
        blocks += [
            MetaBlock3d(dim,
                        make_attention(dim, num_heads, attn, genome, qkv_bias=qkv_bias,
                                       attn_drop=attn_drop_rate, proj_drop=drop_rate,
                                       sr_ratio=sr_ratio, attn_kwargs=attn_kwargs),
                        mlp_hidden_3d, drop=drop_rate, drop_path=drop_path[j],
                        layer_scale_init_value=layer_scale_init_value)
            for j in range(self.num_conv, depth)]
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, run=None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x = self.downsample(x)
        for blk in self.blocks[:self.num_conv]:
            x = run(blk, x) if run is not None else blk(x)
        t, hw = nchw_to_tokens(x)  # a view; the 3D blocks (if any) run on it
        for blk in self.blocks[self.num_conv:]:
            t = run(blk, t, hw) if run is not None else blk(t, hw)
        return t, hw


class EfficientFormer(BackboneBase):
    """EfficientFormer L1 / L3 (by widths, depths and ``num_vit``).

    Args:
        img_size: nominal training size only (any input size works).
        embed_dims, depths: per stage.
        num_vit: 3D attention blocks at the end of the last stage.
        num_heads: heads of every attention (EfficientFormer: 8).
        mlp_ratio: MLP expansion of the 4D blocks (and of the 3D blocks, before matching).
        match_params: size each last-stage 3D block's MLP so that the block has the parameter count
            of EfficientFormer's (see the module docstring and :func:`matched_mlp_hidden`); with
            ``False`` the MLP is ``mlp_ratio * C`` wide.
        key_dim, attn_ratio: EfficientFormer's attention shape, used only by ``match_params``.
        pool_size: the 4D blocks' average-pooling window.
        layer_scale_init_value: initial layer scale of every block.
        attn: kernel name, or one per stage (stages without attention blocks ignore theirs).
        genome: AttnZero genome (or one per stage); ``None``: Trial-105.
        attn_kwargs: extra kernel arguments.
        num_vit_s16, sr_ratio_s16: the V2-style option: this many 3D blocks at the end of stage 3
            (stride 16) with keys/values reduced by ``sr_ratio_s16`` (0: none, the default).
        sr_for_linear: keep that reduction for a linear stage-3 kernel too.
        distilled: a distillation head next to the class head (the published models'); the logits
            are their mean unless :meth:`set_distilled_training` is on and the model trains, when
            ``forward`` returns ``(class logits, distillation logits)``.
        features_only, out_indices: dense mode (NCHW maps at strides 4/8/16/32).
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, in_chans: int = 3,
                 num_classes: int = 1000, global_pool: str = 'avg',
                 embed_dims: Sequence[int] = (48, 96, 224, 448),
                 depths: Sequence[int] = (3, 2, 6, 4),
                 num_vit: int = 1, num_heads: int = 8, mlp_ratio: float = 4.0,
                 match_params: bool = True, key_dim: int = 32, attn_ratio: float = 4.0,
                 pool_size: int = 3, layer_scale_init_value: float = 1e-5, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0, drop_path_rate: float = 0.0,
                 attn: Union[str, Sequence[str]] = 'attnzero', genome: Any = None,
                 attn_kwargs: Optional[Dict[str, Any]] = None, num_vit_s16: int = 0,
                 sr_ratio_s16: int = 2, sr_for_linear: bool = False, distilled: bool = True,
                 features_only: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3)) -> None:
        super().__init__()
        n = len(depths)
        if n != 4:
            raise ValueError(f'EfficientFormer has 4 stages, got depths={tuple(depths)}')
        if global_pool not in ('avg', ''):
            raise ValueError(f"global_pool={global_pool!r}; expected 'avg' or ''")
        self.img_size = img_size
        embed_dims = per_stage(embed_dims, n, 'embed_dims')
        attns, genomes = resolve_stage_attn(attn, genome, n, 'efficientformer')
        self.attn_names = attns
        self.num_vit, self.num_vit_s16 = int(num_vit), int(num_vit_s16)
        vits = (0, 0, self.num_vit_s16, self.num_vit)
        # keys/values reduced only in the stride-16 attention blocks (PVT's rule for the kernel)
        self.sr_ratios = tuple(
            1 if i != 2 or not vits[i] or attention_needs_full_kv(attns[i])
            or (attention_is_linear(attns[i], genomes[i]) and not sr_for_linear)
            else int(sr_ratio_s16) for i in range(n))
        self.mlp_hidden_3d = (matched_mlp_hidden(embed_dims[-1], mlp_ratio, num_heads, key_dim,
                                                 attn_ratio)
                              if match_params else int(embed_dims[-1] * mlp_ratio))
        self.distilled = bool(distilled)
        self.distilled_training = False
        self.stem = Stem4(in_chans, embed_dims[0])
        dpr = drop_path_rates(drop_path_rate, sum(depths))
        stages, cur = [], 0
        for i in range(n):
            hidden_3d = self.mlp_hidden_3d if i == n - 1 else int(embed_dims[i] * mlp_ratio)
            stages.append(EfficientFormerStage(
                embed_dims[i - 1] if i else embed_dims[0], embed_dims[i], depths[i], i > 0, vits[i],
                attns[i], genomes[i], num_heads, mlp_ratio, hidden_3d, dpr[cur:cur + depths[i]],
                sr_ratio=self.sr_ratios[i], pool_size=pool_size,
                layer_scale_init_value=layer_scale_init_value, qkv_bias=qkv_bias,
                drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, attn_kwargs=attn_kwargs))
            cur += depths[i]
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(embed_dims[-1])
        self._build_head(embed_dims[-1], num_classes, global_pool, drop_rate, features_only,
                         out_indices, embed_dims, (4, 8, 16, 32))
        self.head_dist = self._dist_head()
        self.init_model_weights()

    # ---- heads ----------------------------------------------------------------------------
    def _dist_head(self) -> nn.Module:
        if self.distilled and self.num_classes > 0:
            return nn.Linear(self.num_features, self.num_classes)
        return nn.Identity()

    @torch.jit.ignore
    def set_distilled_training(self, enable: bool = True) -> None:
        """Training with a teacher: ``forward`` returns ``(class logits, distillation logits)``
        while the model trains."""
        self.distilled_training = enable

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        super().reset_classifier(num_classes, global_pool)
        self.head_dist = self._dist_head()

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False):
        x = self.head_drop(self.pool(x))
        if pre_logits or not isinstance(self.head_dist, nn.Linear):
            return x if pre_logits else self.head(x)
        y, y_dist = self.head(x), self.head_dist(x)
        if self.distilled_training and self.training and not torch.jit.is_scripting():
            return y, y_dist
        return (y + y_dist) / 2

    # ---- trunk ----------------------------------------------------------------------------
    def stage_groups(self) -> List[List[Any]]:
        """Stem: the conv stem; then every stage whole (its downsampling included); the final norm
        with the last stage."""
        groups: List[List[Any]] = [[self.stem]] + [[s] for s in self.stages]
        groups[-1].append(self.norm)
        return groups

    def _iter_stages(self, x: torch.Tensor, n: Optional[int] = None):
        x = self.stem(x)
        for stage in self.stages[:n]:
            t, hw = stage(x, run=self._run)
            yield t, hw
            x = tokens_to_nchw(t, hw)  # a view for the conv-only stages


default_cfgs = {
    name: default_cfg(first_conv='stem.conv1', crop_pct=0.95)
    for name in ('attnzero_efficientformer_l1', 'attnzero_efficientformer_l3')
}


@register_model
def attnzero_efficientformer_l1(pretrained: bool = False, **kwargs) -> EfficientFormer:
    """EfficientFormer-L1 (12.29M params with softmax, distillation head included); default:
    AttnZero in the one 3D block of stage 4."""
    return create_model(EfficientFormer, 'attnzero_efficientformer_l1', EFFICIENTFORMER_ARCHS['l1'],
                        pretrained, **kwargs)


@register_model
def attnzero_efficientformer_l3(pretrained: bool = False, **kwargs) -> EfficientFormer:
    """EfficientFormer-L3 (31.41M params with softmax, distillation head included); default:
    AttnZero in the four 3D blocks of stage 4."""
    return create_model(EfficientFormer, 'attnzero_efficientformer_l3', EFFICIENTFORMER_ARCHS['l3'],
                        pretrained, **kwargs)
