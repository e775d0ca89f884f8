#!/usr/bin/env python
"""Benchmark backbones x attentions: images/s at 224^2, latency and peak memory at high resolution.

    python tools/benchmark_backbone.py --out docs/benchmarks/backbone_cpu
    python tools/benchmark_backbone.py --quick                       # tiny (tests)

Configurations, isolation and memory figures: ``python tools/benchmark_backbone.py --help``. The
logic is :mod:`attnzero.perf.backbone`.
"""
import sys

from attnzero.perf.backbone import main

if __name__ == '__main__':
    sys.exit(main())
