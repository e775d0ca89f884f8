#!/usr/bin/env python
"""Training-free pre-screen scores (grad norm, SNIP, synflow, NASWOT, attention rank; early loss as
a reference) of a fidelity run's genomes and references, correlated with their trained scores.

    python tools/zero_cost.py --fidelity docs/fidelity/scenes --out docs/efficiency/zero_cost

See :mod:`attnzero.search.prescreen`.
"""
import sys

from attnzero.search.prescreen import main

if __name__ == '__main__':
    sys.exit(main())
