#!/usr/bin/env python
"""Evaluate a checkpoint of any ``mmconfigs/`` config on its test split with the package's evaluator
(mmdet ``CocoMetric``, mmseg ``IoUMetric``, mmpretrain ``Accuracy``).

    python tools/test.py CONFIG CHECKPOINT [--work-dir DIR] [--out results.pkl] [--cfg-options k=v ...]
    python -m torch.distributed.run --nproc_per_node=8 tools/test.py CONFIG CKPT --launcher pytorch

The metrics are printed by the runner and also written as JSON to ``--metrics-out`` when given.
"""
from __future__ import annotations

import argparse
import json
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import attnzero.compat  # noqa: E402,F401  (torch >= 2.6 checkpoint loading for mmengine)
from train import build_runner, load_config, setup_scope  # noqa: E402


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description='Test (evaluate) a checkpoint of an mmconfigs/ config.')
    p.add_argument('config', help='config file path')
    p.add_argument('checkpoint', help='checkpoint file')
    p.add_argument('--work-dir', help='where the test logs go (default: work_dirs/<config name>)')
    p.add_argument('--out', help='dump the raw predictions to this pickle file')
    p.add_argument('--metrics-out', help='write the metrics to this JSON file')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value')
    p.add_argument('--genome', help='AttnZero genome text (as given to tools/train.py --genome)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    # the weights come from the checkpoint: do not ask for the backbone's pretrained file
    if isinstance(cfg.get('model', {}).get('backbone'), dict):
        cfg.model.backbone.init_cfg = None
    scope = setup_scope(cfg)

    if args.out is not None:
        assert args.out.endswith(('.pkl', '.pickle')), '--out must be a .pkl file'
        cfg.test_evaluator = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
            else [cfg.test_evaluator]
        cfg.test_evaluator = list(cfg.test_evaluator) + [
            dict(type='DumpResults', out_file_path=args.out)]

    runner = build_runner(cfg)
    metrics = runner.test()
    metrics = {k: (float(v) if isinstance(v, (int, float)) or hasattr(v, 'item') else v)
               for k, v in (metrics or {}).items()}
    print(f'[test] {scope} metrics: ' + json.dumps(metrics, default=str))
    if args.metrics_out:
        with open(args.metrics_out, 'w') as f:
            json.dump(metrics, f, indent=2, default=str)
    return metrics


if __name__ == '__main__':
    main()
    sys.exit(0)
