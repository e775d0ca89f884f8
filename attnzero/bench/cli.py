"""The command lines of the bench tools, as functions (``main(argv) -> exit code``):

* :func:`build_main` -- ``tools/build_bench.py`` / ``attnzero-build-bench``;
* :func:`analyze_main` -- ``tools/analyze_bench.py`` / ``attnzero-analyze-bench``;
* :func:`zero_cost_main` -- ``tools/zero_cost.py`` / ``attnzero-zero-cost`` (it lives here, above
  the search layer, because it reads a fidelity run *or* a bench).

Argument parsing and printing only: the work is :mod:`attnzero.bench` (building, analysis).
The search tools' command lines are :mod:`attnzero.search.cli`. The usage texts below are the tools' ``--help``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Optional, Sequence

from attnzero.io import tool_command
from attnzero.search.config import PRESETS, SearchConfig

from attnzero.search import prescreen

from .analyze import zero_cost_rows
from .report import write_report as write_bench_report
from .build import build, finalize, load_build_info
from .multifidelity import LevelPlan, build_levels
from .multifidelity import finalize as finalize_levels
from .multifidelity import status as build_status
from .evaluate import BenchSettings
from .format import BenchError
from .query import DEFAULT_VERSION, VERSIONS, default_path, load

__all__ = ['build_main', 'analyze_main', 'zero_cost_main', 'surrogate_cv_main']

#: the repository of a source checkout (where the reports are written by default)
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: where the report of each shipped bench lives in the repository (the default one at the top)
REPORT_DIRS = {'v1': os.path.join('docs', 'bench', 'v1'), 'v2': os.path.join('docs', 'bench')}

BUILD_DOC = 'Build (or grow, or finalize) an Attn-Bench-101 directory.'
ANALYZE_DOC = ('Measure design insights on an Attn-Bench-101 directory (or a shipped one by version name: '
               f'{", ".join(VERSIONS)}) and write the markdown report + plots. A shipped bench\'s report '
               'goes to its folder by default: ' + ', '.join(f'{v} -> {d}' for v, d in REPORT_DIRS.items())
               + '.')


# ----------------------------------------------------------------------------- bench
def _bench_settings(args):
    given = [args.preset, args.proxy, args.archs, args.budgets, args.seeds, args.set, args.rungs]
    if all(x is None or x == [] for x in given):
        return None  # resume with the saved settings (or fail if there are none)
    d = dict(PRESETS[args.preset or 'default'])
    cfg = SearchConfig(**d).to_dict()
    if args.proxy:
        cfg['proxy'] = args.proxy
    if args.archs:
        cfg['archs'] = [a for a in args.archs.split(',') if a]
    for kv in args.set or []:
        key, _, val = kv.partition('=')
        try:
            cfg[key] = json.loads(val)
        except ValueError:
            cfg[key] = val
    budgets = [int(b) for b in args.budgets.split(',')] if args.budgets else [int(cfg['epochs'])]
    cfg['epochs'] = max(budgets)
    SearchConfig.from_dict(cfg)  # validate with the search's rules
    seeds = [int(s) for s in args.seeds.split(',')] if args.seeds else [0]
    return BenchSettings(cfg, seeds=seeds, budgets=budgets, rungs=_rungs(args.rungs))


def _rungs(text: Optional[str]):
    """``--rungs 2/3,1`` -> ``[0.666.., 1.0]`` (fractions allowed); a bad value is named."""
    from fractions import Fraction

    out = []
    for part in (text or '').split(','):
        if not part.strip():
            continue
        try:
            out.append(float(Fraction(part.strip())))
        except (ValueError, ZeroDivisionError):
            raise SystemExit(f'--rungs: {part!r} is not a number of epochs (e.g. 2/3 or 0.5)') from None
    return out


def _ints(text: Optional[str], flag: str):
    if text is None:
        return None
    try:
        return [int(x) for x in text.split(',') if x.strip()]
    except ValueError:
        raise SystemExit(f'{flag}: {text!r} is not a comma-separated list of integers') from None


def _plan(args, info: Optional[dict]):
    """The multi-fidelity plan from the flags (``None``: resume with the saved one); ``info``: the
    bench's saved build info, if any."""
    fields = dict(n=args.n, n_full=args.n_full, n_long=args.n_long,
                  batch=args.batch, promote_top=args.promote_top, promote_random=args.promote_random,
                  long_top=args.long_top, reference_seeds=_ints(args.reference_seeds, '--reference-seeds'),
                  reference_long_seeds=_ints(args.reference_long_seeds, '--reference-long-seeds'),
                  runs=_run_files(args.from_runs) if args.from_runs else None,
                  cross_archs=[a for a in args.cross_archs.split(',') if a] if args.cross_archs else None,
                  n_cross=args.n_cross, n_retest=args.n_retest,
                  retest_seeds=_ints(args.retest_seeds, '--retest-seeds'))
    given = {k: v for k, v in fields.items() if v is not None}
    multi = bool(args.rungs) or bool(info and info.get('plan'))
    if not multi:
        extra = sorted(k for k in given if k != 'n')
        if extra:
            raise SystemExit(f'the plan flags ({", ".join(extra)}) need a multi-fidelity bench (--rungs)')
        return None
    if not given and not args.rungs:
        return None
    base = LevelPlan.from_dict(info['plan']).to_dict() if info and info.get('plan') else LevelPlan().to_dict()
    base.update(given)
    try:
        return LevelPlan(**base)
    except ValueError as e:
        raise SystemExit(f'bad plan: {e}') from None


def _run_files(patterns: Sequence[str]):
    """Search runs' ``evaluations.jsonl`` from globs (a run folder stands for its file), sorted."""
    import glob

    files = []
    for pat in patterns:
        hits = sorted(glob.glob(pat)) or [pat]
        for h in hits:
            f = os.path.join(h, 'evaluations.jsonl') if os.path.isdir(h) else h
            if not os.path.exists(f):
                raise SystemExit(f'--from-runs: no search run at {pat!r} ({f} does not exist)')
            files.append(os.path.relpath(f) if not os.path.isabs(pat) else f)
    return sorted(dict.fromkeys(files))


def build_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/build_bench.py`` (console script ``attnzero-build-bench``)."""
    p = argparse.ArgumentParser(description=BUILD_DOC,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--out', default=default_path(), help='bench directory (default: the shipped one)')
    p.add_argument('-n', type=int, default=None,
                   help='target number of genomes (see --until; default 500, a multi-fidelity plan 2000)')
    p.add_argument('--until', choices=('trained', 'records'), default='trained',
                   help="count genomes that passed the program check and were trained (default), "
                        "or every sampled genome")
    g = p.add_argument_group('settings (left out on resume: read from OUT/build.json)')
    g.add_argument('--preset', default=None, help='search config preset (default, tiny)')
    g.add_argument('--proxy', default=None, help='proxy spec (e.g. relational?train=3000&test=1000)')
    g.add_argument('--archs', default=None, help='comma-separated proxy ViTs (default deit,pvt)')
    g.add_argument('--budgets', default=None, help='comma-separated epoch budgets (default: config epochs)')
    g.add_argument('--seeds', default=None, help='comma-separated seed indices (default 0)')
    g.add_argument('--set', action='append', default=[], metavar='KEY=JSON',
                   help='override any SearchConfig field, e.g. --set lr=0.003')
    p.add_argument('--sampler-seed', type=int, default=0)
    p.add_argument('--space', choices=('default', 'original'), default='default')
    p.add_argument('--workers', type=int, default=0, help='local worker processes (0: in-process)')
    p.add_argument('--dask', default=None, metavar='tcp://HOST:PORT', help='Dask scheduler')
    p.add_argument('--timeout', type=float, default=1800.0, help='seconds per genome before retry')
    p.add_argument('--retries', type=int, default=1)
    p.add_argument('--no-baselines', action='store_true', help='skip the reference attentions')
    p.add_argument('--baseline-seeds', default='0,1,2', help='seed indices of the baselines')
    p.add_argument('--max-minutes', type=float, default=None, help='stop (cleanly) after this long')
    g.add_argument('--rungs', default=None,
                   help='multi-fidelity (format 2): epochs of the first budget at which a genome is '
                        'first measured, e.g. 2/3 (the search\'s first rung with --rungs 2)')
    m = p.add_argument_group('multi-fidelity plan (with --rungs; left out on resume)')
    m.add_argument('--n-full', type=int, default=None, help='genomes promoted to the first budget (500)')
    m.add_argument('--n-long', type=int, default=None, help='genomes trained for the longest budget (30)')
    m.add_argument('--long-top', type=int, default=None,
                   help='of those, the best by first-budget score (15; the rest at random)')
    m.add_argument('--batch', type=int, default=None, help='trained genomes per promotion batch (24)')
    m.add_argument('--promote-top', type=int, default=None, help='best of a batch promoted (4)')
    m.add_argument('--promote-random', type=int, default=None, help='drawn from the rest of a batch (2)')
    m.add_argument('--reference-seeds', default=None, help='seeds of the references (0,1,2,3,4)')
    m.add_argument('--reference-long-seeds', default=None,
                   help='seeds of the references at the longest budget (0)')
    m.add_argument('--cross-archs', default=None,
                   help='other proxy ViTs (comma-separated) in which --n-cross genomes promoted at random '
                        'and the references are also trained (rank agreement between architectures)')
    m.add_argument('--n-cross', type=int, default=None, help='genomes of the cross-architecture level (0)')
    m.add_argument('--n-retest', type=int, default=None,
                   help='genomes of the random stream trained to the rung again at --retest-seeds: the '
                        'test-retest reliability of a single-seed score, the ceiling of any predictor (0)')
    m.add_argument('--retest-seeds', default=None, help='seeds of the retest level (1)')
    m.add_argument('--from-runs', nargs='+', default=None, metavar='RUN',
                   help='search runs (folders or evaluations.jsonl, globs allowed) whose genomes come '
                        'before the random ones')
    p.add_argument('--finalize', action='store_true', help='only rewrite MANIFEST.json')
    p.add_argument('--status', action='store_true',
                   help='print where a multi-fidelity build stands (counts, CPU hours spent and left, '
                        'projected) and exit; safe while it runs')
    p.add_argument('--parquet', action='store_true', help='also write bench.parquet (in the manifest)')
    p.add_argument('--no-progress', action='store_true')
    p.add_argument('-v', '--verbose', action='store_true')
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format='%(asctime)s %(levelname)s %(message)s')
    args_list = argv if argv is not None else sys.argv[1:]
    command = tool_command('build_bench', args_list)
    if args.status:
        print(json.dumps(build_status(args.out), indent=2, sort_keys=True))
        return 0
    if args.finalize:
        info = load_build_info(args.out)
        m = (finalize_levels if info and info.get('plan') else finalize)(args.out, command, parquet=args.parquet)
        print(json.dumps(dict(records=m['records'], counts=m.get('counts'),
                              files={k: v['sha256'] for k, v in m['files'].items()}), indent=2))
        return 0
    info = load_build_info(args.out)
    plan = _plan(args, info)
    if plan is not None or (info and info.get('plan')):
        counts = build_levels(args.out, _bench_settings(args), plan, sampler_seed=args.sampler_seed,
                              space=args.space, workers=args.workers, dask_scheduler=args.dask,
                              timeout=args.timeout, retries=args.retries,
                              progress=not args.no_progress, command=command, parquet=args.parquet,
                              max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
        print(json.dumps(counts, sort_keys=True))
        return 0
    counts = build(args.out, 500 if args.n is None else args.n, _bench_settings(args), until=args.until,
                   sampler_seed=args.sampler_seed, space=args.space, workers=args.workers,
                   dask_scheduler=args.dask, timeout=args.timeout, retries=args.retries,
                   baselines=not args.no_baselines,
                   baseline_seeds=[int(s) for s in args.baseline_seeds.split(',') if s],
                   progress=not args.no_progress, command=command, parquet=args.parquet,
                   max_seconds=None if args.max_minutes is None else 60 * args.max_minutes)
    print(json.dumps(counts, sort_keys=True))
    return 0


def label_of(path: str) -> str:
    """The bench path as written in the report: relative to the repository when inside it."""
    ap = os.path.abspath(path)
    try:
        rel = os.path.relpath(ap, ROOT)
    except ValueError:
        return ap
    return ap if rel.startswith('..') else rel.replace(os.sep, '/')


def analyze_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/analyze_bench.py`` (console script ``attnzero-analyze-bench``)."""
    p = argparse.ArgumentParser(description=ANALYZE_DOC)
    p.add_argument('--bench', default=DEFAULT_VERSION,
                   help=f'bench directory or shipped version name (default {DEFAULT_VERSION})')
    p.add_argument('--out', default=None, help='report directory (default: a shipped bench\'s '
                   'folder under docs/bench, else required)')
    p.add_argument('--no-plots', action='store_true', help='only the markdown report')
    p.add_argument('--no-verify', action='store_true', help='do not check the manifest sha256')
    p.add_argument('--partial', action='store_true',
                   help='report a multi-fidelity bench whose build has not finished its plan')
    args = p.parse_args(argv)
    version = args.bench if args.bench in VERSIONS else next(
        (v for v in VERSIONS if os.path.abspath(default_path(v)) == os.path.abspath(args.bench)), None)
    if args.out is None:
        if version is None:
            p.error(f'--out is required for a bench that is not shipped ({args.bench!r})')
        args.out = os.path.join(ROOT, REPORT_DIRS[version])
    bench_path = default_path(version) if version else args.bench
    bench = load(bench_path, verify=not args.no_verify, partial=args.partial)
    # (a multi-fidelity bench gets the levels report: every level, the paper's claims point by point)
    path = write_bench_report(bench, args.out, label_of(bench_path), plots=not args.no_plots)
    print(path)
    return 0


# ----------------------------------------------------------------------------- zero-cost scores
ZERO_COST_DOC = """Training-free pre-screen scores (grad norm, SNIP, synflow, NASWOT, attention rank;
early loss as a reference) of a fidelity run's genomes and references, or of Attn-Bench-101's
trained genomes and baselines, correlated with their trained scores.

    python tools/zero_cost.py --fidelity docs/fidelity/default --out docs/efficiency/zero_cost/default
    python tools/zero_cost.py --bench v1 --limit 300 --out docs/efficiency/zero_cost/bench-v1
    python tools/zero_cost.py --bench v2 --level 0.6667 --out docs/efficiency/zero_cost/bench-v2-rung

See attnzero.search.prescreen."""


def zero_cost_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/zero_cost.py`` (console script ``attnzero-zero-cost``)."""
    p = argparse.ArgumentParser(description=ZERO_COST_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument('--fidelity', help='a proxy_fidelity.py output folder (its settings, stability.csv and '
                     'fidelity.csv)')
    src.add_argument('--bench', nargs='?', const=default_path(), default=None,
                     help='an Attn-Bench-101 directory or shipped version name (v1, v2; without a value: the default shipped bench)')
    p.add_argument('--out', required=True)
    p.add_argument('--archs', default=None, help="comma-separated proxy architectures (default: the source's)")
    p.add_argument('--seed', type=int, default=0, help='seed of the scores (and of the bench draw)')
    p.add_argument('--batch', type=int, default=64)
    p.add_argument('--early-steps', type=int, default=16)
    p.add_argument('--limit', type=int, default=None,
                   help='fidelity: the first N sampled genomes only (tests); bench: N trained genomes drawn '
                        'with --seed (default all)')
    p.add_argument('--level', type=float, default=None,
                   help='bench: the fidelity level (epochs) whose scores to correlate with, on a multi-fidelity '
                        "bench (v2; default its first budget; its rung, e.g. 0.6667, has the most genomes)")
    p.add_argument('--partial', action='store_true', help='bench: read a multi-fidelity bench whose build is unfinished')
    args = p.parse_args(argv)
    if args.limit is not None and args.limit < 3:
        p.error(f'--limit {args.limit}: needs at least 3 genomes to correlate')
    archs = None if args.archs is None else tuple(a for a in args.archs.split(',') if a)
    try:
        if args.fidelity is not None:
            for f in ('settings.json', 'stability.csv', 'fidelity.csv'):
                if not os.path.isfile(os.path.join(args.fidelity, f)):
                    p.error(f'--fidelity {args.fidelity!r} has no {f} (a tools/proxy_fidelity.py output folder)')
            res = prescreen.study(args.fidelity, args.out, archs, args.seed, args.batch, args.early_steps, args.limit)
        else:
            try:
                bench = load(args.bench, partial=args.partial)
            except (OSError, ValueError, BenchError) as e:
                p.error(f'--bench {args.bench!r}: {e}')
            rows, cfg, source = zero_cost_rows(bench, args.limit, args.seed, args.level)
            command = tool_command('zero_cost', argv)
            res = prescreen.correlate(rows, cfg, args.out, source, command, archs, args.seed, args.batch,
                                      args.early_steps)
    except ValueError as e:
        p.error(str(e))
    for e in res['table']:
        print(f'{e["score"]:11s} tau vs 1x {e["tau_trained_1x"]:+.3f}  vs 4x {e["tau_trained_4x"]:+.3f}  '
              f'refs {e["tau_references_1x"]:+.3f}  failures {e["nan"]}  {e["seconds"]:.2f} s')
    return 0



# ----------------------------------------------------------------------------- surrogate features
SURROGATE_CV_DOC = """Cross-validated Kendall tau of the bench surrogate with each feature set (the genome's
text alone, with its probe features, and with its probe and gradient features), per fidelity level: a markdown table, a csv and a plot.

    python tools/surrogate_cv.py --bench v2 --partial --out docs/bench/surrogate-cv
    python tools/surrogate_cv.py --bench v1 --out /tmp/v1-cv

See attnzero.bench.surrogate.compare_feature_sets."""


def surrogate_cv_main(argv: Optional[Sequence[str]] = None) -> int:
    """``tools/surrogate_cv.py`` (console script ``attnzero-surrogate-cv``)."""
    import csv
    import time

    from .surrogate import compare_feature_sets

    p = argparse.ArgumentParser(description=SURROGATE_CV_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--bench', default=DEFAULT_VERSION, help='bench directory or shipped version name')
    p.add_argument('--partial', action='store_true', help='read a multi-fidelity bench whose build is unfinished')
    p.add_argument('--out', required=True, help='output folder (surrogate_cv.md / .csv / .png)')
    p.add_argument('--reps', type=int, default=3, help='repetitions of the k-fold split (default 3)')
    p.add_argument('--folds', type=int, default=5, help='folds (default 5)')
    p.add_argument('--min-genomes', type=int, default=50, help='levels with fewer trained genomes are left out')
    args = p.parse_args(argv)
    if args.reps < 1 or args.folds < 2:
        p.error(f'--reps must be >= 1 and --folds >= 2 (got {args.reps}, {args.folds})')
    bench = load(args.bench, partial=args.partial)
    label = args.bench if args.bench in VERSIONS else label_of(args.bench)
    t0 = time.time()
    min_genomes = max(args.min_genomes, 2 * args.folds)
    rows = compare_feature_sets(bench, reps=args.reps, folds=args.folds, min_genomes=min_genomes)
    if not rows:
        p.error(f'{args.bench}: no level has {min_genomes} trained genomes')
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'surrogate_cv.csv'), 'w', newline='', encoding='utf-8') as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    m = bench.manifest or {}
    lines = ['# Bench surrogate: Kendall tau by feature set', '', 'Produced by:', '', '```bash',
             tool_command('surrogate_cv', argv), '```', '',
             f'Bench `{label}`: {len(bench)} records, `bench.jsonl` sha256 '
             f'`{(m.get("files") or {}).get("bench.jsonl", {}).get("sha256", "n/a")}`'
             + (' (**unfinished build**: provisional)' if m.get('complete') is False else '') + '. '
             f'{args.reps} x {args.folds}-fold cross-validation of `attnzero.bench.Surrogate`\'s model '
             '(gradient boosting, seed 0) on the trained genomes of each level; the k-fold shuffles use '
             f'seeds 0..{args.reps - 1}. Load average at the end: '
             + ' '.join(f'{x:.2f}' for x in os.getloadavg()) + f'; {time.time() - t0:.0f} s.', '',
             '| level | genomes | features | Kendall tau (mean ± s.e.) | min | max |', '|---|---|---|---|---|---|']
    lines += [f'| {r["level"]} | {r["n"]} | `{r["features"]}` | {r["tau_mean"]:.3f} ± {r["tau_se"]:.3f} | '
              f'{r["tau_min"]:.3f} | {r["tau_max"]:.3f} |' for r in rows]
    lines += ['', '`syntax`: the genome\'s text (graph, operators per edge source, counts, cost); `syntax+probe`: '
              'with what its attention does on one fixed input (`attnzero.space.features.probe_features`); '
              '`syntax+probe+grad` (the default): also how strongly a signal at its output reaches q, k and v on that '
              'input (`attnzero.space.features.gradient_features`); '
              '*stacked on* a rung: with the prediction of a model of that rung\'s scores (fitted on every genome '
              'that reached the rung except the fold\'s held-out ones; out-of-fold for the training genomes) as '
              'one more feature: `bench.surrogate(aux=...)`. *On the genomes of* a budget: the first rung\'s '
              'scores predicted for exactly the genomes that reached that budget; *on a random n of its genomes*: '
              'for a random sample of the rung\'s genomes of that size (seed 0). A budget whose tau is below the '
              'rung\'s, where these controls are as low, is limited by its sample (how many genomes, and which), '
              'not by its budget.',
              '', '![surrogate_cv](surrogate_cv.png)', '']
    with open(os.path.join(args.out, 'surrogate_cv.md'), 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines))
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    levels = list(dict.fromkeys(r['level'] for r in rows))
    fig, ax = plt.subplots(figsize=(5.2 + 1.6 * len(levels), 3.2))
    sets = list(dict.fromkeys(r['features'] for r in rows))
    w = 0.8 / len(sets)
    for j, fs in enumerate(sets):
        rr = [(i, r) for i, lv in enumerate(levels) for r in rows if r['level'] == lv and r['features'] == fs]
        ax.bar([i + w * j for i, _ in rr], [r['tau_mean'] for _, r in rr], w * 0.95,
               yerr=[r['tau_se'] for _, r in rr], label=fs, capsize=3)
    ax.set_xticks([i + w * (len(sets) - 1) / 2 for i in range(len(levels))])
    ax.set_xticklabels([f'{lv}\n(n={next(r["n"] for r in rows if r["level"] == lv)})' for lv in levels])
    ax.set_ylabel('Kendall tau (CV)')
    ax.set_title(f'surrogate features: {label}')
    ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(os.path.join(args.out, 'surrogate_cv.png'), dpi=110)
    plt.close(fig)
    print(os.path.join(args.out, 'surrogate_cv.md'))
    return 0
