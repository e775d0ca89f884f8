#!/usr/bin/env python
"""Train any config of ``mmconfigs/`` (mmdet, mmseg or mmpretrain) with mmengine's Runner.

    python tools/train.py CONFIG [--work-dir DIR] [--resume [CKPT]] [--amp] [--cfg-options k=v ...]
    bash tools/dist_train.sh CONFIG GPUS [...]            # multi-GPU (torchrun, --launcher pytorch)
    bash tools/slurm_train.sh PARTITION JOB CONFIG DIR    # Slurm (--launcher slurm)

The config's ``default_scope`` (``mmdet`` / ``mmseg`` / ``mmpretrain``) picks the package whose
registries, loops, hooks and evaluators are used; the training itself is ``Runner.from_cfg(cfg)``
(or the config's ``runner_type``) followed by ``runner.train()``, as in the packages' own tools.

``--resume`` without a value resumes from the last checkpoint of the work dir; with a path it
resumes from that checkpoint. The work dir defaults to ``work_dirs/<config file name>``.
A missing config, unknown scope, bad genome, missing checkpoint or missing data root is one line
on stderr naming the bad value, exit code 2. The logic is :mod:`attnzero.mm.runner`.
"""
from __future__ import annotations

import sys

from attnzero.mm.runner import run_tool, train


def main(argv=None) -> int:
    return run_tool(train, argv, 'tools/train.py')


if __name__ == '__main__':
    sys.exit(main())
