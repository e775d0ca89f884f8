"""Deployment check of the backbones on a device: no host synchronisation, ``torch.compile``
with ``fullgraph=True`` against eager, and images/s eager vs compiled.

    python tools/benchmark_deploy.py --device cuda --out docs/benchmarks/deploy_cuda
    python tools/benchmark_deploy.py --quick                     # tiny, on CPU (tests)

Per model x attention (``attnzero_<model>`` built with ``attn=<attention>`` at its default size by
:func:`attnzero.models.export.build`, as ``tools/export.py`` builds it, and fed ``--img`` inputs;
``attnzero`` is the family's default genome, Trial-105 unless the family says otherwise):

* **host syncs**: on CUDA, a forward without grad, then a training forward + backward, run under
  ``torch.cuda.set_sync_debug_mode('error')``, which raises on any operation that makes the host
  wait for the device (``.item()``, ``nonzero``, a device-to-host copy, data-dependent shapes).
  ``ok`` means none happened; otherwise the first error line. Not applicable on CPU (``n/a``).
* **compile**: ``torch.compile(model, fullgraph=True)`` (inductor, default mode); the wall time of
  its first call (tracing and code generation), and the largest absolute difference of its
  output from eager's, both in float32 (TF32 off).
* **throughput**: images/s of the no-grad classification forward at ``--batch``, eager float32,
  eager under bfloat16 autocast (CUDA only) and compiled float32: ``batch`` / median of ``--iters``
  timed calls after ``--warmup`` calls (each call synchronised; CUDA events are not needed at
  these durations).

Each row is printed as JSON and appended to ``OUT.jsonl`` as soon as it is measured (a run cut
short keeps what it measured); ``OUT.md``, ``.csv`` and ``.png`` are written at the end.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import timm
import torch

from attnzero.io import loadavg, tool_command
from attnzero.models.export import build

from .timing import machine_info, md_table, sync

MODELS = ('deit_tiny', 'pvt_tiny', 'pvt_v2_b0', 'swin_tiny', 'cswin_tiny', 'efficientformer_l1', 'vit')
ATTNS = ('attnzero', 'softmax')
FIELDS = ('model', 'attn', 'img', 'batch', 'host_syncs', 'compile_ok', 'compile_s', 'compile_max_abs_err',
          'eager_fp32_img_s', 'eager_bf16_img_s', 'compiled_fp32_img_s', 'compiled_over_eager', 'error')


def _first_line(e: BaseException) -> str:
    return f'{type(e).__name__}: {(str(e).strip().splitlines() or [""])[0][:200]}'


def host_sync_check(model: torch.nn.Module, x: torch.Tensor) -> str:
    """``ok`` if a no-grad forward and a training forward + backward make no host synchronisation
    (CUDA); ``n/a`` on other devices; else the first error."""
    if x.device.type != 'cuda':
        return 'n/a'
    sync(x.device)
    prev = torch.cuda.get_sync_debug_mode()
    try:
        torch.cuda.set_sync_debug_mode('error')
        with torch.no_grad():
            model.eval()(x)
        model.train()
        out = model(x)
        out.float().square().mean().backward()
        return 'ok'
    except RuntimeError as e:
        return _first_line(e)
    finally:
        torch.cuda.set_sync_debug_mode(prev)
        model.eval()
        model.zero_grad(set_to_none=True)
        sync(x.device)


def images_per_s(fn, x: torch.Tensor, iters: int, warmup: int) -> float:
    with torch.no_grad():
        for _ in range(warmup):
            fn(x)
        sync(x.device)
        ts = []
        for _ in range(iters):
            t0 = time.perf_counter()
            fn(x)
            sync(x.device)
            ts.append(time.perf_counter() - t0)
    return x.shape[0] / statistics.median(ts)


def check(model_name: str, attn: str, device: torch.device, img: int = 224, batch: int = 32,
          iters: int = 10, warmup: int = 3, compile: bool = True) -> Dict[str, object]:
    """One row of the table (see the module's docstring); failures are recorded, not raised."""
    row: Dict[str, object] = dict(model=model_name, attn=attn, img=img, batch=batch, host_syncs='',
                                  compile_ok='', compile_s=float('nan'), compile_max_abs_err=float('nan'),
                                  eager_fp32_img_s=float('nan'), eager_bf16_img_s=float('nan'),
                                  compiled_fp32_img_s=float('nan'), compiled_over_eager=float('nan'), error='')
    try:
        torch.manual_seed(0)
        model = build(f'attnzero_{model_name}', [attn]).to(device)  # as tools/export.py builds it
        x = torch.randn(batch, 3, img, img, device=device)
        row['host_syncs'] = host_sync_check(model, x[:2])
        row['eager_fp32_img_s'] = images_per_s(model, x, iters, warmup)
        if device.type == 'cuda':
            def bf16(t):
                with torch.autocast('cuda', dtype=torch.bfloat16):
                    return model(t)
            row['eager_bf16_img_s'] = images_per_s(bf16, x, iters, warmup)
        if compile:
            row['compile_ok'] = 'failed'  # until its first call has run
            torch._dynamo.reset()
            cmodel = torch.compile(model, fullgraph=True)
            with torch.no_grad():
                ref = model(x)
                t0 = time.perf_counter()
                out = cmodel(x)
                sync(device)
            row['compile_s'] = time.perf_counter() - t0
            row['compile_ok'] = 'ok'
            row['compile_max_abs_err'] = float((out - ref).abs().max())
            row['compiled_fp32_img_s'] = images_per_s(cmodel, x, iters, warmup)
            row['compiled_over_eager'] = row['compiled_fp32_img_s'] / row['eager_fp32_img_s']
    except Exception as e:  # one failing cell is reported in the table, the others still run
        row['error'] = _first_line(e)
    return row


def write_table(rows: List[Dict[str, object]], out: str, info: Dict[str, str], command: str) -> None:
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with open(out + '.csv', 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        w.writeheader()
        w.writerows(rows)
    header = ['model', 'attention', 'host syncs (fwd, fwd+bwd)', 'compile fullgraph', 'compile s',
              'max abs err vs eager', 'eager fp32 img/s', 'eager bf16 img/s', 'compiled fp32 img/s',
              'compiled / eager', 'error']
    body = [[r['model'], r['attn'], r['host_syncs'], r['compile_ok'], r['compile_s'], r['compile_max_abs_err'],
             r['eager_fp32_img_s'], r['eager_bf16_img_s'], r['compiled_fp32_img_s'], r['compiled_over_eager'],
             r['error']] for r in rows]
    n_sync = sum(r['host_syncs'] == 'ok' for r in rows)
    n_comp = sum(r['compile_ok'] == 'ok' for r in rows)
    lines = ['# Deployment check: host syncs, torch.compile(fullgraph=True), throughput', '',
             'Produced by:', '', '```bash', command, '```', '',
             'Machine: ' + ', '.join(f'{k} {v}' for k, v in info.items()) + '.', '',
             f'Input {rows[0]["img"] if rows else "-"}x{rows[0]["img"] if rows else "-"}, batch '
             f'{rows[0]["batch"] if rows else "-"} (host-sync check at batch 2). Free of host syncs: '
             f'{n_sync} of {len(rows)}; compiled with fullgraph=True: {n_comp} of {len(rows)}.', '',
             'What each column is: `attnzero/perf/deploy.py`. Compile time is the first call of the '
             'compiled model (inductor, default mode, caches of this process only).', '',
             md_table(header, body), '']
    Path(out + '.md').write_text('\n'.join(lines))
    plot(rows, out + '.png')


def plot(rows: List[Dict[str, object]], path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    cols = [('eager_fp32_img_s', 'eager fp32'), ('eager_bf16_img_s', 'eager bf16'),
            ('compiled_fp32_img_s', 'compiled fp32')]
    labels = [f"{r['model']}\n{r['attn']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(rows) + 2), 4))
    width = 0.8 / len(cols)
    for i, (k, name) in enumerate(cols):
        vals = [float(r[k]) if r[k] == r[k] else 0.0 for r in rows]
        ax.bar([j + i * width for j in range(len(rows))], vals, width, label=name)
    ax.set_xticks([j + width for j in range(len(rows))])
    ax.set_xticklabels(labels, fontsize=7)
    ax.set_ylabel('images / s')
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--models', nargs='+', default=list(MODELS),
                   help='attnzero_* models without the prefix (default: one per family)')
    p.add_argument('--attn', nargs='+', default=list(ATTNS))
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--img', type=int, default=224)
    p.add_argument('--batch', type=int, default=32)
    p.add_argument('--iters', type=int, default=10)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--no-compile', action='store_true')
    p.add_argument('--compile-attn', nargs='+', default=None,
                   help='compile only these attentions (default: all of --attn)')
    p.add_argument('--out', default='docs/benchmarks/deploy')
    p.add_argument('--quick', action='store_true', help='deit_tiny, 64 px, batch 2, 2 iterations, no compile')
    args = p.parse_args(argv)
    if args.quick:
        args.models, args.attn, args.img, args.batch, args.iters, args.warmup = ['deit_tiny'], ['attnzero'], 64, 2, 2, 1
        args.no_compile = True
    unknown = [m for m in args.models if f'attnzero_{m}' not in timm.list_models('attnzero_*')]
    if unknown:
        print(f'benchmark_deploy: unknown model {unknown[0]!r} (attnzero_* without the prefix)', file=sys.stderr)
        return 2
    try:
        device = torch.device(args.device)
    except RuntimeError:
        print(f'benchmark_deploy: bad --device {args.device!r}', file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    info = machine_info(device)
    command = tool_command('benchmark_deploy', argv)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with open(args.out + '.jsonl', 'w') as log:
        for m in args.models:
            for a in args.attn:
                comp = not args.no_compile and (args.compile_attn is None or a in args.compile_attn)
                row = check(m, a, device, args.img, args.batch, args.iters, args.warmup, compile=comp)
                rows.append(row)
                print(json.dumps(row), flush=True)
                log.write(json.dumps(row) + '\n')
                log.flush()
    info['load_avg_end'] = loadavg()
    write_table(rows, args.out, info, command)
    return 0 if all(not r['error'] for r in rows) else 1
