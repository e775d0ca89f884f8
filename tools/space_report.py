#!/usr/bin/env python
"""Report on the AttnZero search space: sampler valid rate, rejection reasons, check timings.

Usage::

    python tools/space_report.py                       # 10,000 raw samples, full check on 1,000
    python tools/space_report.py -n 2000 --full 200 --json space_report.json
    python tools/space_report.py --original            # only the 28 + 10 original operators

It draws ``n`` raw genomes from the sampling distribution and runs the *static* check on all of
them (valid rate, rejection reasons by code and operator, time per static check). The *full*
program check (compile, run, gradients, token mixing, batch independence) runs on ``--full``
statically valid genomes drawn with :func:`attnzero.space.sample` (a subset, because a full check
costs milliseconds where the static one costs a fraction of one).
"""
import sys

from attnzero.space.report import main

if __name__ == '__main__':
    sys.exit(main())
