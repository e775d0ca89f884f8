"""OpenMMLab backbones: the attnzero models in dense mode as :class:`mmengine.model.BaseModule`.

Each class *is* the timm model (same parameter names, so classification checkpoints load
directly) built with ``features_only=True`` and returns a tuple of NCHW maps at ``out_indices``
(strides 4/8/16/32). Each family class is registered, once, in mmengine's root ``MODELS``
registry, where the mmdet / mmseg / mmpretrain registries find it (see :mod:`attnzero.mm`).
Config keys::

    backbone=dict(type='AttnZeroPVT', arch='tiny', attn=None, genome=None,
                  out_indices=(0, 1, 2, 3), drop_path_rate=0.1,
                  init_cfg=dict(type='Pretrained', checkpoint='pvt_tiny.pth'))

``arch`` is a name of the family's arch table (or a dict of constructor args); ``attn=None`` keeps
the family's AttnZero default, ``attn='softmax'`` is the baseline; any other constructor argument
of the model class (``img_size``, ``window_size``, ``attn_kwargs``, ``sr_for_linear`` ...) may be
given too. ``pretrained=PATH`` (mmseg's ``model.pretrained``) is the same as
``init_cfg=dict(type='Pretrained', checkpoint=PATH)``.

The options every MMDetection backbone takes, with mmdet's semantics:

* ``frozen_stages=-1``: ``k >= 0`` freezes the stem (patch embedding and position embedding;
  EfficientFormer's conv stem) and stages ``1..k`` -- ``requires_grad=False`` and eval mode kept
  across ``train()`` (no dropout or drop-path there, and frozen BatchNorm statistics). ``k`` = the
  number of stages also freezes the final norm, so that nothing of the trunk trains.
  PVT/PVTv2/Swin/CSwin/EfficientFormer have 4 stages; DeiT follows mmpretrain's ViT and counts
  transformer blocks (12), and its dense pyramid is never frozen (see ``stage_groups``).
* ``norm_eval=False``: ``True`` keeps every normalisation layer in eval mode while training.
  That matters for BatchNorm (frozen running statistics, normalisation with them instead of the
  batch's, as in mmdet's ResNet configs): EfficientFormer's stem, downsampling convs and 4D blocks
  have BatchNorm. The other attnzero trunks use only LayerNorm, which has no running statistics and
  computes the same in both modes, so for them ``norm_eval`` changes no output and no gradient; the
  norms' affine parameters keep training either way (freeze them with ``frozen_stages``).
* ``with_cp=False``: ``True`` checkpoints activations per block (transformer block; for
  EfficientFormer every 4D and 3D Meta block) (``torch.utils.checkpoint``, ``use_reentrant=False``):
  same loss and gradients, less memory, one extra forward per block (``docs/mmconfigs.md`` has the
  measured saving). As with mmdet's ResNet, a checkpointed block with BatchNorm updates its running
  statistics in the recomputation too (twice per step).
"""
from __future__ import annotations

import copy
from typing import Any, Dict, Optional, Sequence, Tuple, Union

import torch
from mmengine.model import BaseModule
from mmengine.registry import MODELS
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from attnzero.models import (CSWIN_ARCHS, DEIT_ARCHS, EFFICIENTFORMER_ARCHS, PVT_ARCHS,
                             PVT_V2_ARCHS, SWIN_ARCHS, CSwin, DeiT, EfficientFormer, PVT, PVTv2,
                             Swin)

from .checkpoint import load_pretrained

__all__ = ['AttnZeroDeiT', 'AttnZeroPVT', 'AttnZeroPVTv2', 'AttnZeroSwin', 'AttnZeroCSwin',
           'AttnZeroEfficientFormer', 'MM_BACKBONES']


def _model_args(archs: Dict[str, Dict[str, Any]], arch: Union[str, Dict[str, Any]], attn: Any,
                genome: Any, out_indices: Sequence[int], drop_path_rate: Optional[float],
                kwargs: Dict[str, Any]) -> Dict[str, Any]:
    if isinstance(arch, str):
        if arch not in archs:
            raise KeyError(f'unknown arch {arch!r}; known: {sorted(archs)}')
        args = dict(archs[arch])
    else:
        args = dict(arch)
    args.update(kwargs)
    if attn is not None:
        args['attn'] = attn
    if genome is not None:
        args['genome'] = genome
    if drop_path_rate is not None:
        args['drop_path_rate'] = drop_path_rate
    args.update(features_only=True, out_indices=tuple(out_indices), num_classes=0)
    return args


class _MMBackboneMixin:
    """The common constructor (mmengine ``init_cfg`` semantics, the mmdet options) and tuple
    outputs, on top of an attnzero model class.

    A family class lists the mixin first, then its attnzero model class and ``BaseModule``, and
    states only ``arch_table`` (its arch name -> constructor arguments) and ``default_arch``;
    ``super().__init__`` below is then the model class's constructor.
    """

    #: arch name -> constructor arguments of the family's model class
    arch_table: Dict[str, Dict[str, Any]] = {}
    #: the ``arch`` of a config that gives none
    default_arch: str = ''

    def __init__(self, arch: Union[str, Dict[str, Any], None] = None, attn: Any = None,
                 genome: Any = None, out_indices: Sequence[int] = (0, 1, 2, 3),
                 drop_path_rate: Optional[float] = None, init_cfg: Optional[dict] = None,
                 pretrained: Optional[str] = None, frozen_stages: int = -1,
                 norm_eval: bool = False, with_cp: bool = False, **kwargs) -> None:
        if arch is None:
            arch = self.default_arch
        super().__init__(**_model_args(self.arch_table, arch, attn, genome, out_indices,
                                       drop_path_rate, kwargs))
        self._finish_mm_init(arch, init_cfg, pretrained, frozen_stages, norm_eval, with_cp)

    def _finish_mm_init(self, arch: Any, init_cfg: Optional[dict],
                        pretrained: Optional[str] = None, frozen_stages: int = -1,
                        norm_eval: bool = False, with_cp: bool = False) -> None:
        self.arch = arch
        n_stages = len(self.stage_groups()) - 1
        if isinstance(frozen_stages, bool) or not isinstance(frozen_stages, int) or \
                not -1 <= frozen_stages <= n_stages:
            raise ValueError(f'{type(self).__name__}: frozen_stages={frozen_stages!r} is not an '
                             f'int in -1..{n_stages} (-1: nothing frozen)')
        self.frozen_stages = frozen_stages
        self.norm_eval = bool(norm_eval)
        self.with_cp = bool(with_cp)
        self.set_grad_checkpointing(self.with_cp)
        self._freeze_stages()
        if pretrained is not None:  # mmseg's EncoderDecoder passes ``model.pretrained`` here
            if init_cfg is not None:
                raise ValueError('give either init_cfg or pretrained, not both')
            init_cfg = dict(type='Pretrained', checkpoint=pretrained)
        self.init_cfg = copy.deepcopy(init_cfg)

    def _frozen(self):
        """Modules and parameters of the frozen stages (stem first)."""
        for group in self.stage_groups()[:self.frozen_stages + 1]:
            yield from group

    def _freeze_stages(self) -> None:
        for item in self._frozen():
            params = item.parameters() if isinstance(item, nn.Module) else [item]
            for p in params:
                p.requires_grad = False
            if isinstance(item, nn.Module):
                item.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        if mode:
            for item in self._frozen():
                if isinstance(item, nn.Module):
                    item.eval()
            if self.norm_eval:
                for m in self.modules():
                    if isinstance(m, (_BatchNorm, nn.LayerNorm, nn.GroupNorm)):
                        m.eval()
        return self

    def init_weights(self) -> None:
        cfg = self.init_cfg
        if isinstance(cfg, dict) and cfg.get('type') == 'Pretrained':
            self.load_report = load_pretrained(self, cfg['checkpoint'], prefix=cfg.get('prefix'))
            self._is_init = True
            return
        super().init_weights()  # BaseModule: initializers from init_cfg (weights are already
        # initialised the timm way at construction when init_cfg is None)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(super().forward(x))


@MODELS.register_module()
class AttnZeroDeiT(_MMBackboneMixin, DeiT, BaseModule):
    """DeiT with a ViTDet-style simple pyramid (strides 4/8/16/32, all ``embed_dim`` channels).
    ``arch``: ``'tiny'`` / ``'small'``."""

    arch_table = DEIT_ARCHS
    default_arch = 'tiny'


@MODELS.register_module()
class AttnZeroPVT(_MMBackboneMixin, PVT, BaseModule):
    """PVT v1. ``arch``: ``'tiny'`` / ``'small'``."""

    arch_table = PVT_ARCHS
    default_arch = 'tiny'


@MODELS.register_module()
class AttnZeroPVTv2(_MMBackboneMixin, PVTv2, BaseModule):
    """PVT v2. ``arch``: ``'b0'`` / ``'b1'`` / ``'b2'``."""

    arch_table = PVT_V2_ARCHS
    default_arch = 'b0'


@MODELS.register_module()
class AttnZeroSwin(_MMBackboneMixin, Swin, BaseModule):
    """Swin. ``arch``: ``'tiny'`` / ``'small'``."""

    arch_table = SWIN_ARCHS
    default_arch = 'tiny'


@MODELS.register_module()
class AttnZeroCSwin(_MMBackboneMixin, CSwin, BaseModule):
    """CSWin. ``arch``: ``'tiny'`` / ``'small'``."""

    arch_table = CSWIN_ARCHS
    default_arch = 'tiny'


@MODELS.register_module()
class AttnZeroEfficientFormer(_MMBackboneMixin, EfficientFormer, BaseModule):
    """EfficientFormer (conv stages with BatchNorm, attention in the last stage's 3D blocks).
    ``arch``: ``'l1'`` / ``'l3'``; ``num_vit_s16=k`` adds V2-style attention blocks at stride 16."""

    arch_table = EFFICIENTFORMER_ARCHS
    default_arch = 'l1'


MM_BACKBONES = (AttnZeroDeiT, AttnZeroPVT, AttnZeroPVTv2, AttnZeroSwin, AttnZeroCSwin,
                AttnZeroEfficientFormer)
