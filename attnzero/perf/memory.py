"""Peak host memory (RSS) of one training step of an ``mmconfigs/`` detector, with and without the
backbone's ``with_cp`` (activation checkpointing per block).

Each measurement runs in a fresh Python process (peak RSS is per process): it builds the model
from the config (backbone not initialised from a file), makes one synthetic image of the given
size with a few ground-truth boxes and masks, runs it through the model's data preprocessor, and
then performs one full training step -- ``loss`` forward, backward, optimiser step. The kernel's
high-water mark (``VmHWM``) is reset right before the step (``/proc/self/clear_refs``), so the
reported peak is the step's, and the step's extra memory is that peak minus the RSS just before.

Linux only (``/proc``); CPU only (CUDA peak memory would be ``torch.cuda.max_memory_allocated``).
"""
from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from attnzero.io import tool_command
from attnzero.mm.runner import setup_scope, speed_up_base_lookup

from .runtime import proc_status_kib, reset_peak_rss
from .timing import write_csv

__all__ = ['measure_step', 'measure_in_subprocess', 'write_table']


def _reset_peak() -> bool:
    try:
        reset_peak_rss()
        return True
    except OSError:
        return False


def _det_batch(model, hw: Tuple[int, int], n_objects: int, seed: int = 0):
    from mmdet.structures import DetDataSample
    from mmdet.structures.mask import BitmapMasks
    from mmengine.structures import InstanceData

    rng = np.random.default_rng(seed)
    h, w = hw
    img = torch.from_numpy(rng.integers(0, 256, (3, h, w), dtype=np.uint8))
    boxes, masks = [], np.zeros((n_objects, h, w), dtype=np.uint8)
    for i in range(n_objects):
        bw, bh = rng.integers(w // 10, w // 3), rng.integers(h // 10, h // 3)
        x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        boxes.append([x0, y0, x0 + bw, y0 + bh])
        masks[i, y0:y0 + bh, x0:x0 + bw] = 1
    gt = InstanceData()
    gt.bboxes = torch.tensor(boxes, dtype=torch.float32)
    gt.labels = torch.from_numpy(rng.integers(0, 80, n_objects))
    gt.masks = BitmapMasks(masks, h, w)
    sample = DetDataSample(metainfo=dict(img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
    sample.gt_instances = gt
    return model.data_preprocessor({'inputs': [img], 'data_samples': [sample]}, training=True)


def measure_step(config: str, with_cp: bool, hw: Tuple[int, int] = (800, 1333),
                 n_objects: int = 5, threads: Optional[int] = None) -> Dict[str, object]:
    """One training step of ``config``'s model in *this* process; returns RSS figures in MiB."""
    from mmengine.config import Config
    from mmengine.registry import MODELS

    if threads:
        torch.set_num_threads(threads)
    speed_up_base_lookup()
    cfg = Config.fromfile(config)
    setup_scope(cfg)
    cfg.model.backbone.init_cfg = None
    cfg.model.backbone.with_cp = bool(with_cp)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.train()
    data = _det_batch(model, hw, n_objects)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    gc.collect()
    before = proc_status_kib('VmRSS')
    reset = _reset_peak()
    t0 = time.perf_counter()
    losses = model(**data, mode='loss')
    loss = sum(v.sum() if isinstance(v, torch.Tensor) else sum(x.sum() for x in v)
               for k, v in losses.items() if 'loss' in k)
    loss.backward()
    opt.step()
    seconds = time.perf_counter() - t0
    peak = proc_status_kib('VmHWM')
    grad_norm = float(torch.norm(torch.stack([p.grad.norm() for p in model.backbone.parameters()
                                               if p.grad is not None])))
    return dict(config=os.path.relpath(config), with_cp=bool(with_cp), height=hw[0], width=hw[1],
                input_shape=list(data['inputs'].shape), rss_before_mib=round(before / 1024, 1),
                peak_rss_mib=round(peak / 1024, 1), step_extra_mib=round((peak - before) / 1024, 1),
                peak_reset=reset, step_seconds=round(seconds, 2), loss=float(loss),
                backbone_grad_norm=grad_norm, threads=torch.get_num_threads())


def measure_in_subprocess(config: str, with_cp: bool, hw: Tuple[int, int] = (800, 1333),
                          n_objects: int = 5, threads: Optional[int] = None,
                          timeout: float = 1800) -> Dict[str, object]:
    """:func:`measure_step` in a fresh interpreter (its own peak RSS)."""
    code = ('import json, sys; from attnzero.perf.memory import measure_step; '
            'print("@@" + json.dumps(measure_step(*json.loads(sys.argv[1]))))')
    args = json.dumps([config, bool(with_cp), list(hw), n_objects, threads])
    r = subprocess.run([sys.executable, '-c', code, args], capture_output=True, text=True,
                       timeout=timeout)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith('@@')]
    if r.returncode != 0 or not lines:
        raise RuntimeError(f'memory measurement of {config} (with_cp={with_cp}) failed:\n'
                           f'{r.stderr[-3000:]}')
    return json.loads(lines[-1][2:])


def write_table(rows: List[Dict[str, object]], out_prefix: str, command: str,
                conditions: str) -> List[str]:
    """``out_prefix``.md / .csv / .png from measured rows (pairs without / with ``with_cp``)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    os.makedirs(os.path.dirname(out_prefix) or '.', exist_ok=True)
    write_csv(rows, out_prefix + '.csv')
    by_cfg: Dict[str, Dict[bool, Dict[str, object]]] = {}
    for r in rows:
        by_cfg.setdefault(str(r['config']), {})[bool(r['with_cp'])] = r
    lines = ['# Activation checkpointing (`with_cp`): peak training memory', '',
             'Produced by:', '', '```bash', command, '```', '', conditions, '',
             '| config | input (padded) | with_cp | peak RSS MiB | step extra MiB | step s | loss |',
             '|---|---|---|---|---|---|---|']
    summary = []
    for cfg, pair in by_cfg.items():
        for cp in (False, True):
            if cp not in pair:
                continue
            r = pair[cp]
            shape = 'x'.join(str(s) for s in r['input_shape'][-2:])
            lines.append(f"| {os.path.basename(cfg)} | {shape} | {cp} | {r['peak_rss_mib']} | "
                         f"{r['step_extra_mib']} | {r['step_seconds']} | {r['loss']:.4f} |")
        if False in pair and True in pair:
            a, b = pair[False], pair[True]
            saved = float(a['step_extra_mib']) - float(b['step_extra_mib'])
            summary.append((os.path.basename(cfg), saved, saved / float(a['step_extra_mib']),
                            float(a['peak_rss_mib']) - float(b['peak_rss_mib']),
                            float(b['step_seconds']) / float(a['step_seconds'])))
    lines += ['', '| config | step memory saved MiB | saved share of the step | peak RSS saved MiB |',
              '|---|---|---|---|']
    for name, saved, share, peak_saved, _ in summary:
        lines.append(f'| {name} | {saved:.0f} | {share:.0%} | {peak_saved:.0f} |')
    lines += ['', 'The loss (and the backbone gradient norm in the csv) is the same with and without '
              '`with_cp`. "step s" is one step, timed once on a shared machine: it is not a speed '
              'comparison (checkpointing recomputes each block\'s forward during backward).']
    with open(out_prefix + '.md', 'w') as f:
        f.write('\n'.join(lines) + '\n')
    fig, ax = plt.subplots(figsize=(7, 3.2))
    names = list(by_cfg)
    for j, cp in enumerate((False, True)):
        vals = [float(by_cfg[n][cp]['step_extra_mib']) if cp in by_cfg[n] else 0 for n in names]
        ax.barh([i + 0.4 * j for i in range(len(names))], vals, height=0.4,
                label=f'with_cp={cp}')
    ax.set_yticks([i + 0.2 for i in range(len(names))])
    ax.set_yticklabels([os.path.basename(n).split('_fpn')[0] for n in names], fontsize=8)
    ax.set_xlabel('memory of one training step above the model (MiB, CPU RSS)')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_prefix + '.png', dpi=120)
    plt.close(fig)
    return [out_prefix + ext for ext in ('.md', '.csv', '.png')]


def main(argv: Optional[Sequence[str]] = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description='Peak training-step memory with / without with_cp.')
    p.add_argument('configs', nargs='+', help='mmdet configs (Mask R-CNN, RetinaNet ...)')
    p.add_argument('--shape', type=int, nargs=2, default=(800, 1333), metavar=('H', 'W'))
    p.add_argument('--objects', type=int, default=5, help='ground-truth objects in the image')
    p.add_argument('--threads', type=int, default=None)
    p.add_argument('--out', default='docs/benchmarks/with_cp_memory_cpu',
                   help='output prefix (.md, .csv, .png)')
    args = p.parse_args(argv)
    for c in args.configs:
        if not os.path.isfile(c):
            p.error(f'config {c!r} does not exist')
    rows = []
    for c in args.configs:
        for cp in (False, True):
            r = measure_in_subprocess(c, cp, tuple(args.shape), args.objects, args.threads)
            print(json.dumps(r))
            rows.append(r)
    load = os.getloadavg()
    cmd = tool_command('benchmark_cp_memory', argv)
    conditions = (f'CPU, one synthetic {args.shape[0]}x{args.shape[1]} image with {args.objects} '
                  'boxes and masks, batch 1, one training step (loss forward + backward + AdamW '
                  'step) in a fresh process per row; backbone randomly initialised; glibc default '
                  f'malloc (not tuned); load average at the end {load[0]:.2f}. "peak RSS" is the '
                  'process high-water mark during the step (reset just before it); "step extra" '
                  'is that peak minus the RSS before the step (model weights and the input already '
                  'resident; the AdamW state is allocated inside the step).')
    for f in write_table(rows, args.out, cmd, conditions):
        print('wrote', f)
    return 0
