#!/usr/bin/env python
"""Cross-validated Kendall tau of the Attn-Bench-101 surrogate with and without the probe features,
per fidelity level (markdown + csv + png).

    python tools/surrogate_cv.py --bench v2 --partial --out docs/bench/surrogate-cv

The logic is :func:`attnzero.bench.cli.surrogate_cv_main` over
:func:`attnzero.bench.surrogate.compare_feature_sets`.
"""
import sys

from attnzero.bench.cli import surrogate_cv_main as main

if __name__ == '__main__':
    sys.exit(main())
