"""Inference throughput (images/s) of the model of any ``mmconfigs/`` config at its test resolution.

    python tools/benchmark_fps.py CONFIG [--checkpoint CKPT] [--shape H [W]] [--batch-size 1]
                                  [--num-iters 50] [--warmup 5] [--device cuda] [--fp16]

Times the full model forward (backbone + neck + heads, ``mode='tensor'``) on a constant input of
the test resolution (detection 800x1280, segmentation 512x512, classification 224x224 unless
``--shape`` is given), after ``--warmup`` untimed passes; on CUDA it synchronises around each pass.
Data loading and post-processing are not timed. ``--backbone-only`` times the backbone alone.
"""
from __future__ import annotations

import time
from typing import Optional, Sequence

import torch

from .mmconfig import arg_parser, build_model, dummy_data_samples, input_hw, write_json

__all__ = ['benchmark', 'main']


def benchmark(config, shape=None, batch_size=1, num_iters=50, warmup=5, device=None, fp16=False,
              backbone_only=False, checkpoint=None, cfg_options=None, genome=None) -> dict:
    """Images/s and ms per iteration of the model's forward (see the module docstring)."""
    cfg, scope, model = build_model(config, cfg_options, genome)
    if checkpoint:
        from mmengine.runner import load_checkpoint
        load_checkpoint(model, checkpoint, map_location='cpu')
    device = device or ('cuda' if torch.cuda.is_available() else 'cpu')
    model = model.to(device).eval()
    h, w = input_hw(scope, shape)
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = arg_parser('Inference images/s of an mmconfigs/ model.')
    p.add_argument('--checkpoint', help='load these weights first (optional; speed does not depend on them)')
    p.add_argument('--batch-size', type=int, default=1)
    p.add_argument('--num-iters', type=int, default=50)
    p.add_argument('--warmup', type=int, default=5)
    p.add_argument('--device', default=None, help='cuda or cpu (default: cuda if available)')
    p.add_argument('--fp16', action='store_true', help='autocast to float16 (CUDA) / bfloat16 (CPU)')
    p.add_argument('--backbone-only', action='store_true')
    args = p.parse_args(argv)
    r = benchmark(args.config, args.shape, args.batch_size, args.num_iters, args.warmup,
                  args.device, args.fp16, args.backbone_only, args.checkpoint, args.cfg_options,
                  args.genome)
    what = 'backbone' if r['backbone_only'] else 'model'
    print(f'{args.config}: {what} at {r["batch_size"]}x3x{r["shape"][0]}x{r["shape"][1]} on '
          f'{r["device"]}{" (fp16)" if r["fp16"] else ""}: {r["ms_per_iter"]:.1f} ms/iter, '
          f'{r["fps"]:.2f} img/s over {r["iters"]} iterations')
    write_json(args.json, r)
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
