"""OpenMMLab integration: ``custom_imports=dict(imports=['attnzero.mm'], allow_failed_imports=False)``.

Importing this package registers the backbones ``AttnZeroDeiT``, ``AttnZeroPVT``,
``AttnZeroPVTv2``, ``AttnZeroSwin``, ``AttnZeroCSwin`` and ``AttnZeroEfficientFormer``, the
classifier ``DynamicViTClassifier`` (:mod:`attnzero.mm.classifiers`) and the hook
``MetricsDumpHook``, and applies :mod:`attnzero.compat` (torch >= 2.6 checkpoint loading).

Registration: each class is registered once, by the decorator ``@MODELS.register_module()`` in
:mod:`attnzero.mm.backbones`, in mmengine's *root* registry ``mmengine.registry.MODELS``. The
``MODELS`` registries of mmdet, mmseg and mmpretrain are children of that root
(``Registry('model', parent=mmengine.registry.MODELS, ...)``), and ``Registry.get`` looks a name
that is not in a registry up in its parent, then the parent's parent: so
``mmdet.registry.MODELS.build(dict(type='AttnZeroPVT'))`` -- which is what a detector does for its
``backbone`` under ``default_scope='mmdet'``, and likewise for mmseg and mmpretrain -- finds the
class in the root. Nothing is registered in the child registries, nothing is forced, and this
package does not import mmdet, mmseg or mmpretrain. Use the plain names (``type='AttnZeroPVT'``;
``'mmengine.AttnZeroPVT'`` works too); a name with a child scope (``'mmdet.AttnZeroPVT'``) is only
looked up in that child and is not found.
"""
from __future__ import annotations

try:
    import mmengine  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the install
    raise ImportError('attnzero.mm needs the OpenMMLab stack (mmengine; mmdet / mmseg / '
                      'mmpretrain for their registries): install attnzero with the [mm] extra') from e

from attnzero import compat as _compat  # noqa: E402

if hasattr(_compat, 'apply'):
    _compat.apply()

from .backbones import (MM_BACKBONES, AttnZeroCSwin, AttnZeroDeiT,  # noqa: E402
                        AttnZeroEfficientFormer, AttnZeroPVT, AttnZeroPVTv2, AttnZeroSwin)
from .classifiers import DynamicViTClassifier  # noqa: E402
from .checkpoint import adapt_state_dict, load_checkpoint_into, load_pretrained  # noqa: E402
from .hooks import MetricsDumpHook  # noqa: E402

__all__ = ['AttnZeroDeiT', 'AttnZeroPVT', 'AttnZeroPVTv2', 'AttnZeroSwin', 'AttnZeroCSwin',
           'AttnZeroEfficientFormer', 'DynamicViTClassifier', 'MM_BACKBONES', 'MetricsDumpHook', 'adapt_state_dict', 'load_checkpoint_into',
           'load_pretrained']
