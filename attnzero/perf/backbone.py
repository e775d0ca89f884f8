"""Benchmark backbones x attentions: images/s at 224^2, latency and peak memory at high resolution.

    python tools/benchmark_backbone.py --out docs/benchmarks/backbone_cpu
    python tools/benchmark_backbone.py --quick                       # tiny (tests)

Throughput (``--tp-models`` x ``--attn``): classification forward (no grad) at 224x224, batch
``--tp-batch``; images/s = batch / median latency of ``--rounds`` interleaved rounds.

High resolution (``--hr-configs`` at ``--sizes``, batch 1): the dense-prediction forward
(``features_only=True``: all four pyramid levels) -- latency of one call (median of
``--hr-rounds``) and memory. Every high-resolution cell runs in its own subprocess with an
address-space limit (``RLIMIT_AS``, ``--mem-limit-gib``, default 12 GiB) and a wall-clock
timeout, so a configuration that does not fit fails alone (reported as such) instead of taking a
shared machine down. Memory reported per cell: ``peak RSS`` = the subprocess's resident-set
high-water mark (``getrusage().ru_maxrss``: interpreter, torch, weights, input and the forward
pass), and ``forward adds`` = the RSS high-water mark during the forward minus the RSS before it
(reset through ``/proc/self/clear_refs``).

High-resolution configurations: ``pvt_tiny:attnzero`` (the paper's placement: AttnZero in all
stages, no spatial reduction), ``pvt_tiny:softmax_sr`` (PVT's published softmax with spatial
reduction 8/4/2/1), ``pvt_tiny:softmax`` (softmax WITHOUT spatial reduction -- quadratic time;
torch's CPU SDPA picks a memory-efficient flash kernel, so its memory stays O(N)),
``pvt_tiny:softmax_math`` (the same with SDPA forced to the explicit math path, which materialises
the N x N attention matrix: 16 GiB per head at 1024^2 in stage 1).
``MODEL:ATTN`` in general (``ATTN`` = a kernel name, ``softmax_sr`` = softmax with the model's
spatial reduction; ``MODEL`` any ``attnzero_*`` model without the prefix, e.g.
``efficientformer_l1:attnzero``).
"""
from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

import timm
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

import attnzero.models  # noqa: F401  (registers the backbones with timm)
from attnzero.io import loadavg, tool_command

from .timing import (interleaved, machine_info, md_table, median, peak_memory_mib,
                     set_mem_limit, setup_malloc, write_csv)

TP_MODELS = ('deit_tiny', 'pvt_tiny', 'pvt_v2_b0', 'swin_tiny', 'cswin_tiny', 'efficientformer_l1',
             'efficientformer_l3')
HR_CONFIGS = ('pvt_tiny:attnzero', 'pvt_tiny:softmax_sr', 'pvt_tiny:softmax')
SIZES = ('512x512', '800x1333', '1024x1024')


def build(model: str, attn: str, img_size, features_only: bool = False):
    kw = dict(img_size=img_size, features_only=features_only)
    if attn == 'softmax_math':
        attn = 'softmax'
    if attn == 'softmax_sr':
        kw['attn'] = 'softmax'
    else:
        kw['attn'] = attn
        if attn == 'softmax' and model.startswith('pvt'):
            kw['sr_ratios'] = (1, 1, 1, 1)  # softmax WITHOUT spatial reduction
    return timm.create_model(f'attnzero_{model}', **kw).eval()


def child(spec: Dict) -> Dict:
    """One high-resolution cell (runs in its own process)."""
    torch.set_num_threads(spec['threads'])
    H, W = spec['size']
    out: Dict = dict(status='ok')
    try:
        m = build(spec['model'], spec['attn'], (H, W), features_only=True)
        x = torch.randn(1, 3, H, W)
        times = []
        fwd_mib = float('nan')
        ctx = contextlib.nullcontext()
        if spec['attn'] == 'softmax_math':  # SDPA forced to its explicit N x N path
            ctx = sdpa_kernel(SDPBackend.MATH)
        with torch.no_grad(), ctx:
            for r in range(spec['rounds']):
                if r == 0:
                    fwd_mib = peak_memory_mib(lambda: m(x), torch.device('cpu'))
                t0 = time.perf_counter()
                m(x)
                times.append((time.perf_counter() - t0) * 1e3)
        out.update(ms=median(times), fwd_mib=fwd_mib)
    except (MemoryError, torch.OutOfMemoryError) as e:
        out.update(status=f'failed: out of memory under RLIMIT_AS ({str(e).splitlines()[0][:120]})')
    except RuntimeError as e:
        msg = str(e).splitlines()[0][:160]
        out.update(status=f'failed: {msg}')
    out['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def run_child(spec: Dict, mem_limit_gib: float, timeout: float) -> Dict:
    cmd = [sys.executable, '-m', 'attnzero.perf.backbone', '--child', json.dumps(spec),
           '--mem-limit-gib', str(mem_limit_gib)]
    if spec.get('default_malloc'):
        cmd.append('--default-malloc')
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return dict(status=f'timeout after {timeout:.0f} s', ms=float('nan'), fwd_mib=float('nan'),
                    peak_rss_mib=float('nan'))
    for line in reversed(p.stdout.splitlines()):
        if line.startswith('{'):
            return json.loads(line)
    err = (p.stderr.strip().splitlines() or ['no output'])[-1][:160]
    return dict(status=f'failed (exit {p.returncode}): {err}', ms=float('nan'), fwd_mib=float('nan'),
                peak_rss_mib=float('nan'))


def throughput(args) -> List[Dict]:
    rows = []
    x = torch.randn(args.tp_batch, 3, args.tp_size, args.tp_size)
    for model in args.tp_models:
        fns = {}
        for attn in args.attn:
            try:
                m = build(model, attn, (args.tp_size, args.tp_size))
            except Exception as e:  # noqa: BLE001
                rows.append(dict(model=model, attn=attn, status=f'failed to build: {e}'[:160]))
                continue
            fns[attn] = (lambda m: lambda: _nograd(m, x))(m)
        load0 = loadavg()
        times = interleaved(fns, torch.device('cpu'), rounds=args.rounds, min_time=0.0)
        for attn in fns:
            ms = median(times[attn])
            rows.append(dict(model=model, attn=attn, size=args.tp_size, batch=args.tp_batch, ms=ms,
                             img_s=args.tp_batch / ms * 1e3, load=load0, status='ok'))
        if args.verbose:
            print(json.dumps(rows[-len(fns):]), flush=True)
    return rows


def _nograd(m, x):
    with torch.no_grad():
        return m(x)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--tp-models', nargs='*', default=list(TP_MODELS))
    p.add_argument('--attn', nargs='+', default=['softmax', 'attnzero'], help='attentions for throughput')
    p.add_argument('--tp-size', type=int, default=224)
    p.add_argument('--tp-batch', type=int, default=8)
    p.add_argument('--rounds', type=int, default=3)
    p.add_argument('--hr-configs', nargs='*', default=list(HR_CONFIGS))
    p.add_argument('--sizes', nargs='*', default=list(SIZES), help='HxW')
    p.add_argument('--hr-rounds', type=int, default=2)
    p.add_argument('--timeout', type=float, default=900.0, help='seconds per high-resolution cell')
    p.add_argument('--mem-limit-gib', type=float, default=12.0)
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--default-malloc', action='store_true',
                   help="keep glibc's adaptive malloc thresholds (default: attnzero.perf.runtime.tune_malloc)")
    p.add_argument('--out', default=None)
    p.add_argument('--quick', action='store_true')
    p.add_argument('--inprocess', action='store_true',
                   help='run high-resolution cells in this process (no memory isolation; tests)')
    p.add_argument('--child', default=None, help=argparse.SUPPRESS)
    p.add_argument('-v', '--verbose', action='store_true')
    args = p.parse_args(argv)
    if args.child:
        set_mem_limit(args.mem_limit_gib)
        setup_malloc(args.default_malloc)
        print(json.dumps(child(json.loads(args.child))))
        return 0
    command = tool_command('benchmark_backbone', argv)
    torch.set_num_threads(args.threads)
    set_mem_limit(args.mem_limit_gib)
    setup_malloc(args.default_malloc)
    if args.quick:
        args.tp_models, args.tp_size, args.tp_batch, args.rounds = ['pvt_tiny'], 64, 1, 1
        args.attn = ['attnzero']
        args.hr_configs, args.sizes, args.hr_rounds = ['pvt_tiny:attnzero'], ['96x128'], 1
    info = machine_info(torch.device('cpu'))
    tp = throughput(args) if args.tp_models else []
    hr = []
    for cfg in args.hr_configs:
        model, attn = cfg.split(':')
        for size in args.sizes:
            H, W = (int(s) for s in size.split('x'))
            load0 = loadavg()
            spec = dict(model=model, attn=attn, size=(H, W), rounds=args.hr_rounds, threads=args.threads,
                        default_malloc=args.default_malloc)
            res = child(spec) if args.inprocess else run_child(spec, args.mem_limit_gib, args.timeout)
            hr.append(dict(model=model, attn=attn, size=size, load=load0, **res))
            if args.verbose:
                print(json.dumps(hr[-1]), flush=True)
    lines = ['# Backbone benchmark (CPU, float32, no grad)', '',
             'Machine: ' + ', '.join(f'{k} {v}' for k, v in info.items()), '',
             f'Command: `{command}`', '']
    if tp:
        lines += [f'## Throughput at {args.tp_size}², batch {args.tp_batch} (images/s)', '']
        models = list(dict.fromkeys(r['model'] for r in tp))
        table = []
        for mdl in models:
            cells = []
            for attn in args.attn:
                r = next((r for r in tp if r['model'] == mdl and r['attn'] == attn), None)
                cells.append(r['img_s'] if r and r['status'] == 'ok' else (r['status'] if r else ''))
            table.append([mdl] + cells + [next(r['load'] for r in tp if r['model'] == mdl and 'load' in r)
                                          if any('load' in r for r in tp if r['model'] == mdl) else ''])
        lines += [md_table(['backbone'] + [f'{a} img/s' for a in args.attn] + ['load avg'], table), '']
    if hr:
        lines += ['## High resolution (batch 1, dense-prediction forward)', '',
                  md_table(['backbone:attention', 'size', 'latency ms', 'forward adds MiB',
                            'process peak RSS MiB', 'status', 'load avg'],
                           [[f'{r["model"]}:{r["attn"]}', r['size'], r.get('ms', float('nan')),
                             r.get('fwd_mib', float('nan')), r.get('peak_rss_mib', float('nan')),
                             r['status'], r['load']] for r in hr]), '']
    lines += [f'Load average at the end: {loadavg()}', '']
    text = '\n'.join(lines)
    print(text)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix('.md').write_text(text)
        rows = [dict(kind='throughput', **r) for r in tp] + [dict(kind='highres', **r) for r in hr]
        write_csv(rows, out.with_suffix('.csv'))
    return 0


if __name__ == '__main__':
    sys.exit(main())
