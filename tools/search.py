#!/usr/bin/env python
"""Multi-objective evolutionary search of linear attention (pymoo NSGA-II).

With no arguments: the embedded default (the ``scenes`` proxy, DeiT + PVT proxies, FLOPs cost, 2
local worker processes), outputs in ./runs/search-<time>/.

Examples::

    python tools/search.py                                   # embedded default
    python tools/search.py --preset tiny --run-dir /tmp/s    # seconds (test configuration)
    python tools/search.py --preset relational               # the previous default proxy
    python tools/search.py --proxy cifar100:~/data/cifar --archs deit,pvt,swin --epochs 5
    python tools/search.py --workers 2                       # local worker processes
    python tools/search.py --dask-scheduler tcp://host:8786  # a Dask cluster
    python tools/search.py --resume runs/search-20250101-120000   # continue after a crash/kill
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from attnzero.search.cli import add_config_args  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--resume', metavar='RUN_DIR', help='continue the run in RUN_DIR (its config is kept)')
    p.add_argument('--run-dir', help='output directory (new or empty); default runs/search-<time>')
    add_config_args(p)
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from attnzero.search import ConfigError, ProxyError, RunDirError, Search
    from attnzero.search.cli import config_from_args, config_overrides
    from attnzero.search.report import format_front, format_summary, pareto_records

    t0 = time.perf_counter()
    try:
        overrides = config_overrides(args)
        if args.resume:
            search = Search(None, args.resume, resume=True, progress=not args.no_progress,
                            overrides=overrides)
        else:
            cfg = config_from_args(args)
            run_dir = args.run_dir or os.path.join('runs', time.strftime('search-%Y%m%d-%H%M%S'))
            search = Search(cfg, run_dir, progress=not args.no_progress)
        summary = search.run()
    except (ConfigError, ProxyError, RunDirError, ConnectionError) as e:
        print(f'search.py: error: {e}', file=sys.stderr)
        return 2
    cfg = search.cfg
    front = pareto_records(cfg, search.state)
    print(format_summary(cfg, summary, format_front(cfg, front, search.state.baselines)), end='')
    print(f'total time of this invocation: {time.perf_counter() - t0:.1f} s')
    return 0


if __name__ == '__main__':
    sys.exit(main())
