#!/usr/bin/env python
"""Supernet vs stand-alone training: how well does a weight-sharing supernet rank ViT shapes?

    python tools/supernet.py --out docs/supernet/proxy --workers 2       # the default proxy
    python tools/supernet.py --preset joint-tiny --subnets 4 --out /tmp/sn --workers 0   # seconds

What it trains and writes, and every option: ``python tools/supernet.py --help``. The logic is
:func:`attnzero.search.cli.supernet_main` over :mod:`attnzero.search.supernet`.
"""
import sys

from attnzero.search.cli import supernet_main as main

if __name__ == '__main__':
    sys.exit(main())
