"""What every attnzero backbone shares: timm's classifier API, the dense-prediction mode,
weight init and the timm entry-point helper."""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Type, Union

import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import trunc_normal_
from timm.models import FeatureInfo, resolve_pretrained_cfg
from timm.models._features import feature_take_indices
from torch import nn
from torch.utils.checkpoint import checkpoint

from .checkpoint import load_checkpoint_into
from .layers import tokens_to_nchw


def default_cfg(**kwargs) -> Dict[str, Any]:
    """timm pretrained cfg (data config for timm's train script; no hub weights)."""
    cfg = dict(url='', num_classes=1000, input_size=(3, 224, 224), pool_size=None, crop_pct=0.9,
               interpolation='bicubic', fixed_input_size=False, mean=IMAGENET_DEFAULT_MEAN,
               std=IMAGENET_DEFAULT_STD, first_conv='patch_embed.proj', classifier='head',
               license='apache-2.0')
    cfg.update(kwargs)
    return cfg


class BackboneBase(nn.Module):
    """Base of the attnzero backbones.

    Subclasses build their trunk (``self.stages``; ``self.norm`` when a final norm follows the last
    stage), then call :meth:`_build_head`, and implement :meth:`_iter_stages`, from which this class
    derives

    * ``forward_features(x) -> (B, N, C)`` final normalised tokens (prefix tokens first);
    * ``forward_pyramid(x) -> list of 4 NCHW maps`` at strides 4/8/16/32;
    * ``forward_intermediates`` / ``prune_intermediate_layers`` (timm 1.x feature API, with the
      index, norm and early-stop options of timm's Swin).

    Modes: classification (``forward`` -> logits) or, with ``features_only=True``, dense prediction
    (``forward`` -> list of the maps at ``out_indices``; no classifier is built).
    """

    num_prefix_tokens: int = 0
    #: parameter-name prefixes that exist only in dense mode (new layers when a classification
    #: checkpoint is loaded; reported separately from genuinely missing keys)
    dense_only_prefixes: Tuple[str, ...] = ()

    def _build_head(self, num_features: int, num_classes: int, global_pool: str,
                    drop_rate: float, features_only: bool, out_indices: Sequence[int],
                    feature_channels: Sequence[int], feature_reductions: Sequence[int] = (4, 8, 16, 32),
                    stage_modules: Optional[Sequence[str]] = None) -> None:
        self.num_features = self.head_hidden_size = num_features
        self.global_pool = global_pool
        self.features_only = bool(features_only)
        self.out_indices = tuple(int(i) for i in out_indices)
        for i in self.out_indices:
            if not 0 <= i < len(feature_channels):
                raise ValueError(f'out_index {i} out of range (0..{len(feature_channels) - 1})')
        stage_modules = stage_modules or [f'stages.{i}' for i in range(len(feature_channels))]
        info = [dict(num_chs=int(c), reduction=int(r), module=m)
                for c, r, m in zip(feature_channels, feature_reductions, stage_modules)]
        # timm's convention: a features_only model describes its outputs with a FeatureInfo
        # (``.channels()`` / ``.reduction()`` at ``out_indices``); a classifier keeps the plain list
        self.feature_info = FeatureInfo(info, self.out_indices) if self.features_only else info
        self.grad_checkpointing = False
        if self.features_only:
            num_classes = 0
        self.num_classes = num_classes
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    @property
    def out_channels(self) -> List[int]:
        return [self.feature_info[i]['num_chs'] for i in self.out_indices]

    # ---- stages, as frozen by mmdet's ``frozen_stages`` ----------------------------------
    def stage_groups(self) -> List[List[Union[nn.Module, nn.Parameter]]]:
        """The trunk in input-to-output order, for ``frozen_stages``: item 0 is the stem (patch
        embedding and whatever is applied with it, e.g. position embedding), item ``i`` the
        ``i``-th stage; the final norm belongs to the last stage. ``frozen_stages=k`` freezes
        items ``0..k`` (mmdet's Swin semantics). Hierarchical families with a top-level
        ``patch_embed`` and ``stages`` share this default."""
        stem: List[Union[nn.Module, nn.Parameter]] = [self.patch_embed]
        if isinstance(getattr(self, 'pos_drop', None), nn.Module):
            stem.append(self.pos_drop)
        groups = [stem] + [[s] for s in self.stages]
        groups[-1].append(self.norm)
        return groups

    # ---- init -----------------------------------------------------------------------------
    @staticmethod
    def _init_module(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            if m.weight is not None:
                nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def init_model_weights(self) -> None:
        self.apply(self._init_module)
        for name, p in self.named_parameters():
            if name.endswith(('pos_embed', 'cls_token', 'relative_position_bias_table')) or \
                    '.pos_embed' in name:
                trunc_normal_(p, std=0.02)

    # ---- timm API -------------------------------------------------------------------------
    @torch.jit.ignore
    def no_weight_decay(self) -> set:
        return {n for n, _ in self.named_parameters()
                if n.split('.')[-1].startswith(('pos_embed', 'cls_token'))
                or n.endswith('relative_position_bias_table')}

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.grad_checkpointing = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None) -> None:
        self.num_classes = num_classes
        if global_pool is not None:
            self.global_pool = global_pool
        self.head = nn.Linear(self.num_features, num_classes) if num_classes > 0 else nn.Identity()

    def _run(self, blk: nn.Module, *args) -> torch.Tensor:
        if self.grad_checkpointing and self.training and not torch.jit.is_scripting():
            return checkpoint(blk, *args, use_reentrant=False)
        return blk(*args)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.global_pool == 'token':
            return x[:, 0]
        if self.global_pool == 'avg':
            return x[:, self.num_prefix_tokens:].mean(dim=1)
        return x

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(self.pool(x))
        return x if pre_logits else self.head(x)

    # ---- the trunk, stage by stage ---------------------------------------------------------
    def _iter_stages(self, x: torch.Tensor, n: Optional[int] = None
                     ) -> Iterator[Tuple[torch.Tensor, Tuple[int, int]]]:
        """Tokens ``(B, N, C)`` (prefix tokens first) and their grid after each of the first ``n``
        stages (all when ``None``), *before* the final norm."""
        raise NotImplementedError  # pragma: no cover

    def _finish_hw_trunk(self, stages: List[nn.Module], dims: Sequence[int], patch_size: int,
                         num_classes: int, global_pool: str, drop_rate: float,
                         features_only: bool, out_indices: Sequence[int]) -> None:
        """End of ``__init__`` for the families whose stage ``i`` has ``dims[i]`` channels at
        stride ``patch_size * 2**i`` and whose trunk ends with one LayerNorm (Swin, CSWin)."""
        self.stages = nn.ModuleList(stages)
        self.norm = nn.LayerNorm(dims[-1])
        self._build_head(dims[-1], num_classes, global_pool, drop_rate, features_only, out_indices,
                         dims, [patch_size * 2 ** i for i in range(len(dims))])
        self.init_model_weights()

    def _iter_hw_stages(self, x: torch.Tensor, n: Optional[int] = None
                        ) -> Iterator[Tuple[torch.Tensor, Tuple[int, int]]]:
        """``_iter_stages`` of the families whose trunk is one patch embedding (then ``pos_drop``
        where the family has one) followed by stages mapping ``(tokens, hw)`` to the next
        ``(tokens, hw)`` (Swin, CSWin)."""
        x, hw = self.patch_embed(x)
        if hasattr(self, 'pos_drop'):  # a structural choice of the family, not a tensor value
            x = self.pos_drop(x)
        for stage in self.stages[:n]:
            x, hw = stage(x, hw, run=self._run)
            yield x, hw

    def _num_prefix(self, i: int) -> int:
        """Prefix (class) tokens in the output of stage ``i``."""
        return 0

    def _final_norm(self, x: torch.Tensor) -> torch.Tensor:
        norm = getattr(self, 'norm', None)
        return x if norm is None else norm(x)

    def _grid(self, i: int, t: torch.Tensor, hw: Tuple[int, int]) -> torch.Tensor:
        return tokens_to_nchw(t[:, self._num_prefix(i):], hw)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        t = x
        for t, _ in self._iter_stages(x):
            pass
        return self._final_norm(t)

    def forward_pyramid(self, x: torch.Tensor) -> List[torch.Tensor]:
        """NCHW map of every stage; the last one through the final norm."""
        outs = list(self._iter_stages(x))
        last = len(outs) - 1
        return [self._grid(i, self._final_norm(t) if i == last else t, hw)
                for i, (t, hw) in enumerate(outs)]

    def forward_intermediates(self, x: torch.Tensor, indices: Optional[Union[int, List[int]]] = None,
                              norm: bool = False, stop_early: bool = False,
                              output_fmt: str = 'NCHW', intermediates_only: bool = False
                              ) -> Union[List[torch.Tensor], Tuple[torch.Tensor, List[torch.Tensor]]]:
        """timm 1.x feature API (the options of timm's Swin).

        Args:
            indices: last ``n`` stages if int, all if ``None``, else these stage indices.
            norm: apply the final norm to the last stage's intermediate (it is sized for it).
            stop_early: stop after the last stage asked for.
            output_fmt: ``'NCHW'`` (prefix tokens dropped) or ``'NLC'`` (tokens as they are).
            intermediates_only: return only the list.

        Returns:
            ``(final tokens, intermediates)`` -- the final tokens equal ``forward_features(x)`` when
            every stage ran -- or the intermediates alone.
        """
        if output_fmt not in ('NCHW', 'NLC'):
            raise ValueError(f"output_fmt={output_fmt!r}; expected 'NCHW' or 'NLC'")
        n = len(self.stages)
        take, max_index = feature_take_indices(n, indices)
        inters: List[torch.Tensor] = []
        t = x
        i = -1
        for i, (t, hw) in enumerate(self._iter_stages(x, max_index + 1 if stop_early else None)):
            if i in take:
                y = self._final_norm(t) if norm and i == n - 1 else t
                inters.append(self._grid(i, y, hw) if output_fmt == 'NCHW' else y)
        if intermediates_only:
            return inters
        return (self._final_norm(t) if i == n - 1 else t), inters

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True) -> List[int]:
        """Drop the stages after the last of ``indices`` (and the final norm / head)."""
        take, max_index = feature_take_indices(len(self.stages), indices)
        if prune_norm or max_index < len(self.stages) - 1:
            if hasattr(self, 'norm'):
                self.norm = nn.Identity()
        self.stages = self.stages[:max_index + 1]
        if isinstance(self.feature_info, FeatureInfo):
            self.feature_info = FeatureInfo(self.feature_info.info[:max_index + 1],
                                            [i for i in self.out_indices if i <= max_index])
        else:
            self.feature_info = self.feature_info[:max_index + 1]
        if prune_head:
            self.reset_classifier(0, '')
        return take

    def forward(self, x: torch.Tensor):
        if self.features_only:
            feats = self.forward_pyramid(x)
            return [feats[i] for i in self.out_indices]
        return self.forward_head(self.forward_features(x))


def create_model(model_cls: Type[nn.Module], variant: str, arch: Dict[str, Any],
                 pretrained: bool = False, pretrained_cfg: Any = None,
                 pretrained_cfg_overlay: Optional[Dict[str, Any]] = None, **kwargs) -> nn.Module:
    """timm entry-point body: ``arch`` defaults overridden by ``kwargs``; sets ``pretrained_cfg``.

    ``pretrained=True`` loads ``pretrained_cfg['file']`` (a local checkpoint; there are no hub
    weights) through :func:`attnzero.models.checkpoint.checkpoint_filter_fn`.
    """
    kwargs.pop('cache_dir', None)
    cfg = resolve_pretrained_cfg(variant, pretrained_cfg=pretrained_cfg,
                                 pretrained_cfg_overlay=pretrained_cfg_overlay).to_dict()
    args = dict(arch)
    args.update(kwargs)
    args.setdefault('num_classes', cfg.get('num_classes', 1000))
    model = model_cls(**args)
    model.pretrained_cfg = cfg
    model.default_cfg = cfg
    if pretrained:
        if not cfg.get('file'):
            raise RuntimeError(f'{variant}: no hub weights; pass pretrained_cfg_overlay='
                               "dict(file='/path/to/checkpoint.pth') or checkpoint_path=...")
        load_checkpoint_into(model, cfg['file'])
    return model
