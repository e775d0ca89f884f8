#!/usr/bin/env python
"""Multi-objective evolutionary search of linear attention (pymoo NSGA-II).

With no arguments: the embedded default (relational proxy, DeiT + PVT proxies, FLOPs cost),
about 6-8 minutes on a 2-core CPU, outputs in ./runs/search-<time>/.

Examples::

    python tools/search.py                                   # embedded default
    python tools/search.py --preset tiny --run-dir /tmp/s    # seconds (test configuration)
    python tools/search.py --proxy cifar100:~/data/cifar --archs deit,pvt,swin --epochs 5
    python tools/search.py --workers 2                       # local worker processes
    python tools/search.py --dask-scheduler tcp://host:8786  # a Dask cluster
    python tools/search.py --resume runs/search-20250101-120000   # continue after a crash/kill
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _value(text: str):
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--resume', metavar='RUN_DIR', help='continue the run in RUN_DIR (its config is kept)')
    p.add_argument('--run-dir', help='output directory (new or empty); default runs/search-<time>')
    p.add_argument('--preset', default='default', help='named configuration: default, tiny')
    p.add_argument('--config', help='JSON file of SearchConfig fields (applied over the preset)')
    p.add_argument('--proxy', help="proxy spec: relational (embedded), imagefolder:PATH, cifar10:ROOT, cifar100:ROOT; options ?train=N&test=N&size=S")
    p.add_argument('--archs', help='comma-separated proxy ViTs: deit, pvt, pvt_v2, swin, cswin')
    p.add_argument('--acc-objective', choices=['mean', 'per_arch'], help='one accuracy objective or one per architecture')
    p.add_argument('--cost', choices=['flops', 'latency'], help='cost objective')
    p.add_argument('--pop-size', type=int)
    p.add_argument('--generations', type=int)
    p.add_argument('--epochs', type=int, help='proxy training epochs per architecture')
    p.add_argument('--seed', type=int)
    p.add_argument('--init-genome', action='append', default=None, metavar='GENOME',
                   help='canonical genome put into the initial population (repeatable)')
    p.add_argument('--workers', type=int, help='local worker processes (0 = in this process)')
    p.add_argument('--dask-scheduler', metavar='ADDR', help='evaluate on the Dask scheduler at ADDR (tcp://host:port)')
    p.add_argument('--eval-timeout', type=float, help='seconds before a worker evaluation is abandoned (retried once)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='any SearchConfig field, VALUE as JSON (e.g. --set lr=0.003 --set "archs=[\\"deit\\"]")')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from attnzero.search import ConfigError, ProxyError, RunDirError, Search, preset
    from attnzero.search.report import format_front, format_summary, pareto_records

    t0 = time.perf_counter()
    try:
        overrides = {}
        if args.config:
            try:
                with open(args.config, encoding='utf-8') as f:
                    overrides.update(json.load(f))
            except (OSError, ValueError) as e:
                raise ConfigError(f'--config {args.config!r}: {e}') from e
        for key, field in [('proxy', 'proxy'), ('acc_objective', 'acc_objective'), ('cost', 'cost'),
                           ('pop_size', 'pop_size'), ('generations', 'generations'),
                           ('epochs', 'epochs'), ('seed', 'seed'), ('workers', 'workers'),
                           ('dask_scheduler', 'dask_scheduler'), ('eval_timeout', 'eval_timeout_s')]:
            v = getattr(args, key)
            if v is not None:
                overrides[field] = v
        if args.archs:
            overrides['archs'] = [a.strip() for a in args.archs.split(',') if a.strip()]
        if args.init_genome:
            overrides['init_genomes'] = args.init_genome
        for item in args.set:
            if '=' not in item:
                raise ConfigError(f'--set {item!r}: expected KEY=VALUE')
            k, v = item.split('=', 1)
            overrides[k.strip()] = _value(v)
        if args.resume:
            search = Search(None, args.resume, resume=True, progress=not args.no_progress,
                            overrides=overrides)
        else:
            base = preset(args.preset).to_dict()
            base.update(overrides)
            from attnzero.search import SearchConfig

            try:
                cfg = SearchConfig.from_dict(base)
            except TypeError as e:
                raise ConfigError(str(e)) from e
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
