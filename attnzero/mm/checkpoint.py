"""Loading classification checkpoints of the attnzero backbones into the OpenMMLab backbones.

The adaptation itself (unwrap, strip heads and ``backbone.`` prefixes, resample absolute position
embeddings and Swin relative-position tables) is shared with timm and lives in
:mod:`attnzero.models.checkpoint`; this module adds mmengine's checkpoint reading (local paths,
URLs, ``open-mmlab://`` ...) and logger.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from torch import nn

from attnzero.models.checkpoint import (adapt_state_dict, checkpoint_filter_fn,  # noqa: F401
                                        load_checkpoint_file, load_checkpoint_into,
                                        select_prefix, unwrap_state_dict)

__all__ = ['adapt_state_dict', 'checkpoint_filter_fn', 'load_checkpoint_into', 'unwrap_state_dict',
           'read_checkpoint', 'load_pretrained']


def read_checkpoint(path: str) -> Any:
    """Read a checkpoint with mmengine's loaders when available (they resolve URLs and the
    ``open-mmlab://``-style prefixes), else with ``torch.load(weights_only=True)``. (Importing
    :mod:`attnzero.mm` has applied :mod:`attnzero.compat`: mmengine's checkpoint globals load.)"""
    try:
        from mmengine.runner.checkpoint import CheckpointLoader
    except ImportError:  # pragma: no cover - mmengine missing
        return load_checkpoint_file(path)
    return CheckpointLoader.load_checkpoint(path, map_location='cpu')


def load_pretrained(model: nn.Module, checkpoint: str, prefix: Optional[str] = None,
                    logger: Optional[Any] = None) -> Dict[str, List[str]]:
    """``init_cfg=dict(type='Pretrained', checkpoint=..., prefix=...)`` for an attnzero backbone.

    ``prefix`` selects a sub-module of a bigger checkpoint (e.g. ``'backbone.'`` of a detector);
    without it a ``backbone.`` prefix is detected automatically.
    """
    if logger is None:
        try:
            from mmengine.logging import MMLogger
            logger = MMLogger.get_current_instance()
        except ImportError:  # pragma: no cover
            logger = None
    if logger is not None:
        logger.info(f'load {type(model).__name__} weights from {checkpoint}')
    ckpt = read_checkpoint(checkpoint)
    if prefix and prefix.rstrip('.') != 'backbone':  # 'backbone.' is stripped automatically
        ckpt = select_prefix(ckpt, prefix)
    return load_checkpoint_into(model, ckpt, logger=logger)
