#!/usr/bin/env python
"""Benchmark the attention zoo and AttnZero genomes: latency (forward, forward+backward), peak
memory and the matmul floor versus the number of tokens N.

    python tools/benchmark_attention.py --out docs/benchmarks/attention_cpu      # the full sweep
    python tools/benchmark_attention.py --acceptance --out docs/benchmarks/acceptance_cpu
    python tools/benchmark_attention.py --quick                                   # tiny (tests)

What is timed and how: ``python tools/benchmark_attention.py --help`` and ``docs/benchmarks.md``.
The logic is :mod:`attnzero.perf.attention` (the timing harness :mod:`attnzero.perf.timing`).
"""
import sys

from attnzero.perf.attention import main

if __name__ == '__main__':
    sys.exit(main())
