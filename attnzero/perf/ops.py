"""Micro-benchmarks behind choices of the fast path and the limits of the acceptance cells, with
their committed results.

1. **ELU+1 without expm1.** ``F.elu(x) + 1`` against :func:`attnzero.space.ops.elu_plus_one`
   (``exp2(log2(e) * min(x, 0)) + max(x, 0)``) and the elementwise kernels involved (``expm1``,
   ``exp``, ``exp2``), on one ``(1, 2, 12544, 32)`` float32 tensor, interleaved rounds.
2. **Page faults per call under glibc malloc.** Trial-105's compiled function, its matmul floor and
   a plain two-temporaries pattern, each in a fresh subprocess with glibc's default (adaptive)
   thresholds and with :func:`attnzero.perf.runtime.tune_malloc`: minor page faults per call
   (``getrusage``) and time per call, after a warm-up.
3. **What one memory pass costs next to the matmul floor** (``--passes``): at the hardest
   acceptance cell (``1 x 2 x 12544 x 32``), the two matmuls of the floor alone and together,
   single elementwise / reduction passes over one operand, the executor's ELU+1, Trial-105 through
   the eager executor and through ``torch.compile`` (inductor, static shapes), and a derived lower
   bound: the floor plus the three passes that any implementation leaving its two matmuls to the
   BLAS library must add (an ``exp2`` pass over K for ELU+1, with the column sum fused into it;
   one read of V for its global min and max; one pass reading the product and Q and writing the
   output, for the row normalisation and the gate). Interleaved blocks of back-to-back calls
   (steady state), minimum and median; ratios are to the floor's minimum. Written as md, csv and
   png (``OUT_passes.*``).

    python tools/benchmark_ops.py --out docs/benchmarks/ops_cpu
    python tools/benchmark_ops.py --passes --out docs/benchmarks/ops_cpu   # also the pass table
    python tools/benchmark_ops.py --quick          # tiny setting (tests)
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import torch
import torch.nn.functional as F

from attnzero.io import atomic_savefig, loadavg, tool_command
from attnzero.space import TRIAL_105
from attnzero.space.ops import elu_plus_one

from .attention import floor_dd
from .timing import interleaved, machine_info, md_table, median, setup_malloc, write_csv

_FAULT_PROBE = r'''
import json, resource, sys, time, torch
mode, shape, calls = sys.argv[1], tuple(int(x) for x in sys.argv[2].split(',')), int(sys.argv[3])
if mode == 'tuned':
    from attnzero.perf.runtime import tune_malloc
    assert tune_malloc()
torch.set_num_threads(int(sys.argv[4]))
from attnzero.space import TRIAL_105
f = TRIAL_105.compile()
g = torch.Generator().manual_seed(0)
q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))

def two_temporaries():
    a = k * 2
    b = k * 3
    return b

fns = {'trial105': lambda: f(q, k, v), 'floor': lambda: q @ (k.transpose(-1, -2) @ v),
       'two_temporaries': two_temporaries}
out = {}
with torch.no_grad():
    for name, fn in fns.items():
        for _ in range(max(3, calls // 4)):
            fn()
        r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        dt = (time.perf_counter() - t0) / calls * 1e3
        out[name] = {'faults_per_call': (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0) / calls,
                     'ms_per_call': dt}
print(json.dumps(out))
'''


def elu_table(shape, rounds: int, block_ms: float, warmup_ms: float) -> List[List[object]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*shape, generator=g)
    fns = {
        'F.elu(x) + 1': lambda: F.elu(x) + 1,
        'elu_plus_one(x)': lambda: elu_plus_one(x),
        'torch.expm1(x)': lambda: torch.expm1(x),
        'torch.exp(x)': lambda: torch.exp(x),
        'torch.exp2(x)': lambda: torch.exp2(x),
        'torch.relu(x) (one memory pass)': lambda: torch.relu(x),
    }
    with torch.no_grad():
        times = interleaved(fns, torch.device('cpu'), rounds=rounds, block_ms=block_ms, warmup_ms=warmup_ms)
    xd = x.double()
    exact = torch.where(xd > 0, xd + 1, torch.exp(xd))
    err = {'F.elu(x) + 1': ((F.elu(x).double() + 1 - exact) / exact).abs().max().item(),
           'elu_plus_one(x)': ((elu_plus_one(x).double() - exact) / exact).abs().max().item()}
    return [[n, median(t), min(t), err.get(n, float('nan'))] for n, t in times.items()]


def fault_table(shapes, calls: int, threads: int) -> List[List[object]]:
    rows = []
    for shape in shapes:
        res: Dict[str, dict] = {}
        for mode in ('default', 'tuned'):
            p = subprocess.run([sys.executable, '-c', _FAULT_PROBE, mode, ','.join(map(str, shape)), str(calls),
                                str(threads)], capture_output=True, text=True, check=True)
            res[mode] = json.loads(p.stdout.strip().splitlines()[-1])
        for name in res['default']:
            d, t = res['default'][name], res['tuned'][name]
            rows.append(['×'.join(map(str, shape)), name, d['faults_per_call'], d['ms_per_call'],
                         t['faults_per_call'], t['ms_per_call']])
    return rows


#: the derived row of the pass table: the floor plus the passes it is made of
BOUND_PARTS = ('floor', 'exp2 pass (read + write)', 'aminmax (one read)', 'two-input pass (2 reads + write)')
BOUND_NAME = 'lower bound: ' + ' + '.join(BOUND_PARTS)


def pass_table(shape, rounds: int, block_ms: float, warmup_ms: float, inductor: bool = True) -> List[dict]:
    """Rows ``{name, median_ms, min_ms, ratio}`` (``ratio``: minimum over the floor's minimum) of
    the pass table (module docstring, item 3) at ``shape`` = ``(B, heads, N, d)``."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(*shape, generator=g) for _ in range(3))
    B, h, N, d = shape
    q3, k3, v3 = (t.view(B * h, N, d) for t in (q, k, v))
    state = torch.randn(B * h, d, d, generator=g)
    out, out2 = torch.empty_like(q), torch.empty_like(q)
    fn = TRIAL_105.compile()
    fns = {
        'floor': lambda: floor_dd(q, k, v),
        'bmm K^T V (d x d result)': lambda: torch.bmm(k3.transpose(1, 2), v3),
        'bmm Q S (N x d result)': lambda: torch.bmm(q3, state),
        'copy (read + write)': lambda: out.copy_(k),
        'clamp_min pass (read + write)': lambda: torch.clamp_min(k, 0, out=out),
        'exp2 pass (read + write)': lambda: torch.exp2(k, out=out),
        'two-input pass (2 reads + write)': lambda: torch.mul(q, k, out=out2),
        'aminmax (one read)': lambda: torch.aminmax(v),
        'sum over tokens (one read)': lambda: k.sum(dim=-2),
        'row L2 norm (one read)': lambda: torch.linalg.vector_norm(k, dim=-1, keepdim=True),
        'elu_plus_one (the executor\'s ELU+1)': lambda: elu_plus_one(k),
        'Trial-105, eager executor': lambda: fn(q, k, v),
    }
    if inductor:
        compiled = torch.compile(fn._executor, dynamic=False)
        with torch.no_grad():
            compiled(q, k, v)  # compile outside the timing
        fns['Trial-105, inductor (static shapes)'] = lambda: compiled(q, k, v)
    with torch.no_grad():
        times = interleaved(fns, torch.device('cpu'), rounds=rounds, block_ms=block_ms, warmup_ms=warmup_ms)
    floor = min(times['floor'])
    rows = [dict(name=n, median_ms=median(t), min_ms=min(t), ratio=min(t) / floor) for n, t in times.items()]
    bound = sum(min(times[n]) for n in BOUND_PARTS)
    rows.append(dict(name=BOUND_NAME, median_ms=float('nan'), min_ms=bound, ratio=bound / floor))
    return rows


def plot_passes(rows: List[dict], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(9, 0.35 * len(rows) + 1.2))
    names = ['lower bound (floor + 3 passes; derived)' if r['name'] == BOUND_NAME else r['name']
             for r in rows][::-1]
    ratios = [r['ratio'] for r in rows][::-1]
    ax.barh(names, ratios, color=['tab:red' if n.startswith('Trial-105') else
                                  'tab:gray' if n.startswith('lower bound') else 'tab:blue' for n in names])
    ax.axvline(1.0, color='k', lw=0.8)
    ax.axvline(2.5, color='tab:red', lw=0.8, ls='--', label='issue 16 goal: 2.5x the floor')
    ax.set_xlabel('minimum time / minimum time of the floor')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc='lower right')
    ax.tick_params(axis='y', labelsize=7)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--rounds', type=int, default=15)
    p.add_argument('--calls', type=int, default=200, help='calls per fault measurement')
    p.add_argument('--out', default=None, help='write OUT.md')
    p.add_argument('--quick', action='store_true', help='tiny setting (tests)')
    p.add_argument('--default-malloc', action='store_true', help="ELU table: keep glibc's adaptive malloc")
    p.add_argument('--passes', action='store_true',
                   help='also the pass table (item 3 above; with --out: OUT_passes.md/.csv/.png)')
    p.add_argument('--no-inductor', action='store_true', help='pass table: leave out the torch.compile row')
    args = p.parse_args(argv)
    command = tool_command('benchmark_ops', argv)
    torch.set_num_threads(args.threads)
    setup_malloc(args.default_malloc)  # for the ELU table (the fault table sets its own per subprocess)
    if args.quick:
        elu_shape, shapes, rounds, calls, block, warm = (1, 2, 196, 32), [(1, 2, 196, 32)], 1, 4, 0.0, 0.0
    else:
        elu_shape, shapes, rounds, calls, block, warm = ((1, 2, 12544, 32), [(1, 2, 12544, 32), (8, 2, 12544, 32)],
                                                         args.rounds, args.calls, 50.0, 500.0)
    info = machine_info(torch.device('cpu'))
    elu_rows = elu_table(elu_shape, rounds, block, warm)
    fault_rows = fault_table(shapes, calls, args.threads)
    text = '\n'.join([
        '# Elementwise kernels and page faults (cpu, fp32)', '',
        'Machine: ' + ', '.join(f'{k} {v}' for k, v in info.items()), '',
        f'Command: `{command}`', '',
        f'## ELU+1 on one {"×".join(map(str, elu_shape))} tensor (forward, no grad; interleaved blocks)', '',
        md_table(['op', 'median ms', 'min ms', 'max relative error vs exact (float64)'], elu_rows), '',
        '## Minor page faults per call: glibc default malloc vs attnzero.perf.runtime.tune_malloc', '',
        f'Each column pair is a fresh subprocess; {calls} calls after a warm-up of {max(3, calls // 4)}.', '',
        md_table(['shape', 'function', 'default: faults/call', 'default: ms/call', 'tuned: faults/call',
                  'tuned: ms/call'], fault_rows), '',
        f'Load average at the end: {loadavg()}', ''])
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).with_suffix('.md').write_text(text)
    if args.passes:
        pass_shape = elu_shape
        load0 = loadavg()
        rows = pass_table(pass_shape, rounds, block, warm, inductor=not args.no_inductor)
        shape_s = '×'.join(map(str, pass_shape))
        ptext = '\n'.join([
            f'# What one memory pass costs next to the matmul floor ({shape_s}, cpu, fp32, no grad)', '',
            'Machine: ' + ', '.join(f'{k} {v}' for k, v in info.items()), '',
            f'Command: `{command}`', '',
            (f'Interleaved blocks of back-to-back calls ({rounds} rounds, blocks of about {block:g} ms after '
             f'{warm:g} ms of warm-up per variant; steady state, operands of the previous call in the caches), '
             if block > 0 else f'Interleaved single calls ({rounds} rounds), ') +
            'allocator: ' + ('glibc default' if args.default_malloc else 'tune_malloc') + '. '
            'Ratio: minimum time over the minimum time of the floor. The last row is derived (a sum of '
            'measured minima), not timed.', '',
            md_table(['what', 'median ms', 'min ms', 'min / floor min'],
                     [[r['name'], r['median_ms'], r['min_ms'], r['ratio']] for r in rows]), '',
            f'Load average: {load0} -> {loadavg()}', ''])
        print(ptext)
        if args.out:
            base = str(Path(args.out).with_suffix('')) + '_passes'
            Path(base + '.md').write_text(ptext)
            write_csv(rows, base + '.csv')
            plot_passes(rows, base + '.png', f'{shape_s}: time / matmul floor (min of rounds)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
