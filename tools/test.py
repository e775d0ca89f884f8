#!/usr/bin/env python
"""Evaluate a checkpoint of any ``mmconfigs/`` config on its test split with the package's evaluator
(mmdet ``CocoMetric``, mmseg ``IoUMetric``, mmpretrain ``Accuracy``).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--cfg-options k=v ...]
    python -m torch.distributed.run --nproc_per_node=8 tools/test.py CONFIG CKPT --launcher pytorch

The metrics are printed by the runner and also written as JSON to ``--metrics-out`` when given.
Bad input (missing config or checkpoint, unknown scope, bad genome, missing data root) is one line
on stderr naming the bad value, exit code 2. The logic is :func:`attnzero.mm.runner.test`.
"""
from __future__ import annotations

import sys

from attnzero.mm.runner import run_tool
from attnzero.mm.runner import test as main  # noqa: F401  (main(argv) -> metrics)


if __name__ == '__main__':
    sys.exit(run_tool(main, None, 'tools/test.py'))
