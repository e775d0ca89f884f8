"""mmengine hooks of the package (registered in mmengine's root ``HOOKS``, found from every scope).

:class:`MetricsDumpHook` writes the metrics of every validation run to ``work_dir/val_metrics.json``
(atomically: a killed process leaves the previous file or the new one, never half of one), with the
epoch and iteration they belong to. :mod:`attnzero.transfer` reads the final one; any config can
use it::

    custom_hooks = [dict(type='MetricsDumpHook')]
"""
from __future__ import annotations

import json
import os.path as osp
from typing import Any, Dict, Optional

from mmengine.hooks import Hook
from mmengine.registry import HOOKS

from attnzero.io import atomic_write_text

__all__ = ['MetricsDumpHook', 'METRICS_FILE']

METRICS_FILE = 'val_metrics.json'


def _plain(v: Any) -> Any:
    if hasattr(v, 'item') and getattr(v, 'numel', lambda: 1)() == 1:
        return v.item()
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


@HOOKS.register_module()
class MetricsDumpHook(Hook):
    """After each validation epoch, write ``{'epoch', 'iter', 'max_epochs', 'max_iters',
    'metrics'}`` to ``work_dir/<filename>``."""

    priority = 'LOW'

    def __init__(self, filename: str = METRICS_FILE) -> None:
        self.filename = filename

    def after_val_epoch(self, runner, metrics: Optional[Dict[str, Any]] = None) -> None:
        if runner.rank != 0:
            return
        record = dict(epoch=runner.epoch, iter=runner.iter, max_epochs=runner.max_epochs,
                      max_iters=runner.max_iters,
                      metrics={k: _plain(v) for k, v in (metrics or {}).items()})
        atomic_write_text(osp.join(runner.work_dir, self.filename), json.dumps(record, indent=1) + '\n')
