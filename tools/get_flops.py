#!/usr/bin/env python
"""Parameters and FLOPs of the model of any ``mmconfigs/`` config at its test resolution.

    python tools/get_flops.py CONFIG [--shape H [W]] [--json out.json]

Counts every matrix product and convolution at the dispatcher level (``attnzero.flops``): the
matmuls and einsums of linear attentions are included. The logic is :mod:`attnzero.perf.flops`.
"""
import sys

from attnzero.perf.flops import main

if __name__ == '__main__':
    sys.exit(main())
