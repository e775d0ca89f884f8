"""Make the OpenMMLab 2.x stack (mmengine 0.10.7, mmcv 2.1.0, mmdet 3.3.0, mmseg 1.2.2) behave on
torch >= 2.6 and numpy 2.

torch >= 2.6 loads checkpoints with ``weights_only=True`` by default. mmengine 0.10.7 calls
``torch.load`` without that argument, and its checkpoints carry a few non-tensor objects (the
message hub's :class:`~mmengine.logging.HistoryBuffer` and the numpy arrays and scalars inside it),
so ``Runner(resume=True)`` fails with ``Unsupported global: ...HistoryBuffer``.

The fix here keeps weights-only loading ON and allow-lists exactly those classes with
:func:`torch.serialization.add_safe_globals`. One more global needs care: a HistoryBuffer pickles
its registry of statistic methods (``HistoryBuffer.min`` ...) as ``getattr(HistoryBuffer, 'min')``,
i.e. through ``builtins.getattr``. Allowing the real ``getattr`` would let a crafted checkpoint
reach any attribute of any allowed object, so :func:`history_buffer_getattr` is registered under
that name instead: it resolves public statistic methods of HistoryBuffer and refuses everything
else. Anything else in a pickle (arbitrary callables, other classes) is still refused, as torch
intends.

Importing this module applies the patches (idempotently); ``attnzero.mm`` and the ``tools/``
entry points import it.
"""
from __future__ import annotations

import importlib
import pickle
from typing import Any, List

import numpy as np
import torch

__all__ = ['mmengine_checkpoint_safe_globals', 'history_buffer_getattr', 'apply', 'APPLIED']

APPLIED = False


def _numpy_safe_globals() -> List[Any]:
    """numpy objects that pickled arrays, dtypes and scalars reduce to (numpy 1.x and 2.x paths)."""
    out: List[Any] = [np.ndarray, np.dtype]
    for modname in ('numpy._core.multiarray', 'numpy.core.multiarray'):
        try:
            mod = importlib.import_module(modname)
        except ImportError:  # pragma: no cover - depends on the numpy major version
            continue
        out += [mod._reconstruct, mod.scalar]
        break
    # numpy 2 pickles dtypes through their concrete classes (numpy.dtypes.Float64DType, ...).
    for code in '?bBhHiIlLqQefdgFDG':
        out.append(type(np.dtype(code)))
    return out


def history_buffer_getattr(obj: Any, name: str, *default: Any) -> Any:
    """A ``getattr`` restricted to what mmengine checkpoints use: ``HistoryBuffer.<statistic>``.

    Registered for weights-only unpickling under the name ``builtins.getattr``; any other
    object or a private/dunder attribute is refused with :class:`pickle.UnpicklingError`.
    """
    from mmengine.logging.history_buffer import HistoryBuffer

    if obj is HistoryBuffer and isinstance(name, str) and not name.startswith('_'):
        attr = getattr(HistoryBuffer, name, None)
        if callable(attr):
            return attr
    raise pickle.UnpicklingError(
        f'attnzero.compat: refusing getattr({obj!r}, {name!r}) while loading a checkpoint; only '
        'public statistic methods of mmengine HistoryBuffer may be resolved this way')


def mmengine_checkpoint_safe_globals() -> List[Any]:
    """Every non-tensor global an mmengine 0.10.x training checkpoint contains."""
    out = _numpy_safe_globals()
    try:
        from mmengine.logging.history_buffer import HistoryBuffer
    except ImportError:  # mmengine not installed: nothing else to allow
        return out
    out += [HistoryBuffer, (history_buffer_getattr, 'builtins.getattr')]
    return out


def apply() -> None:
    """Allow-list the mmengine checkpoint globals for ``torch.load(weights_only=True)``."""
    global APPLIED
    if APPLIED:
        return
    if hasattr(torch.serialization, 'add_safe_globals'):
        torch.serialization.add_safe_globals(mmengine_checkpoint_safe_globals())
    APPLIED = True


apply()
