#!/usr/bin/env python
"""Micro-benchmarks behind two choices of the fast path (ELU+1 without expm1; page faults per
call under glibc malloc), with their committed results.

    python tools/benchmark_ops.py --out docs/benchmarks/ops_cpu
    python tools/benchmark_ops.py --quick          # tiny setting (tests)

The logic is :mod:`attnzero.perf.ops`.
"""
import sys

from attnzero.perf.ops import main

if __name__ == '__main__':
    sys.exit(main())
