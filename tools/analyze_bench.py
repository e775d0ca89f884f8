#!/usr/bin/env python
"""Measure design insights on an Attn-Bench-101 directory and write the markdown report + plots.

    python tools/analyze_bench.py                                   # shipped bench -> docs/bench/
    python tools/analyze_bench.py --bench /tmp/b --out /tmp/report  # any bench

Everything in the report is computed from the bench files (the manifest is verified first unless
``--no-verify``); the report text is deterministic, so ``tests/test_bench.py`` regenerates it from
the shipped bench and compares it with the committed ``docs/bench/REPORT.md``.

The logic is :func:`attnzero.bench.cli.analyze_main` over :mod:`attnzero.bench.analyze`.
"""
import sys

from attnzero.bench.cli import analyze_main as main

if __name__ == '__main__':
    sys.exit(main())
