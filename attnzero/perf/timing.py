"""The timing harness of the benchmark tools (``tools/benchmark_attention.py``,
``benchmark_backbone.py``, ``benchmark_ops.py``): interleaved rounds of variants, cache flushing,
peak memory of one call, the machine description printed with every table, and markdown tables.

Method (see ``docs/benchmarks.md``): variants run round-robin with a rotating start, one sample is
a block of back-to-back calls (warm caches) or a single call after a cache flush (cold caches); the
median over rounds is reported. Peak memory on CPU is the resident-set high-water mark of one call
above the RSS before it (:mod:`attnzero.perf.runtime`), on CUDA ``max_memory_allocated``.
"""
from __future__ import annotations

import csv
import math
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import torch

from attnzero.io import loadavg

from .runtime import malloc_trim, proc_status_kib, reset_peak_rss, tune_malloc

__all__ = ['sync', 'cache_flusher', 'last_level_cache', 'interleaved', 'median', 'MALLOC_MODE',
           'setup_malloc', 'peak_memory_mib', 'machine_info', 'set_mem_limit', 'fmt',
           'md_table', 'write_csv', 'fit_exponent']


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def cache_flusher(device: torch.device, mib: float) -> Optional[Callable[[], None]]:
    """A function that evicts the caches (None if ``mib <= 0``): it reads and writes every element
    of a ``mib`` MiB buffer, which should be several times the last-level cache (the CPU's L3, or
    the GPU's L2 -- the cache clearing of ``triton.testing.do_bench``). A call timed right after it
    reads its inputs from memory whatever their size, so small and large N are timed from the same
    level of the memory hierarchy."""
    if mib <= 0:
        return None
    buf = torch.zeros(int(mib * 2 ** 18), dtype=torch.float32, device=device)

    def flush() -> None:
        buf.add_(1.0)
        sync(device)

    return flush


def last_level_cache() -> str:
    """Size of the CPU's largest cache as sysfs reports it (e.g. ``32768K``), or ``n/a``."""
    best = (0, 'n/a')
    base = Path('/sys/devices/system/cpu/cpu0/cache')
    for idx in sorted(base.glob('index*')) if base.exists() else []:
        try:
            level = int((idx / 'level').read_text())
            size = (idx / 'size').read_text().strip()
        except (OSError, ValueError):
            continue
        if level >= best[0]:
            best = (level, f'L{level} {size}')
    return best[1]


def interleaved(fns: Dict[str, Callable[[], object]], device: torch.device, rounds: int = 7,
                warmup: int = 1, min_time: float = 0.0, max_rounds: int = 50,
                block_ms: float = 0.0, warmup_ms: float = 0.0,
                flush: Optional[Callable[[], None]] = None,
                faults: Optional[Dict[str, List[float]]] = None,
                sequential: bool = False) -> Dict[str, List[float]]:
    """Times (ms per call) of every variant measured round-robin (the first variant rotates each
    round): at least ``rounds`` rounds and at least ``min_time`` seconds (at most ``max_rounds``).

    ``block_ms > 0``: one sample is a block of ``number`` back-to-back calls lasting about
    ``block_ms`` (``number`` fixed per variant from its warm-up time, as ``timeit`` does), divided
    by ``number``. Short kernels are then timed in steady state rather than each call after
    another variant has evicted the caches; every variant is timed the same way. Each variant is
    warmed up with ``warmup`` calls and then for at least ``warmup_ms`` (the heap of a fresh
    process needs a few hundred calls to stop growing: until then, calls page-fault).

    ``flush`` (see :func:`cache_flusher`): cold-cache timing -- every sample is one call made right
    after ``flush()`` (not timed); ``block_ms`` is then ignored. ``faults``: filled with the process's
    minor page faults per call of every sample (``getrusage``; the kernel zeroing pages that the
    allocator handed back and takes again).

    ``sequential``: each variant is warmed up and then timed for all its rounds before the next
    variant starts (``timeit``-style: a variant's calls follow its own calls, not another
    variant's); the default interleaves them."""
    if sequential:
        times: Dict[str, List[float]] = {}
        for n in fns:
            times.update(interleaved({n: fns[n]}, device, rounds=rounds, warmup=warmup, min_time=min_time,
                                     max_rounds=max_rounds, block_ms=block_ms, warmup_ms=warmup_ms,
                                     flush=flush, faults=faults))
        return times
    names = list(fns)
    number = {n: 1 for n in names}
    for n in names:
        t_begin = time.perf_counter()
        calls = 0
        while calls < max(warmup, 1) or (time.perf_counter() - t_begin) * 1e3 < warmup_ms:
            sync(device)
            t0 = time.perf_counter()
            fns[n]()
            sync(device)
            dt = (time.perf_counter() - t0) * 1e3
            calls += 1
        if block_ms > 0 and flush is None:
            number[n] = max(1, min(1000, int(block_ms / max(dt, 1e-3))))
    times = {n: [] for n in names}
    t_start = time.perf_counter()
    r = 0
    while r < rounds or (time.perf_counter() - t_start < min_time and r < max_rounds):
        shift = r % len(names)
        for n in names[shift:] + names[:shift]:
            f, m = fns[n], number[n]
            if flush is not None:
                flush()
            sync(device)
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            t0 = time.perf_counter()
            for _ in range(m):
                f()
            sync(device)
            times[n].append((time.perf_counter() - t0) * 1e3 / m)
            if faults is not None:
                faults.setdefault(n, []).append((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / m)
        r += 1
    return times


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float('nan')


#: how the process's malloc is set up (reported with every table)
MALLOC_MODE = 'glibc default'


def setup_malloc(default: bool) -> None:
    """Fixed glibc malloc thresholds (:func:`attnzero.perf.runtime.tune_malloc`) unless ``default``."""
    global MALLOC_MODE
    if default:
        MALLOC_MODE = 'glibc default (adaptive thresholds)'
    elif tune_malloc():
        MALLOC_MODE = 'tuned (attnzero.perf.runtime.tune_malloc: no mmap, 2 GiB trim threshold)'
    else:
        MALLOC_MODE = 'not glibc: unchanged'


def peak_memory_mib(fn: Callable[[], object], device: torch.device) -> float:
    """Peak memory (MiB) one call of ``fn`` adds on top of what exists (its inputs).

    CPU: the process's resident-set high-water mark is reset to the current RSS (``5`` written to
    ``/proc/self/clear_refs``, Linux >= 4.0; freed heap returned to the OS first with
    ``malloc_trim``), the call runs, and ``VmHWM - VmRSS(before)`` from ``/proc/self/status`` is
    reported: all memory the call touched at its peak, torch tensors and everything else. CUDA:
    ``max_memory_allocated`` minus ``memory_allocated`` before the call. NaN if unavailable."""
    if device.type == 'cuda':
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2 ** 20
    try:
        malloc_trim()
        reset_peak_rss()
        base = proc_status_kib('VmRSS')
    except (OSError, RuntimeError):
        return float('nan')
    fn()
    return (proc_status_kib('VmHWM') - base) / 1024


def machine_info(device: torch.device) -> Dict[str, str]:
    info = {'torch': torch.__version__, 'threads': str(torch.get_num_threads()),
            'cpu': platform.processor() or platform.machine(), 'cores': str(os.cpu_count()),
            'cpu capability': torch.backends.cpu.get_cpu_capability(),
            'last-level cache': last_level_cache(), 'malloc': MALLOC_MODE,
            'device': str(device), 'date': time.strftime('%Y-%m-%d %H:%M:%S'),
            'load_avg_start': loadavg()}
    if device.type == 'cuda':
        info['gpu'] = torch.cuda.get_device_name(device)
    return info


def set_mem_limit(gib: float) -> None:
    """Cap the address space (``RLIMIT_AS``) so a runaway cell fails inside this process instead of
    taking a shared machine down."""
    if gib and gib > 0:
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        lim = int(gib * 2 ** 30)
        if hard != resource.RLIM_INFINITY:
            lim = min(lim, hard)
        resource.setrlimit(resource.RLIMIT_AS, (lim, hard))


def fmt(x: object) -> str:
    if isinstance(x, float):
        if x != x:
            return '—'
        if x == 0:
            return '0'
        return f'{x:.3g}' if abs(x) < 1000 else f'{x:.0f}'
    return str(x)


def md_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    out += ['| ' + ' | '.join(fmt(x) for x in r) + ' |' for r in rows]
    return '\n'.join(out)


def write_csv(rows: Sequence[Dict[str, object]], path) -> None:
    """``rows`` as a csv file at ``path``; the columns are every key of the rows, in the order
    they first appear."""
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def fit_exponent(ns: Sequence[int], ts: Sequence[float], lo: int = 3136, hi: int = 50176) -> float:
    pts = [(math.log(n), math.log(t)) for n, t in zip(ns, ts) if lo <= n <= hi and t == t and t > 0]
    if len(pts) < 2:
        return float('nan')
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    return sum((x - mx) * (y - my) for x, y in pts) / sum((x - mx) ** 2 for x, _ in pts)
