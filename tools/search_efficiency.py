#!/usr/bin/env python
"""Search efficiency: compute the full search needs to reach the naive search's hypervolume.

    python tools/search_efficiency.py --out docs/efficiency/search/default --workers 2 \
        --prescreen attn_rank --surrogate                                     # default proxy (hours)
    python tools/search_efficiency.py --preset tiny --seeds 2 --out /tmp/eff     # seconds

What it runs and writes, and every option: ``python tools/search_efficiency.py --help``. The logic
is :func:`attnzero.search.cli.search_efficiency_main` over :mod:`attnzero.search.efficiency`.
"""
import sys

from attnzero.search.cli import search_efficiency_main as main

if __name__ == '__main__':
    sys.exit(main())
