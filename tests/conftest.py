"""Shared pytest fixtures and helpers."""
from __future__ import annotations

import functools
import gc
import importlib.util

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: the OpenMMLab packages every ``mm`` test needs (mmcv with its compiled ops)
MM_STACK = ('mmengine', 'mmcv', 'mmdet', 'mmseg')


@functools.lru_cache(maxsize=None)
def has_mm_stack(*extra: str) -> bool:
    """True when the OpenMMLab stack is installed: mmengine, mmcv with its compiled ops, mmdet and
    mmseg, and the modules named in ``extra`` (e.g. ``'mmpretrain'``, ``'pycocotools'``).

    The one test helper for "is the stack there" (use it, or :data:`requires_mm`, instead of a
    per-file copy). It does not import ``attnzero.mm``: with the stack installed, a broken
    ``attnzero.mm`` must fail the tests, not skip them.
    """
    for name in MM_STACK + extra:
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
        # Only the youngest generation is collected: with the collector off, everything ``fn``
        # allocates stays in generation 0, so a cycle made by ``fn`` is found there, and the
        # (late in a full run, large) older generations are not traversed each time.
        found = None
        for _ in range(3):
            gc.collect(0)  # what the test allocated before: promoted (or freed), not counted
            fn()
            n = gc.collect(0)
            found = n if found is None else min(found, n)
            if found == 0:
                break
        return found

    yield count
    if enabled:
        gc.enable()


class MaxNumel(TorchDispatchMode):
    """Records the largest tensor produced by any aten op (``with MaxNumel() as m: ...; m.max``):
    how the kernel tests check that no ``N x N`` tensor is formed."""

    def __init__(self):
        super().__init__()
        self.max = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.max = max(self.max, t.numel())
        return out


def kill_search_when(config_file: str, run_dir: str, ready, timeout_s: float = 150.0) -> dict:
    """Run ``tools/search.py --preset tiny --config CONFIG_FILE`` in a subprocess and SIGKILL it as
    soon as ``ready(state)`` holds for its ``state.json`` (a dict; ``{}`` before the first
    checkpoint). Returns the state it left; fails if the search ends first or ``ready`` never
    holds within ``timeout_s``."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    def state() -> dict:
        try:
            with open(os.path.join(run_dir, 'state.json')) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(
        [sys.executable, os.path.join(root, 'tools', 'search.py'), '--preset', 'tiny', '--config', config_file,
         '--run-dir', run_dir, '--no-progress'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready(state()):
            assert proc.poll() is None, 'the search ended before it could be killed'
            assert time.monotonic() < deadline, f'not ready to be killed within {timeout_s} s'
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = state()
    assert before and not before['done'], 'killed too late: the run had finished'
    return before
