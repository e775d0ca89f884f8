#!/usr/bin/env python
"""Report on the AttnZero search space: sampler valid rate, rejection reasons, check timings.

    python tools/space_report.py [-n 10000] [--full 1000] [--json out.json] [--original]

The logic (and the full description) is :mod:`attnzero.space.report`; the console script is
``attnzero-space-report``.
"""
import sys

from attnzero.space.report import main

if __name__ == '__main__':
    sys.exit(main())
