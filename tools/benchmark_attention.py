#!/usr/bin/env python
"""Benchmark the attention zoo: latency (forward, forward+backward), MACs and peak memory per kernel.

    python tools/benchmark_attention.py --grid 56 56 --dim 64 --heads 1 --batch 8
    python tools/benchmark_attention.py --attn softmax attnzero --grid 14 14 28 28 56 56 --device cuda --dtype bf16

Times the whole :class:`attnzero.attention.Attention` module (projections included) on
``(batch, H*W [+ prefix], dim)`` tokens; MACs from :mod:`attnzero.flops` (matrix products only).
Prints a table, or JSON lines with ``--json``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attnzero.attention import ATTENTIONS, Attention  # noqa: E402
from attnzero.flops import count_flops  # noqa: E402

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16, 'fp64': torch.float64}


def _sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_fn(fn, device: torch.device, warmup: int, iters: int) -> float:
    for _ in range(warmup):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / iters * 1e3


def bench_one(name: str, hw, args, device: torch.device, dtype: torch.dtype) -> dict:
    H, W = hw
    torch.manual_seed(0)
    m = Attention(args.dim, args.heads, attn=name, num_prefix_tokens=args.prefix,
                  sr_ratio=args.sr_ratio).to(device=device, dtype=dtype)
    x = torch.randn(args.batch, args.prefix + H * W, args.dim, device=device, dtype=dtype)
    row = dict(attn=name, H=H, W=W, N=args.prefix + H * W, dim=args.dim, heads=args.heads,
               batch=args.batch, dtype=args.dtype, device=str(device), linear=bool(m.kernel.linear))
    row['gmacs'] = count_flops(m, x, hw=hw).gmacs
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    try:
        with torch.no_grad():
            row['fwd_ms'] = time_fn(lambda: m(x, hw), device, args.warmup, args.iters)
        xg = x.detach().requires_grad_()
        row['fwd_bwd_ms'] = time_fn(lambda: m(xg, hw).float().square().mean().backward(), device,
                                    args.warmup, args.iters)
    except torch.OutOfMemoryError:
        row['error'] = 'out of memory'
    if device.type == 'cuda':
        row['peak_mib'] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--attn', nargs='+', default=None, help=f'kernels (default all: {sorted(ATTENTIONS)})')
    p.add_argument('--grid', nargs='+', type=int, default=[14, 14], help='H W [H W ...]')
    p.add_argument('--dim', type=int, default=64)
    p.add_argument('--heads', type=int, default=1)
    p.add_argument('--batch', type=int, default=8)
    p.add_argument('--prefix', type=int, default=0)
    p.add_argument('--sr-ratio', type=int, default=1)
    p.add_argument('--dtype', choices=sorted(DTYPES), default='fp32')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--json', action='store_true', help='one JSON object per line')
    args = p.parse_args(argv)
    if len(args.grid) % 2:
        p.error('--grid takes pairs H W')
    grids = list(zip(args.grid[::2], args.grid[1::2]))
    names = args.attn or sorted(ATTENTIONS)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    if not args.json:
        print(f'{"attn":12s} {"H x W":>9s} {"GMACs":>8s} {"fwd ms":>9s} {"fwd+bwd ms":>11s} {"peak MiB":>9s}')
    for hw in grids:
        for name in names:
            row = bench_one(name, hw, args, device, dtype)
            if args.json:
                print(json.dumps(row))
            else:
                print(f'{name:12s} {hw[0]:>4d}x{hw[1]:<4d} {row["gmacs"]:8.3f} {row.get("fwd_ms", float("nan")):9.2f} '
                      f'{row.get("fwd_bwd_ms", float("nan")):11.2f} {row.get("peak_mib", float("nan")):9.1f}'
                      + (f'  {row["error"]}' if 'error' in row else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
