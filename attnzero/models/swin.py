"""Swin Transformer (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
Windows", ICCV 2021) with a selectable attention per stage.

Windowed stages use (shifted) windows with a learned relative position bias passed to the kernel
as ``attn_bias``. AttnZero placement (paper): a stage whose attention is *linear* attends globally
(one window = the whole stage, no shift, no relative position bias); by default the first three
stages are AttnZero and the last stage keeps softmax windows.

Any input size: the grid is zero-padded to a multiple of the window (windows are clamped to the
grid when it is smaller, and a dimension that fits one window is not shifted), and patch merging
pads odd grids.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch
from timm.layers import trunc_normal_
from timm.models import register_model
from torch import nn

from ._base import BackboneBase, create_model, default_cfg
from .layers import (run_blocks, Mlp, PatchEmbed, PatchMerging, TransformerBlock, attention_is_linear, attention_makes_windows,
                     attention_supports_bias, drop_path_rates, make_attention, pad_hw_to_multiple,
                     per_stage, resolve_stage_attn, window_partition, window_reverse)

__all__ = ['Swin', 'SwinStage', 'WindowMixer', 'RelativePositionBias', 'SWIN_ARCHS']

SWIN_ARCHS: Dict[str, Dict[str, Any]] = {
    'tiny': dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.2),
    'small': dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24), drop_path_rate=0.3),
}

SHIFT_MASK_VALUE = -100.0


def _cacheable(*dims) -> bool:
    """Eager calls with plain-int sizes reuse the index/mask tensors; under ``torch.compile`` or
    ``torch.export`` (sizes may be symbolic, and module state must not change while tracing)
    they are built in the graph instead."""
    return not torch.compiler.is_compiling() and all(type(d) is int for d in dims)


class RelativePositionBias(nn.Module):
    """Learned bias table ``((2w-1)^2, heads)`` indexed by relative offsets; any window up to
    ``window_size`` (non-square included) reads the centre of the table."""

    def __init__(self, window_size: int, num_heads: int) -> None:
        super().__init__()
        self.window_size = window_size
        self.relative_position_bias_table = nn.Parameter(
            torch.zeros((2 * window_size - 1) ** 2, num_heads))
        trunc_normal_(self.relative_position_bias_table, std=0.02)
        self._index: Dict[Tuple[int, int, str], torch.Tensor] = {}

    def _build_index(self, wh: int, ww: int, device: torch.device) -> torch.Tensor:
        coords = torch.stack(torch.meshgrid(torch.arange(wh, device=device),
                                            torch.arange(ww, device=device), indexing='ij')).flatten(1)
        rel = coords[:, :, None] - coords[:, None, :] + (self.window_size - 1)
        return (rel[0] * (2 * self.window_size - 1) + rel[1]).flatten()

    def index(self, wh: int, ww: int, device: torch.device) -> torch.Tensor:
        if not _cacheable(wh, ww):
            return self._build_index(wh, ww, device)
        key = (wh, ww, str(device))
        if key not in self._index:
            self._index[key] = self._build_index(wh, ww, device)
        return self._index[key]

    def forward(self, wh: int, ww: int) -> torch.Tensor:
        """``(1, heads, wh*ww, wh*ww)``."""
        n = wh * ww
        idx = self.index(wh, ww, self.relative_position_bias_table.device)
        return self.relative_position_bias_table[idx].reshape(n, n, -1).permute(2, 0, 1).unsqueeze(0)


class WindowMixer(nn.Module):
    """(Shifted) window partition around an :class:`attnzero.attention.Attention`."""

    def __init__(self, attn: nn.Module, window_size: int, shift_size: int, num_heads: int,
                 rel_pos_bias: bool = True) -> None:
        super().__init__()
        self.attn = attn
        self.window_size = window_size
        self.shift_size = shift_size
        self.rel_pos = RelativePositionBias(window_size, num_heads) if rel_pos_bias else None
        self.use_mask = bool(getattr(attn.kernel, 'supports_attn_bias', False)) \
            if hasattr(attn, 'kernel') else True
        self._masks: Dict[Tuple, torch.Tensor] = {}

    def _shift_mask(self, Hp: int, Wp: int, win: Tuple[int, int], shift: Tuple[int, int],
                    device: torch.device) -> torch.Tensor:
        """``(nW, 1, n, n)`` additive mask keeping tokens of different pre-shift regions apart."""
        if not _cacheable(Hp, Wp, *win, *shift):
            return self._build_shift_mask(Hp, Wp, win, shift, device)
        key = (Hp, Wp, win, shift, str(device))
        if key not in self._masks:
            self._masks[key] = self._build_shift_mask(Hp, Wp, win, shift, device)
        return self._masks[key]

    @staticmethod
    def _build_shift_mask(Hp: int, Wp: int, win: Tuple[int, int], shift: Tuple[int, int],
                          device: torch.device) -> torch.Tensor:
        # region id of every (padded, shifted) position: 3 bands per shifted axis, built with
        # comparisons (no in-place slice writes: traceable with symbolic sizes)
        def bands(n: int, w: int, s: int) -> torch.Tensor:
            pos = torch.arange(n, device=device)
            if not s:
                return torch.zeros_like(pos)
            return (pos >= n - w).long() + (pos >= n - s).long()

        region = bands(Hp, win[0], shift[0])[:, None] * 3 + bands(Wp, win[1], shift[1])[None, :]
        m = window_partition(region[None, :, :, None].float(), win).squeeze(-1)  # (nW, n)
        mask = (m[:, None, :] != m[:, :, None]).float() * SHIFT_MASK_VALUE
        return mask.unsqueeze(1)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        B, N, C = x.shape
        H, W = hw
        ws = self.window_size
        win = (min(ws, H), min(ws, W))
        shift = (self.shift_size if H > ws else 0, self.shift_size if W > ws else 0)
        x = pad_hw_to_multiple(x.reshape(B, H, W, C), win)
        Hp, Wp = x.shape[1:3]
        if any(shift):
            x = torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(1, 2))
        windows = window_partition(x, win)
        bias = self.rel_pos(*win) if self.rel_pos is not None else None
        if any(shift) and self.use_mask:
            mask = self._shift_mask(Hp, Wp, win, shift, x.device)
            nW = mask.shape[0]
            bias = mask if bias is None else bias + mask
            bias = bias.unsqueeze(0).expand(B, -1, -1, -1, -1).reshape(B * nW, *bias.shape[1:])
        if bias is not None:
            out = self.attn(windows, win, attn_bias=bias.to(windows.dtype))
        else:
            out = self.attn(windows, win)
        x = window_reverse(out, win, (Hp, Wp))
        if any(shift):
            x = torch.roll(x, shifts=shift, dims=(1, 2))
        return x[:, :H, :W].reshape(B, N, C)


class SwinStage(nn.Module):
    """(Patch merging) + Swin blocks; ``global_attn`` -> every block attends over the whole stage."""

    def __init__(self, in_dim: int, dim: int, depth: int, num_heads: int, window_size: int,
                 attn: str, genome: Any, drop_path: Sequence[float], downsample: bool,
                 global_attn: bool, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_rate: float = 0.0, attn_drop_rate: float = 0.0,
                 attn_kwargs: Optional[Dict[str, Any]] = None) -> None:
        super().__init__()
        self.global_attn = global_attn
        self.downsample = PatchMerging(in_dim, dim) if downsample else None
        blocks = []
        for j in range(depth):
            mixer = make_attention(dim, num_heads, attn, genome, qkv_bias=qkv_bias,
                                   attn_drop=attn_drop_rate, proj_drop=drop_rate,
                                   attn_kwargs=attn_kwargs)
            if not global_attn:
                mixer = WindowMixer(mixer, window_size, 0 if j % 2 == 0 else window_size // 2,
                                    num_heads, rel_pos_bias=attention_supports_bias(attn))
            blocks.append(TransformerBlock(dim, mixer, Mlp(dim, int(dim * mlp_ratio), drop=drop_rate),
                                           drop_path=drop_path[j]))
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor, hw: Tuple[int, int], run=None) -> Tuple[torch.Tensor, Tuple[int, int]]:
        if self.downsample is not None:
            x, hw = self.downsample(x, hw)
        x = run_blocks(self.blocks, x, hw, run)
        return x, hw


class Swin(BackboneBase):
    """Swin Transformer.

    Args:
        img_size: nominal training size (any input size works).
        patch_size, in_chans, embed_dim (stage-1 width, doubled per stage), depths, num_heads,
        window_size, mlp_ratio, qkv_bias, drop rates: the usual.
        attn: kernel name for all stages or one per stage; ``genome``: AttnZero genome (or one per
            stage); ``attn_kwargs``: extra kernel kwargs.
        linear_global: stages with a linear attention attend globally (no windows / shift / bias).
        features_only / out_indices: dense mode (NCHW maps at strides 4/8/16/32; the last one is
            normalised by the final norm, the others are the raw stage outputs).
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 224, patch_size: int = 4,
                 in_chans: int = 3, num_classes: int = 1000, global_pool: str = 'avg',
                 embed_dim: int = 96, depths: Sequence[int] = (2, 2, 6, 2),
                 num_heads: Sequence[int] = (3, 6, 12, 24), window_size: int = 7,
                 mlp_ratio: float = 4.0, qkv_bias: bool = True, drop_rate: float = 0.0,
                 attn_drop_rate: float = 0.0, drop_path_rate: float = 0.2,
                 attn: Union[str, Sequence[str]] = ('attnzero', 'attnzero', 'attnzero', 'softmax'),
                 genome: Any = None, attn_kwargs: Optional[Dict[str, Any]] = None,
                 linear_global: bool = True, features_only: bool = False,
                 out_indices: Sequence[int] = (0, 1, 2, 3)) -> None:
        super().__init__()
        n = len(depths)
        self.img_size = img_size
        self.window_size = window_size
        num_heads = per_stage(num_heads, n, 'num_heads')
        attns, genomes = resolve_stage_attn(attn, genome, n, 'swin')
        self.attn_names = attns
        self.global_stages = tuple(bool((linear_global and attention_is_linear(a, g)) or attention_makes_windows(a))
                                   for a, g in zip(attns, genomes))
        dims = [embed_dim * 2 ** i for i in range(n)]
        self.patch_embed = PatchEmbed(in_chans, embed_dim, patch_size)
        self.pos_drop = nn.Dropout(drop_rate)
        dpr = drop_path_rates(drop_path_rate, sum(depths))
        stages, cur = [], 0
        for i in range(n):
            stages.append(SwinStage(
                dims[max(i - 1, 0)], dims[i], depths[i], num_heads[i], window_size, attns[i],
                genomes[i], dpr[cur:cur + depths[i]], downsample=i > 0,
                global_attn=self.global_stages[i], mlp_ratio=mlp_ratio, qkv_bias=qkv_bias,
                drop_rate=drop_rate, attn_drop_rate=attn_drop_rate, attn_kwargs=attn_kwargs))
            cur += depths[i]
        self._finish_hw_trunk(stages, dims, patch_size, num_classes, global_pool, drop_rate,
                              features_only, out_indices)

    _iter_stages = BackboneBase._iter_hw_stages


default_cfgs = {
    'attnzero_swin_tiny': default_cfg(),
    'attnzero_swin_small': default_cfg(),
}


@register_model
def attnzero_swin_tiny(pretrained: bool = False, **kwargs) -> Swin:
    """Swin-T (28.3M params with softmax); default: AttnZero (global) in stages 1-3, softmax
    windows in stage 4."""
    return create_model(Swin, 'attnzero_swin_tiny', SWIN_ARCHS['tiny'], pretrained, **kwargs)


@register_model
def attnzero_swin_small(pretrained: bool = False, **kwargs) -> Swin:
    """Swin-S (49.6M params with softmax); default: AttnZero (global) in stages 1-3, softmax
    windows in stage 4."""
    return create_model(Swin, 'attnzero_swin_small', SWIN_ARCHS['small'], pretrained, **kwargs)
