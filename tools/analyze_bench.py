#!/usr/bin/env python
"""Measure design insights on an Attn-Bench-101 directory and write the markdown report + plots.

    python tools/analyze_bench.py --bench v1                        # -> docs/bench/v1/
    python tools/analyze_bench.py --bench v2 --partial              # -> docs/bench/ (unfinished build)
    python tools/analyze_bench.py --bench /tmp/b --out /tmp/report  # any bench

Everything in the report is computed from the bench files (the manifest is verified first unless
``--no-verify``); the report text is deterministic, so ``tests/test_bench.py`` and
``tests/test_bench_v2.py`` regenerate it from the shipped benches and compare it with the committed
``docs/bench/v1/REPORT.md`` and ``docs/bench/REPORT.md``.

The logic is :func:`attnzero.bench.cli.analyze_main` over :mod:`attnzero.bench.analyze`.
"""
import sys

from attnzero.bench.cli import analyze_main as main

if __name__ == '__main__':
    sys.exit(main())
