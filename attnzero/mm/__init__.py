"""OpenMMLab integration: ``custom_imports=dict(imports=['attnzero.mm'], allow_failed_imports=False)``.

Importing this package registers the backbones ``AttnZeroDeiT``, ``AttnZeroPVT``,
``AttnZeroPVTv2``, ``AttnZeroSwin`` and ``AttnZeroCSwin`` in the ``MODELS`` registry of mmengine
(root) and of every installed one of mmdet, mmseg and mmpretrain (each imported only if
installed), and applies :mod:`attnzero.compat` (torch >= 2.6 checkpoint loading).
"""
from __future__ import annotations

import importlib
import importlib.util
import warnings
from typing import Dict, List

try:
    import mmengine  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError('attnzero.mm needs the OpenMMLab stack (mmengine; mmdet / mmseg / '
                      'mmpretrain for their registries): install attnzero with the [mm] extra') from e

from attnzero import compat as _compat  # noqa: E402

if hasattr(_compat, 'apply'):
    _compat.apply()

from .backbones import (MM_BACKBONES, AttnZeroCSwin, AttnZeroDeiT, AttnZeroPVT,  # noqa: E402
                        AttnZeroPVTv2, AttnZeroSwin)
from .checkpoint import adapt_state_dict, load_checkpoint_into, load_pretrained  # noqa: E402

#: registries the backbones were registered in (package name -> True)
REGISTERED: Dict[str, bool] = {}
MM_PACKAGES = ('mmdet', 'mmseg', 'mmpretrain')


def _register(registry, where: str) -> None:
    for cls in MM_BACKBONES:
        registry.register_module(name=cls.__name__, module=cls, force=True)
    REGISTERED[where] = True


def register_backbones() -> List[str]:
    """(Re-)register the backbones; returns the registries used. Idempotent."""
    from mmengine.registry import MODELS as ROOT_MODELS

    _register(ROOT_MODELS, 'mmengine')
    for pkg in MM_PACKAGES:
        if importlib.util.find_spec(pkg) is None:
            continue
        try:
            registry = importlib.import_module(f'{pkg}.registry').MODELS
        except Exception as e:  # an installed but broken package must not hide the others
            warnings.warn(f'attnzero.mm: {pkg} is installed but its registry failed to import: {e!r}')
            continue
        _register(registry, pkg)
    return sorted(REGISTERED)


register_backbones()

__all__ = ['AttnZeroDeiT', 'AttnZeroPVT', 'AttnZeroPVTv2', 'AttnZeroSwin', 'AttnZeroCSwin',
           'MM_BACKBONES', 'REGISTERED', 'register_backbones', 'adapt_state_dict',
           'load_checkpoint_into', 'load_pretrained']
