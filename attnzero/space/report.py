"""Report on the AttnZero search space: sampler valid rate, rejection reasons, check timings.

Usage (``tools/space_report.py`` is a thin command line over :func:`main`)::

    python tools/space_report.py                       # 10,000 raw samples, full check on 1,000
    python tools/space_report.py -n 2000 --full 200 --json space_report.json
    python tools/space_report.py --original            # only the 28 + 10 original operators

It draws ``n`` raw genomes from the sampling distribution and runs the *static* check on all of
them (valid rate, rejection reasons by code and operator, time per static check). The *full*
program check (compile, run, gradients, token mixing, batch independence) runs on ``--full``
statically valid genomes drawn with :func:`attnzero.space.sample` (a subset, because a full check
costs milliseconds where the static one costs a fraction of one).
"""
from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from .check import check_program
from .cost import analyse
from .variation import DEFAULT_DISTRIBUTION, ORIGINAL_DISTRIBUTION, sample, sample_raw

__all__ = ['run', 'show', 'main']


def _pct(a: int, b: int) -> str:
    return f'{100.0 * a / max(b, 1):.1f}%'


def run(n: int, n_full: int, seed: int, original: bool) -> Dict[str, Any]:
    torch.set_num_threads(1)
    dist = ORIGINAL_DISTRIBUTION if original else DEFAULT_DISTRIBUTION
    rng = np.random.default_rng(seed)

    t = time.perf_counter()
    raw = [sample_raw(rng, dist) for _ in range(n)]
    t_sample = (time.perf_counter() - t) / n

    static_times: List[float] = []
    kinds: Counter = Counter()
    reasons: Counter = Counter()
    for g in raw:
        t = time.perf_counter()
        cx = analyse.__wrapped__(g, False)   # uncached: measure the real cost
        static_times.append(time.perf_counter() - t)
        kinds[cx.kind] += 1
        if cx.kind != 'linear':
            reasons[f'{cx.code}:{cx.op or "-"}'] += 1
    st = np.array(static_times) * 1e3

    full_reasons: Counter = Counter()
    full_times: List[float] = []
    skipped = 0
    t = time.perf_counter()
    valid = [sample(rng, dist) for _ in range(n_full)]
    t_valid_sample = (time.perf_counter() - t) / max(n_full, 1)
    for g in valid:
        res = check_program(g)
        full_times.append(res.timings['total'])
        full_reasons[res.reason.value] += 1
        skipped += bool(res.skipped)
    ft = np.array(full_times or [0.0]) * 1e3
    unique = len(set(raw))
    return {
        'n': n, 'n_full': n_full, 'seed': seed,
        'distribution': 'original' if original else 'default',
        'sampler': {'valid_rate': kinds['linear'] / n, 'unique': unique,
                    'kinds': dict(kinds), 'ms_per_raw_sample': t_sample * 1e3,
                    'ms_per_valid_sample': t_valid_sample * 1e3},
        'static': {'rejections': dict(reasons.most_common()),
                   'ms_mean': float(st.mean()), 'ms_median': float(np.median(st)),
                   'ms_p99': float(np.percentile(st, 99)), 'ms_max': float(st.max())},
        'full': {'results': dict(full_reasons.most_common()),
                 'pass_rate': full_reasons['ok'] / max(n_full, 1),
                 'batch_check_skipped': skipped,
                 'ms_mean': float(ft.mean()), 'ms_median': float(np.median(ft)),
                 'ms_p99': float(np.percentile(ft, 99)), 'ms_max': float(ft.max())},
    }


def show(rep: Dict[str, Any]) -> None:
    con = Console()
    n, s = rep['n'], rep['sampler']
    t = Table(title=f"search space: {n} raw samples ({rep['distribution']} distribution, "
                    f"seed {rep['seed']})")
    t.add_column('quantity')
    t.add_column('value', justify='right')
    for label, kind in (('statically valid (linear)', 'linear'), ('quadratic', 'quadratic'),
                        ('invalid', 'invalid')):
        c = s['kinds'].get(kind, 0)
        t.add_row(label, f'{c} ({_pct(c, n)})')
    t.add_row('distinct genomes', str(s['unique']))
    t.add_row('ms per raw sample', f"{s['ms_per_raw_sample']:.3f}")
    t.add_row('ms per valid sample (with retries)', f"{s['ms_per_valid_sample']:.2f}")
    st = rep['static']
    t.add_row('static check ms mean / median / p99 / max',
              f"{st['ms_mean']:.3f} / {st['ms_median']:.3f} / {st['ms_p99']:.3f} / {st['ms_max']:.3f}")
    fu = rep['full']
    t.add_row(f"full check on {rep['n_full']} valid samples: pass rate", f"{fu['pass_rate']:.1%}")
    t.add_row('full check ms mean / median / p99 / max',
              f"{fu['ms_mean']:.2f} / {fu['ms_median']:.2f} / {fu['ms_p99']:.2f} / {fu['ms_max']:.2f}")
    t.add_row('batch check skipped (batch-global ops)', str(fu['batch_check_skipped']))
    con.print(t)

    r = Table(title='static rejections (code:operator)')
    r.add_column('reason')
    r.add_column('count', justify='right')
    r.add_column('share of samples', justify='right')
    for k, v in st['rejections'].items():
        r.add_row(k, str(v), _pct(v, n))
    con.print(r)

    f = Table(title=f"full program check on {rep['n_full']} statically valid samples")
    f.add_column('result')
    f.add_column('count', justify='right')
    f.add_column('share', justify='right')
    for k, v in fu['results'].items():
        f.add_row(k, str(v), _pct(v, rep['n_full']))
    con.print(f)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/space_report.py`` (console script ``attnzero-space-report``)."""
    ap = argparse.ArgumentParser(prog='tools/space_report.py', description=__doc__.split('\n')[0])
    ap.add_argument('-n', type=int, default=10_000, help='raw samples for the static check')
    ap.add_argument('--full', type=int, default=1_000, help='valid samples for the full check')
    ap.add_argument('--seed', type=int, default=0)
    ap.add_argument('--original', action='store_true', help='original operators only')
    ap.add_argument('--json', help='also write the numbers to this JSON file')
    args = ap.parse_args(argv)
    rep = run(args.n, args.full, args.seed, args.original)
    show(rep)
    if args.json:
        with open(args.json, 'w', encoding='utf-8') as fh:
            json.dump(rep, fh, indent=2)
    return 0

