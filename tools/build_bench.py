#!/usr/bin/env python
"""Build (or grow, or finalize) an Attn-Bench-101 directory.

Samples genomes from the search space (de-duplicated by functional equivalence), evaluates each with
the search's evaluation pipeline (program check -> static linear check -> proxy training of every
proxy ViT with the rejection protocol) for every seed and epoch budget, and appends one record per
genome to ``OUT/bench.jsonl`` (atomic line append + fsync). Resumable: run the same command again
(settings flags may be left out; they are read from ``OUT/build.json``) and it skips every genome
already in the file. The manifest (``OUT/MANIFEST.json``) is rewritten atomically at the end, or
alone with ``--finalize``.

Examples::

    # the shipped bench (search defaults: embedded relational proxy, DeiT + PVT, 3 epochs, 1 seed)
    nice -n 10 python tools/build_bench.py --out benchmarks/attn-bench-101 -n 500 --preset default
    python tools/build_bench.py --out benchmarks/attn-bench-101 -n 600        # grow it (resume)
    python tools/build_bench.py --out benchmarks/attn-bench-101 --finalize    # manifest only
    python tools/build_bench.py --out /tmp/b -n 3 --preset tiny --workers 2   # local workers
    python tools/build_bench.py --out /tmp/b -n 3 --preset tiny --dask tcp://host:8786
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _settings(args):
    from attnzero.bench.evaluate import BenchSettings
    from attnzero.search.config import PRESETS, SearchConfig

    given = [args.preset, args.proxy, args.archs, args.budgets, args.seeds, args.set]
    if all(x is None or x == [] for x in given):
        return None  # resume with the saved settings (or fail if there are none)
    d = dict(PRESETS[args.preset or 'default'])
    cfg = SearchConfig(**d).to_dict()
    if args.proxy:
        cfg['proxy'] = args.proxy
    if args.archs:
        cfg['archs'] = [a for a in args.archs.split(',') if a]
    for kv in args.set or []:
        key, _, val = kv.partition('=')
        try:
            cfg[key] = json.loads(val)
        except ValueError:
            cfg[key] = val
    budgets = [int(b) for b in args.budgets.split(',')] if args.budgets else [int(cfg['epochs'])]
    cfg['epochs'] = max(budgets)
    SearchConfig.from_dict(cfg)  # validate with the search's rules
    seeds = [int(s) for s in args.seeds.split(',')] if args.seeds else [0]
    return BenchSettings(cfg, seeds=seeds, budgets=budgets)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default='benchmarks/attn-bench-101', help='bench directory')
    p.add_argument('-n', type=int, default=500, help='target number of genomes (see --until)')
    p.add_argument('--until', choices=('trained', 'records'), default='trained',
                   help="count genomes that passed the program check and were trained (default), "
                        "or every sampled genome")
    g = p.add_argument_group('settings (left out on resume: read from OUT/build.json)')
    g.add_argument('--preset', default=None, help='search config preset (default, tiny)')
    g.add_argument('--proxy', default=None, help='proxy spec (e.g. relational?train=3000&test=1000)')
    g.add_argument('--archs', default=None, help='comma-separated proxy ViTs (default deit,pvt)')
    g.add_argument('--budgets', default=None, help='comma-separated epoch budgets (default: config epochs)')
    g.add_argument('--seeds', default=None, help='comma-separated seed indices (default 0)')
    g.add_argument('--set', action='append', default=[], metavar='KEY=JSON',
                   help='override any SearchConfig field, e.g. --set lr=0.003')
    p.add_argument('--sampler-seed', type=int, default=0)
    p.add_argument('--space', choices=('default', 'original'), default='default')
    p.add_argument('--workers', type=int, default=0, help='local worker processes (0: in-process)')
    p.add_argument('--dask', default=None, metavar='tcp://HOST:PORT', help='Dask scheduler')
    p.add_argument('--timeout', type=float, default=1800.0, help='seconds per genome before retry')
    p.add_argument('--retries', type=int, default=1)
    p.add_argument('--no-baselines', action='store_true', help='skip the reference attentions')
    p.add_argument('--baseline-seeds', default='0,1,2', help='seed indices of the baselines')
    p.add_argument('--max-minutes', type=float, default=None, help='stop (cleanly) after this long')
    p.add_argument('--finalize', action='store_true', help='only rewrite MANIFEST.json')
    p.add_argument('--parquet', action='store_true', help='also write bench.parquet (in the manifest)')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('-v', '--verbose', action='store_true')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(message)s')
    from attnzero.bench.build import build, finalize

    args_list = argv if argv is not None else sys.argv[1:]
    command = 'python tools/build_bench.py ' + ' '.join(shlex.quote(a) for a in args_list)
    if args.finalize:
        m = finalize(args.out, command, parquet=args.parquet)
        print(json.dumps(dict(records=m['records'], counts=m.get('counts'),
                              files={k: v['sha256'] for k, v in m['files'].items()}), indent=2))
        return 0
    counts = build(args.out, args.n, _settings(args), until=args.until,
                   sampler_seed=args.sampler_seed, space=args.space, workers=args.workers,
                   dask_scheduler=args.dask, timeout=args.timeout, retries=args.retries,
                   baselines=not args.no_baselines,
                   baseline_seeds=[int(s) for s in args.baseline_seeds.split(',') if s],
                   progress=not args.no_progress, command=command, parquet=args.parquet,
                   max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    print(json.dumps(counts, sort_keys=True))
    return 0


if __name__ == '__main__':
    sys.exit(main())
