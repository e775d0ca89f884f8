"""How well does a weight-sharing supernet rank ViT shapes? (``tools/supernet.py``)

:func:`run_measurement` trains the supernet of a search config's shape space with one attention
(:mod:`attnzero.search.supernet`), samples ``n_subnets`` distinct shapes of the space (seeded; the
default proxy shape always among them), scores each with inherited weights, and trains each
stand-alone with the search's own :func:`~attnzero.search.train.train_proxy` at that shape (the
search's seed for the candidate -- the common seed with ``common_seed`` -- and the rejection
protocol off; ``seeds > 1`` adds the next common seeds and averages). :func:`summarise` gives the
Kendall tau-b and Spearman rho between the supernet scores and the stand-alone accuracies, a
bootstrap 95 % interval of tau (resampling subnets), the same figures for the full-size parameter
count as a predictor (what a search knows without training anything), and the seconds each part
took; :func:`write_report` writes ``supernet.md`` / ``.csv`` / ``.png`` and ``summary.json``.

Resumable: the supernet checkpoint (``supernet.pt``) and every finished run (``runs.jsonl``, one
line each, appended as they finish) are reused by the same command; a folder of other settings is
refused. The supernet trains as one job beside the stand-alone runs on the ``workers`` processes.
"""
from __future__ import annotations

import csv
import io
import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from attnzero.io import atomic_savefig, atomic_write_text, read_jsonl
from attnzero.space import Genome
from attnzero.space.shape import SHAPE_SPACES, JointGenome, ShapeSpace, ViTShape

from .config import JOINT_SEED_SHAPE, SearchConfig
from .evaluate import _load, candidate_seed, derive_seed
from .executor import run_logged
from .fidelity import _rank_corr, _trained_fields
from .state import atomic_write_json
from .supernet import (SupernetError, attention_label, load_or_train, resolve_attention, score_subnets,
                       supernet_epochs)
from .train import train_proxy

__all__ = ['run_measurement', 'summarise', 'write_report', 'sample_shapes', 'standalone_task',
           'supernet_task', 'DOC']


def sample_shapes(space: ShapeSpace, n: int, seed: int, include: Sequence[str] = ()) -> List[str]:
    """``n`` distinct shapes of ``space`` (canonical texts): those of ``include`` that are in the
    space first, then draws of :meth:`ShapeSpace.sample` from ``seed``."""
    if n < 2:
        raise SupernetError(f'n_subnets={n}: a rank correlation needs at least 2 subnets')
    if n > space.size():
        raise SupernetError(f'n_subnets={n}: the {space.name!r} space has only {space.size()} shapes')
    out = [space.check(s).to_string() for s in include if space.contains(ViTShape.parse(s))][:n]
    rng = np.random.default_rng(seed)
    while len(out) < n:
        s = space.sample(rng).to_string()
        if s not in out:
            out.append(s)
    return out


def _candidate_key(shape: str, attn: str, genome: Optional[str]) -> str:
    """The search's identity of the candidate (the joint genome's hash) for its training seed."""
    if genome is not None:
        return JointGenome(ViTShape.parse(shape), Genome.parse(genome)).hash
    return f'{shape}|{attn}'


def _standalone_seed(cfg: SearchConfig, key: str, index: int) -> int:
    """Seed ``index`` of a stand-alone run: 0 is the search's seed for the candidate; the others
    the next common seeds (``common_seed``) or seeds derived from the candidate's."""
    if cfg.common_seed or index == 0:
        return candidate_seed(cfg, key, 'deit', index)
    return derive_seed(cfg.seed, key, 'deit', index)


# ---- worker jobs -------------------------------------------------------------------------------------
def standalone_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point: one stand-alone proxy training at ``payload['shape']`` without rejection
    (``attn``, ``genome``, ``seed``, ``config``); :func:`train_proxy`'s dict without test
    predictions."""
    cfg, data = _load(payload['config'])
    res = train_proxy('deit', payload['attn'], payload['genome'], cfg, data, payload['seed'], reject=False,
                      shape=payload['shape'])
    res.pop('test_pred', None)
    return res


def supernet_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point: train the supernet (or read it from ``payload['path']``) and score
    ``payload['shapes']``. Returns ``status``, ``scores`` ``{shape: acc}``, ``train`` (the
    training info; ``reused``), ``score_seconds``."""
    cfg, data = _load(payload['config'])
    net, info = load_or_train(cfg, data, payload['attention'], payload['path'], payload['epochs'])
    scored = score_subnets(net, payload['shapes'], data, cfg.threads)
    return dict(status='ok', reason='', scores={k: v['acc'] for k, v in scored.items()}, train=info,
                score_seconds=float(sum(v['seconds'] for v in scored.values())))


# ---- the measurement ---------------------------------------------------------------------------------
def run_measurement(cfg: SearchConfig, out_dir: str, *, n_subnets: int = 20, attention: Any = None,
                    sample_seed: int = 0, seeds: int = 1, epochs: Optional[int] = None,
                    workers: int = 0, progress: bool = False, train: bool = True) -> Dict[str, Any]:
    """Train and score (see the module docstring) into ``out_dir``; returns ``{'config',
    'settings', 'shapes', 'supernet', 'runs'}`` (``supernet``: the scoring record, ``None`` if it
    has not finished; ``runs``: the stand-alone runs finished). ``train=False`` only reads what is
    there."""
    if seeds < 1:
        raise SupernetError(f'seeds={seeds}: must be >= 1')
    space = SHAPE_SPACES[cfg.shape_space]
    attn, genome = resolve_attention(attention)
    label = attention_label(attn, genome)
    ep = supernet_epochs(cfg, epochs)
    cfg = cfg.replace(workers=0, dask_scheduler=None, rejection=False)
    shapes = sample_shapes(space, n_subnets, sample_seed, [JOINT_SEED_SHAPE])
    settings = dict(n_subnets=n_subnets, sample_seed=sample_seed, seeds=seeds, attention=label,
                    supernet_epochs=ep, shape_space=space.name)
    os.makedirs(out_dir, exist_ok=True)
    head = json.loads(json.dumps(dict(config=cfg.to_dict(), settings=settings)))
    head_path = os.path.join(out_dir, 'settings.json')
    if os.path.exists(head_path):
        with open(head_path, encoding='utf-8') as f:
            old = json.load(f)
        if _trained_fields(old['config']) != _trained_fields(head['config']) or old['settings'] != settings:
            raise SupernetError(f'{out_dir} holds a measurement of other settings or another config; use a '
                                f'new --out folder')
    else:
        atomic_write_json(head_path, head)
    log_path = os.path.join(out_dir, 'runs.jsonl')
    done: Dict[str, Dict[str, Any]] = {r['key']: r for r in read_jsonl(log_path, repair=True)[0]}
    jobs: List[Any] = []
    cfg_d = cfg.to_dict()
    if 'supernet' not in done:
        jobs.append(('supernet', supernet_task, dict(config=cfg_d, attention=label, epochs=ep, shapes=shapes,
                                                    path=os.path.join(out_dir, 'supernet.pt'))))
    meta: Dict[str, Dict[str, Any]] = {}
    for shape in shapes:
        for s in range(seeds):
            key = f'standalone|{shape}|{s}'
            seed = _standalone_seed(cfg, _candidate_key(shape, attn, genome), s)
            meta[key] = dict(shape=shape, seed_index=s, seed=seed)
            if key not in done:
                jobs.append((key, standalone_task, dict(config=cfg_d, attn=attn, genome=genome, shape=shape,
                                                        seed=seed)))
    if train and jobs:
        def record(key: str, res: Dict[str, Any]) -> Dict[str, Any]:
            if key == 'supernet':
                if res.get('status') != 'ok':
                    raise SupernetError(f'the supernet training failed: {res.get("reason")}: '
                                        f'{res.get("message", "")}')
                return dict(key=key, kind='supernet', scores=res['scores'], train=res['train'],
                            score_seconds=res['score_seconds'])
            return dict(key=key, kind='standalone', **meta[key], status=res.get('status'),
                        reason=res.get('reason', ''), message=res.get('message', ''), acc=res.get('acc'),
                        seconds=float(res.get('seconds', 0.0)), cpu_seconds=float(res.get('cpu_seconds', 0.0)),
                        steps=res.get('steps'))

        # the supernet trains supernet_epochs/epochs times as long as one run, plus the scoring
        run_logged(jobs, record, workers=workers, timeout=max(1800.0, cfg.eval_timeout_s * (ep / cfg.epochs + 1)),
                   retries=cfg.retries, log_path=log_path, done=done,
                   progress='supernet + stand-alone runs' if progress else None, total=1 + len(meta))
    return dict(config=cfg.to_dict(), settings=settings, shapes=shapes, supernet=done.get('supernet'),
                runs=[done[k] for k in meta if k in done])


# ---- statistics and report ---------------------------------------------------------------------------
def _bootstrap_tau(x: Sequence[float], y: Sequence[float], n: int = 2000, seed: int = 0) -> Dict[str, float]:
    """95 % percentile bootstrap interval of Kendall tau-b, resampling the subnets (pairs)."""
    from scipy.stats import kendalltau

    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n):
        i = rng.integers(len(x), size=len(x))
        if len(set(x[i])) > 1 and len(set(y[i])) > 1:
            taus.append(kendalltau(x[i], y[i], variant='b').statistic)
    if len(taus) < n // 2:
        return dict(lo=float('nan'), hi=float('nan'), n=len(taus))
    return dict(lo=float(np.percentile(taus, 2.5)), hi=float(np.percentile(taus, 97.5)), n=len(taus))


def summarise(result: Dict[str, Any]) -> Dict[str, Any]:
    """The figures of a :func:`run_measurement` result (see the module docstring)."""
    settings = result['settings']
    space = SHAPE_SPACES[settings['shape_space']]
    attn, genome = resolve_attention(settings['attention'])
    sup = result.get('supernet') or {}
    scores = sup.get('scores', {})
    by_shape: Dict[str, List[Dict[str, Any]]] = {}
    for r in result['runs']:
        by_shape.setdefault(r['shape'], []).append(r)
    rows = []
    for shape in result['shapes']:
        runs = sorted(by_shape.get(shape, []), key=lambda r: r['seed_index'])
        accs = [float(r['acc']) for r in runs if r.get('acc') is not None and r.get('status') == 'ok']
        rows.append(dict(shape=shape, params_M=space.params(ViTShape.parse(shape), genome) / 1e6,
                         supernet_acc=scores.get(shape),
                         standalone_acc=float(np.mean(accs)) if len(accs) == settings['seeds'] else None,
                         standalone_accs=accs, standalone_seconds=float(sum(r['seconds'] for r in runs)),
                         failed=sum(r.get('status') != 'ok' for r in runs)))
    full = [r for r in rows if r['supernet_acc'] is not None and r['standalone_acc'] is not None]
    sx = [r['supernet_acc'] for r in full]
    sy = [r['standalone_acc'] for r in full]
    px = [r['params_M'] for r in full]
    corr = _rank_corr(sx, sy)
    corr.update({f'boot_{k}': v for k, v in _bootstrap_tau(sx, sy).items()} if len(full) >= 3 else {})
    params_corr = _rank_corr(px, sy)
    params_corr.update({f'boot_{k}': v for k, v in _bootstrap_tau(px, sy).items()} if len(full) >= 3 else {})
    top = None
    if full:
        pick = max(full, key=lambda r: r['supernet_acc'])
        top = dict(shape=pick['shape'], standalone_rank=1 + sum(r['standalone_acc'] > pick['standalone_acc']
                                                                 for r in full),
                   best_standalone=max(full, key=lambda r: r['standalone_acc'])['shape'])
    train = sup.get('train', {})
    sa_secs = [r['seconds'] for r in result['runs']]
    cfg = result['config']
    return dict(proxy=cfg['proxy'], epochs=cfg['epochs'], shape_space=space.name, attention=settings['attention'],
                n_subnets=settings['n_subnets'], seeds=settings['seeds'], supernet_epochs=settings['supernet_epochs'],
                n=len(full), rows=rows, supernet_vs_standalone=corr, params_vs_standalone=params_corr,
                supernet_top_pick=top,
                seconds=dict(supernet_train=train.get('seconds'), supernet_train_cpu=train.get('cpu_seconds'),
                             supernet_reused=train.get('reused'), supernet_score=sup.get('score_seconds'),
                             standalone_total=float(sum(sa_secs)),
                             standalone_mean=float(np.mean(sa_secs)) if sa_secs else None),
                supernet_train=train)


def _f(v: Any, fmt: str = '.3f') -> str:
    return '–' if v is None or (isinstance(v, float) and not np.isfinite(v)) else format(v, fmt)


def _n(k: int, word: str) -> str:
    return f'{k} {word}' + ('' if k == 1 else 's')


def write_report(summary: Dict[str, Any], out_dir: str) -> Dict[str, str]:
    """``supernet.md``, ``supernet.csv``, ``supernet.png`` and ``summary.json`` in ``out_dir``."""
    paths = {k: os.path.join(out_dir, f) for k, f in (('md', 'supernet.md'), ('csv', 'supernet.csv'),
                                                      ('png', 'supernet.png'), ('json', 'summary.json'))}
    rows = summary['rows']
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator='\n')
    w.writerow(['shape', 'params_M_full_size', 'supernet_acc', 'standalone_acc', 'standalone_accs',
                'standalone_seconds'])
    for r in rows:
        w.writerow([r['shape'], f'{r["params_M"]:.3f}', _f(r['supernet_acc'], '.4f'), _f(r['standalone_acc'], '.4f'),
                    ' '.join(f'{a:.4f}' for a in r['standalone_accs']), f'{r["standalone_seconds"]:.1f}'])
    atomic_write_text(paths['csv'], buf.getvalue())
    atomic_write_json(paths['json'], summary)
    c, p, s = summary['supernet_vs_standalone'], summary['params_vs_standalone'], summary['seconds']
    L = ['# Supernet vs stand-alone training: ranking ViT shapes', '']
    if summary.get('command'):
        L += ['Produced by:', '', '```bash', summary['command'], '```', '']
    L += [f'Shape space `{summary["shape_space"]}`, attention `{summary["attention"]}`, proxy `{summary["proxy"]}`. '
          f'The supernet (AutoFormer weight entanglement, one uniformly sampled subnet per step) trained '
          f'{_n(summary["supernet_epochs"], "epoch")}; each of {summary["n_subnets"]} sampled subnets is scored by its '
          f'validation accuracy with inherited weights (no fine-tuning) and trained stand-alone by the search\'s '
          f'proxy training ({_n(summary["epochs"], "epoch")}, rejection off, {_n(summary["seeds"], "seed")} '
          f'per subnet -- the first is the search\'s seed of the candidate --, accuracies averaged over '
          f'seeds).', '']
    if summary['n'] < summary['n_subnets']:
        L += [f'**{summary["n"]} of the {summary["n_subnets"]} subnets have both scores** (an interrupted '
              f'measurement: re-run its command to continue).', '']
    L += ['| predictor of stand-alone accuracy | subnets | Kendall tau-b [bootstrap 95 %] | Spearman |',
          '|---|---|---|---|',
          f'| supernet score (inherited weights) | {c["n"]} | **{_f(c["kendall_tau_b"])}** '
          f'[{_f(c.get("boot_lo"))}, {_f(c.get("boot_hi"))}] | {_f(c["spearman"])} |',
          f'| full-size parameter count | {p["n"]} | {_f(p["kendall_tau_b"])} '
          f'[{_f(p.get("boot_lo"))}, {_f(p.get("boot_hi"))}] | {_f(p["spearman"])} |', '']
    top = summary.get('supernet_top_pick')
    if top:
        L += [f'The supernet\'s best subnet, `{top["shape"]}`, ranks {top["standalone_rank"]} of {summary["n"]} '
              f'stand-alone (the best stand-alone: `{top["best_standalone"]}`).', '']
    L += ['Seconds: supernet training ' + _f(s['supernet_train'], '.1f')
          + (' (reused from the checkpoint)' if s['supernet_reused'] else '')
          + f', scoring all subnets {_f(s["supernet_score"], ".1f")}; stand-alone runs '
          f'{_f(s["standalone_total"], ".1f")} in all (mean {_f(s["standalone_mean"], ".1f")} per run), one '
          f'thread each. Wall time of the invocation that wrote this: {_f(summary.get("wall_seconds"), ".1f")} s; '
          f'load average at its start / end: {summary.get("load_start", "n/a")} / {summary.get("load_end", "n/a")}.',
          '', '| shape | params (M, full size) | supernet | stand-alone |', '|---|---|---|---|']
    for r in sorted(rows, key=lambda r: -(r['standalone_acc'] if r['standalone_acc'] is not None else -1)):
        L.append(f'| `{r["shape"]}` | {r["params_M"]:.2f} | {_f(r["supernet_acc"])} | {_f(r["standalone_acc"])} |')
    L.append('')
    atomic_write_text(paths['md'], '\n'.join(L))
    _plot(summary, paths['png'])
    return paths


def _plot(summary: Dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    rows = [r for r in summary['rows'] if r['supernet_acc'] is not None and r['standalone_acc'] is not None]
    fig, ax = plt.subplots(figsize=(6, 5))
    if rows:
        sc = ax.scatter([r['supernet_acc'] for r in rows], [r['standalone_acc'] for r in rows],
                        c=[r['params_M'] for r in rows], cmap='viridis', s=24)
        fig.colorbar(sc, ax=ax, label='parameters (M, full size)')
        for r in rows:
            if r['shape'] == JOINT_SEED_SHAPE:
                ax.annotate('default proxy shape', (r['supernet_acc'], r['standalone_acc']),
                            textcoords='offset points', xytext=(4, 4), fontsize=8)
    c = summary['supernet_vs_standalone']
    ax.set_xlabel('supernet score (validation accuracy, inherited weights)')
    ax.set_ylabel('stand-alone proxy accuracy (validation)')
    ax.set_title(f'{summary["n"]} subnets of {summary["shape_space"]}: Kendall tau-b {_f(c["kendall_tau_b"], ".2f")}')
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
    plt.close(fig)


# ---- command line (attnzero.search.cli.supernet_main) -----------------------------------------------
DOC = """Supernet vs stand-alone training: how well does a weight-sharing supernet rank ViT shapes?

Trains the weight-entangled supernet (AutoFormer) of a shape space with one attention (default
Trial-105; --supernet-epochs, default 2x the config's epochs), samples --subnets distinct shapes of
the space (seeded; the default proxy shape always among them), scores each with inherited weights,
trains each stand-alone with the search's proxy training at that shape (its common seed, rejection
off), and writes OUT/supernet.md / .csv / .png and summary.json: Kendall tau-b and Spearman between
the two, a bootstrap interval, the parameter count as a reference predictor, and the seconds spent.
Finished runs (OUT/runs.jsonl) and the supernet checkpoint (OUT/supernet.pt) are reused: re-running
the same command continues an interrupted measurement.

Examples::

    python tools/supernet.py --out docs/supernet/proxy --workers 2        # the default proxy, proxy space
    python tools/supernet.py --preset joint-tiny --subnets 4 --out /tmp/sn --workers 0   # seconds
    python tools/supernet.py --out docs/supernet/proxy --report-only      # report what is there
"""
