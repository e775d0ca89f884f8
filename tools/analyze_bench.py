#!/usr/bin/env python
"""Measure design insights on an Attn-Bench-101 directory and write the markdown report + plots.

    python tools/analyze_bench.py                                   # shipped bench -> docs/bench/
    python tools/analyze_bench.py --bench /tmp/b --out /tmp/report  # any bench

Everything in the report is computed from the bench files (the manifest is verified first unless
``--no-verify``); the report text is deterministic, so ``tests/test_bench.py`` regenerates it from
the shipped bench and compares it with the committed ``docs/bench/REPORT.md``.
"""
from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_BENCH = os.path.join('benchmarks', 'attn-bench-101')
DEFAULT_OUT = os.path.join('docs', 'bench')


def label_of(path: str) -> str:
    """The bench path as written in the report: relative to the repository when inside it."""
    ap = os.path.abspath(path)
    try:
        rel = os.path.relpath(ap, ROOT)
    except ValueError:
        return ap
    return ap if rel.startswith('..') else rel.replace(os.sep, '/')


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--bench', default=os.path.join(ROOT, DEFAULT_BENCH), help='bench directory')
    p.add_argument('--out', default=os.path.join(ROOT, DEFAULT_OUT), help='report directory')
    p.add_argument('--no-plots', action='store_true', help='only the markdown report')
    p.add_argument('--no-verify', action='store_true', help='do not check the manifest sha256')
    args = p.parse_args(argv)
    from attnzero.bench import load
    from attnzero.bench.analyze import write_report

    bench = load(args.bench, verify=not args.no_verify)
    path = write_report(bench, args.out, label_of(args.bench), plots=not args.no_plots)
    print(path)
    return 0


if __name__ == '__main__':
    sys.exit(main())
