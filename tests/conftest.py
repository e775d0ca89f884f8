"""Shared pytest fixtures and helpers."""
from __future__ import annotations

import gc
import importlib.util

import pytest
import torch


def has_mm_stack() -> bool:
    """True when mmcv (with compiled ops), mmdet and mmseg are importable."""
    for name in ('mmengine', 'mmcv', 'mmdet', 'mmseg'):
        if importlib.util.find_spec(name) is None:
            return False
    try:
        import mmcv.ops  # noqa: F401
    except Exception:  # pragma: no cover - broken build
        return False
    return True


requires_mm = pytest.mark.skipif(not has_mm_stack(), reason='OpenMMLab stack not installed')


@pytest.fixture(autouse=True)
def _seed_everything():
    torch.manual_seed(0)
    yield


@pytest.fixture
def no_gc():
    """``count(fn)``: run ``fn`` with the cycle collector off and return how many unreachable
    objects the collector then finds (0: everything ``fn`` created was freed by reference counting)."""
    enabled = gc.isenabled()
    gc.disable()

    def count(fn) -> int:
        # the smallest of three tries: a cycle that ``fn`` creates shows in every try, while
        # garbage a background thread of an earlier test (Dask, onnxruntime, the compiler's
        # workers) happens to make during one try does not (seen once in a full-suite run)
        found = None
        for _ in range(3):
            gc.collect()
            fn()
            n = gc.collect()
            found = n if found is None else min(found, n)
            if found == 0:
                break
        return found

    yield count
    if enabled:
        gc.enable()
