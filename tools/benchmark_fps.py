#!/usr/bin/env python
"""Inference throughput (images/s) of the model of any ``mmconfigs/`` config at its test resolution.

    python tools/benchmark_fps.py CONFIG [--checkpoint CKPT] [--shape H [W]] [--batch-size 1]
                                  [--num-iters 50] [--warmup 5] [--device cuda] [--fp16]

The logic is :mod:`attnzero.perf.fps`.
"""
import sys

from attnzero.perf.fps import main

if __name__ == '__main__':
    sys.exit(main())
