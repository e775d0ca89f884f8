"""From a search run to a downstream verdict in one command (``tools/transfer.py``).

    python tools/transfer.py --run runs/search --backbone pvtv2-b0 --seeds 2 --out work_dirs/transfer
    python tools/transfer.py --genome 'i3n303:...' --zoo softmax,focused --tasks ade-fpn
    python tools/transfer.py --data-root data --tasks coco-mask,ade-upernet --pretrained 'ckpt/{backbone}-{attn}.pth'

For every attention x task x seed it derives the ready ``mmconfigs/`` config of the task and the
backbone with that attention, trains and evaluates it through mmengine's Runner (one
``python -m attnzero.mm train`` process per run; the metrics are the packages' own evaluators:
COCO box / mask AP, mIoU, top-1), and collects parameters, FLOPs at the task's standard resolution
and backbone throughput. The outputs in ``--out``: ``transfer.md`` and ``transfer.csv`` (one row per
attention, one column group per task, mean ± sd over seeds), one bar plot per metric with
error bars, and the exact command of every run.

**Attentions** (their union, in this order): the fronts of search run directories (``--run``: the
``best_genomes.json`` the search writes, best ``--top`` of each), genome texts (``--genome``) and zoo
names (``--zoo``, default softmax, linear, focused, agent and trial_105; ``trial_105`` /
``trial_140`` are the paper's genomes in the ``attnzero`` kernel).

**Data.** Without ``--data-root`` every run uses the toy data set (``attnzero.data.toy``, written to
``--toy-root`` when missing) with the ``mmconfigs/toy/`` overlay of the task: the real config of the
chosen backbone with the toy data, pipelines and narrower heads. With ``--data-root DIR`` the real
config runs on ``DIR/coco``, ``DIR/ade/ADEChallengeData2016`` and ``DIR/imagenet`` (the
OpenMMLab layout, see ``docs/mmconfigs.md``); backbone weights come from ``--pretrained`` (a pattern
with ``{backbone}``, ``{attn}`` and ``{label}``) or the config, or none with ``--from-scratch``.

**Resuming.** A run's directory (``OUT/runs/<task>/<attention>/seed<i>``) holds its config, log,
checkpoints and, once finished, ``result.json``. Re-running the same command skips finished runs
and continues a killed one from its last checkpoint (``--resume``). Settings that change what a run
means (backbone, data, schedule, seed, weights, overrides) are recorded in ``OUT/settings.json``; a
second invocation with other settings stops with an error instead of mixing the runs.

**Bad input** -- an unknown task or zoo name, a genome that fails the program check, a run directory
without a front, a missing data root, a backbone without a config for a task -- stops with a
one-line :class:`~attnzero.mm.runner.ToolError` before any run starts; finished runs are never
touched.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import os.path as osp
import re
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch

from attnzero.attention import ATTENTIONS
from attnzero.data import toy
from attnzero.io import atomic_savefig, atomic_write_text, tool_command
from attnzero.mm.hooks import METRICS_FILE
from attnzero.flops import count_flops
from attnzero.mm.runner import (ToolError, check_data, check_genome, check_pretrained, dataset_nodes,
                                genome_target, run_tool, speed_up_base_lookup)
from attnzero.perf.mmconfig import DEFAULT_SHAPES, build_model
from attnzero.space import TRIAL_105, TRIAL_140, as_genome, genome_problem

__all__ = ['Task', 'TASKS', 'DENSE_TASKS', 'DEFAULT_ZOO', 'Attention', 'resolve_attentions',
           'backbones_for', 'derive_config', 'scale_schedule', 'run_transfer', 'collect', 'report',
           'arg_parser', 'main']


# ----------------------------------------------------------------------------------- tasks
@dataclass(frozen=True)
class Task:
    """A downstream task: where its configs are and what it reports.

    ``real``: the config of a backbone (``{backbone}`` filled in), relative to ``mmconfigs/``;
    ``toy``: its toy overlay (written for PVTv2-B0; its ``_base_`` is swapped for other backbones);
    ``data``: the data set folder under the data root; ``metrics``: ``(evaluator key, column label,
    scale)``; COCO AP is scaled to percent like mIoU and top-1."""

    name: str
    scope: str
    real: str
    toy: str
    data: str
    metrics: Tuple[Tuple[str, str, float], ...]

    @property
    def resolution(self) -> Tuple[int, int]:
        return DEFAULT_SHAPES[self.scope]


TASKS: Dict[str, Task] = {t.name: t for t in (
    Task('coco-mask', 'mmdet', 'mask_rcnn/mask-rcnn_{backbone}-attnzero_fpn_1x_coco.py',
         'toy/mask-rcnn_pvtv2-b0-attnzero_fpn_toy-coco.py', 'coco',
         (('coco/bbox_mAP', 'box AP', 100.0), ('coco/segm_mAP', 'mask AP', 100.0))),
    Task('coco-retina', 'mmdet', 'retinanet/retinanet_{backbone}-attnzero_fpn_1x_coco.py',
         'toy/retinanet_pvtv2-b0-attnzero_fpn_toy-coco.py', 'coco',
         (('coco/bbox_mAP', 'box AP', 100.0),)),
    Task('ade-fpn', 'mmseg', 'sem_fpn/fpn_{backbone}-attnzero_8xb2-80k_ade20k-512x512.py',
         'toy/fpn_pvtv2-b0-attnzero_toy-ade.py', 'ade', (('mIoU', 'mIoU', 1.0),)),
    Task('ade-upernet', 'mmseg', 'upernet/upernet_{backbone}-attnzero_8xb2-160k_ade20k-512x512.py',
         'toy/upernet_pvtv2-b0-attnzero_toy-ade.py', 'ade', (('mIoU', 'mIoU', 1.0),)),
    Task('imagenet', 'mmpretrain', 'imagenet/{backbone}-attnzero_8xb128-300e_in1k.py',
         'toy/pvtv2-b0-attnzero_toy-in1k.py', 'imagenet', (('accuracy/top1', 'top-1', 1.0),)),
)}
DENSE_TASKS = ('coco-mask', 'coco-retina', 'ade-fpn', 'ade-upernet')
TOY_BACKBONE = 'pvtv2-b0'
#: data set folder -> (sub-path under a data root, toy maker)
DATASETS = {'coco': ('coco/', toy.make_coco), 'ade': ('ade/ADEChallengeData2016', toy.make_ade),
            'imagenet': ('imagenet', toy.make_imagenet)}
DEFAULT_ZOO = ('softmax', 'linear', 'focused', 'agent', 'trial_105')
#: zoo names that are genomes of the ``attnzero`` kernel
NAMED_GENOMES = {'trial_105': TRIAL_105, 'trial_140': TRIAL_140}


def default_configs_dir() -> str:
    """``mmconfigs/`` of the checkout this package is imported from."""
    return osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'mmconfigs')


def parse_tasks(text: str) -> List[str]:
    names = [t.strip() for t in text.split(',') if t.strip()]
    if not names:
        raise ToolError('--tasks is empty')
    for t in names:
        if t not in TASKS:
            raise ToolError(f'unknown task {t!r}; known: {", ".join(TASKS)}')
    return list(dict.fromkeys(names))


def backbones_for(task: str, configs_dir: str) -> List[str]:
    """Backbones that have a config for ``task`` (from the file names)."""
    pattern = TASKS[task].real
    folder, name = osp.split(pattern)
    rx = re.compile('^' + re.escape(name).replace(re.escape('{backbone}'), '(.+)') + '$')
    found = []
    for f in sorted(os.listdir(osp.join(configs_dir, folder))) if osp.isdir(osp.join(configs_dir, folder)) else []:
        m = rx.match(f)
        if m:
            found.append(m.group(1))
    return found


def real_config(task: str, backbone: str, configs_dir: str) -> str:
    path = osp.join(configs_dir, TASKS[task].real.format(backbone=backbone))
    if not osp.isfile(path):
        have = backbones_for(task, configs_dir)
        raise ToolError(f'backbone {backbone!r} has no config for task {task!r} (no {path}); '
                        f'backbones with one: {", ".join(have) or "none"}')
    return path


# ------------------------------------------------------------------------------ attentions
@dataclass(frozen=True)
class Attention:
    """One attention to compare: ``attn`` (zoo kernel) with ``genome`` (canonical text, for the
    ``attnzero`` kernel), shown as ``label``; ``source`` says where it came from."""

    label: str
    attn: str
    genome: Optional[str]
    source: str

    @property
    def key(self) -> Tuple[str, Optional[str]]:
        return (self.attn, self.genome)


def _genome_attention(text: str, label: Optional[str], source: str) -> Attention:
    problem = genome_problem(text)
    if problem is not None:
        raise ToolError(f'bad genome {text!r} ({source}): {problem}')
    g = as_genome(text)
    return Attention(label or f'g-{g.hash[:8]}', 'attnzero', g.to_string(), source)


def _front(run_dir: str) -> List[Dict[str, Any]]:
    path = osp.join(run_dir, 'best_genomes.json')
    if not osp.isdir(run_dir):
        raise ToolError(f'search run directory {run_dir!r} does not exist')
    if not osp.isfile(path):
        raise ToolError(f'search run directory {run_dir!r} has no best_genomes.json (the search '
                        'writes it when it finishes; resume the search first)')
    try:
        with open(path) as f:
            front = json.load(f)
    except json.JSONDecodeError as e:
        raise ToolError(f'{path}: not JSON ({e})') from None
    if not isinstance(front, list) or not front or not all(isinstance(r, dict) and 'genome' in r for r in front):
        raise ToolError(f'{path}: expected a non-empty list of {{"genome": ...}} records')
    return front


def resolve_attentions(zoo: Sequence[str] = DEFAULT_ZOO, genomes: Sequence[str] = (),
                       runs: Sequence[str] = (), top: int = 3) -> List[Attention]:
    """The attentions to compare: the best ``top`` genomes of each run's front, then ``genomes``,
    then ``zoo`` names; duplicates (same kernel and canonical genome) are kept once, first label
    wins."""
    out: List[Attention] = []
    for run in runs:
        name = osp.basename(osp.normpath(run))
        for i, rec in enumerate(_front(run)[:top]):
            g = rec['genome']
            label = f'{name}-{i + 1}-{as_genome(g).hash[:6]}' if genome_problem(g) is None else None
            out.append(_genome_attention(g, label, f'run {run} (front #{i + 1})'))
    for text in genomes:
        out.append(_genome_attention(text, None, 'genome'))
    for name in zoo:
        if name in NAMED_GENOMES:
            out.append(Attention(name, 'attnzero', NAMED_GENOMES[name].to_string(), 'zoo'))
        elif name in ATTENTIONS:
            out.append(Attention(name, name, None, 'zoo'))
        else:
            raise ToolError(f'unknown zoo attention {name!r}; known: '
                            f'{", ".join(sorted(ATTENTIONS) + sorted(NAMED_GENOMES))}')
    seen: Dict[Tuple[str, Optional[str]], Attention] = {}
    for a in out:
        seen.setdefault(a.key, a)
    if not seen:
        raise ToolError('no attention to compare (give --run, --genome or --zoo)')
    labels = [a.label for a in seen.values()]
    if len(set(labels)) != len(labels):
        raise ToolError(f'two attentions share a label: {labels}')
    return list(seen.values())


# ------------------------------------------------------------------------------ configs
def scale_schedule(cfg, fraction: float) -> None:
    """Shorten (or lengthen) the config's schedule by ``fraction``: training length, validation and
    checkpoint intervals, and the begin/end/milestones of every parameter scheduler (all in the
    loop's unit or in iterations, which scale alike). Validation runs once, at the end."""
    if fraction <= 0:
        raise ToolError(f'--schedule must be > 0, got {fraction}')

    def sc(x: int, lo: int = 1) -> int:
        return max(lo, int(round(x * fraction)))

    tc = cfg.train_cfg
    unit = 'max_epochs' if 'max_epochs' in tc else 'max_iters'
    total = sc(tc[unit])
    tc[unit] = total
    tc['val_interval'] = total
    scheds = cfg.get('param_scheduler') or []
    for s in (scheds if isinstance(scheds, (list, tuple)) else [scheds]):
        for key in ('begin', 'end'):
            if key in s:
                s[key] = sc(s[key], lo=0)
        if 'milestones' in s:
            s['milestones'] = [sc(m) for m in s['milestones']]
        if 'end' in s and 'begin' in s and s['end'] <= s['begin']:
            s['end'] = s['begin'] + 1
    ck = cfg.default_hooks.get('checkpoint')
    if ck is not None:
        ck['interval'] = min(total, sc(ck.get('interval', total)))
        ck['save_last'] = True
    lg = cfg.default_hooks.get('logger')
    if lg is not None:
        lg['interval'] = max(1, min(lg.get('interval', 10), total))


def _set_data_root(cfg, root: str) -> None:
    """Point every dataset of the train/val/test loaders at ``root`` and evaluators' annotation
    files under the old root at the new one."""
    old = None
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(name)
        if isinstance(loader, dict):
            ds = loader.get('dataset')
            if old is None and isinstance(ds, dict):
                old = ds.get('data_root')
            for node in dataset_nodes(ds):
                if 'data_root' in node:
                    node['data_root'] = root
    for name in ('val_evaluator', 'test_evaluator'):
        ev = cfg.get(name)
        for e in (ev if isinstance(ev, (list, tuple)) else [ev]):
            if isinstance(e, dict) and isinstance(e.get('ann_file'), str) and old and e['ann_file'].startswith(old):
                e['ann_file'] = osp.join(root, e['ann_file'][len(old):].lstrip('/'))


def _load(path: str, env: Dict[str, str]):
    from mmengine.config import Config

    speed_up_base_lookup()
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        return Config.fromfile(path)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def derive_config(task: str, backbone: str, attention: Attention, *, configs_dir: str,
                  scratch_dir: str, toy_root: Optional[str] = None, data_root: Optional[str] = None,
                  schedule: float = 1.0, pretrained: Optional[str] = None, from_scratch: bool = False,
                  cfg_options: Optional[Dict[str, Any]] = None):
    """The mmengine Config of one (task, backbone, attention): the toy overlay on the backbone's
    real config (``toy_root``) or the real config on ``data_root``; the attention set on the
    backbone; the schedule scaled; :class:`~attnzero.mm.hooks.MetricsDumpHook` added. The seed
    and work dir are set per run by :func:`run_transfer`."""
    spec = TASKS[task]
    real = real_config(task, backbone, configs_dir)
    if data_root is None:
        toy_path = osp.join(configs_dir, spec.toy)
        if backbone == TOY_BACKBONE:
            path = toy_path
        else:  # the same overlay on the other backbone's real config
            with open(toy_path) as f:
                text = f.read()
            text, n = re.subn(r"^_base_ = .*$", f'_base_ = {real!r}', text, count=1, flags=re.M)
            if n != 1:
                raise ToolError(f'{toy_path}: no single-line _base_ to retarget')
            os.makedirs(scratch_dir, exist_ok=True)
            path = osp.join(scratch_dir, f'toy_{task}_{backbone}.py')
            atomic_write_text(path, f'# {spec.toy} on {osp.relpath(real, configs_dir)} '
                              '(written by attnzero.transfer)\n' + text)
        cfg = _load(path, {'ATTNZERO_TOY_ROOT': osp.abspath(toy_root or 'data/toy')})
    else:
        cfg = _load(real, {})
        _set_data_root(cfg, osp.join(osp.abspath(data_root), DATASETS[spec.data][0]))
    target = genome_target(cfg)
    target['attn'] = attention.attn
    target['genome'] = attention.genome
    if from_scratch:
        target['init_cfg'] = None
    elif pretrained:
        ckpt = pretrained.format(backbone=backbone, attn=attention.attn, label=attention.label)
        target['init_cfg'] = dict(type='Pretrained', checkpoint=ckpt)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    scale_schedule(cfg, schedule)
    hooks = list(cfg.get('custom_hooks') or [])
    hooks.append(dict(type='MetricsDumpHook'))
    cfg.custom_hooks = hooks
    return cfg


# ------------------------------------------------------------------------------ runs
@dataclass
class Run:
    task: str
    attention: Attention
    seed_index: int
    seed: int
    work_dir: str
    result: Optional[Dict[str, Any]] = None

    @property
    def config_path(self) -> str:
        return osp.join(self.work_dir, 'config.py')

    @property
    def result_path(self) -> str:
        return osp.join(self.work_dir, 'result.json')


def _slug(text: str) -> str:
    return re.sub(r'[^A-Za-z0-9_.+-]+', '_', text)


def _read_json(path: str) -> Optional[Any]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError):
        return None


def _last_checkpoint(work_dir: str) -> Optional[str]:
    """The checkpoint mmengine's CheckpointHook recorded last (``last_checkpoint``), if it exists."""
    try:
        with open(osp.join(work_dir, 'last_checkpoint')) as f:
            path = f.read().strip()
    except OSError:
        return None
    return path if path and osp.isfile(path) else None


@dataclass
class Launch:
    """How runs are started: ``python -m attnzero.mm train`` in a subprocess (``none``), or
    ``tools/dist_train.sh`` with ``gpus`` processes (``pytorch``)."""

    launcher: str = 'none'
    gpus: int = 1
    threads: Optional[int] = None
    keep_checkpoints: bool = False
    python: str = field(default_factory=lambda: sys.executable)

    def train_cmd(self, run: Run, resume: bool) -> List[str]:
        extra = ['--work-dir', run.work_dir] + (['--resume'] if resume else [])
        if self.launcher == 'pytorch':
            script = osp.join(osp.dirname(default_configs_dir()), 'tools', 'dist_train.sh')
            return ['bash', script, run.config_path, str(self.gpus)] + extra
        return [self.python, '-m', 'attnzero.mm', 'train', run.config_path] + extra

    def test_cmd(self, run: Run, ckpt: str) -> List[str]:
        return [self.python, '-m', 'attnzero.mm', 'test', run.config_path, ckpt, '--work-dir',
                run.work_dir, '--metrics-out', osp.join(run.work_dir, 'test_metrics.json')]

    def env(self) -> Dict[str, str]:
        env = dict(os.environ)
        if self.threads:
            env['OMP_NUM_THREADS'] = env['MKL_NUM_THREADS'] = str(self.threads)
        if self.launcher == 'pytorch':
            env['PYTHON'] = self.python
        return env


def _final(record: Optional[Dict[str, Any]]) -> bool:
    """Whether a ``val_metrics.json`` record is the validation at the end of training (the
    iteration count covers epoch- and iteration-based loops alike)."""
    if not record or not isinstance(record.get('metrics'), dict):
        return False
    return record.get('iter', -1) >= record.get('max_iters', math.inf)


def execute(run: Run, launch: Launch) -> Dict[str, Any]:
    """Train (or continue) and evaluate one run; writes and returns ``result.json``."""
    done = _read_json(run.result_path)
    if done and done.get('status') == 'ok':
        return done
    commands = []
    t0 = time.time()
    log_path = osp.join(run.work_dir, 'run.log')
    with open(log_path, 'a') as log:
        def call(cmd: List[str]) -> int:
            commands.append(cmd)
            log.write(f'\n$ {shlex.join(cmd)}\n')
            log.flush()
            return subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=launch.env()).returncode

        ckpt = _last_checkpoint(run.work_dir)
        record = _read_json(osp.join(run.work_dir, METRICS_FILE))
        if not _final(record):
            rc = call(launch.train_cmd(run, resume=ckpt is not None))
            if rc != 0:
                return _failed(run, commands, rc, log_path, t0)
            record = _read_json(osp.join(run.work_dir, METRICS_FILE))
        if _final(record):
            metrics = record['metrics']
        else:  # trained to the end earlier, killed before or during the final validation
            ckpt = _last_checkpoint(run.work_dir)
            if ckpt is None:
                return _failed(run, commands, -1, log_path, t0, 'no checkpoint after training')
            rc = call(launch.test_cmd(run, ckpt))
            metrics = _read_json(osp.join(run.work_dir, 'test_metrics.json'))
            if rc != 0 or metrics is None:
                return _failed(run, commands, rc, log_path, t0)
    result = dict(status='ok', task=run.task, attention=run.attention.label, seed=run.seed,
                  metrics=metrics, seconds=time.time() - t0,
                  commands=[shlex.join(c) for c in commands], resumed=ckpt is not None)
    atomic_write_text(run.result_path, json.dumps(result, indent=1) + '\n')
    if not launch.keep_checkpoints:  # the final weights stay; the intermediate ones go
        last = _last_checkpoint(run.work_dir)
        for f in os.listdir(run.work_dir):
            path = osp.join(run.work_dir, f)
            if f.endswith('.pth') and (last is None or not osp.samefile(path, last)):
                os.remove(path)
    return result


def _failed(run: Run, commands, rc: int, log_path: str, t0: float, why: str = '') -> Dict[str, Any]:
    with open(log_path) as f:
        tail = f.read()[-2000:]
    last = [ln for ln in tail.splitlines() if ln.strip()][-1:] or ['']
    return dict(status='failed', task=run.task, attention=run.attention.label, seed=run.seed,
                rc=rc, reason=why or last[0][:300], seconds=time.time() - t0,
                commands=[shlex.join(c) for c in commands], log=log_path)


# ------------------------------------------------------------------------------ model figures
def model_stats(task: str, backbone: str, attention: Attention, configs_dir: str, speed_iters: int = 3):
    """Parameters and GFLOPs (GMACs) of the task's real model at the task's standard resolution,
    and the backbone's forward throughput there (CPU, batch 1, ``speed_iters`` timed passes after
    one warm-up; 0: not timed)."""
    spec = TASKS[task]
    key = 'model.backbone' if spec.scope != 'mmpretrain' else 'model'
    opts = {f'{key}.attn': attention.attn, f'{key}.init_cfg': None}
    cfg, scope, model = build_model(real_config(task, backbone, configs_dir), opts, attention.genome)
    h, w = spec.resolution
    x = torch.zeros(1, 3, h, w)
    bb = getattr(model, 'backbone', model)
    c = count_flops(bb, inputs=(x,))
    out = dict(task=task, attention=attention.label, resolution=[h, w],
               mparams=sum(p.numel() for p in model.parameters()) / 1e6,
               backbone_mparams=c.params / 1e6, backbone_gmacs=c.flops / 2e9)
    if speed_iters > 0:
        times = []
        with torch.no_grad():
            bb(x)
            for _ in range(speed_iters):
                t = time.perf_counter()
                bb(x)
                times.append(time.perf_counter() - t)
        out.update(backbone_img_s=1.0 / min(times), backbone_ms=1e3 * min(times), speed_iters=speed_iters,
                   load_avg=' '.join(f'{v:.2f}' for v in os.getloadavg()))
    return out


# ------------------------------------------------------------------------------ the driver
SETTINGS_KEYS = ('backbone', 'data', 'schedule', 'seed', 'pretrained', 'from_scratch', 'cfg_options')


def _settings(args, data: str) -> Dict[str, Any]:
    return dict(backbone=args.backbone, data=data, schedule=args.schedule, seed=args.seed,
                pretrained=args.pretrained, from_scratch=args.from_scratch,
                cfg_options=dict(args.cfg_options or {}))


def _check_settings(out: str, settings: Dict[str, Any]) -> None:
    path = osp.join(out, 'settings.json')
    old = _read_json(path)
    if old is not None:
        diff = [k for k in SETTINGS_KEYS if old.get(k) != settings.get(k)]
        if diff:
            raise ToolError(f'{out} holds runs made with other settings ({", ".join(f"{k}={old.get(k)!r}" for k in diff)}); '
                            'use another --out, or the same settings to continue')
    else:
        os.makedirs(out, exist_ok=True)
        atomic_write_text(path, json.dumps(settings, indent=1, sort_keys=True) + '\n')


def plan(args) -> Tuple[List[Run], List[Attention], List[str], Dict[str, Any]]:
    """Check every input and write every run's config; nothing is trained yet."""
    configs_dir = args.configs or default_configs_dir()
    if not osp.isdir(configs_dir):
        raise ToolError(f'mmconfigs folder {configs_dir!r} does not exist (pass --configs)')
    tasks = parse_tasks(args.tasks)
    if args.seeds < 1:
        raise ToolError(f'--seeds must be >= 1, got {args.seeds}')
    zoo = [z.strip() for z in (args.zoo if args.zoo is not None else ','.join(DEFAULT_ZOO)).split(',') if z.strip()]
    attentions = resolve_attentions(zoo, args.genome or (), args.run or (), args.top)
    for t in tasks:
        real_config(t, args.backbone, configs_dir)  # every task has a config for the backbone
    if args.data_root is not None:
        if not osp.isdir(args.data_root):
            raise ToolError(f'--data-root {args.data_root!r} does not exist')
        for t in tasks:
            sub = osp.join(args.data_root, DATASETS[TASKS[t].data][0])
            if not osp.isdir(sub):
                raise ToolError(f'--data-root {args.data_root!r} has no {DATASETS[TASKS[t].data][0].rstrip("/")} '
                                f'folder for task {t!r} (expected {sub}; see docs/mmconfigs.md)')
        data = osp.abspath(args.data_root)
    else:
        data = 'toy'
    settings = _settings(args, data)
    _check_settings(args.out, settings)
    if args.data_root is None:  # the toy data set (deterministic; written once)
        for ds in sorted({TASKS[t].data for t in tasks}):
            sub, maker = DATASETS[ds]
            if not osp.isdir(osp.join(args.toy_root, sub)):
                maker(args.toy_root)
    runs: List[Run] = []
    for t in tasks:
        for a in attentions:
            cfg = derive_config(t, args.backbone, a, configs_dir=configs_dir,
                                scratch_dir=osp.join(args.out, 'configs'), toy_root=args.toy_root,
                                data_root=args.data_root, schedule=args.schedule,
                                pretrained=args.pretrained, from_scratch=args.from_scratch,
                                cfg_options=args.cfg_options)
            check_genome(cfg)
            check_pretrained(cfg)
            check_data(cfg, ['train_dataloader', 'val_dataloader'])
            for i in range(args.seeds):
                wd = osp.join(osp.abspath(args.out), 'runs', t, _slug(a.label), f'seed{i}')
                run = Run(t, a, i, args.seed + i, wd)
                if not osp.isfile(run.result_path):
                    os.makedirs(wd, exist_ok=True)
                    cfg.randomness = dict(seed=run.seed, deterministic=False)
                    cfg.work_dir = wd
                    text = cfg.pretty_text
                    old = None
                    if osp.isfile(run.config_path):
                        with open(run.config_path) as f:
                            old = f.read()
                    if old != text:
                        atomic_write_text(run.config_path, text)
                runs.append(run)
    return runs, attentions, tasks, settings


def run_transfer(args, progress: bool = True) -> Dict[str, Any]:
    runs, attentions, tasks, settings = plan(args)
    launch = Launch(args.launcher, args.gpus,
                    threads=max(1, (os.cpu_count() or 1) // args.jobs) if args.launcher == 'none' else None,
                    keep_checkpoints=args.keep_checkpoints)
    for r in runs:
        r.result = _read_json(r.result_path)
    todo = [r for r in runs if (r.result or {}).get('status') != 'ok']
    print(f'[transfer] {len(attentions)} attention(s) x {len(tasks)} task(s) x {args.seeds} seed(s): '
          f'{len(runs)} runs, {len(runs) - len(todo)} already finished', flush=True)
    bar = None
    if progress and todo:
        from tqdm import tqdm
        bar = tqdm(total=len(todo), desc='transfer', unit='run')
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futs = {pool.submit(execute, r, launch): r for r in todo}
        for fut in as_completed(futs):
            r = futs[fut]
            r.result = fut.result()
            if r.result.get('status') != 'ok':
                print(f'[transfer] FAILED {r.task} / {r.attention.label} / seed {r.seed}: '
                      f'{r.result.get("reason")} (log: {r.result.get("log")})', flush=True)
            if bar is not None:
                bar.update(1)
                bar.set_postfix_str(f'{r.task}/{r.attention.label}/s{r.seed_index}')
    if bar is not None:
        bar.close()
    stats = _stats(args, tasks, attentions) if args.speed_iters >= 0 else {}
    summary = collect(runs, attentions, tasks, stats)
    report(args, summary, settings)
    return summary


def _stats(args, tasks, attentions) -> Dict[Tuple[str, str], Dict[str, Any]]:
    """Model figures per (task, attention), cached in ``OUT/stats/``; timed one after another after
    all training (throughput is not measured while runs compete for the cores)."""
    configs_dir = args.configs or default_configs_dir()
    out: Dict[Tuple[str, str], Dict[str, Any]] = {}
    for t in tasks:
        for a in attentions:
            path = osp.join(args.out, 'stats', t, _slug(a.label) + '.json')
            rec = _read_json(path)
            if rec is None or rec.get('speed_iters', 0) != args.speed_iters and args.speed_iters > 0:
                rec = model_stats(t, args.backbone, a, configs_dir, args.speed_iters)
                os.makedirs(osp.dirname(path), exist_ok=True)
                atomic_write_text(path, json.dumps(rec, indent=1) + '\n')
            out[(t, a.label)] = rec
    return out


# ------------------------------------------------------------------------------ outputs
def _mean_sd(xs: Sequence[float]) -> Tuple[float, float]:
    if not xs:
        return math.nan, math.nan
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else math.nan)


def collect(runs: Sequence[Run], attentions: Sequence[Attention], tasks: Sequence[str],
            stats: Dict[Tuple[str, str], Dict[str, Any]]) -> Dict[str, Any]:
    """Per attention and task: every metric's values over seeds, mean and sd; the model figures;
    the commands and failures."""
    rows = []
    for a in attentions:
        row: Dict[str, Any] = dict(attention=a.label, attn=a.attn, genome=a.genome, source=a.source, tasks={})
        for t in tasks:
            rs = [r for r in runs if r.task == t and r.attention.label == a.label]
            ok = [r.result for r in rs if r.result and r.result.get('status') == 'ok']
            cell: Dict[str, Any] = dict(runs=len(rs), finished=len(ok), metrics={})
            for key, label, scale in TASKS[t].metrics:
                vals = [float(res['metrics'][key]) * scale for res in ok
                        if isinstance(res['metrics'].get(key), (int, float))]
                m, s = _mean_sd(vals)
                cell['metrics'][label] = dict(values=vals, mean=m, sd=s)
            cell['stats'] = stats.get((t, a.label), {})
            row['tasks'][t] = cell
        rows.append(row)
    commands = [dict(task=r.task, attention=r.attention.label, seed=r.seed, work_dir=r.work_dir,
                     commands=(r.result or {}).get('commands', []), status=(r.result or {}).get('status'),
                     seconds=(r.result or {}).get('seconds'))
                for r in runs]
    failures = [r.result for r in runs if r.result and r.result.get('status') != 'ok']
    return dict(rows=rows, tasks=list(tasks), runs=commands, failures=failures)


def _fmt(m: float, s: float, digits: int = 1) -> str:
    if math.isnan(m):
        return '–'
    return f'{m:.{digits}f}' + ('' if math.isnan(s) else f' ± {s:.{digits}f}')


def report(args, summary: Dict[str, Any], settings: Dict[str, Any]) -> None:
    """``transfer.md``, ``transfer.csv``, ``summary.json`` and one bar plot per metric in ``--out``."""
    out = args.out
    tasks = summary['tasks']
    cols = [(t, label) for t in tasks for _, label, _ in TASKS[t].metrics]
    # csv: one row per attention, one column group per task
    buf = io.StringIO()
    w = csv.writer(buf)
    head = ['attention', 'attn', 'genome', 'source']
    for t in tasks:
        for _, label, _ in TASKS[t].metrics:
            head += [f'{t} {label} mean', f'{t} {label} sd', f'{t} {label} n']
        head += [f'{t} Mparams', f'{t} backbone GMACs', f'{t} backbone img/s']
    w.writerow(head)
    for row in summary['rows']:
        line = [row['attention'], row['attn'], row['genome'] or '', row['source']]
        for t in tasks:
            cell = row['tasks'][t]
            for _, label, _ in TASKS[t].metrics:
                m = cell['metrics'][label]
                line += [f'{m["mean"]:.4f}', f'{m["sd"]:.4f}', len(m['values'])]
            st = cell['stats']
            line += [_num(st.get('mparams'), '.3f'), _num(st.get('backbone_gmacs'), '.3f'),
                     _num(st.get('backbone_img_s'), '.3f')]
        w.writerow(line)
    atomic_write_text(osp.join(out, 'transfer.csv'), buf.getvalue())
    atomic_write_text(osp.join(out, 'summary.json'), json.dumps(dict(settings=settings, **summary),
                                                                indent=1, default=str) + '\n')
    # markdown
    cmd = getattr(args, 'command', None) or tool_command('transfer')
    data = 'toy data (attnzero.data.toy, mmconfigs/toy/ overlays)' if settings['data'] == 'toy' \
        else f'real data under {settings["data"]}'
    md = [f'# Transfer: {len(summary["rows"])} attentions on {", ".join(tasks)} ({settings["backbone"]})', '',
          'Produced by:', '', '```bash', cmd, '```', '',
          f'Backbone {settings["backbone"]}, {data}, schedule x{settings["schedule"]} of the config, '
          f'seeds {settings["seed"]}..{settings["seed"] + args.seeds - 1}. Metrics from the packages\' '
          'evaluators on the validation split after the last epoch/iteration (COCO AP in percent). '
          'Mean ± sd over seeds (sd over the finished seeds; "–" where none finished).', '',
          '| attention | ' + ' | '.join(f'{t} {label}' for t, label in cols) + ' |',
          '|---|' + '---|' * len(cols)]
    for row in summary['rows']:
        md.append(f'| {row["attention"]} | ' + ' | '.join(
            _fmt(row['tasks'][t]['metrics'][label]['mean'], row['tasks'][t]['metrics'][label]['sd'])
            for t, label in cols) + ' |')
    md += ['', 'Model figures of the real configs (not the narrowed toy heads) at the task\'s standard '
           'resolution: whole-model parameters, backbone GMACs ("GFLOPs" of the papers) and backbone '
           'forward throughput on this machine (CPU, batch 1, best of the timed passes; measured after '
           'the training, one model at a time).', '',
           '| attention | task | resolution | Mparams | backbone GMACs | backbone img/s |', '|---|---|---|---|---|---|']
    for row in summary['rows']:
        for t in tasks:
            st = row['tasks'][t]['stats']
            if not st:
                continue
            res = 'x'.join(str(v) for v in st.get('resolution', []))
            md.append(f'| {row["attention"]} | {t} | {res} | {_num(st.get("mparams"), ".2f")} | '
                      f'{_num(st.get("backbone_gmacs"), ".2f")} | {_num(st.get("backbone_img_s"), ".2f")} |')
    loads = sorted({row['tasks'][t]['stats'].get('load_avg') for row in summary['rows'] for t in tasks
                    if row['tasks'][t]['stats'].get('load_avg')})
    if loads:
        md += ['', f'Load average during the throughput timing: {", ".join(loads)}.']
    md += ['', 'Attentions:', '']
    for row in summary['rows']:
        md.append(f'- **{row["attention"]}**: `{row["attn"]}`' + (f' genome `{row["genome"]}`' if row['genome'] else '')
                  + f' ({row["source"]})')
    if summary['failures']:
        md += ['', '## Failed runs', '']
        for f in summary['failures']:
            md.append(f'- {f["task"]} / {f["attention"]} / seed {f["seed"]}: rc {f.get("rc")}: {f.get("reason")} '
                      f'(log `{f.get("log")}`)')
    secs = [r['seconds'] for r in summary['runs'] if r.get('seconds')]
    md += ['', '## Runs', '', f'{len(summary["runs"])} runs; seconds of the last session per run: '
           f'total {sum(secs):.0f}, mean {statistics.fmean(secs) if secs else math.nan:.0f}. '
           'Each command as it was executed (the config is the derived one written in the run\'s '
           'folder; paths below are relative to the output folder).', '']
    root = osp.abspath(out)
    for r in summary['runs']:
        for c in r['commands']:
            c = c.replace(root + '/', '')
            if c.startswith(shlex.quote(sys.executable) + ' '):
                c = 'python' + c[len(shlex.quote(sys.executable)):]
            md.append(f'- `{c}`')
    atomic_write_text(osp.join(out, 'transfer.md'), '\n'.join(md) + '\n')
    try:
        _plots(summary, out)
    except Exception as e:  # noqa: BLE001 - a plot failure must not lose the tables
        atomic_write_text(osp.join(out, 'plots.error.txt'), f'{type(e).__name__}: {e}\n')


def _num(v: Any, fmt: str) -> str:
    return format(v, fmt) if isinstance(v, (int, float)) and not math.isnan(v) else ''


def _plots(summary: Dict[str, Any], out: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names = [r['attention'] for r in summary['rows']]
    for t in summary['tasks']:
        for _, label, _ in TASKS[t].metrics:
            means = [r['tasks'][t]['metrics'][label]['mean'] for r in summary['rows']]
            sds = [r['tasks'][t]['metrics'][label]['sd'] for r in summary['rows']]
            fig, ax = plt.subplots(figsize=(1.2 + 0.9 * len(names), 3.2))
            ax.bar(range(len(names)), [0 if math.isnan(m) else m for m in means],
                   yerr=[0 if math.isnan(s) else s for s in sds], capsize=4, color='tab:blue')
            for i, r in enumerate(summary['rows']):
                ax.scatter([i] * len(r['tasks'][t]['metrics'][label]['values']),
                           r['tasks'][t]['metrics'][label]['values'], color='black', s=10, zorder=3)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=30, ha='right')
            ax.set_ylabel(label)
            ax.set_title(f'{t}: {label} (mean ± sd over seeds; dots: seeds)')
            fig.tight_layout()
            path = osp.join(out, f'transfer_{t}_{_slug(label.replace(" ", "_"))}.png')
            atomic_savefig(fig, path, dpi=110)
            plt.close(fig)


# ------------------------------------------------------------------------------ CLI
def arg_parser() -> argparse.ArgumentParser:
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(
        description='Compare attentions on downstream tasks: derive the ready config per attention '
        'and task, train and evaluate each through mmengine\'s Runner, and tabulate.',
        epilog=__doc__.split('\n\n', 2)[1] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--run', action='append', help='search run directory (its best_genomes.json front); repeatable')
    p.add_argument('--top', type=int, default=3, help='genomes taken from the top of each run\'s front (3)')
    p.add_argument('--genome', action='append', help='AttnZero genome text; repeatable')
    p.add_argument('--zoo', default=None,
                   help=f'comma-separated zoo attentions (default {",".join(DEFAULT_ZOO)}; "" for none)')
    p.add_argument('--backbone', default=TOY_BACKBONE, help='backbone of the configs (default pvtv2-b0)')
    p.add_argument('--tasks', default=','.join(DENSE_TASKS),
                   help=f'comma-separated tasks from {", ".join(TASKS)} (default: the four dense tasks)')
    p.add_argument('--seeds', type=int, default=1, help='runs per attention and task (seeds SEED..SEED+N-1)')
    p.add_argument('--seed', type=int, default=0, help='first seed')
    p.add_argument('--schedule', type=float, default=1.0,
                   help='fraction of the config\'s training schedule (epochs or iterations, scheduler '
                   'milestones scaled alike)')
    p.add_argument('--data-root', help='real data: DIR/coco, DIR/ade/ADEChallengeData2016, DIR/imagenet '
                   '(default: the toy data set)')
    p.add_argument('--toy-root', default='data/toy', help='where the toy data set is (written when missing)')
    p.add_argument('--pretrained', help='backbone checkpoint pattern for real data: {backbone}, {attn}, {label}')
    p.add_argument('--from-scratch', action='store_true', help='no backbone weights (real data)')
    p.add_argument('--jobs', type=int, default=1, help='runs at the same time (CPU threads split among them)')
    p.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                   help='pytorch: each run through tools/dist_train.sh with --gpus processes')
    p.add_argument('--gpus', type=int, default=1, help='GPUs per run with --launcher pytorch')
    p.add_argument('--speed-iters', type=int, default=3,
                   help='timed backbone passes for the throughput column (0: not timed; -1: no model figures)')
    p.add_argument('--configs', help='the mmconfigs/ folder (default: the checkout\'s)')
    p.add_argument('--cfg-options', nargs='+', action=DictAction, help='overrides for every run\'s config')
    p.add_argument('--out', default='work_dirs/transfer', help='output folder (runs, tables, plots)')
    p.add_argument('--keep-checkpoints', action='store_true',
                   help='keep every checkpoint of a finished run (default: only its final one)')
    p.add_argument('--no-progress', action='store_true')
    return p


def _main(argv: Optional[Sequence[str]]) -> None:
    args = arg_parser().parse_args(argv)
    if args.jobs < 1:
        raise ToolError(f'--jobs must be >= 1, got {args.jobs}')
    args.command = tool_command('transfer', argv)
    summary = run_transfer(args, progress=not args.no_progress)
    print(f'[transfer] wrote {osp.join(args.out, "transfer.md")}, transfer.csv and the plots')
    if summary['failures']:
        raise ToolError(f'{len(summary["failures"])} run(s) failed (see {osp.join(args.out, "transfer.md")}); '
                        're-run the same command to retry them')


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/transfer.py`` / console script ``attnzero-transfer``."""
    return run_tool(_main, argv, 'attnzero-transfer')


if __name__ == '__main__':
    raise SystemExit(main())
