"""Command-line glue shared by the search tools (``tools/search.py``, ``tools/proxy_fidelity.py``):
the options that build a :class:`~attnzero.search.config.SearchConfig` and their parsing."""
from __future__ import annotations

import argparse
import json
from typing import Any, Dict

from .config import ConfigError, SearchConfig, preset

__all__ = ['add_config_args', 'config_overrides', 'config_from_args']

# (argparse dest, SearchConfig field) of the plain options
_FIELDS = [('proxy', 'proxy'), ('acc_objective', 'acc_objective'), ('cost', 'cost'),
           ('pop_size', 'pop_size'), ('generations', 'generations'), ('epochs', 'epochs'),
           ('seed', 'seed'), ('workers', 'workers'), ('dask_scheduler', 'dask_scheduler'),
           ('eval_timeout', 'eval_timeout_s')]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def add_config_args(p: argparse.ArgumentParser, search: bool = True) -> None:
    """The configuration options; ``search=False`` leaves out those of the evolutionary loop."""
    p.add_argument('--preset', default='default', help='named configuration: default, tiny')
    p.add_argument('--config', help='JSON file of SearchConfig fields (applied over the preset)')
    p.add_argument('--proxy', help='proxy spec: scenes (embedded default), relational (embedded, the '
                   'previous default), imagefolder:PATH, cifar10:ROOT, cifar100:ROOT; options '
                   '?train=N&val=N&test=N&size=S')
    p.add_argument('--archs', help='comma-separated proxy ViTs: deit, pvt, pvt_v2, swin, cswin')
    p.add_argument('--epochs', type=int, help='proxy training epochs per architecture')
    p.add_argument('--seed', type=int)
    p.add_argument('--workers', type=int, help='local worker processes (0 = in this process)')
    p.add_argument('--eval-timeout', type=float, help='seconds before a worker evaluation is abandoned (retried once)')
    if search:
        p.add_argument('--acc-objective', choices=['mean', 'per_arch'], help='one accuracy objective or one per architecture')
        p.add_argument('--cost', choices=['flops', 'latency'], help='cost objective')
        p.add_argument('--pop-size', type=int)
        p.add_argument('--generations', type=int)
        p.add_argument('--init-genome', action='append', default=None, metavar='GENOME',
                       help='canonical genome put into the initial population (repeatable)')
        p.add_argument('--dask-scheduler', metavar='ADDR', help='evaluate on the Dask scheduler at ADDR (tcp://host:port)')
    p.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                   help='any SearchConfig field, VALUE as JSON (e.g. --set lr=0.003 --set "archs=[\\"deit\\"]")')


def config_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    """The SearchConfig fields the options set (``--config`` file, then options, then ``--set``);
    raises :class:`ConfigError` naming a bad value."""
    overrides: Dict[str, Any] = {}
    if getattr(args, 'config', None):
        try:
            with open(args.config, encoding='utf-8') as f:
                overrides.update(json.load(f))
        except (OSError, ValueError) as e:
            raise ConfigError(f'--config {args.config!r}: {e}') from e
    for key, field in _FIELDS:
        v = getattr(args, key, None)
        if v is not None:
            overrides[field] = v
    if getattr(args, 'archs', None):
        overrides['archs'] = [a.strip() for a in args.archs.split(',') if a.strip()]
    if getattr(args, 'init_genome', None):
        overrides['init_genomes'] = args.init_genome
    for item in getattr(args, 'set', []):
        if '=' not in item:
            raise ConfigError(f'--set {item!r}: expected KEY=VALUE')
        k, v = item.split('=', 1)
        overrides[k.strip()] = _value(v)
    return overrides


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """The preset with :func:`config_overrides` applied, validated."""
    base = preset(args.preset).to_dict()
    base.update(config_overrides(args))
    try:
        return SearchConfig.from_dict(base)
    except TypeError as e:
        raise ConfigError(str(e)) from e
