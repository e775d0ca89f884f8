"""Benchmark the attention zoo and AttnZero genomes: latency (forward, forward+backward), peak
memory and the matmul floor versus the number of tokens N.

    python tools/benchmark_attention.py --out docs/benchmarks/attention_cpu      # the full sweep
    python tools/benchmark_attention.py --acceptance --out docs/benchmarks/acceptance_cpu
    python tools/benchmark_attention.py --genome 'i3n303:elu;...' --N 3136 12544 --hd 2x32
    python tools/benchmark_attention.py --quick                                   # tiny (tests)

What is timed: the attention *kernel* on per-head tensors ``(B, heads, N, d)`` (the q/k/v and
output projections are the same for every attention and are left out), built by
``build_kernel(name, d, heads)`` with its defaults (its depthwise conv on V included where it has
one: ``attnzero``, ``agent``, ``focused``), on an ``sqrt(N) x sqrt(N)`` grid. ``attnzero_fn`` is the
compiled genome alone (``Genome.compile()``, the function the ``attnzero`` kernel calls -- the
default genome, Trial-105); ``--genome`` adds more genome functions.

Matmul floors (measured in the same interleaved rounds): ``floor_dd`` = ``K^T V`` then
``Q (K^T V)`` (the two matmuls of linear / relu_linear / focused / AttnZero genomes);
``floor_hydra`` = ``sum_n K*V`` then ``Q * kv`` (Hydra has no matmul: its two reductions);
``floor_agent`` = the four matmuls of agent attention with 49 agents.

Method: float32 on CPU (float16 and bfloat16 on CUDA when present), ``torch.set_num_threads``
(``--threads``, default 2). In each cell the variants run round-robin (rotating start) for
``--rounds`` rounds after one warm-up; the median is reported. One sample is a block of
back-to-back calls (warm caches: at small N the inputs stay in the caches from call to call), or with
``--cold-cache MIB`` a single call made right after a buffer larger than the last-level cache has
been read and written (every N then starts from memory; the fitted exponent then measures the growth
of the work, not the step from cache-resident to memory-resident sizes). Peak memory: on CPU, one
call in the same process after resetting the kernel's RSS high-water mark (``/proc/self/clear_refs``):
``VmHWM`` after the call minus ``VmRSS`` before it, i.e. the memory added on top of the inputs
(``tracemalloc`` does not see torch's allocations); on CUDA ``max_memory_allocated``. Cells predicted (from the previous N, scaled by N for
linear and N^2 for softmax) to exceed ``--max-ms`` per call or ``--max-mem-gib`` are skipped and
listed as skipped. The exponent of N is the least-squares slope of log(time) vs log(N) over the
measured N in [3136, 50176].
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F

from attnzero.attention import build_kernel
from attnzero.attention.base import ATTENTIONS
from attnzero.attention.linear import linear_attention_apply, linear_attention_state
from attnzero.io import loadavg, tool_command
from attnzero.space import TRIAL_105, Genome
from attnzero.space import fast as fast_executor

from .timing import (cache_flusher, fit_exponent, fmt, interleaved, machine_info, md_table, median,
                     peak_memory_mib, set_mem_limit, setup_malloc, write_csv)

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16, 'fp64': torch.float64}
ZOO = ('softmax', 'linear', 'relu_linear', 'focused', 'hydra', 'agent', 'attnzero', 'lsh', 'sepvit')
LINEAR_FLOOR = {'linear': 'floor_dd', 'relu_linear': 'floor_dd', 'focused': 'floor_dd',
                'attnzero': 'floor_dd', 'attnzero_fn': 'floor_dd', 'hydra': 'floor_hydra',
                'agent': 'floor_agent'}
QUADRATIC = {'softmax'}


# ------------------------------------------------------------------------------------------------
# floors
# ------------------------------------------------------------------------------------------------
def floor_dd(q, k, v):
    """The two matmuls of a d x d linear attention: ``K^T V`` then ``Q (K^T V)``."""
    return torch.matmul(q, torch.matmul(k.transpose(-1, -2), v))


def floor_hydra(q, k, v):
    return q * (k * v).sum(dim=-2, keepdim=True)


def make_floor_agent(q):
    a = torch.randn(q.shape[0], q.shape[1], 49, q.shape[-1], dtype=q.dtype, device=q.device)

    def floor_agent(q, k, v):
        av = torch.matmul(torch.matmul(a, k.transpose(-1, -2)), v)
        return torch.matmul(torch.matmul(q, a.transpose(-1, -2)), av)
    return floor_agent


def eager_elu_linear(q, k, v, eps: float = 1e-6):
    """Plain ELU+1 linear attention in eager torch (the issue's baseline): the feature map is
    ``F.elu(x) + 1`` (not the faster :func:`attnzero.space.ops.elu_plus_one` of the ``linear``
    kernel), the reductions are those of :mod:`attnzero.attention.linear`."""
    kv, ksum = linear_attention_state(F.elu(k) + 1.0, v)
    return linear_attention_apply(F.elu(q) + 1.0, kv, ksum, eps).to(q.dtype)


# ------------------------------------------------------------------------------------------------
# the sweep
# ------------------------------------------------------------------------------------------------
def build_variants(names: Sequence[str], genomes: Sequence[str], h: int, d: int, hw, dtype, device,
                   q) -> Tuple[Dict[str, Callable], Dict[str, bool]]:
    """``name -> f(q, k, v)`` and ``name -> is_linear``."""
    fns: Dict[str, Callable] = {}
    linear: Dict[str, bool] = {}
    for n in names:
        if n == 'attnzero_fn':
            kern = build_kernel('attnzero', d, h)
            fns[n] = kern.fn
            linear[n] = True
            continue
        kern = build_kernel(n, d, h).to(device=device, dtype=dtype).eval()
        fns[n] = (lambda kern: lambda q, k, v: kern(q, k, v, hw))(kern)
        linear[n] = bool(kern.linear) and n not in QUADRATIC  # sub-quadratic lsh/sepvit: predicted as N^2
    for text in genomes:
        g = Genome.parse(text)
        label = f'genome:{g.hash[:8]}'
        fns[label] = g.compile()
        linear[label] = g.complexity().kind == 'linear'
        LINEAR_FLOOR.setdefault(label, 'floor_dd')
    floors = {LINEAR_FLOOR[n] for n in fns if n in LINEAR_FLOOR}
    for fl in sorted(floors):
        fns[fl] = {'floor_dd': floor_dd, 'floor_hydra': floor_hydra}.get(fl) or make_floor_agent(q)
        linear[fl] = True
    return fns, linear


def run_sweep(args, device: torch.device, dtype: torch.dtype) -> List[dict]:
    names = list(args.attn)
    if 'attnzero' in names and 'attnzero_fn' not in names and not args.no_fn:
        names.insert(names.index('attnzero') + 1, 'attnzero_fn')
    rows: List[dict] = []
    last: Dict[Tuple, Tuple[int, float, float]] = {}  # (variant, mode, hd, B) -> (N, ms, MiB)
    for hd in args.hd:
        h, d = (int(x) for x in hd.split('x'))
        for B in args.batch:
            for N in sorted(args.N):
                side = math.isqrt(N)
                if side * side != N:
                    raise SystemExit(f'N={N} is not a square grid')
                gen = torch.Generator(device='cpu').manual_seed(0)
                q, k, v = (torch.randn(B, h, N, d, generator=gen).to(device=device, dtype=dtype)
                           for _ in range(3))
                fns, lin = build_variants(names, args.genome, h, d, (side, side), dtype, device, q)
                for mode in args.modes:
                    active: Dict[str, Callable] = {}
                    # fwd+bwd: one set of grad-requiring leaves shared by every variant (each call
                    # resets their .grad), so memory does not grow with the number of variants
                    leaves = (tuple(x.detach().clone().requires_grad_() for x in (q, k, v))
                              if mode != 'fwd' else None)
                    for n, f in fns.items():
                        key = (n, mode, hd, B)
                        skip = ''
                        if key in last:
                            n0, ms0, mib0 = last[key]
                            p = 1 if lin[n] else 2
                            if ms0 == ms0 and ms0 * (N / n0) ** p > args.max_ms:
                                skip = f'predicted {ms0 * (N / n0) ** p / 1e3:.0f} s per call > --max-ms'
                            elif mib0 == mib0 and mib0 * (N / n0) ** p > args.max_mem_gib * 1024:
                                skip = f'predicted {mib0 * (N / n0) ** p / 1024:.1f} GiB > --max-mem-gib'
                            elif ms0 != ms0:
                                skip = 'skipped at a smaller N'
                        if skip:
                            rows.append(dict(attn=n, mode=mode, hd=hd, heads=h, d=d, B=B, N=N,
                                             ms=float('nan'), ms_min=float('nan'), mib=float('nan'),
                                             skipped=skip))
                            last[key] = (N, float('nan'), float('nan'))
                            continue
                        if mode == 'fwd':
                            active[n] = (lambda f: lambda: _fwd(f, q, k, v))(f)
                        else:
                            active[n] = (lambda f: lambda: _fwdbwd(f, *leaves))(f)
                    load0 = loadavg()
                    faults: Dict[str, List[float]] = {}
                    try:
                        times = interleaved(active, device, rounds=args.rounds, min_time=args.min_time,
                                            block_ms=args.block_ms, warmup_ms=args.warmup_ms,
                                            flush=args.flush, faults=faults)
                    except (RuntimeError, MemoryError) as e:  # allocation refused (RLIMIT_AS): record it
                        msg = f'failed: {str(e).splitlines()[0][:100]}'
                        for n in active:
                            rows.append(dict(attn=n, mode=mode, hd=hd, heads=h, d=d, B=B, N=N,
                                             ms=float('nan'), ms_min=float('nan'), mib=float('nan'),
                                             skipped=msg))
                            last[(n, mode, hd, B)] = (N, float('nan'), float('nan'))
                        continue
                    for n, f in active.items():
                        mib = float('nan') if args.no_memory else peak_memory_mib(f, device)
                        ms = median(times[n])
                        last[(n, mode, hd, B)] = (N, ms, mib)
                        rows.append(dict(attn=n, mode=mode, hd=hd, heads=h, d=d, B=B, N=N, ms=ms,
                                         ms_min=min(times[n]), reps=len(times[n]), mib=mib,
                                         faults_per_call=median(faults.get(n, [])),
                                         skipped='', load=load0,
                                         floor=LINEAR_FLOOR.get(n, '')))
                    if args.partial:
                        write_csv(rows, Path(args.partial))
                    if args.verbose:
                        print(f'{hd} B={B} N={N} {mode}: ' + ', '.join(
                            f'{n} {median(times[n]):.2f}' for n in active), f'[load {load0}]', flush=True)
                del q, k, v, fns, leaves, active
    return rows


def load_rows(path: str) -> List[dict]:
    """Rows of a sweep csv (e.g. the ``.partial.csv`` of an interrupted run), typed as the sweep makes
    them."""
    ints, floats = ('heads', 'd', 'B', 'N', 'reps'), ('ms', 'ms_min', 'mib', 'faults_per_call')
    rows = []
    with open(path, newline='') as f:
        for r in csv.DictReader(f):
            for k in ints:
                if r.get(k) not in (None, ''):
                    r[k] = int(float(r[k]))
            for k in floats:
                r[k] = float(r[k]) if r.get(k) not in (None, '') else float('nan')
            r['skipped'] = r.get('skipped') or ''
            rows.append(r)
    if not rows:
        raise SystemExit(f'{path}: no rows')
    return rows


def _fwd(f, q, k, v):
    with torch.no_grad():
        return f(q, k, v)


def _fwdbwd(f, q, k, v):
    for x in (q, k, v):
        x.grad = None
    out = f(q, k, v)
    out.float().sum().backward()


def summarize(rows: List[dict], args, info: Dict[str, str]) -> str:
    lines = [f'# Attention benchmark ({info["device"]}, {args.dtype})', '',
             'Machine: ' + ', '.join(f'{k} {v}' for k, v in info.items()), '',
             f'Command: `{args.command}`', '']
    variants = list(dict.fromkeys(r['attn'] for r in rows))
    for mode in args.modes:
        for hd in args.hd:
            for B in args.batch:
                sel = [r for r in rows if r['mode'] == mode and r['hd'] == hd and r['B'] == B]
                if not sel:
                    continue
                Ns = sorted({r['N'] for r in sel})
                lines += ['', '']
                table = []
                for n in variants:
                    cells = []
                    for N in Ns:
                        r = next((r for r in sel if r['attn'] == n and r['N'] == N), None)
                        if r is None:
                            cells.append('')
                        elif r['skipped']:
                            cells.append('skipped')
                        else:
                            cells.append(f'{fmt(r["ms"])} / {fmt(r["ms_min"])} ({fmt(r["mib"])})')
                    ns_ = [r['N'] for r in sel if r['attn'] == n]
                    ex = fit_exponent(ns_, [r['ms'] for r in sel if r['attn'] == n])
                    ex_min = fit_exponent(ns_, [r.get('ms_min', float('nan')) for r in sel if r['attn'] == n])
                    table.append([n] + cells + [fmt(ex), fmt(ex_min)])
                lines += [f'## {mode}, heads×dim {hd}, batch {B}: median / min ms (peak MiB added)', '']
                lines.pop(-3)
                lines.pop(-3)
                lines += [md_table(['attention'] + [f'N={N}' for N in Ns] + ['exponent (median)',
                                                                              'exponent (min)'], table), '']
                ratio_rows = []
                for n in variants:
                    fl = LINEAR_FLOOR.get(n)
                    if not fl:
                        continue
                    cells = []
                    for N in Ns:
                        a = next((r for r in sel if r['attn'] == n and r['N'] == N), None)
                        b = next((r for r in sel if r['attn'] == fl and r['N'] == N), None)
                        cells.append(a['ms'] / b['ms'] if a and b and not a['skipped'] and not b['skipped']
                                     else float('nan'))
                    ratio_rows.append([f'{n} / {fl}'] + cells)
                if ratio_rows:
                    lines += ['Ratio to its matmul floor:', '',
                              md_table(['attention'] + [f'N={N}' for N in Ns], ratio_rows), '']
    skipped = [r for r in rows if r['skipped']]
    if skipped:
        lines += ['## Skipped cells', '']
        lines += [f'- {r["attn"]} {r["mode"]} {r["hd"]} B={r["B"]} N={r["N"]}: {r["skipped"]}'
                  for r in skipped]
        lines.append('')
    faulting = [r for r in rows if not r['skipped'] and (r.get('faults_per_call') or 0) >= 1000]
    if faulting:
        lines += ['## Cells that page-fault', '',
                  'Median minor page faults per call in the timed rounds (>= 1000, i.e. >= 4 MiB of '
                  'memory the kernel had to map and zero again on every call):', '']
        lines += [f'- {r["attn"]} {r["mode"]} {r["hd"]} B={r["B"]} N={r["N"]}: {r["faults_per_call"]:.0f} '
                  f'({fmt(r["ms"])} ms)' for r in faulting]
        lines.append('')
    for (lo, hi), stat, label in (((3136, 50176), 'ms', 'median'), ((3136, 50176), 'ms_min', 'min'),
                                  ((12544, 50176), 'ms', 'median')):
        lines += [f'## Fitted exponent of N ({lo}..{hi}), fwd, from the {label} times', '']
        if lo == 12544:
            lines += ['Both ends beyond a core\'s L2 cache (one head of one sample at N = 12544 is 1.6-3.2 MB '
                      'in float32; at batch 8 every input exceeds a 32 MB L3 as well): closer to the growth '
                      'of the cost itself than the 3136..50176 fit, which includes the step from cache- '
                      'to memory-resident sizes.', '']
        ex_rows = []
        for n in variants:
            cells = []
            for hd in args.hd:
                for B in args.batch:
                    sel = [r for r in rows if r['mode'] == 'fwd' and r['hd'] == hd and r['B'] == B
                           and r['attn'] == n]
                    cells.append(fit_exponent([r['N'] for r in sel], [r.get(stat, float('nan')) for r in sel],
                                              lo, hi))
            ex_rows.append([n] + cells)
        lines += [md_table(['attention'] + [f'{hd} B={B}' for hd in args.hd for B in args.batch], ex_rows), '']
    lines += [f'Load average at the end: {loadavg()}', '']
    return '\n'.join(lines)


def plot(rows: List[dict], args, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    combos = [(hd, B) for hd in args.hd for B in args.batch]
    fig, axes = plt.subplots(len(args.modes), len(combos), figsize=(4.2 * len(combos), 3.8 * len(args.modes)),
                             squeeze=False)
    variants = list(dict.fromkeys(r['attn'] for r in rows))
    for i, mode in enumerate(args.modes):
        for j, (hd, B) in enumerate(combos):
            ax = axes[i][j]
            for n in variants:
                sel = sorted((r for r in rows if r['attn'] == n and r['mode'] == mode and r['hd'] == hd
                              and r['B'] == B and not r['skipped']), key=lambda r: r['N'])
                if sel:
                    ax.plot([r['N'] for r in sel], [r['ms'] for r in sel], marker='o', ms=3, label=n,
                            linestyle='--' if n.startswith('floor') else '-')
            ax.set_xscale('log')
            ax.set_yscale('log')
            ax.set_title(f'{mode}, {hd}, B={B}', fontsize=9)
            ax.set_xlabel('N tokens')
            ax.set_ylabel('ms (median)')
            ax.grid(True, which='both', alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ------------------------------------------------------------------------------------------------
# acceptance table (issue 8)
# ------------------------------------------------------------------------------------------------
ACCEPT_CELLS = ((12544, 2, 32, 1), (12544, 2, 32, 8), (12544, 5, 64, 1),
                (50176, 2, 32, 1), (50176, 2, 32, 8), (50176, 5, 64, 1))


def run_acceptance(args, device: torch.device, dtype: torch.dtype) -> Tuple[List[dict], str]:
    ref = TRIAL_105.compile(fast=False)
    ind = TRIAL_105.compile(backend='inductor') if args.inductor else None
    first_call_s: Dict[Tuple[int, int, int, int], float] = {}
    rows = []
    for N, h, d, B in args.cells:
        side = math.isqrt(N)
        gen = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(B, h, N, d, generator=gen).to(device=device, dtype=dtype) for _ in range(3))
        kern = build_kernel('attnzero', d, h).to(device=device, dtype=dtype).eval()
        assert kern.genome == TRIAL_105 and kern.fn.fast and kern.fn.backend == 'eager'
        fns = {'trial105': kern.fn,  # the compiled program the attention module calls
               'floor': floor_dd, 'elu_linear_eager': eager_elu_linear,
               'trial105_module': lambda q, k, v: kern(q, k, v, (side, side))}
        if args.reference:
            fns['trial105_reference'] = ref
        if ind is not None:
            t_first = time.perf_counter()
            with torch.no_grad():
                ind(q, k, v)  # compile outside the timing
            first_call_s[(N, h, d, B)] = time.perf_counter() - t_first
            fns['trial105_inductor'] = ind
        if N <= args.sdpa_max_n:
            fns['sdpa'] = lambda q, k, v: F.scaled_dot_product_attention(q, k, v)
        load0 = loadavg()
        times = interleaved({n: (lambda f: lambda: _fwd(f, q, k, v))(f) for n, f in fns.items()}, device,
                            rounds=args.rounds, min_time=args.min_time, warmup=2, block_ms=args.block_ms,
                            warmup_ms=args.warmup_ms, flush=args.flush, sequential=args.sequential)
        med = {n: median(t) for n, t in times.items()}
        mn = {n: min(t) for n, t in times.items()}
        row = dict(N=N, heads=h, d=d, B=B, load_start=load0, load_end=loadavg(),
                   rounds=len(times['floor']), **{f'{n}_ms': m for n, m in med.items()},
                   **{f'{n}_min_ms': m for n, m in mn.items()})
        def meets(t: float, st: Dict[str, float]) -> bool:
            """The issue's acceptance for a Trial-105 time ``t`` in this cell."""
            sdpa_speedup = st['sdpa'] / t if 'sdpa' in st else float('nan')
            return bool(t / st['floor'] <= 2.5 and t / st['elu_linear_eager'] <= 1.0
                        and (N != 12544 or sdpa_speedup >= 50))

        for tag, st in (('', med), ('_min', mn)):
            row['ratio_floor' + tag] = st['trial105'] / st['floor']
            row['ratio_elu' + tag] = st['trial105'] / st['elu_linear_eager']
            row['sdpa_speedup' + tag] = st['sdpa'] / st['trial105'] if 'sdpa' in st else float('nan')
            row['pass' + tag] = meets(st['trial105'], st)
            if 'trial105_inductor' in st:
                row['ratio_floor_inductor' + tag] = st['trial105_inductor'] / st['floor']
                row['pass_inductor' + tag] = meets(st['trial105_inductor'], st)
        rows.append(row)
        if args.verbose:
            print(json.dumps(row), flush=True)
        del q, k, v
    header = ['N', 'heads×dim', 'B', 'Trial-105 ms', 'floor ms', 'ratio (≤2.5)', 'ELU+1 eager ms',
              'T105/ELU (≤1)', 'SDPA ms', 'SDPA/T105 (≥50)', 'module+DWC ms']
    if args.reference:
        header.append('reference evaluator ms')
    if args.inductor:
        header += ['inductor ms', 'inductor ratio (≤2.5)']
    header += ['load avg (start → end)', 'pass']
    if args.inductor:
        header.append('pass (inductor)')
    header_min = ['N', 'heads×dim', 'B', 'Trial-105 ms', 'floor ms', 'ratio (≤2.5)', 'ELU+1 eager ms',
                  'T105/ELU (≤1)', 'SDPA ms', 'SDPA/T105 (≥50)', 'module+DWC ms', 'pass']
    if args.inductor:
        header_min += ['inductor ms', 'inductor ratio (≤2.5)', 'pass (inductor)']
    table = []
    for r in rows:
        line = [r['N'], f'{r["heads"]}×{r["d"]}', r['B'], r['trial105_ms'], r['floor_ms'], r['ratio_floor'],
                r['elu_linear_eager_ms'], r['ratio_elu'], r.get('sdpa_ms', float('nan')), r['sdpa_speedup'],
                r['trial105_module_ms']]
        if args.reference:
            line.append(r['trial105_reference_ms'])
        if args.inductor:
            line += [r['trial105_inductor_ms'], r['ratio_floor_inductor']]
        line += [f'{r["load_start"]} → {r["load_end"]}', 'yes' if r['pass'] else 'NO']
        if args.inductor:
            line.append('yes' if r['pass_inductor'] else 'NO')
        table.append(line)
    table_min = [[r['N'], f'{r["heads"]}×{r["d"]}', r['B'], r['trial105_min_ms'], r['floor_min_ms'],
                  r['ratio_floor_min'], r['elu_linear_eager_min_ms'], r['ratio_elu_min'],
                  r.get('sdpa_min_ms', float('nan')), r['sdpa_speedup_min'], r['trial105_module_min_ms'],
                  'yes' if r['pass_min'] else 'NO']
                 + ([r['trial105_inductor_min_ms'], r['ratio_floor_inductor_min'],
                     'yes' if r['pass_inductor_min'] else 'NO'] if args.inductor else [])
                 for r in rows]
    note = ''
    if args.inductor:
        note = ('\n\nFirst call of the inductor-compiled Trial-105 per cell (compilation or recompilation, '
                'outside the timing): ' + ', '.join(f'{N}/{h}×{d}/B{B}: {s:.1f} s'
                                                    for (N, h, d, B), s in first_call_s.items()))
    text = (('Median of the rounds (each variant timed in a row):\n\n' if args.sequential
             else 'Median of the interleaved rounds:\n\n') + md_table(header, table)
            + '\n\nMinimum of the same rounds (contention on a shared machine only adds time, so the '
              'minimum estimates the uncontended latency):\n\n' + md_table(header_min, table_min) + note)
    return rows, text


# ------------------------------------------------------------------------------------------------
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--attn', nargs='+', default=None, help=f'kernels (default: {" ".join(ZOO)})')
    p.add_argument('--genome', nargs='*', default=[], help='extra genomes (canonical text) timed as functions')
    p.add_argument('--no-fn', action='store_true', help='do not add attnzero_fn (the genome function alone)')
    p.add_argument('--N', nargs='+', type=int, default=[196, 784, 3136, 12544, 50176])
    p.add_argument('--hd', nargs='+', default=['1x64', '2x32', '5x64'], help='heads x dim')
    p.add_argument('--batch', nargs='+', type=int, default=[1, 8])
    p.add_argument('--modes', nargs='+', default=['fwd', 'fwdbwd'], choices=['fwd', 'fwdbwd'])
    p.add_argument('--dtype', default=None, choices=sorted(DTYPES),
                   help='default fp32 on CPU; on CUDA fp16 (run again with bf16)')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--rounds', type=int, default=5)
    p.add_argument('--min-time', type=float, default=0.5, help='seconds per cell at least (more rounds)')
    p.add_argument('--block-ms', type=float, default=50.0,
                   help='one timing sample = back-to-back calls lasting about this long (0: single calls)')
    p.add_argument('--warmup-ms', type=float, default=500.0, help='warm-up time per variant and cell')
    p.add_argument('--cold-cache', type=float, default=0.0, metavar='MIB',
                   help='cold-cache timing: before every timed call, read and write a buffer of this '
                        'many MiB (several times the last-level cache; 0: warm, back-to-back blocks)')
    p.add_argument('--default-malloc', action='store_true',
                   help="keep glibc's adaptive malloc thresholds (default: attnzero.perf.runtime.tune_malloc)")
    p.add_argument('--no-scratch', action='store_true',
                   help='turn the fast executor\'s scratch pool off (attnzero.space.fast.SCRATCH_LIMIT_BYTES = 0)')
    p.add_argument('--max-ms', type=float, default=4000.0, help='skip cells predicted slower per call')
    p.add_argument('--max-mem-gib', type=float, default=6.0, help='skip cells predicted to need more')
    p.add_argument('--mem-limit-gib', type=float, default=16.0,
                   help='RLIMIT_AS (virtual address space, > resident memory) of this process (0: none)')
    p.add_argument('--no-memory', action='store_true')
    p.add_argument('--out', default=None, help='write OUT.csv, OUT.md (and OUT.png for the sweep)')
    p.add_argument('--quick', action='store_true', help='tiny setting (tests)')
    p.add_argument('--summarize-csv', default=None,
                   help='write the tables and plot of an existing sweep csv (e.g. an interrupted run\'s '
                        '.partial.csv) instead of running; give the same --N/--hd/--batch/--modes')
    p.add_argument('--acceptance', action='store_true', help='the issue-8 acceptance table for Trial-105')
    p.add_argument('--cells', nargs='+', default=None, help='acceptance cells N:heads:d:B')
    p.add_argument('--sdpa-max-n', type=int, default=12544, help='acceptance: SDPA only up to this N')
    p.add_argument('--inductor', action='store_true', help='acceptance: also Trial-105 with backend=inductor')
    p.add_argument('--sequential', action='store_true',
                   help='acceptance: time each variant for all its rounds before the next one (its calls '
                        'follow its own calls) instead of interleaving the variants round by round')
    p.add_argument('--reference', action='store_true', help='acceptance: also the reference evaluator')
    p.add_argument('-v', '--verbose', action='store_true')
    args = p.parse_args(argv)
    args.command = tool_command('benchmark_attention', argv)
    device = torch.device(args.device)
    args.dtype = args.dtype or ('fp16' if device.type == 'cuda' else 'fp32')
    dtype = DTYPES[args.dtype]
    torch.set_num_threads(args.threads)
    if device.type == 'cpu':
        set_mem_limit(args.mem_limit_gib)
    setup_malloc(args.default_malloc)
    args.attn = args.attn or list(ZOO)
    unknown = [a for a in args.attn if a not in ATTENTIONS and a != 'attnzero_fn']
    if unknown:  # (importing attnzero.attention registered the whole zoo)
        p.error(f'unknown attention(s) {unknown}; known: {sorted(ATTENTIONS)}')
    if args.quick:  # tiny defaults (explicit --N / --hd / --batch are kept)
        if args.N == p.get_default('N'):
            args.N = [196, 784]
        if args.hd == p.get_default('hd'):
            args.hd = ['1x64', '2x32']
        if args.batch == p.get_default('batch'):
            args.batch = [1]
        args.rounds, args.min_time, args.block_ms, args.warmup_ms = 1, 0.0, 0.0, 0.0
        if args.acceptance and args.cells is None:
            args.cells = ['784:2:32:1']
    only = [f for f, on in (('--sequential', args.sequential), ('--inductor', args.inductor),
                            ('--reference', args.reference), ('--cells', args.cells is not None)) if on]
    if only and not args.acceptance:
        p.error(f'{", ".join(only)} only apply to --acceptance')
    if args.cold_cache < 0:
        p.error(f'--cold-cache must be >= 0 MiB, got {args.cold_cache}')
    args.flush = cache_flusher(device, args.cold_cache)
    if args.no_scratch:
        fast_executor.SCRATCH_LIMIT_BYTES = 0
    info = machine_info(device)
    info['scratch pool'] = (f'on (up to {fast_executor.SCRATCH_LIMIT_BYTES / 2 ** 20:g} MiB per thread)'
                            if fast_executor.SCRATCH_LIMIT_BYTES > 0 else 'off')
    info['caches'] = (f'cold (a {args.cold_cache:g} MiB buffer read and written before every timed call)'
                      if args.flush else 'warm (blocks of back-to-back calls)' if args.block_ms > 0
                      else 'as its own previous call leaves them (single calls, each variant timed for all its '
                           'rounds in a row)' if args.sequential
                      else 'as the other variants leave them (single calls, variants interleaved)')
    out = Path(args.out) if args.out else None
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
    if args.acceptance:
        args.cells = ([tuple(int(x) for x in c.split(':')) for c in args.cells] if args.cells
                      else list(ACCEPT_CELLS))
        rows, table = run_acceptance(args, device, dtype)
        text = '\n'.join([f'# Trial-105 acceptance ({info["device"]}, {args.dtype}, forward, no grad)', '',
                          'Machine: ' + ', '.join(f'{k} {v}' for k, v in info.items()), '',
                          f'Command: `{args.command}`', '', table, '',
                          f'Load average at the end: {loadavg()}', ''])
    elif args.summarize_csv:
        rows = load_rows(args.summarize_csv)
        info['summarized from'] = args.summarize_csv
        text = summarize(rows, args, info)
        if out and out.with_suffix('.md').exists():  # keep the measuring run's own header lines
            old = out.with_suffix('.md').read_text().splitlines()
            kept = [ln for ln in old if ln.startswith(('Machine: ', 'Provenance: ', 'Command: '))]
            if kept:
                head = text.split('\n## ', 1)
                text = ('\n\n'.join([head[0].splitlines()[0]] + kept
                                      + [f'Tables re-rendered from `{args.summarize_csv}` by `{args.command}`'])
                        + '\n\n## ' + head[1])
        missing = [f'{mode} {hd} B={B} N={N}' for mode in args.modes for hd in args.hd for B in args.batch
                   for N in args.N if not any(r['mode'] == mode and r['hd'] == hd and r['B'] == B
                                              and r['N'] == N for r in rows)]
        if missing:
            text += '\n## Cells not in the csv (not run)\n\n' + '\n'.join(f'- {m}' for m in missing) + '\n'
    else:
        args.partial = str(out.with_suffix('.partial.csv')) if out else None
        rows = run_sweep(args, device, dtype)
        if args.partial and os.path.exists(args.partial):
            os.remove(args.partial)
        text = summarize(rows, args, info)
    print(text)
    if out:
        out.with_suffix('.md').write_text(text)
        write_csv(rows, out.with_suffix('.csv'))
        if not args.acceptance:
            plot(rows, args, out.with_suffix('.png'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
