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
"""
from __future__ import annotations

import argparse
import importlib
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
if ROOT not in sys.path:  # run from a checkout without installing: `python tools/train.py ...`
    sys.path.insert(0, ROOT)

import attnzero.compat  # noqa: E402,F401  (torch >= 2.6 checkpoint loading for mmengine)

# scope -> module whose register_all_modules() registers the package and sets the scope
SCOPES = {
    'mmdet': 'mmdet.utils',
    'mmseg': 'mmseg.utils',
    'mmpretrain': 'mmpretrain.utils',
}


def speed_up_base_lookup() -> None:
    """Resolve ``mmdet::_base_/...`` style bases without mmengine's metafile scan.

    mmengine 0.10.7 resolves every ``<package>::<path>`` base by first parsing all of the package's
    metafiles (~200-400 YAML files, 0.4-0.8 s per base) and only then falls back to
    ``<package>/.mim/configs/<path>``; for ``_base_/`` files the scan can never match (they are not
    models), so it is skipped here -- the resolved path is the same. It also stops mmengine from
    reloading pkg_resources at each lookup. Idempotent.
    """
    import importlib.metadata
    import importlib.util

    import mmengine.config.config as mm_config

    if getattr(mm_config, '_attnzero_fast_lookup', False):
        return
    original = mm_config._get_external_cfg_path

    def external_cfg_path(package_path, cfg_file):
        if cfg_file.startswith('_base_/'):
            raise ValueError(f'{cfg_file} is a base config (no metafile entry)')
        return original(package_path, cfg_file)

    def is_installed(package):
        try:
            importlib.metadata.distribution(package)
            return True
        except importlib.metadata.PackageNotFoundError:
            return importlib.util.find_spec(package) is not None

    mm_config._get_external_cfg_path = external_cfg_path
    mm_config.is_installed = is_installed
    mm_config._attnzero_fast_lookup = True


def parse_args(argv=None):
    from mmengine.config import DictAction

    p = argparse.ArgumentParser(description='Train a detector, segmentor or classifier '
                                'from an mmconfigs/ config.')
    p.add_argument('config', help='config file path')
    p.add_argument('--work-dir', help='where logs and checkpoints go '
                   '(default: work_dirs/<config name>)')
    p.add_argument('--resume', nargs='?', type=str, const='auto', default=None,
                   help='resume from CKPT, or from the latest checkpoint of the work dir '
                   'when no CKPT is given')
    p.add_argument('--amp', action='store_true', help='automatic mixed precision training')
    p.add_argument('--auto-scale-lr', action='store_true',
                   help='scale the lr by (actual batch size / auto_scale_lr.base_batch_size)')
    p.add_argument('--no-validate', action='store_true', help='skip validation during training')
    p.add_argument('--cfg-options', nargs='+', action=DictAction,
                   help='override config settings, key=value (e.g. train_dataloader.batch_size=4)')
    p.add_argument('--genome', help='canonical text of an AttnZero genome for the backbone '
                   '(sets model.backbone.genome; --cfg-options cannot carry its commas)')
    p.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'], default='none',
                   help='job launcher')
    p.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = p.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def setup_scope(cfg) -> str:
    """Register the config's package (mmdet / mmseg / mmpretrain) and make it the default scope."""
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise SystemExit(f'config has default_scope={scope!r}; expected one of {sorted(SCOPES)} '
                         '(inherit an mmdet::, mmseg:: or mmpretrain:: default_runtime base)')
    importlib.import_module(SCOPES[scope]).register_all_modules(init_default_scope=False)
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    return scope


def _walk_pretrained(node, found):
    if isinstance(node, dict):
        init = node.get('init_cfg')
        inits = init if isinstance(init, (list, tuple)) else [init]
        for ic in inits:
            if isinstance(ic, dict) and ic.get('type') == 'Pretrained' and ic.get('checkpoint'):
                found.append(ic['checkpoint'])
        for v in node.values():
            _walk_pretrained(v, found)
    elif isinstance(node, (list, tuple)):
        for v in node:
            _walk_pretrained(v, found)
    return found


def check_pretrained(cfg) -> None:
    """Fail early, with a hint, when a backbone's ``init_cfg`` names a local file that is missing."""
    if cfg.get('resume') or cfg.get('load_from'):
        return  # the backbone weights come from the checkpoint being resumed or loaded
    for ckpt in _walk_pretrained(cfg.get('model', {}), []):
        if isinstance(ckpt, str) and '://' not in ckpt and not osp.isfile(ckpt):
            raise SystemExit(
                f'backbone init_cfg checkpoint {ckpt!r} does not exist.\n'
                '  Train the matching ImageNet config of mmconfigs/imagenet/ first, or pass\n'
                '  --cfg-options model.backbone.init_cfg.checkpoint=PATH  (a classification checkpoint)\n'
                '  or --cfg-options model.backbone.init_cfg=None  (train from scratch).')


def set_genome(cfg, genome) -> None:
    """Put an AttnZero genome (canonical text) into the backbone; its stages named 'attnzero' use it."""
    if genome is None:
        return
    # dense configs: model.backbone (AttnZero* backbone); ImageNet configs: the TimmClassifier itself
    target = cfg.model.backbone if isinstance(cfg.model.get('backbone'), dict) else cfg.model
    if 'attnzero' not in str(target.get('attn')):
        print(f"[attnzero] note: --genome is set but attn={target.get('attn')!r} has no 'attnzero' stage")
    target.genome = genome


def load_config(args):
    """``args.config`` with the overrides every tool applies: ``--launcher``, ``--cfg-options``,
    ``--genome`` and ``--work-dir`` (default ``work_dirs/<config name>``)."""
    from mmengine.config import Config

    speed_up_base_lookup()
    cfg = Config.fromfile(args.config)
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    set_genome(cfg, args.genome)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


def build_cfg(args):
    cfg = load_config(args)

    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print('[train] AMP is already enabled in the config')
        else:
            assert wrapper == 'OptimWrapper', f'--amp needs an OptimWrapper, not {wrapper}'
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise SystemExit('--auto-scale-lr: the config has no auto_scale_lr.base_batch_size')
        cfg.auto_scale_lr.enable = True

    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume
    return cfg


def build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def train(argv=None):
    """Parse ``argv`` like the command line, train, and return the runner (tests use it)."""
    args = parse_args(argv)
    cfg = build_cfg(args)
    setup_scope(cfg)
    check_pretrained(cfg)
    runner = build_runner(cfg)
    runner.train()
    return runner


def main(argv=None) -> int:
    train(argv)
    return 0


if __name__ == '__main__':
    sys.exit(main())
