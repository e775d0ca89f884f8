"""Micro-benchmarks behind two choices of the fast path, with their committed results.

1. **ELU+1 without expm1.** ``F.elu(x) + 1`` against :func:`attnzero.space.ops.elu_plus_one`
   (``exp2(log2(e) * min(x, 0)) + max(x, 0)``) and the elementwise kernels involved (``expm1``,
   ``exp``, ``exp2``), on one ``(1, 2, 12544, 32)`` float32 tensor, interleaved rounds.
2. **Page faults per call under glibc malloc.** Trial-105's compiled function, its matmul floor and
   a plain two-temporaries pattern, each in a fresh subprocess with glibc's default (adaptive)
   thresholds and with :func:`attnzero.perf.runtime.tune_malloc`: minor page faults per call
   (``getrusage``) and time per call, after a warm-up.

    python tools/benchmark_ops.py --out docs/benchmarks/ops_cpu
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

from attnzero.io import loadavg, tool_command
from attnzero.space.ops import elu_plus_one

from .timing import interleaved, machine_info, md_table, median, setup_malloc

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


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--rounds', type=int, default=15)
    p.add_argument('--calls', type=int, default=200, help='calls per fault measurement')
    p.add_argument('--out', default=None, help='write OUT.md')
    p.add_argument('--quick', action='store_true', help='tiny setting (tests)')
    p.add_argument('--default-malloc', action='store_true', help="ELU table: keep glibc's adaptive malloc")
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
    return 0


if __name__ == '__main__':
    sys.exit(main())
