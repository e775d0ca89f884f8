"""What ``tools/train.py`` and ``tools/test.py`` do, as a library: load a ``mmconfigs/`` config with
the tools' overrides, check the user's inputs, and run mmengine's Runner in the config's scope.

Bad input -- a missing config, an unknown ``default_scope``, a bad genome, a missing checkpoint,
a missing data root or annotation file -- raises :class:`ToolError`, whose message is one line
naming the bad value; the tools print it and exit with code 2 (as ``argparse`` does for bad
arguments), before any model is built or any file is written.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import os.path as osp
import sys
from typing import Any, Callable, Iterable, List, Optional, Sequence

import attnzero.compat  # noqa: F401  (torch >= 2.6 checkpoint loading for mmengine)
from attnzero.io import atomic_write_text
from attnzero.space import Genome, genome_problem

__all__ = ['ToolError', 'SCOPES', 'speed_up_base_lookup', 'setup_scope', 'set_genome',
           'check_genome', 'check_pretrained', 'check_checkpoint', 'check_data', 'load_config',
           'build_train_cfg', 'build_test_cfg', 'build_runner', 'train', 'test', 'run_tool',
           'train_arg_parser', 'test_arg_parser', 'parse_train_args', 'parse_test_args',
           'train_main', 'test_main']

# scope -> module whose register_all_modules() registers the package and sets the scope
SCOPES = {
    'mmdet': 'mmdet.utils',
    'mmseg': 'mmseg.utils',
    'mmpretrain': 'mmpretrain.utils',
}


class ToolError(Exception):
    """A user error of the train/test tools: one line naming the bad value (exit code 2)."""


def run_tool(fn: Callable[[Optional[Sequence[str]]], Any], argv: Optional[Sequence[str]] = None,
             prog: Optional[str] = None) -> int:
    """``fn(argv)``; a :class:`ToolError` becomes ``prog: error: MESSAGE`` on stderr and exit code 2."""
    import warnings

    try:
        with warnings.catch_warnings():  # mmengine imports pkg_resources: noise on every run
            warnings.filterwarnings('ignore', message='pkg_resources is deprecated',
                                    category=UserWarning)
            fn(argv)
    except ToolError as e:
        prog = prog or osp.basename(sys.argv[0] or 'attnzero')
        print(f'{prog}: error: {e}', file=sys.stderr)
        return 2
    return 0


# ----------------------------------------------------------------------------- config loading
def speed_up_base_lookup() -> None:
    """Resolve ``mmdet::_base_/...`` style bases without mmengine's metafile scan.

    mmengine 0.10.7 resolves every ``<package>::<path>`` base by first parsing all of the package's
    metafiles (~200-400 YAML files, 0.4-0.8 s per base) and only then falls back to
    ``<package>/.mim/configs/<path>``; for ``_base_/`` files the scan can never match (they are not
    models), so it is skipped here -- the resolved path is the same. It also stops mmengine from
    reloading pkg_resources at each lookup. Idempotent.
    """
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


def setup_scope(cfg) -> str:
    """Register the config's package (mmdet / mmseg / mmpretrain) and make it the default scope."""
    scope = cfg.get('default_scope')
    if scope not in SCOPES:
        raise ToolError(f'unknown default_scope={scope!r} in the config; expected one of '
                        f'{sorted(SCOPES)} (inherit an mmdet::, mmseg:: or mmpretrain:: '
                        'default_runtime base)')
    importlib.import_module(SCOPES[scope]).register_all_modules(init_default_scope=False)
    from mmengine.registry import init_default_scope
    init_default_scope(scope)
    return scope


def genome_target(cfg):
    """The dict that carries ``attn``/``genome``: the dense configs' backbone, or the ImageNet
    configs' TimmClassifier itself."""
    return cfg.model.backbone if isinstance(cfg.model.get('backbone'), dict) else cfg.model


def set_genome(cfg, genome: Optional[str]) -> None:
    """Put an AttnZero genome (canonical text) into the backbone; its stages named 'attnzero' use it."""
    if genome is None:
        return
    target = genome_target(cfg)
    if 'attnzero' not in str(target.get('attn')):
        print(f"[attnzero] note: --genome is set but attn={target.get('attn')!r} has no 'attnzero' stage")
    target.genome = genome


def check_genome(cfg) -> None:
    """The backbone's genome (from ``--genome``, ``--cfg-options`` or the file) parses and is a
    valid program; otherwise a one-line :class:`ToolError` naming it."""
    genome = genome_target(cfg).get('genome') if isinstance(cfg.get('model'), dict) else None
    genomes = genome if isinstance(genome, (list, tuple)) else [genome]
    for g in genomes:
        if g is None or isinstance(g, Genome):
            continue
        problem = genome_problem(g)
        if problem is not None:
            raise ToolError(f'bad genome {g!r}: {problem}')


def load_config(args):
    """``args.config`` with the overrides every tool applies: ``--launcher``, ``--cfg-options``,
    ``--genome`` and ``--work-dir`` (default ``work_dirs/<config name>``)."""
    from mmengine.config import Config

    if not osp.isfile(args.config):
        raise ToolError(f'config file {args.config!r} does not exist')
    speed_up_base_lookup()
    try:
        cfg = Config.fromfile(args.config)
    except (FileNotFoundError, SyntaxError) as e:  # a missing base, or a config that is not Python
        raise ToolError(f'cannot load config {args.config!r}: {e}') from None
    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    set_genome(cfg, args.genome)
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(args.config))[0])
    return cfg


# ----------------------------------------------------------------------------- input checks
def _walk_pretrained(node, found: List[str]) -> List[str]:
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


def _is_local(path: Any) -> bool:
    return isinstance(path, str) and '://' not in path


def check_pretrained(cfg) -> None:
    """Fail early, with a hint, when a backbone's ``init_cfg`` names a local file that is missing."""
    if cfg.get('resume') or cfg.get('load_from'):
        return  # the backbone weights come from the checkpoint being resumed or loaded
    for ckpt in _walk_pretrained(cfg.get('model', {}), []):
        if _is_local(ckpt) and not osp.isfile(ckpt):
            raise ToolError(
                f'backbone init_cfg checkpoint {ckpt!r} does not exist (train the matching '
                'mmconfigs/imagenet/ config first, or pass --cfg-options '
                'model.backbone.init_cfg.checkpoint=PATH, or model.backbone.init_cfg=None '
                'to train from scratch)')


def check_checkpoint(path: Optional[str], what: str = 'checkpoint') -> None:
    if path is not None and _is_local(path) and not osp.isfile(path):
        raise ToolError(f'{what} {path!r} does not exist')


def dataset_nodes(node) -> Iterable[dict]:
    """Every dataset dict (one with a ``data_root`` or an ``ann_file``) under a dataloader's
    ``dataset``, wrappers such as RepeatDataset / ConcatDataset included."""
    if isinstance(node, dict):
        if 'data_root' in node or 'ann_file' in node:
            yield node
        for key in ('dataset', 'datasets'):
            if key in node:
                yield from dataset_nodes(node[key])
    elif isinstance(node, (list, tuple)):
        for v in node:
            yield from dataset_nodes(v)


def check_data(cfg, loaders: Sequence[str]) -> None:
    """The data root and annotation file of each named dataloader exist (local paths only)."""
    for name in loaders:
        loader = cfg.get(name)
        if not isinstance(loader, dict):
            continue
        for ds in dataset_nodes(loader.get('dataset')):
            where, root, ann = name, ds.get('data_root'), ds.get('ann_file')
            if root and _is_local(root) and not osp.isdir(root):
                raise ToolError(f'{where}: data root {root!r} does not exist (link the dataset '
                                f'there, or pass --cfg-options {where}.dataset.data_root=DIR)')
            if ann and _is_local(ann):
                path = ann if osp.isabs(ann) or not root else osp.join(root, ann)
                if not osp.isfile(path):
                    raise ToolError(f'{where}: annotation file {path!r} does not exist')


# ----------------------------------------------------------------------------- train / test
def train_arg_parser() -> argparse.ArgumentParser:
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
    return p


def test_arg_parser() -> argparse.ArgumentParser:
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
    return p


def _parse(parser: argparse.ArgumentParser, argv):
    args = parser.parse_args(argv)
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def parse_train_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return _parse(train_arg_parser(), argv)


def parse_test_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    return _parse(test_arg_parser(), argv)


def build_train_cfg(args):
    """The training config: ``load_config`` plus ``--amp``, ``--auto-scale-lr``,
    ``--no-validate`` and ``--resume``."""
    cfg = load_config(args)

    if args.amp:
        wrapper = cfg.optim_wrapper.get('type', 'OptimWrapper')
        if wrapper == 'AmpOptimWrapper':
            print('[train] AMP is already enabled in the config')
        elif wrapper != 'OptimWrapper':
            raise ToolError(f'--amp needs an OptimWrapper, not optim_wrapper.type={wrapper!r}')
        else:
            cfg.optim_wrapper.type = 'AmpOptimWrapper'
            cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')

    if args.auto_scale_lr:
        if 'auto_scale_lr' not in cfg or 'base_batch_size' not in cfg.auto_scale_lr:
            raise ToolError('--auto-scale-lr: the config has no auto_scale_lr.base_batch_size')
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


def build_test_cfg(args):
    cfg = load_config(args)
    cfg.load_from = args.checkpoint
    cfg.resume = False
    # the weights come from the checkpoint: do not ask for the backbone's pretrained file
    if isinstance(cfg.get('model', {}).get('backbone'), dict):
        cfg.model.backbone.init_cfg = None
    if args.out is not None:
        if not args.out.endswith(('.pkl', '.pickle')):
            raise ToolError(f'--out {args.out!r} must be a .pkl file')
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) \
            else [cfg.test_evaluator]
        cfg.test_evaluator = list(evaluators) + [dict(type='DumpResults', out_file_path=args.out)]
    return cfg


def build_runner(cfg):
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    if 'runner_type' in cfg:
        return RUNNERS.build(cfg)
    return Runner.from_cfg(cfg)


def train(argv: Optional[Sequence[str]] = None):
    """``tools/train.py``: parse ``argv`` like the command line, check the inputs, train, and
    return the runner."""
    args = parse_train_args(argv)
    cfg = build_train_cfg(args)
    check_genome(cfg)
    setup_scope(cfg)
    if isinstance(cfg.get('load_from'), str):
        check_checkpoint(cfg.load_from, '--resume checkpoint' if args.resume else 'load_from')
    check_pretrained(cfg)
    check_data(cfg, ['train_dataloader'] + ([] if args.no_validate else ['val_dataloader']))
    runner = build_runner(cfg)
    runner.train()
    return runner


def test(argv: Optional[Sequence[str]] = None) -> dict:
    """``tools/test.py``: evaluate a checkpoint on the config's test split with the package's
    evaluator; returns the metrics (also written to ``--metrics-out`` as JSON)."""
    import json

    args = parse_test_args(argv)
    check_checkpoint(args.checkpoint)
    cfg = build_test_cfg(args)
    check_genome(cfg)
    scope = setup_scope(cfg)
    check_data(cfg, ['test_dataloader'])
    runner = build_runner(cfg)
    metrics = runner.test()
    metrics = {k: (float(v) if isinstance(v, (int, float)) or hasattr(v, 'item') else v)
               for k, v in (metrics or {}).items()}
    print(f'[test] {scope} metrics: ' + json.dumps(metrics, default=str))
    if args.metrics_out:  # atomic: a killed run leaves no half-written file behind
        atomic_write_text(args.metrics_out, json.dumps(metrics, indent=2, default=str) + '\n')
    return metrics


def train_main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point ``attnzero-train`` (= ``python tools/train.py``)."""
    return run_tool(train, argv, 'attnzero-train')


def test_main(argv: Optional[Sequence[str]] = None) -> int:
    """Console entry point ``attnzero-test`` (= ``python tools/test.py``)."""
    return run_tool(test, argv, 'attnzero-test')
