#!/usr/bin/env python
"""Deployment check on a device: host-sync-free forward and backward, torch.compile(fullgraph=True)
against eager, and images/s eager vs compiled, for one model per family x attention.

    python tools/benchmark_deploy.py --device cuda --out docs/benchmarks/deploy_cuda
    python tools/benchmark_deploy.py --quick          # tiny, CPU (tests)

The logic is :mod:`attnzero.perf.deploy`.
"""
import sys

from attnzero.perf.deploy import main

if __name__ == '__main__':
    sys.exit(main())
