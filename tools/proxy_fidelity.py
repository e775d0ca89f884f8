#!/usr/bin/env python
"""Proxy fidelity: does a search proxy rank attentions the way ImageNet does?

Trains every reference attention of the zoo (softmax, linear, relu_linear, focused, hydra, agent,
identity, AttnZero Trial-105 and Trial-140) in every proxy architecture of a search configuration
(``--seeds`` each, no rejection), and ``--genomes`` genomes sampled from the space at 1x and
``--budget-factor`` x the epochs. Writes ``fidelity.md`` / ``.csv`` / ``.png``, ``stability.csv``
and ``summary.json`` to ``--out``: per-attention mean ± sd with bootstrap intervals, Kendall tau-b
and Spearman against the published ImageNet table (shipped in the package with its sources), rank
stability against the larger budget, seconds per candidate, and the issue-14 acceptance checklist.
Runs are appended to ``OUT/runs.jsonl`` as they finish: re-running the same command continues an
interrupted run.

Examples::

    python tools/proxy_fidelity.py --out docs/fidelity/scenes --workers 2        # the default proxy
    python tools/proxy_fidelity.py --preset relational --out docs/fidelity/relational --workers 2
    python tools/proxy_fidelity.py --preset tiny --seeds 2 --genomes 3 --out /tmp/fid   # seconds
    python tools/proxy_fidelity.py --compare docs/fidelity/relational docs/fidelity/scenes \\
        --out docs/fidelity                                                      # side by side
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from attnzero.search.cli import add_config_args  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder (runs.jsonl there is reused)')
    add_config_args(p, search=False)
    p.add_argument('--seeds', type=int, default=3, help='seeds per reference attention and architecture (3)')
    p.add_argument('--genomes', type=int, default=30, help='sampled genomes for rank stability (30; 0 = none)')
    p.add_argument('--budget-factor', type=int, default=4, help='the larger budget of the stability check (4x)')
    p.add_argument('--genome-seed', type=int, default=0, help='seed of the genome sample')
    p.add_argument('--references', help='comma-separated subset of the reference attentions')
    p.add_argument('--label', default='', help='name of this proxy in the report')
    p.add_argument('--compare', nargs='+', metavar='DIR',
                   help='write OUT/comparison.md from the summary.json of finished runs in DIRs')
    p.add_argument('--report-only', action='store_true',
                   help='train nothing: report the runs already in OUT/runs.jsonl (e.g. of a run still going)')
    p.add_argument('--no-progress', action='store_true')
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from attnzero.search import ConfigError, ProxyError
    from attnzero.search.cli import config_from_args
    from attnzero.search.fidelity import (FidelityError, run_fidelity, summarise, write_comparison,
                                          write_report)

    command = 'python tools/proxy_fidelity.py ' + ' '.join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    try:
        if args.compare:
            sums = {}
            for d in args.compare:
                path = os.path.join(d, 'summary.json')
                if not os.path.exists(path):
                    raise FidelityError(f'--compare {d!r}: no summary.json (run the fidelity tool there first)')
                with open(path, encoding='utf-8') as f:
                    s = json.load(f)
                sums[s.get('label') or os.path.basename(os.path.normpath(d))] = s
            os.makedirs(args.out, exist_ok=True)
            write_comparison(sums, os.path.join(args.out, 'comparison.md'), [command])
            print(f'wrote {os.path.join(args.out, "comparison.md")}')
            return 0
        cfg = config_from_args(args)
        refs = [r.strip() for r in args.references.split(',')] if args.references else None
        result = run_fidelity(cfg, seeds=args.seeds, n_genomes=args.genomes,
                              budget_factor=args.budget_factor, genome_seed=args.genome_seed,
                              workers=cfg.workers, out_dir=args.out, references=refs,
                              progress=not args.no_progress, train=not args.report_only)
        summary = summarise(result)
        summary['label'] = args.label
        summary['command'] = command
        paths = write_report(summary, args.out, command, args.label)
    except (ConfigError, ProxyError, FidelityError) as e:
        print(f'proxy_fidelity.py: error: {e}', file=sys.stderr)
        return 2
    with open(paths['md'], encoding='utf-8') as f:
        print(f.read())
    return 0


if __name__ == '__main__':
    sys.exit(main())
