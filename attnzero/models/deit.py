"""DeiT (Touvron et al., "Training data-efficient image transformers", ICML 2021) with a
selectable attention per block.

AttnZero placement (paper): every block uses the AttnZero attention; the kernel's depthwise conv on
V runs on the patch grid and skips the cls token (``num_prefix_tokens=1``). As a dense backbone the
stride-16 map becomes a 4-level pyramid (ViTDet-style deconv / identity / max-pool).
"""
from __future__ import annotations

import math
from functools import partial
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.layers import resample_abs_pos_embed, to_2tuple, trunc_normal_
from timm.models import register_model
from timm.models._features import feature_take_indices
from torch import nn

from attnzero.attention import ATTENTIONS, TokenMask
from attnzero.space.shape import AUTOFORMER_T, DEIT_T, ViTShape

from ._base import BackboneBase, create_model, default_cfg
from .layers import (DynamicTokenPruner, Mlp, PatchEmbed, SimpleFeaturePyramid, TransformerBlock,
                     attention_takes_token_mask, build_token_reduction, drop_path_rates,
                     make_attention, resolve_stage_attn, tokens_to_nchw)

__all__ = ['DeiT', 'DEIT_ARCHS', 'VIT_SHAPES']

DEIT_ARCHS: Dict[str, Dict[str, Any]] = {
    'tiny': dict(embed_dim=192, depth=12, num_heads=3),
    'small': dict(embed_dim=384, depth=12, num_heads=6),
}


def _per_block(value: Any, depth: int, name: str) -> Tuple[Any, ...]:
    if isinstance(value, (list, tuple)):
        if len(value) != depth:
            raise ValueError(f'{name} has {len(value)} values for {depth} blocks')
        return tuple(value)
    return (value,) * depth


class DeiT(BackboneBase):
    """Plain ViT with a cls token and absolute position embeddings (resampled to any grid).

    Args:
        img_size: size the position embedding is stored for (any input size works).
        patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio, qkv_bias: the usual;
            ``num_heads`` and ``mlp_ratio`` may also be one value per block (AutoFormer-style shapes).
        head_dim: q/k/v channels per head (default ``embed_dim // num_heads``); with it a block's
            attention works at ``num_heads * head_dim`` channels (AutoFormer: 64).
        shape: a :class:`attnzero.space.shape.ViTShape` (or its text) setting ``embed_dim``,
            ``depth``, ``num_heads``, ``mlp_ratio`` and ``head_dim`` at once.
        num_classes: classifier classes (0: no classifier).
        global_pool: ``'token'`` (cls token) or ``'avg'``.
        attn: kernel name for all blocks, or one per block.
        genome: AttnZero genome (canonical text) for ``attn='attnzero'`` blocks; ``None`` = Trial-105.
        attn_kwargs: extra kernel kwargs (e.g. ``agent_num``).
        features_only: dense mode: ``forward`` returns the pyramid maps at ``out_indices``.
        token_reduction: ``dict(type='patchmerger', num_tokens=M, after=K)`` merges the patch
            tokens into ``M`` (a square) after block ``K`` (default ``depth // 2``; PatchMerger);
            ``dict(type='dynamicvit', keep=rho, locations=None)`` prunes them to ``rho``,
            ``rho^2``, ``rho^3`` (DynamicViT: masks in training, top-k at inference; use
            :meth:`forward_train` for its losses). See
            :mod:`attnzero.models.layers.token_reduction`. Classification only (not with
            ``features_only``); intermediates after a reduction are available as ``'NLC'``.
    """

    num_prefix_tokens = 1
    dense_only_prefixes = ('pyramid.',)

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, patch_size: int = 16,
                 in_chans: int = 3, num_classes: int = 1000, global_pool: str = 'token',
                 embed_dim: int = 192, depth: int = 12, num_heads: int = 3, mlp_ratio: float = 4.0,
                 qkv_bias: bool = True, drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 drop_path_rate: float = 0.0, attn: Union[str, Sequence[str]] = 'attnzero',
                 genome: Any = None, attn_kwargs: Optional[Dict[str, Any]] = None,
                 features_only: bool = False, out_indices: Sequence[int] = (0, 1, 2, 3),
                 token_reduction: Optional[Dict[str, Any]] = None,
                 head_dim: Optional[int] = None, shape: Any = None) -> None:
        super().__init__()
        if shape is not None:
            shape = ViTShape.parse(shape)
            embed_dim, depth, head_dim = shape.embed_dim, shape.depth, shape.head_dim
            num_heads, mlp_ratio = shape.num_heads, shape.mlp_ratio
        heads = _per_block(num_heads, depth, 'num_heads')
        ratios = _per_block(mlp_ratio, depth, 'mlp_ratio')
        #: the model's shape as a :class:`ViTShape` (``None`` when its heads differ per block with
        #: ``head_dim`` left to ``embed_dim // num_heads``, which a ViTShape cannot express)
        shape_head_dim = head_dim
        if shape_head_dim is None and len(set(heads)) == 1:
            shape_head_dim = embed_dim // heads[0]
        self.vit_shape = None if shape_head_dim is None else ViTShape(embed_dim, heads, ratios, shape_head_dim)
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        if token_reduction is not None and features_only:
            raise ValueError('token_reduction is for classification: a merged token set has no dense '
                             'feature pyramid (features_only=True)')
        reduction, self.merge_after = build_token_reduction(token_reduction, embed_dim, depth)
        self.pruner = reduction if isinstance(reduction, DynamicTokenPruner) else None
        self.merger = None if self.pruner is not None else reduction
        if self.pruner is not None and global_pool != 'token':
            raise ValueError(f"token_reduction 'dynamicvit' classifies from the cls token: global_pool "
                             f"must be 'token', got {global_pool!r}")
        self.img_size = to_2tuple(img_size)
        self.patch_size = patch_size
        self.embed_dim = embed_dim
        attns, genomes = resolve_stage_attn(attn, genome, depth, 'deit')
        self.attn_names = attns
        if self.pruner is not None:
            first = self.pruner.locations[0]
            bad = sorted({a if a != 'attnzero' or genomes[i] is None else f'attnzero ({genomes[i]})'
                          for i, a in enumerate(attns) if i >= first
                          and not attention_takes_token_mask(a, genomes[i])})
            if bad:
                raise ValueError(f"token_reduction 'dynamicvit' needs attentions that take token masks "
                                 f"after block {first}; {bad} do not (supported: "
                                 f"{', '.join(n for n in ATTENTIONS if attention_takes_token_mask(n))}; "
                                 f"attnzero with genomes that have a masked form)")
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size, norm_layer=None)
        self.grid = (self.img_size[0] // patch_size, self.img_size[1] // patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = drop_path_rates(drop_path_rate, depth)
        self.blocks = nn.ModuleList([
            TransformerBlock(
                embed_dim,
                make_attention(embed_dim, heads[i], attns[i], genomes[i], qkv_bias=qkv_bias,
                               attn_drop=attn_drop_rate, proj_drop=drop_rate, num_prefix_tokens=1,
                               attn_kwargs=attn_kwargs, head_dim=head_dim),
                Mlp(embed_dim, int(embed_dim * ratios[i]), drop=drop_rate),
                drop_path=dpr[i], norm_layer=norm_layer)
            for i in range(depth)])
        self.norm = norm_layer(embed_dim)
        self._build_head(embed_dim, num_classes, global_pool, drop_rate, features_only, out_indices,
                         [embed_dim] * 4,
                         stage_modules=[f'pyramid.fpn{i + 1}' for i in range(4)])
        self.pyramid = SimpleFeaturePyramid(embed_dim) if self.features_only else None
        if not self.features_only:  # as timm's ViT: one feature per block (forward_intermediates)
            self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f'blocks.{i}')
                                 for i in range(depth)]
        self.init_model_weights()
        trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)

    def pos_embed_grids(self) -> Dict[str, Tuple[int, Tuple[int, int]]]:
        return {'pos_embed': (1, self.grid)}

    def stage_groups(self) -> List[List[Any]]:
        """mmpretrain's ViT semantics: the stem (patch embedding, cls token, position embedding),
        then one item per transformer block; the final norm with the last block. The dense
        pyramid (``pyramid.*``, ViTDet's simple feature pyramid) is not a stage: it stays
        trainable under any ``frozen_stages``."""
        groups = [[self.patch_embed, self.cls_token, self.pos_embed, self.pos_drop]]
        groups += [[b] for b in self.blocks]
        if self.merger is not None:  # the merge belongs to the block it follows
            groups[self.merge_after].append(self.merger)
        if self.pruner is not None:  # a prediction module belongs to the block it precedes
            for loc, pred in zip(self.pruner.locations, self.pruner.predictors):
                groups[loc + 1].append(pred)
        groups[-1].append(self.norm)
        return groups

    def _embed(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x, hw = self.patch_embed(x)
        pe = self.pos_embed
        if torch.compiler.is_exporting() or hw != self.grid:  # exported: any grid
            pe = resample_abs_pos_embed(pe, list(hw), list(self.grid), num_prefix_tokens=1)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.pos_drop(x + pe), hw

    def _merge(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        """The token reduction: the cls token kept, the patch tokens merged."""
        side = math.isqrt(self.merger.num_tokens)
        return torch.cat([x[:, :1], self.merger(x[:, 1:])], dim=1), (side, side)

    def _iter_blocks(self, x: torch.Tensor, hw: Tuple[int, int], blocks, prune: bool = True,
                     decisions: Optional[List[torch.Tensor]] = None):
        """Run ``blocks`` on embedded tokens, yielding ``(i, x, hw)`` after each; token reduction
        on the way (PatchMerger; DynamicViT with ``prune``: masks in training, with each stage's
        patch decisions appended to ``decisions``, hard pruning in eval)."""
        pruner = self.pruner if prune else None
        weight = index = mask = None
        n_patches = x.shape[1] - 1
        for i, blk in enumerate(blocks):
            if i == self.merge_after:
                x, hw = self._merge(x)
            stage = pruner.stage_at(i) if pruner is not None else None
            if stage is not None:
                if self.training:
                    weight = pruner.soft_step(stage, x, weight if weight is not None else x.new_ones(x.shape[:2]))
                    if decisions is not None:
                        decisions.append(weight[:, 1:])
                    mask = TokenMask(weight=weight)
                else:
                    if index is None:
                        index = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
                    x, index = pruner.hard_step(stage, x, index, n_patches)
                    mask = TokenMask(index=index)
            x = self._run(blk, x, hw) if mask is None else self._run(blk, x, hw, None, mask)
            yield i, x, hw

    def _tokens(self, x: torch.Tensor, prune: bool = True,
                decisions: Optional[List[torch.Tensor]] = None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        x, hw = self._embed(x)
        for _, x, hw in self._iter_blocks(x, hw, self.blocks, prune, decisions):
            pass
        return self.norm(x), hw

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self._tokens(x)[0]

    def forward_train(self, x: torch.Tensor, prune: bool = True) -> Dict[str, Any]:
        """DynamicViT training outputs: ``logits``, the final normalised patch ``tokens``
        ``(B, N, C)`` (all of them in training mode), and ``decisions`` (one ``(B, N)`` 0/1
        tensor per pruning stage; straight-through gradients). ``prune=False``: the unpruned
        model (DynamicViT's teacher), no decisions."""
        decisions: List[torch.Tensor] = []
        tokens, _ = self._tokens(x, prune, decisions)
        return dict(logits=self.forward_head(tokens), tokens=tokens[:, 1:], decisions=decisions)

    def forward_pyramid(self, x: torch.Tensor) -> List[torch.Tensor]:
        img_hw = (x.shape[-2], x.shape[-1])
        tokens, hw = self._tokens(x)
        grid = tokens_to_nchw(tokens[:, 1:], hw)
        if self.pyramid is None:
            raise RuntimeError('DeiT.forward_pyramid needs features_only=True (builds the pyramid)')
        return self.pyramid(grid, img_hw)

    def forward_intermediates(self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None,
                              return_prefix_tokens: bool = False, norm: bool = False,
                              stop_early: bool = False, output_fmt: str = 'NCHW',
                              intermediates_only: bool = False):
        """timm 1.x feature API with the options of timm's ViT: ``indices`` count transformer
        blocks (last ``n`` if int, all if ``None``); ``norm`` applies the final norm to every
        intermediate; NCHW intermediates drop the cls token, which ``return_prefix_tokens`` returns
        alongside (``(map, prefix)`` pairs)."""
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt={output_fmt!r}; expected 'NCHW' or 'NLC'")
        take, max_index = feature_take_indices(len(self.blocks), indices)
        first = (self.merge_after if self.merger is not None
                 else self.pruner.locations[0] if self.pruner is not None else None)
        if first is not None and output_fmt == 'NCHW' and any(i >= first for i in take):
            raise ValueError(f'blocks from {first} on see reduced tokens (token_reduction), '
                             "which are no image grid: ask for output_fmt='NLC' or earlier indices")
        x, hw = self._embed(x)
        grid = hw
        blocks = self.blocks[:max_index + 1] if stop_early else self.blocks
        inters = []
        for i, x, hw in self._iter_blocks(x, hw, blocks):
            if i in take:
                inters.append(self.norm(x) if norm else x)
        prefix = [y[:, :1] for y in inters]
        inters = [y[:, 1:] for y in inters]
        if output_fmt == 'NCHW':  # (only blocks before a merge: checked above)
            inters = [tokens_to_nchw(y, grid) for y in inters]
        if return_prefix_tokens:
            inters = list(zip(inters, prefix))
        if intermediates_only:
            return inters
        return self.norm(x), inters

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        take, max_index = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[:max_index + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if not self.features_only:
            self.feature_info = self.feature_info[:max_index + 1]
        if prune_head:
            self.reset_classifier(0, '')
        return take


default_cfgs = {
    'attnzero_deit_tiny': default_cfg(crop_pct=0.875),
    'attnzero_deit_small': default_cfg(crop_pct=0.875),
    'attnzero_vit': default_cfg(crop_pct=0.875),
}

#: named points of the joint shape space (:mod:`attnzero.space.shape`) for ``attnzero_vit(arch=...)``
VIT_SHAPES: Dict[str, ViTShape] = {'deit_t': DEIT_T, 'autoformer_t': AUTOFORMER_T}


@register_model
def attnzero_deit_tiny(pretrained: bool = False, **kwargs) -> DeiT:
    """DeiT-Tiny (5.7M params with softmax); default attention: AttnZero (Trial-105) in all blocks."""
    return create_model(DeiT, 'attnzero_deit_tiny', DEIT_ARCHS['tiny'], pretrained, **kwargs)


@register_model
def attnzero_deit_small(pretrained: bool = False, **kwargs) -> DeiT:
    """DeiT-Small (22.1M params with softmax); default attention: AttnZero in all blocks."""
    return create_model(DeiT, 'attnzero_deit_small', DEIT_ARCHS['small'], pretrained, **kwargs)


@register_model
def attnzero_vit(pretrained: bool = False, arch: Any = 'deit_t', **kwargs) -> DeiT:
    """A plain ViT of any shape of the joint attention + shape search: ``arch`` is a shape text
    (``'e192:hd64:h3,...:r4,...'``, e.g. from a joint search's ``best_archs.json``), a
    :class:`~attnzero.space.shape.ViTShape`, or a name (``'deit_t'``, ``'autoformer_t'``); per-block
    heads and MLP ratios, q/k/v width ``heads * head_dim``. Default attention: AttnZero."""
    if isinstance(arch, str) and arch in VIT_SHAPES:
        arch = VIT_SHAPES[arch]
    try:
        shape = ViTShape.parse(arch)
    except ValueError as e:
        raise ValueError(f'attnzero_vit: arch {arch!r} is neither a named shape ({", ".join(VIT_SHAPES)}) '
                         f'nor a shape text: {e}') from None
    return create_model(DeiT, 'attnzero_vit', dict(shape=shape.to_string()), pretrained, **kwargs)
