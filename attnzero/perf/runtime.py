"""Process-level runtime settings that matter for CPU speed.

glibc ``malloc`` and large tensors
----------------------------------
PyTorch has no caching allocator on the CPU: every tensor is a ``malloc``/``free``. glibc serves
blocks above its *mmap threshold* with fresh ``mmap`` pages and returns free memory at the top of
the heap to the kernel once it exceeds its *trim threshold* (both adapt at run time: the mmap
threshold rises to the largest freed block, the trim threshold to twice that). As soon as a call
keeps two large temporaries of equal size alive at once, the two freed blocks exceed the trim
threshold together and are handed back to the kernel at the end of every call; the next call
touches fresh pages again: one page fault per 4 KiB, i.e. 784 faults and about 0.8 ms for one
``(1, 2, 12544, 32)`` float32 tensor on this project's 2-core machine -- more than the two matmuls
of a linear attention at that size (0.65 ms). Measured there (``tools/benchmark_attention.py``):
Trial-105 took 541 faults per call with the default settings and none after
:func:`tune_malloc`, and a plain ``a = k * 2; b = k * 3`` pattern 1536 faults per call.

The trade-off: freed memory stays with the process, and with every block on the heap a workload
whose tensor sizes keep growing fragments it. A sweep over growing sizes (batch 8, up to 0.5 GB
per tensor) pushed the address space of the benchmark process past a 16 GiB ``RLIMIT_AS`` here,
with the resident set far lower (observed while the genome executors still kept each call's output
alive until the next garbage collection, fixed since; not re-measured). Use it for steady-state work (the same shapes call after call,
e.g. inference at a fixed resolution), and call :func:`malloc_trim` between phases.

This is a property of the process, not of the attention code, and the usual cure is process-wide:
fixed thresholds (this function, or the environment variables ``MALLOC_MMAP_MAX_=0`` and
``MALLOC_TRIM_THRESHOLD_=2147483647``) or a caching allocator such as jemalloc or tcmalloc through
``LD_PRELOAD`` (PyTorch's CPU performance-tuning guide recommends the latter). attnzero never changes
it on import; the benchmark scripts call :func:`tune_malloc` (and say so in their output) unless
run with ``--default-malloc``.
"""
from __future__ import annotations

import ctypes
import ctypes.util
from typing import Optional

__all__ = ['tune_malloc', 'malloc_trim']

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4


def _libc() -> Optional[ctypes.CDLL]:
    name = ctypes.util.find_library('c') or 'libc.so.6'
    try:
        lib = ctypes.CDLL(name)
    except OSError:
        return None
    return lib if hasattr(lib, 'mallopt') else None


def tune_malloc(trim_threshold: int = 2 ** 31 - 1) -> bool:
    """Make glibc keep freed memory for reuse in this process (see the module docstring).

    All blocks come from the heap (``M_MMAP_MAX = 0``: glibc's mmap threshold is capped at 32 MiB,
    below one ``(8, 2, 50176, 32)`` tensor), and up to ``trim_threshold`` bytes of free heap are
    kept instead of being returned to the kernel after every call. Returns ``False`` (and changes
    nothing) where the C library has no ``mallopt`` (musl, macOS, Windows). :func:`malloc_trim`
    still returns free memory on demand.
    """
    if not 0 < trim_threshold < 2 ** 31:
        raise ValueError(f'trim_threshold={trim_threshold} must be in (0, 2**31) bytes')
    lib = _libc()
    if lib is None:
        return False
    ok = lib.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(trim_threshold))
    return bool(lib.mallopt(_M_MMAP_MAX, ctypes.c_int(0)) and ok)


def malloc_trim() -> bool:
    """Return free heap memory to the kernel now (glibc ``malloc_trim(0)``); ``False`` if absent."""
    lib = _libc()
    if lib is None or not hasattr(lib, 'malloc_trim'):
        return False
    lib.malloc_trim(0)
    return True


def proc_status_kib(field: str) -> int:
    """A field of ``/proc/self/status`` in KiB (``VmRSS``, ``VmHWM`` ...); Linux only."""
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'{field} not in /proc/self/status')


def reset_peak_rss() -> None:
    """Reset the process's resident-set high-water mark (``VmHWM``) to the current RSS
    (``5`` written to ``/proc/self/clear_refs``, Linux >= 4.0); raises OSError elsewhere."""
    with open('/proc/self/clear_refs', 'w') as f:
        f.write('5')
