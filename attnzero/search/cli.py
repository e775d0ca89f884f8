"""The command lines of the search tools, as functions (``main(argv) -> exit code``):

* :func:`search_main` -- ``tools/search.py`` / ``attnzero-search``;
* :func:`proxy_fidelity_main` -- ``tools/proxy_fidelity.py`` / ``attnzero-proxy-fidelity``;
* :func:`search_efficiency_main` -- ``tools/search_efficiency.py`` / ``attnzero-search-efficiency``;
* :func:`supernet_main` -- ``tools/supernet.py`` / ``attnzero-supernet``;
* :func:`slim_main` -- ``tools/slim.py`` / ``attnzero-slim``;

and the options that build a :class:`~attnzero.search.config.SearchConfig` from a command line,
which they share. Argument parsing and printing only: the work is :class:`~attnzero.search.Search`,
:mod:`attnzero.search.fidelity`, :mod:`attnzero.search.efficiency`,
:mod:`attnzero.search.supernet_fidelity` and :mod:`attnzero.search.slim`. The usage texts are the
tools' ``--help``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any, Dict, Optional, Sequence

from attnzero.io import loadavg, tool_command
from attnzero.space.shape import SHAPE_SPACES, ShapeError

from .config import PRESETS, SPACES, ConfigError, SearchConfig, preset
from . import efficiency
from .efficiency import EfficiencyError
from .fidelity import FidelityError, run_fidelity, summarise, write_comparison, write_report
from .proxies import ProxyError
from .report import format_front, format_summary, pareto_records
from .runner import Search
from .slim import DEFAULT_LAM, DEFAULT_MASK_TRAVEL, SLIM_DOC, SlimError, report_paths as slim_report_paths, run_slim
from .state import RunDirError
from .supernet import SupernetError
from .supernet_fidelity import DOC as SUPERNET_DOC
from . import supernet_fidelity

__all__ = ['add_config_args', 'config_overrides', 'config_from_args', 'search_main',
           'proxy_fidelity_main', 'search_efficiency_main']

SEARCH_DOC = """Multi-objective evolutionary search of linear attention (pymoo NSGA-II).

With no arguments: the embedded default (the ``scenes`` proxy, the 4-block DeiT proxy, FLOPs cost,
2 local worker processes), outputs in ./runs/search-<time>/.

Examples::

    python tools/search.py                                   # embedded default
    python tools/search.py --preset tiny --run-dir /tmp/s    # seconds (test configuration)
    python tools/search.py --preset scenes-v1                # an earlier default proxy (also scenes-v2, relational)
    python tools/search.py --proxy cifar100:~/data/cifar --archs deit,pvt,swin --epochs 5
    python tools/search.py --workers 2                       # local worker processes
    python tools/search.py --dask-scheduler tcp://host:8786  # a Dask cluster
    python tools/search.py --resume runs/search-20250101-120000   # continue after a crash/kill
    python tools/search.py --space joint                     # joint attention + ViT shape search
    python tools/search.py --space joint --preset joint-tiny --run-dir /tmp/j   # seconds

Joint search (--space joint): an individual is a ViT shape (embedding width, depth, per-block heads
and MLP ratios; --shape-space proxy, the CPU-sized space, or autoformer_t, AutoFormer's tiny space)
beside the attention genome, written '<shape>|<genome>'. The DeiT proxy trains at the candidate's
shape; the objectives are the proxy accuracy and the parameters and MACs of the model at full size
(224 px, 1000 classes). Without --preset it runs the 'joint' preset (sized for 20 min on 2 cores).
Outputs: best_archs.json (the front's models, each with its timm.create_model('attnzero_vit', ...)
line), best_arch_mmconfig.py (the most accurate one as mmengine config dicts) and pareto.png
(accuracy x parameters).
"""
FIDELITY_DOC = """Proxy fidelity: does a search proxy rank attentions the way ImageNet does?

Trains every reference attention of the zoo (softmax, linear, relu_linear, focused, hydra, agent,
identity, AttnZero Trial-105 and Trial-140) in every proxy architecture of a search configuration
(``--seeds`` each, no rejection), and ``--genomes`` genomes sampled from the space at 1x and
``--budget-factor`` x the epochs. Writes ``fidelity.md`` / ``.csv`` / ``.png``, ``stability.csv``
and ``summary.json`` to ``--out``: per-attention mean ± sd with bootstrap intervals, Kendall tau-b
and Spearman against the published ImageNet table (shipped in the package with its sources), rank
stability against the larger budget, seconds per candidate, and the issue-14 acceptance checklist.
Runs are appended to ``OUT/runs.jsonl`` as they finish: re-running the same command continues an
interrupted run.

Examples::

    python tools/proxy_fidelity.py --out docs/fidelity/scenes --workers 2        # the default proxy
    python tools/proxy_fidelity.py --preset relational --out docs/fidelity/relational --workers 2
    python tools/proxy_fidelity.py --preset tiny --seeds 2 --genomes 3 --out /tmp/fid   # seconds
    python tools/proxy_fidelity.py --compare docs/fidelity/relational docs/fidelity/scenes \\
        --out docs/fidelity                                                      # side by side
"""

EFFICIENCY_DOC = """Search efficiency: compute to reach the naive search's hypervolume.

For each of --seeds seeds (--seed, --seed+1, ...) runs the naive search (no program check, no
evaluation cache, no rejection protocol: every candidate trained for the full budget), the full
search, and one ablation per accelerator (the full search with only that one off), all with the
same configuration otherwise; each in OUT/seed-<seed>/<variant>/. Every search but the naive one
may run up to --extend times the generations and stops after the first generation at which it
reaches the naive search's final hypervolume. Then reports the hypervolume
(accuracy x cost, the search's own objectives) against compute (CPU-seconds of evaluation and
GFLOPs), the ratio of compute the full search needs to reach the naive search's final hypervolume
(per seed and median), and the ablation table: OUT/efficiency.md / .csv / .json / .png and
curves.csv. Re-running the same command continues an interrupted measurement (finished runs are
reused, an unfinished one is resumed).

Examples::

    python tools/search_efficiency.py --out docs/efficiency/search/default --workers 2 \\
        --prescreen attn_rank --surrogate                                        # default proxy (hours)
    python tools/search_efficiency.py --preset tiny --seeds 2 --out /tmp/eff       # seconds
    python tools/search_efficiency.py --out docs/efficiency/search/default --prescreen attn_rank \\
        --surrogate --report-only                                                # report what is there
"""

# (argparse dest, SearchConfig field) of the plain options
_FIELDS = [('proxy', 'proxy'), ('acc_objective', 'acc_objective'), ('cost', 'cost'),
           ('space', 'space'), ('shape_space', 'shape_space'),
           ('pop_size', 'pop_size'), ('generations', 'generations'), ('epochs', 'epochs'),
           ('seed', 'seed'), ('workers', 'workers'), ('dask_scheduler', 'dask_scheduler'),
           ('eval_timeout', 'eval_timeout_s'), ('prior', 'prior')]


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def add_config_args(p: argparse.ArgumentParser, search: bool = True) -> None:
    """The configuration options; ``search=False`` leaves out those of the evolutionary loop."""
    p.add_argument('--preset', default=None, help='named configuration: ' + ', '.join(PRESETS)
                   + (" (default: 'default'; 'joint' with --space joint)" if search else " (default: 'default')"))
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
        p.add_argument('--space', choices=list(SPACES),
                       help="search space: attention genomes ('default', 'original': the paper's operators "
                            "only) or 'joint' (ViT shape + attention genome)")
        p.add_argument('--shape-space', choices=list(SHAPE_SPACES),
                       help="shape space of --space joint: 'proxy' (scaled down for CPU, the default) or "
                            "'autoformer_t' (AutoFormer's tiny space at full size)")
        p.add_argument('--pop-size', type=int)
        p.add_argument('--generations', type=int)
        p.add_argument('--init-genome', action='append', default=None, metavar='GENOME',
                       help='canonical genome put into the initial population (repeatable)')
        p.add_argument('--dask-scheduler', metavar='ADDR', help='evaluate on the Dask scheduler at ADDR (tcp://host:port)')
        p.add_argument('--prior', metavar='FILE',
                       help='warm start: a JSON-lines file of genome + score results measured before the '
                            'search (e.g. attnzero/data/attn-bench-101-v2/bench.jsonl with --set '
                            'prior_key=scores:0.6667 --set prior_where=source:kind=random); each generation, '
                            'only the best prior_keep of the candidates by predicted score train')
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
    """The preset with :func:`config_overrides` applied, validated. Without ``--preset``:
    ``'joint'`` for ``--space joint``, else ``'default'``."""
    name = args.preset or ('joint' if getattr(args, 'space', None) == 'joint' else 'default')
    base = preset(name).to_dict()
    base.update(config_overrides(args))
    try:
        return SearchConfig.from_dict(base)
    except TypeError as e:
        raise ConfigError(str(e)) from e


def _print_file(path: str) -> None:
    with open(path, encoding='utf-8') as f:
        print(f.read())


# ----------------------------------------------------------------------------- search
def search_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=SEARCH_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--resume', metavar='RUN_DIR', help='continue the run in RUN_DIR (its config is kept)')
    p.add_argument('--run-dir', help='output directory (new or empty); default runs/search-<time>')
    add_config_args(p)
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def search_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/search.py`` (console script ``attnzero-search``)."""
    args = search_parser().parse_args(argv)
    t0 = time.perf_counter()
    try:
        overrides = config_overrides(args)
        if args.resume:
            search = Search(None, args.resume, resume=True, progress=not args.no_progress,
                            overrides=overrides)
        else:
            cfg = config_from_args(args)
            run_dir = args.run_dir or os.path.join('runs', time.strftime('search-%Y%m%d-%H%M%S'))
            search = Search(cfg, run_dir, progress=not args.no_progress)
        summary = search.run()
    except (ConfigError, ProxyError, RunDirError, ConnectionError) as e:
        print(f'search.py: error: {e}', file=sys.stderr)
        return 2
    cfg = search.cfg
    front = pareto_records(cfg, search.state)
    print(format_summary(cfg, summary, format_front(cfg, front, search.state.baselines)), end='')
    print(f'total time of this invocation: {time.perf_counter() - t0:.1f} s')
    return 0


# ----------------------------------------------------------------------------- proxy fidelity
def proxy_fidelity_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=FIDELITY_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder (runs.jsonl there is reused)')
    add_config_args(p, search=False)
    p.add_argument('--seeds', type=int, default=3, help='seeds per reference attention and architecture (3)')
    p.add_argument('--genomes', type=int, default=30, help='sampled genomes for rank stability (30; 0 = none)')
    p.add_argument('--budget-factor', type=int, default=4, help='the larger budget of the stability check (4x)')
    p.add_argument('--genome-seed', type=int, default=0, help='seed of the genome sample')
    p.add_argument('--references', help='comma-separated subset of the reference attentions')
    p.add_argument('--label', default='', help='name of this proxy in the report')
    p.add_argument('--compare', nargs='+', metavar='DIR',
                   help='write OUT/comparison.md from the summary.json of finished runs in DIRs')
    p.add_argument('--report-only', action='store_true',
                   help='train nothing: report the runs already in OUT/runs.jsonl (e.g. of a run still going)')
    p.add_argument('--no-progress', action='store_true')
    return p


def proxy_fidelity_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/proxy_fidelity.py`` (console script ``attnzero-proxy-fidelity``)."""
    args = proxy_fidelity_parser().parse_args(argv)
    command = tool_command('proxy_fidelity', argv)
    try:
        if args.compare:
            sums = {}
            for d in args.compare:
                path = os.path.join(d, 'summary.json')
                if not os.path.exists(path):
                    raise FidelityError(f'--compare {d!r}: no summary.json (run the fidelity tool there first)')
                with open(path, encoding='utf-8') as f:
                    s = json.load(f)
                sums[s.get('label') or os.path.basename(os.path.normpath(d))] = s
            os.makedirs(args.out, exist_ok=True)
            write_comparison(sums, os.path.join(args.out, 'comparison.md'), [command])
            print(f'wrote {os.path.join(args.out, "comparison.md")}')
            return 0
        cfg = config_from_args(args)
        refs = [r.strip() for r in args.references.split(',')] if args.references else None
        result = run_fidelity(cfg, seeds=args.seeds, n_genomes=args.genomes,
                              budget_factor=args.budget_factor, genome_seed=args.genome_seed,
                              workers=cfg.workers, out_dir=args.out, references=refs,
                              progress=not args.no_progress, train=not args.report_only)
        summary = summarise(result)
        summary['label'] = args.label
        summary['command'] = command
        paths = write_report(summary, args.out, command, args.label)
    except (ConfigError, ProxyError, FidelityError) as e:
        print(f'proxy_fidelity.py: error: {e}', file=sys.stderr)
        return 2
    _print_file(paths['md'])
    return 0


# ----------------------------------------------------------------------------- search efficiency
def search_efficiency_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=EFFICIENCY_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder (its runs are reused / resumed)')
    add_config_args(p)
    p.add_argument('--seeds', type=int, default=3, help='number of seeds, from --seed on (3)')
    p.add_argument('--rungs', type=int, default=1,
                   help='also measure successive-halving rungs: the full search uses this many rungs '
                        '(eta from --set eta=...), the naive one none, plus a no_rungs ablation (1: off)')
    p.add_argument('--prescreen', metavar='SCORE', default='',
                   help='also measure the pre-screen deferral by SCORE (e.g. early_loss; the kept '
                        'fraction from --set prescreen_keep=...): on in the full search, off in the '
                        'naive one, plus a no_prescreen ablation')
    p.add_argument('--prescreen-pool', type=int, default=None, metavar='K',
                   help='with --prescreen: a pre-screened generation proposes K offspring (the '
                        'pre-screen picks the best prescreen_keep of them to train); off, the base '
                        "config's n_offsprings (default: a generation of the pre-screen's own size)")
    p.add_argument('--surrogate', action='store_true',
                   help='also measure the online surrogate deferral (surrogate_min / surrogate_z from '
                        '--set): on in the full search, off in the naive one, plus a no_surrogate ablation')
    p.add_argument('--extend', type=int, default=3,
                   help='every search but the naive one may run up to this many times the generations, '
                        "stopping after the first generation at which it reaches the naive search's final "
                        'hypervolume (3; 1: the same generations for all)')
    p.add_argument('--variants', default=None, metavar='V1,V2',
                   help='run only these variants of every seed (e.g. naive,full; default all: naive, '
                        'full and one no_<accelerator> ablation each); the report takes every run in OUT')
    p.add_argument('--report-only', action='store_true',
                   help='run nothing: report the runs already in OUT (finished or not)')
    p.add_argument('--no-progress', action='store_true', help='no progress bars')
    return p


def search_efficiency_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/search_efficiency.py`` (console script ``attnzero-search-efficiency``)."""
    args = search_efficiency_parser().parse_args(argv)
    command = tool_command('search_efficiency', argv)
    try:
        cfg = config_from_args(args)
        if args.seeds < 1:
            raise EfficiencyError(f'--seeds {args.seeds}: must be >= 1')
        if os.path.exists(args.out) and not os.path.isdir(args.out):
            raise EfficiencyError(f'--out {args.out!r} exists and is not a directory')
        accelerators = efficiency.ACCELERATORS
        if args.rungs != 1:
            accelerators = accelerators + (efficiency.rungs_accelerator(args.rungs),)
            cfg = cfg.replace(rungs=args.rungs)
        if args.prescreen_pool is not None and not args.prescreen:
            raise EfficiencyError(f'--prescreen-pool {args.prescreen_pool}: needs --prescreen SCORE')
        if args.prescreen:
            acc = efficiency.prescreen_accelerator(args.prescreen, args.prescreen_pool, cfg.n_offsprings)
            accelerators = accelerators + (acc,)
            cfg = cfg.replace(**acc.on)
        if args.surrogate:
            accelerators = accelerators + (efficiency.surrogate_accelerator(),)
            cfg = cfg.replace(surrogate=True)
        if cfg.prior:
            acc = efficiency.prior_accelerator(cfg.prior, cfg.prior_key, cfg.prior_where, cfg.prior_keep,
                                               cfg.prior_features)
            accelerators = accelerators + (acc,)
            cfg = cfg.replace(**acc.on)
        if not args.report_only:
            efficiency.run_measurement(cfg, args.out, seeds=args.seeds, progress=not args.no_progress,
                                       command=command, accelerators=accelerators,
                                       only=None if args.variants is None else args.variants.split(','),
                                       extend=args.extend,
                                       log=lambda m: print(m, file=sys.stderr, flush=True))
        result = efficiency.analyse(args.out, seeds=[cfg.seed + i for i in range(args.seeds)],
                                    accelerators=accelerators)
        paths = efficiency.write_report(result, args.out, command, load_now=loadavg())
    except (ConfigError, ProxyError, RunDirError, EfficiencyError, ConnectionError) as e:
        print(f'search_efficiency.py: error: {e}', file=sys.stderr)
        return 2
    _print_file(paths['md'])
    return 0


# ----------------------------------------------------------------------------- supernet vs stand-alone
def supernet_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=SUPERNET_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder (its runs and supernet checkpoint are reused)')
    add_config_args(p, search=False)
    p.add_argument('--shape-space', choices=list(SHAPE_SPACES), help="the shape space (default: the config's, 'proxy')")
    p.add_argument('--attention', default=None,
                   help='the attention of every block: a zoo name or an AttnZero genome text (default Trial-105)')
    p.add_argument('--subnets', type=int, default=20, help='sampled subnets (20)')
    p.add_argument('--sample-seed', type=int, default=0, help='seed of the subnet sample (0)')
    p.add_argument('--seeds', type=int, default=1, help='common seeds per stand-alone subnet, averaged (1)')
    p.add_argument('--supernet-epochs', type=int, default=None, help='supernet training epochs (default 2x --epochs)')
    p.add_argument('--report-only', action='store_true', help='train nothing: report what OUT holds')
    p.add_argument('--no-progress', action='store_true')
    return p


def supernet_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/supernet.py`` (console script ``attnzero-supernet``)."""
    args = supernet_parser().parse_args(argv)
    command = tool_command('supernet', argv)
    t0, load_start = time.perf_counter(), loadavg()
    try:
        cfg = config_from_args(args)
        if args.shape_space:
            cfg = cfg.replace(shape_space=args.shape_space)
        result = supernet_fidelity.run_measurement(
            cfg, args.out, n_subnets=args.subnets, attention=args.attention, sample_seed=args.sample_seed,
            seeds=args.seeds, epochs=args.supernet_epochs, workers=cfg.workers, progress=not args.no_progress,
            train=not args.report_only)
        summary = supernet_fidelity.summarise(result)
        summary.update(command=command, wall_seconds=time.perf_counter() - t0, load_start=load_start,
                       load_end=loadavg())
        paths = supernet_fidelity.write_report(summary, args.out)
    except (ConfigError, ProxyError, SupernetError, ShapeError) as e:
        print(f'supernet.py: error: {e}', file=sys.stderr)
        return 2
    _print_file(paths['md'])
    return 0


# ----------------------------------------------------------------------------- slimming
def slim_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=SLIM_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', required=True, help='output folder')
    add_config_args(p, search=False)
    p.add_argument('--attn', default='attnzero', help="attention of every block (default 'attnzero')")
    p.add_argument('--genome', default=None, help="genome of --attn attnzero (default Trial-105)")
    p.add_argument('--shape', default=None, help='starting ViT shape text (default: the config\'s proxy DeiT)')
    p.add_argument('--target', type=float, default=0.7, help='keep at most this fraction of the FLOPs (0.7)')
    p.add_argument('--lam', type=float, default=DEFAULT_LAM, help=f'weight of the mask L1 ({DEFAULT_LAM})')
    p.add_argument('--mask-travel', type=float, default=DEFAULT_MASK_TRAVEL,
                   help='how far the masks can move in the search: their learning rates over its steps '
                        f'sum to this ({DEFAULT_MASK_TRAVEL:g}; the masks start at 1)')
    p.add_argument('--slim-epochs', type=int, default=1, help='epochs of the mask search (1)')
    p.add_argument('--finetune-epochs', type=int, default=1, help='epochs of fine-tuning the static model (1)')
    p.add_argument('--weights', default=None, help='state dict of a trained proxy model to start from '
                   '(default: train one with the config)')
    p.add_argument('--no-control', action='store_true',
                   help='do not train the unslimmed model as long for comparison (saves that time)')
    p.add_argument('--quiet', action='store_true', help='no progress lines')
    return p


def slim_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/slim.py`` (console script ``attnzero-slim``)."""
    args = slim_parser().parse_args(argv)
    command = tool_command('slim', argv)
    try:
        cfg = config_from_args(args)
        run_slim(cfg, args.out, attn=args.attn, genome=args.genome, shape=args.shape, target=args.target,
                 lam=args.lam, mask_travel=args.mask_travel, slim_epochs=args.slim_epochs,
                 finetune_epochs=args.finetune_epochs, weights=args.weights, control=not args.no_control,
                 command=command,
                 log=(lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr, flush=True)))
    except (SlimError, ConfigError, ProxyError) as e:
        print(f'slim.py: error: {e}', file=sys.stderr)
        return 2
    _print_file(slim_report_paths(args.out)['md'])
    return 0
