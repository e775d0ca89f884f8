"""Adapting classification checkpoints of the attnzero backbones to a model of another resolution,
window size or task (shared by timm's ``pretrained`` path and the OpenMMLab backbones).

* unwraps ``{'state_dict': ...}`` / ``{'model': ...}`` / ``{'model_ema': ...}`` and strips the
  ``module.`` (DDP) and ``backbone.`` (mmdet/mmseg/mmpretrain) prefixes;
* drops classifier heads that the target has not got (or of another class count);
* resamples absolute position embeddings (bicubic, prefix tokens kept) to the target grid;
* resamples Swin's relative position bias tables ``((2w-1)^2, heads)`` to the target window;
* drops derived buffers (``relative_position_index``, ``attn_mask``).
"""
from __future__ import annotations

import logging
import math
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from timm.layers import resample_abs_pos_embed
from torch import nn

from attnzero import compat  # allow-lists mmengine's checkpoint globals for weights-only loading

_log = logging.getLogger(__name__)

HEAD_PREFIXES = ('head.', 'head_dist.', 'fc.', 'classifier.')
DERIVED_BUFFERS = ('relative_position_index', 'attn_mask')
#: keys under which checkpoints nest their state dict (the first one present is used)
WRAPPER_KEYS = ('state_dict', 'model', 'model_ema', 'module')


def unwrap_checkpoint(obj: Any) -> Any:
    """The dict under the first of :data:`WRAPPER_KEYS` that ``obj`` has (``obj`` itself when
    none): ``{'state_dict': {...}}`` (mmengine), ``{'model': {...}}`` (DeiT/timm scripts) ..."""
    for key in WRAPPER_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            return obj[key]
    return obj


def select_prefix(obj: Any, prefix: str) -> Dict[str, Any]:
    """The entries of a (wrapped) checkpoint under ``prefix`` (e.g. ``'model.encoder'`` of a
    bigger model), with the prefix removed."""
    p = prefix if prefix.endswith('.') else prefix + '.'
    return {k[len(p):]: v for k, v in unwrap_checkpoint(obj).items() if k.startswith(p)}


def unwrap_state_dict(obj: Any) -> Dict[str, torch.Tensor]:
    """The tensor state dict inside a checkpoint object, with wrapper prefixes removed."""
    obj = unwrap_checkpoint(obj)
    sd = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if sd and all(k.startswith('module.') for k in sd):
        sd = {k[len('module.'):]: v for k, v in sd.items()}
    if any(k.startswith('backbone.') for k in sd):
        sd = {k[len('backbone.'):]: v for k, v in sd.items() if k.startswith('backbone.')}
    return sd


def _square(n: int) -> Optional[int]:
    r = int(round(math.sqrt(n)))
    return r if r * r == n else None


def resample_pos_embed(pe: torch.Tensor, num_prefix: int, new_grid: Tuple[int, int],
                       old_grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
    """Bicubic resampling of a ``(1, prefix + H*W, C)`` absolute position embedding."""
    if old_grid is None:
        s = _square(pe.shape[1] - num_prefix)
        if s is None:
            raise ValueError(f'cannot infer the grid of a position embedding of {pe.shape[1]} tokens')
        old_grid = (s, s)
    if tuple(old_grid) == tuple(new_grid):
        return pe
    return resample_abs_pos_embed(pe.float(), list(new_grid), list(old_grid),
                                  num_prefix_tokens=num_prefix).to(pe.dtype)


def resample_rel_pos_table(table: torch.Tensor, new_len: int) -> torch.Tensor:
    """Bicubic resampling of a ``((2w-1)^2, heads)`` relative position bias table to
    ``new_len = (2w'-1)^2`` rows."""
    old, heads = table.shape
    so, sn = _square(old), _square(new_len)
    if so is None or sn is None:
        raise ValueError(f'relative position tables must be square: {old} -> {new_len}')
    t = table.float().T.reshape(1, heads, so, so)
    t = F.interpolate(t, size=(sn, sn), mode='bicubic', align_corners=False)
    return t.reshape(heads, sn * sn).T.contiguous().to(table.dtype)


def adapt_state_dict(state_dict: Any, model: nn.Module) -> Tuple[Dict[str, torch.Tensor], Dict[str, List[str]]]:
    """Adapt ``state_dict`` (any wrapper) to ``model``; returns ``(state_dict, report)``.

    ``report`` lists ``dropped_head``, ``resized`` (``'key: old -> new'``) and ``mismatched`` keys
    (same name, incompatible shape, dropped).
    """
    sd = unwrap_state_dict(state_dict)
    target = model.state_dict()
    grids = getattr(model, 'pos_embed_grids', lambda: {})()
    out: Dict[str, torch.Tensor] = {}
    report: Dict[str, List[str]] = {'dropped_head': [], 'resized': [], 'mismatched': []}
    for k, v in sd.items():
        if k.endswith(DERIVED_BUFFERS):
            continue
        if k.startswith(HEAD_PREFIXES) and (k not in target or target[k].shape != v.shape):
            report['dropped_head'].append(k)
            continue
        if k in target and target[k].shape != v.shape:
            tshape = tuple(target[k].shape)
            try:
                if k in grids:
                    prefix, grid = grids[k]
                    v = resample_pos_embed(v, prefix, grid)
                elif k.endswith('relative_position_bias_table') and v.shape[1] == tshape[1]:
                    v = resample_rel_pos_table(v, tshape[0])
            except ValueError as e:
                _log.warning('%s: %s', k, e)
            if tuple(v.shape) != tshape:
                report['mismatched'].append(f'{k}: {tuple(sd[k].shape)} vs {tshape}')
                continue
            report['resized'].append(f'{k}: {tuple(sd[k].shape)} -> {tshape}')
        out[k] = v
    return out, report


def checkpoint_filter_fn(state_dict: Any, model: nn.Module) -> Dict[str, torch.Tensor]:
    """timm-style ``pretrained_filter_fn``."""
    return adapt_state_dict(state_dict, model)[0]


def load_checkpoint_file(path: str) -> Any:
    """``torch.load`` on CPU, weights-only (with mmengine's globals allowed when installed)."""
    compat.apply()  # (idempotent; importing compat has applied it)
    return torch.load(path, map_location='cpu', weights_only=True)


def load_checkpoint_into(model: nn.Module, checkpoint: Any, logger: Optional[Any] = None,
                         strict: bool = False) -> Dict[str, List[str]]:
    """Load a (path to a) classification checkpoint into ``model`` after :func:`adapt_state_dict`.

    Returns the report with ``missing`` (excluding the model's ``dense_only_prefixes``, which are
    listed as ``new_layers``) and ``unexpected`` keys added; logs it to ``logger`` (anything with
    ``.info``/``.warning``, e.g. an mmengine ``MMLogger``) or this module's logger.
    """
    log = logger or _log
    if isinstance(checkpoint, str):
        log.info(f'load checkpoint from {checkpoint}')
        checkpoint = load_checkpoint_file(checkpoint)
    sd, report = adapt_state_dict(checkpoint, model)
    result = model.load_state_dict(sd, strict=False)
    new_prefixes = tuple(getattr(model, 'dense_only_prefixes', ()))
    missing = [k for k in result.missing_keys if not k.endswith(DERIVED_BUFFERS)]
    report['new_layers'] = [k for k in missing if new_prefixes and k.startswith(new_prefixes)]
    report['missing'] = [k for k in missing if k not in report['new_layers']]
    report['unexpected'] = list(result.unexpected_keys)
    if report['resized']:
        log.info('resized from checkpoint: ' + ', '.join(report['resized']))
    if report['dropped_head']:
        log.info('dropped classifier keys: ' + ', '.join(report['dropped_head']))
    if report['new_layers']:
        log.info('new (randomly initialised) dense-prediction layers: ' + ', '.join(report['new_layers']))
    for kind in ('missing', 'unexpected', 'mismatched'):
        if report[kind]:
            log.warning(f'{kind} keys in checkpoint load: ' + ', '.join(report[kind]))
    if strict and (report['missing'] or report['unexpected'] or report['mismatched']):
        raise RuntimeError(f'strict checkpoint load failed: {report}')
    return report
