#!/usr/bin/env python
"""Training-free pre-screen scores (grad norm, SNIP, synflow, NASWOT, attention rank; early loss as
a reference) of a fidelity run's genomes and references, or of Attn-Bench-101's, correlated with their trained scores.

    python tools/zero_cost.py --fidelity docs/fidelity/default --out docs/efficiency/zero_cost/default
    python tools/zero_cost.py --bench v1 --limit 300 --out docs/efficiency/zero_cost/bench-v1

See :mod:`attnzero.search.prescreen` and :func:`attnzero.bench.cli.zero_cost_main`.
"""
import sys

from attnzero.bench.cli import zero_cost_main

if __name__ == '__main__':
    sys.exit(zero_cost_main())
