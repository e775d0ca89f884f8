#!/usr/bin/env python
"""Inference throughput (images/s) of the model of any ``mmconfigs/`` config at its test resolution.

    python tools/benchmark_fps.py CONFIG [--checkpoint CKPT] [--shape H [W]] [--batch-size 1]
                                  [--num-iters 50] [--warmup 5] [--device cuda] [--fp16]

Times the full model forward (backbone + neck + heads, ``mode='tensor'``) on a constant input of
the test resolution (detection 800x1280, segmentation 512x512, classification 224x224 unless
``--shape`` is given), after ``--warmup`` untimed passes; on CUDA it synchronises around each pass.
Data loading and post-processing are not timed. ``--backbone-only`` times the backbone alone.
"""
from __future__ import annotations

import argparse
import json
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)
sys.path.insert(0, osp.dirname(osp.abspath(__file__)))

import attnzero.compat  # noqa: E402,F401


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description='Inference images/s of an mmconfigs/ model.')
    p.add_argument('config')
    p.add_argument('--checkpoint', help='load these weights first (optional; speed does not depend on them)')
    p.add_argument('--shape', type=int, nargs='+', default=None, help='input H [W]')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--num-iters', type=int, default=50)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda if available)')
    p.add_argument('--fp16', action='store_true', help='autocast to float16 (CUDA) / bfloat16 (CPU)')
    p.add_argument('--backbone-only', action='store_true')
    p.add_argument('--json', help='also write the result to this JSON file')
    p.add_argument('--genome', help='AttnZero genome text for the backbone (as in tools/train.py)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction)
    return p.parse_args(argv)


def benchmark(config, shape=None, batch_size=1, num_iters=50, warmup=5, device=None, fp16=False,
              backbone_only=False, checkpoint=None, cfg_options=None, genome=None) -> dict:
    import torch
    from get_flops import DEFAULT_SHAPES, build_model, dummy_data_samples

    cfg, scope, model = build_model(config, cfg_options, genome)
    if checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = model.to(device).eval()
    if shape is None:
        h, w = DEFAULT_SHAPES[scope]
    else:
        h, w = (shape[0], shape[0]) if len(shape) == 1 else shape[:2]
    x = torch.randn(batch_size, 3, h, w, device=device)
    if backbone_only:
        fn = lambda: model.backbone(x)  # noqa: E731
    else:
        samples = dummy_data_samples(scope, h, w)
        samples = samples * batch_size if samples is not None else None
        fn = lambda: model(x, samples, mode='tensor')  # noqa: E731
    sync = torch.cuda.synchronize if device.startswith('cuda') else (lambda: None)
    amp_dtype = torch.float16 if device.startswith('cuda') else torch.bfloat16
    times = []
    with torch.no_grad(), torch.autocast(device_type=device.split(':')[0], dtype=amp_dtype,
                                         enabled=fp16):
        for i in range(warmup + num_iters):
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    total = sum(times)
    return {'config': config, 'scope': scope, 'device': device, 'shape': [h, w],
            'batch_size': batch_size, 'iters': num_iters, 'fp16': fp16,
            'backbone_only': backbone_only, 'ms_per_iter': 1e3 * total / max(len(times), 1),
            'fps': batch_size * len(times) / total if total > 0 else float('nan')}


def main(argv=None) -> dict:
    args = parse_args(argv)
    r = benchmark(args.config, args.shape, args.batch_size, args.num_iters, args.warmup,
                  args.device, args.fp16, args.backbone_only, args.checkpoint, args.cfg_options,
                  args.genome)
    what = 'backbone' if r['backbone_only'] else 'model'
    print(f'{args.config}: {what} at {r["batch_size"]}x3x{r["shape"][0]}x{r["shape"][1]} on '
          f'{r["device"]}{" (fp16)" if r["fp16"] else ""}: {r["ms_per_iter"]:.1f} ms/iter, '
          f'{r["fps"]:.2f} img/s over {r["iters"]} iterations')
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(r, f, indent=2)
    return r


if __name__ == '__main__':
    main()
