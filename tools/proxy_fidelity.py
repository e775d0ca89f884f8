#!/usr/bin/env python
"""Proxy fidelity: does a search proxy rank attentions the way ImageNet does?

    python tools/proxy_fidelity.py --out docs/fidelity/default --workers 2       # the default proxy
    python tools/proxy_fidelity.py --preset scenes-v1 --out docs/fidelity/scenes --workers 2  # an earlier one
    python tools/proxy_fidelity.py --preset tiny --seeds 2 --genomes 3 --out /tmp/fid   # seconds

What it trains and writes, and every option: ``python tools/proxy_fidelity.py --help``. The logic
is :func:`attnzero.search.cli.proxy_fidelity_main` over :mod:`attnzero.search.fidelity`.
"""
import sys

from attnzero.search.cli import proxy_fidelity_main as main

if __name__ == '__main__':
    sys.exit(main())
