"""Proxy fidelity: does a search proxy rank attentions the way ImageNet does?

:func:`run_fidelity` trains every reference attention of the zoo (:data:`REFERENCES`) in each proxy
architecture of a search config, for several seeds and without rejection, and a sample of genomes
from the space at the config's budget and at ``budget_factor`` times it. :func:`summarise` turns
the runs into the figures a user needs to trust a proxy:

* per attention and architecture, and for the search objective (the mean over architectures):
  mean and sd over seeds and a bootstrap 95 % interval of the mean;
* Kendall tau-b and Spearman rho of the proxy score against the published ImageNet top-1 of each
  backbone (:func:`published`, shipped as package data with its sources);
* rank stability: Kendall tau-b between the proxy and the same proxy at ``budget_factor`` x the
  training budget, over genomes sampled from the space that pass the program check;
* seconds per candidate (one genome's full evaluation over every architecture, one thread).

Scores are **validation** accuracies (the search objective). Every training run is appended to
``runs.jsonl`` in the output folder as it finishes, so an interrupted run continues where it
stopped (``run_fidelity(..., out_dir=...)`` skips the runs already there).
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy as np

from attnzero.io import data_path, read_jsonl
from attnzero.space import (DEFAULT_DISTRIBUTION, ORIGINAL_DISTRIBUTION, TRIAL_105, TRIAL_140, Genome,
                            sample)

from .config import SEARCH_ONLY_FIELDS, SearchConfig, with_defaults
from .evaluate import _load, candidate_seed, derive_seed, precheck
from .executor import run_logged
from .operators import fec_key
from .state import atomic_write_json
from .train import train_proxy

__all__ = ['REFERENCES', 'MIXING', 'published', 'run_fidelity', 'summarise', 'acceptance',
           'stability_genomes', 'FidelityError', 'reference_task', 'PUBLISHED_ARCH']


class FidelityError(ValueError):
    """Bad fidelity settings (names the value)."""


def _reference_genomes() -> Dict[str, str]:
    return {'trial_105': TRIAL_105.to_string(), 'trial_140': TRIAL_140.to_string()}


#: reference attentions: name -> (zoo attention, genome text or None)
REFERENCES: Dict[str, Tuple[str, Optional[str]]] = {
    'softmax': ('softmax', None), 'linear': ('linear', None), 'relu_linear': ('relu_linear', None),
    'focused': ('focused', None), 'hydra': ('hydra', None), 'agent': ('agent', None),
    'identity': ('identity', None),
    **{name: ('attnzero', text) for name, text in _reference_genomes().items()},
}
#: the references that mix tokens (all but ``identity``)
MIXING = tuple(n for n in REFERENCES if n != 'identity')
#: which proxy architecture stands for which published backbone (the objective stands for all)
PUBLISHED_ARCH = {'deit_t': 'deit', 'pvt_t': 'pvt'}


def published() -> Dict[str, Any]:
    """The published ImageNet table (``attnzero/data/published_imagenet.json``): ``{'backbones':
    {backbone: {'title', 'rows': {zoo name: {'top1', 'source'}}}}, 'not_in_zoo', 'caveats'}``."""
    with open(data_path('published_imagenet.json'), encoding='utf-8') as f:
        table = json.load(f)
    for bb, entry in table['backbones'].items():
        for name, row in entry['rows'].items():
            if name not in REFERENCES:
                raise FidelityError(f'published table: {bb} row {name!r} is not a reference attention')
            if not row.get('source'):
                raise FidelityError(f'published table: {bb} row {name!r} has no source')
    return table


# ---- jobs ---------------------------------------------------------------------------------------
def reference_task(payload: Dict[str, Any]) -> Dict[str, Any]:
    """Worker entry point: one training run without rejection. ``payload``: ``attn``, ``genome``,
    ``arch``, ``seed``, ``config`` (dict). Returns :func:`attnzero.search.train.train_proxy`'s dict
    with the test predictions dropped (the fidelity tool scores the validation split)."""
    cfg, data = _load(payload['config'])
    res = train_proxy(payload['arch'], payload['attn'], payload['genome'], cfg, data, payload['seed'],
                      reject=False)
    res.pop('test_pred', None)
    return res


def stability_genomes(n: int, seed: int, cfg: SearchConfig) -> List[str]:
    """``n`` distinct genomes (canonical text, functionally de-duplicated) sampled from the search
    space that pass the static and program checks, deterministic in ``seed``."""
    dist = ORIGINAL_DISTRIBUTION if cfg.space == 'original' else DEFAULT_DISTRIBUTION
    rng = np.random.default_rng(seed)
    out: List[str] = []
    seen = set()
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 200 * max(1, n):
            raise FidelityError(f'only {len(out)} of {n} sampled genomes passed the program check')
        text = sample(rng, dist, allow_quadratic=cfg.allow_quadratic).to_string()
        pre = precheck(text, cfg)
        if not pre['ok']:
            continue
        key = fec_key(pre['canonical'])
        if key in seen:
            continue
        seen.add(key)
        out.append(pre['canonical'])
    return out


#: SearchConfig fields that change nothing the fidelity tool trains or samples (a run folder stays
#: valid when they change)
_NOT_TRAINED = frozenset(SEARCH_ONLY_FIELDS + ('cost', 'cost_tokens', 'cost_head_dim'))


def _trained_fields(cfg: Dict[str, Any]) -> Dict[str, Any]:
    # a folder written before a config field existed holds runs made with its default
    return {k: v for k, v in with_defaults(cfg).items() if k not in _NOT_TRAINED}


@dataclass
class _Job:
    key: str
    kind: str  # 'ref' | 'stab'
    name: str  # reference name or genome text
    arch: str
    seed: int
    budget: int  # 1 or the budget factor


def _jobs(cfg: SearchConfig, seeds: int, genomes: Sequence[str], factor: int,
          references: Sequence[str]) -> List[_Job]:
    jobs = []
    for name in references:
        for arch in cfg.archs:
            for s in range(seeds):
                seed = (candidate_seed(cfg, name, arch, s) if cfg.common_seed
                        else derive_seed(cfg.seed, 'fidelity', name, arch, s))
                jobs.append(_Job(f'ref|{name}|{arch}|{s}', 'ref', name, arch, seed, 1))
    for text in genomes:
        for budget in (1, factor):
            for arch in cfg.archs:
                # the search's own seed for this candidate (evaluate.training_task)
                seed = candidate_seed(cfg, Genome.parse(text).hash, arch)
                jobs.append(_Job(f'stab|{text}|{arch}|{budget}', 'stab', text, arch, seed, budget))
    return jobs


def run_fidelity(cfg: SearchConfig, *, seeds: int = 3, n_genomes: int = 30, budget_factor: int = 4,
                 genome_seed: int = 0, workers: int = 0, out_dir: Optional[str] = None,
                 references: Optional[Sequence[str]] = None, progress: bool = False,
                 train: bool = True) -> Dict[str, Any]:
    """Train the references (``seeds`` each per architecture) and ``n_genomes`` sampled genomes (at
    1x and ``budget_factor`` x the epochs); returns ``{'config', 'settings', 'runs'}`` with one dict
    per training run. With ``out_dir``, runs are appended to ``out_dir/runs.jsonl`` as they finish
    and runs already there are reused (same config and settings only); ``train=False`` only reads
    them (the result then holds the runs that finished)."""
    if seeds < 1:
        raise FidelityError(f'seeds={seeds}: must be >= 1')
    if cfg.space == 'joint':
        raise FidelityError("space='joint': the fidelity tool ranks attentions in the fixed proxy "
                            "architectures; use space 'default' or 'original'")
    if n_genomes < 0 or n_genomes == 1:
        raise FidelityError(f'n_genomes={n_genomes}: must be 0 or >= 2 (a rank needs two genomes)')
    if budget_factor < 2:
        raise FidelityError(f'budget_factor={budget_factor}: must be >= 2')
    refs = list(references) if references is not None else list(REFERENCES)
    for r in refs:
        if r not in REFERENCES:
            raise FidelityError(f'unknown reference attention {r!r}; known: {", ".join(REFERENCES)}')
    cfg = cfg.replace(workers=0, dask_scheduler=None)
    settings = dict(seeds=seeds, n_genomes=n_genomes, budget_factor=budget_factor,
                    genome_seed=genome_seed, references=refs)
    genomes = stability_genomes(n_genomes, genome_seed, cfg) if n_genomes else []
    jobs = _jobs(cfg, seeds, genomes, budget_factor, refs)
    done: Dict[str, Dict[str, Any]] = {}
    log_path = None
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        log_path = os.path.join(out_dir, 'runs.jsonl')
        head = dict(config=cfg.to_dict(), settings=settings)
        head_path = os.path.join(out_dir, 'settings.json')
        if os.path.exists(head_path):
            with open(head_path, encoding='utf-8') as f:
                old = json.load(f)
            new = json.loads(json.dumps(head))
            if (_trained_fields(old['config']) != _trained_fields(new['config'])
                    or old['settings'] != new['settings']):
                raise FidelityError(f'{out_dir} holds runs of other settings or another config; use a '
                                    f'new --out folder')
        else:
            atomic_write_json(head_path, head)
        for rec in read_jsonl(log_path, repair=True)[0]:  # a run torn by a kill is trained again
            done[rec['key']] = rec
    if not train:
        if log_path is None:
            raise FidelityError('train=False needs out_dir (the runs to report are read from there)')
        return dict(config=cfg.to_dict(), settings=settings, genomes=genomes,
                    runs=[done[j.key] for j in jobs if j.key in done])
    todo = [j for j in jobs if j.key not in done]
    cfg1 = cfg.to_dict()
    cfgs = {1: cfg1}
    if budget_factor != 1:
        big = cfg.replace(epochs=cfg.epochs * budget_factor,
                          checkpoint_epoch=min(cfg.checkpoint_epoch, cfg.epochs * budget_factor))
        cfgs[budget_factor] = big.to_dict()
    by_key = {j.key: j for j in todo}
    payloads = []
    for j in todo:
        attn, genome = REFERENCES[j.name] if j.kind == 'ref' else ('attnzero', j.name)
        payloads.append((j.key, reference_task, dict(attn=attn, genome=genome, arch=j.arch,
                                                     seed=j.seed, config=cfgs[j.budget])))
    def record(key: str, res: Dict[str, Any]) -> Dict[str, Any]:
        j = by_key[key]
        return dict(key=key, kind=j.kind, name=j.name, arch=j.arch, seed=j.seed, budget=j.budget,
                    status=res.get('status'), reason=res.get('reason', ''), acc=res.get('acc'),
                    seconds=float(res.get('seconds', 0.0)), steps=res.get('steps'))

    run_logged(payloads, record, workers=workers, timeout=max(600.0, cfg.eval_timeout_s * budget_factor),
               retries=cfg.retries, log_path=log_path, done=done,
               progress='fidelity runs' if progress else None, total=len(jobs))
    return dict(config=cfg.to_dict(), settings=settings, genomes=genomes,
                runs=[done[j.key] for j in jobs])


# ---- statistics ----------------------------------------------------------------------------------
def _bootstrap(values: Sequence[float], n: int = 2000, seed: int = 0) -> Tuple[float, float]:
    """95 % percentile bootstrap interval of the mean over ``values`` (resampling seeds)."""
    v = np.asarray(values, dtype=float)
    if len(v) < 2:
        return float(v.mean()), float(v.mean())
    rng = np.random.default_rng(seed)
    means = v[rng.integers(len(v), size=(n, len(v)))].mean(axis=1)
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def _stats(values: Sequence[float]) -> Dict[str, Any]:
    v = np.asarray(values, dtype=float)
    lo, hi = _bootstrap(v)
    return dict(mean=float(v.mean()), sd=float(v.std(ddof=1)) if len(v) > 1 else 0.0, lo=lo, hi=hi,
                n=int(len(v)), values=[float(x) for x in v])


def _rank_corr(x: Sequence[float], y: Sequence[float]) -> Dict[str, float]:
    from scipy.stats import kendalltau, spearmanr

    if len(x) < 2 or len(set(x)) < 2 or len(set(y)) < 2:  # undefined for a constant side
        return dict(kendall_tau_b=float('nan'), spearman=float('nan'), n=len(x))
    tau = kendalltau(x, y, variant='b').statistic
    rho = spearmanr(x, y).statistic
    return dict(kendall_tau_b=float(tau), spearman=float(rho), n=len(x))


def summarise(result: Dict[str, Any]) -> Dict[str, Any]:
    """Figures of a :func:`run_fidelity` result (see the module docstring)."""
    cfg = result['config']
    archs = list(cfg['archs'])
    refs = result['settings']['references']
    seeds = result['settings']['seeds']
    ref_runs: Dict[Tuple[str, str], List[Dict[str, Any]]] = {}
    for r in result['runs']:
        if r['kind'] == 'ref':
            ref_runs.setdefault((r['name'], r['arch']), []).append(r)
    scores: Dict[str, Dict[str, Any]] = {}
    for name in refs:
        entry: Dict[str, Any] = {}
        per_seed = []
        for arch in archs:
            runs = sorted(ref_runs.get((name, arch), []), key=lambda r: int(r['key'].rsplit('|', 1)[1]))
            accs = [_acc(r) for r in runs]
            entry[arch] = _stats(accs)
            entry[arch]['failed'] = sum(r['status'] != 'ok' for r in runs)
            per_seed.append(accs)
        n = min(len(a) for a in per_seed)  # seeds finished in every architecture
        obj = np.mean(np.asarray([a[:n] for a in per_seed], dtype=float), axis=0)  # objective per seed
        entry['objective'] = _stats(obj)
        entry['seconds'] = float(np.mean([r['seconds'] for a in archs for r in ref_runs.get((name, a), [])]))
        scores[name] = entry
    table = published()
    corr: Dict[str, Dict[str, Any]] = {}
    for bb, bentry in table['backbones'].items():
        names = [n for n in bentry['rows'] if n in scores]
        pub = [bentry['rows'][n]['top1'] for n in names]
        cols = ['objective'] + ([PUBLISHED_ARCH[bb]] if PUBLISHED_ARCH.get(bb) in archs else [])
        for col in cols:
            corr[f'{bb}|{col}'] = dict(backbone=bb, score=col, names=names,
                                       **_rank_corr([scores[n][col]['mean'] for n in names], pub))
    # rank stability
    stab: Dict[str, Any] = dict(n=0)
    factor = result['settings']['budget_factor']
    genomes = result.get('genomes') or []
    if genomes:
        by = {(r['name'], r['arch'], r['budget']): r for r in result['runs'] if r['kind'] == 'stab'}
        # genomes whose runs are all there (a report of an interrupted run uses what finished)
        full = [g for g in genomes if all((g, a, b) in by for a in archs for b in (1, factor))]
        lo = [float(np.mean([_acc(by[(g, a, 1)]) for a in archs])) for g in full]
        hi = [float(np.mean([_acc(by[(g, a, factor)]) for a in archs])) for g in full]
        secs = [sum(by[(g, a, 1)]['seconds'] for a in archs) for g in full]
        ok = [i for i in range(len(full)) if math.isfinite(lo[i]) and math.isfinite(hi[i])]
        if len(ok) >= 2:
            stab = dict(n=len(ok), factor=factor, genomes=full, score_1x=lo, score_kx=hi, seconds_1x=secs,
                        **{k: v for k, v in _rank_corr([lo[i] for i in ok], [hi[i] for i in ok]).items()
                           if k != 'n'})
            stab['seconds_per_candidate'] = float(np.mean(secs))
            stab['seconds_per_candidate_max'] = float(np.max(secs))
            stab['distinct_1x'] = len(set(round(x, 4) for x in lo))
            stab['planned'] = len(genomes)
    ref_secs = [sum(np.mean([r['seconds'] for r in ref_runs[(n, a)]]) for a in archs)
                for n in refs if all(ref_runs.get((n, a)) for a in archs)]
    summary = dict(proxy=cfg['proxy'], archs=archs, epochs=cfg['epochs'], seeds=seeds, scores=scores,
                   correlations=corr, stability=stab,
                   seconds_per_reference_candidate=float(np.mean(ref_secs)))
    summary['acceptance'] = acceptance(summary)
    return summary


def _acc(run: Dict[str, Any]) -> float:
    return float('nan') if run.get('acc') is None else float(run['acc'])


def _rank_of(name: str, names: Iterable[str], scores: Dict[str, Dict[str, Any]], col: str) -> int:
    """1-based rank of ``name`` among ``names`` by ``col`` mean, best first (ties share the best)."""
    v = scores[name][col]['mean']
    return 1 + sum(scores[n][col]['mean'] > v for n in names if n != name)


def acceptance(summary: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The proxy-fidelity acceptance criteria (issue 14), each ``{'criterion', 'value', 'pass'}``;
    the objective (mean over architectures) is the score judged, as the search optimises it."""
    sc = summary['scores']
    out: List[Dict[str, Any]] = []

    def add(criterion: str, value: str, ok: Optional[bool]) -> None:
        out.append(dict(criterion=criterion, value=value, ok=ok))

    c = summary['correlations'].get('deit_t|objective')
    if c:
        add('Kendall tau-b >= 0.6 vs DeiT-T published (7 attentions)', f'{c["kendall_tau_b"]:.3f}',
            c['kendall_tau_b'] >= 0.6)
    pvt_col = 'pvt' if 'pvt' in summary['archs'] else 'objective'
    need = [n for n in ('focused', 'agent', 'trial_105') if n in sc]
    if 'softmax' in sc and need:
        below = all(sc['softmax'][pvt_col]['mean'] < sc[n][pvt_col]['mean'] for n in need)
        add(f'PVT: softmax below {", ".join(need)} ({pvt_col} score)',
            ', '.join(f'{n} {sc[n][pvt_col]["mean"]:.3f}' for n in ['softmax'] + need), below)
    deit_names = [n for n in published()['backbones']['deit_t']['rows'] if n in sc]
    if 'trial_105' in sc:
        rk = _rank_of('trial_105', deit_names, sc, 'objective')
        add(f'Trial-105 in the top half (rank <= {len(deit_names) // 2} of {len(deit_names)})',
            f'rank {rk}', rk <= len(deit_names) // 2)
    best = max(sc, key=lambda n: sc[n]['objective']['mean'])
    top_cell = max((sc[n][a]['mean'], n, a) for n in sc for a in summary['archs'])
    add('no reference attention at >= 0.98 (any architecture)',
        f'max {top_cell[0]:.3f} ({top_cell[1]}, {top_cell[2]}); best objective {best}', top_cell[0] < 0.98)
    if 'identity' in sc:
        mix = [n for n in sc if n != 'identity']
        gap = min(sc[n]['objective']['lo'] for n in mix) - sc['identity']['objective']['hi']
        add('identity clearly below every mixing attention (its 95 % interval below all of theirs)',
            f'gap {gap:+.3f}', gap > 0)
    st = summary['stability']
    if not st.get('n'):
        add('rank stability vs 4x budget >= 0.7 (at least 30 genomes)', 'no stability run has finished', None)
        add('one candidate over all architectures <= 60 s (one thread)',
            f'reference attentions only: mean {summary.get("seconds_per_reference_candidate", float("nan")):.1f} s',
            None)
    else:
        add(f'rank stability vs {st["factor"]}x budget >= 0.7 ({st["n"]} genomes; at least 30 needed)',
            f'{st["kendall_tau_b"]:.3f}', st['kendall_tau_b'] >= 0.7 and st['n'] >= 30)
        add('one candidate over all architectures <= 60 s (one thread)',
            f'mean {st["seconds_per_candidate"]:.1f} s, max {st["seconds_per_candidate_max"]:.1f} s',
            st['seconds_per_candidate'] <= 60.0)
    return out


# ---- reports -------------------------------------------------------------------------------------
def _fmt(st: Dict[str, Any]) -> str:
    return f'{st["mean"]:.3f} ± {st["sd"]:.3f} [{st["lo"]:.3f}, {st["hi"]:.3f}]'


def _published_col(bb: str) -> Dict[str, float]:
    return {n: r['top1'] for n, r in published()['backbones'][bb]['rows'].items()}


def write_report(summary: Dict[str, Any], out_dir: str, command: str = '', label: str = '') -> Dict[str, str]:
    """``fidelity.md``, ``fidelity.csv``, ``stability.csv`` and ``fidelity.png`` in ``out_dir``;
    returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    archs = summary['archs']
    sc = summary['scores']
    deit, pvt = _published_col('deit_t'), _published_col('pvt_t')
    paths = {k: os.path.join(out_dir, f) for k, f in
             (('md', 'fidelity.md'), ('csv', 'fidelity.csv'), ('stability', 'stability.csv'),
              ('png', 'fidelity.png'), ('json', 'summary.json'))}
    with open(paths['csv'], 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(['attention', 'score', 'mean', 'sd', 'boot_lo', 'boot_hi', 'n_seeds', 'values',
                    'published_deit_t', 'published_pvt_t'])
        for name, e in sc.items():
            for col in archs + ['objective']:
                st = e[col]
                w.writerow([name, col, f'{st["mean"]:.4f}', f'{st["sd"]:.4f}', f'{st["lo"]:.4f}',
                            f'{st["hi"]:.4f}', st['n'], ' '.join(f'{v:.4f}' for v in st['values']),
                            deit.get(name, ''), pvt.get(name, '')])
    st = summary['stability']
    with open(paths['stability'], 'w', newline='', encoding='utf-8') as f:
        w = csv.writer(f)
        w.writerow(['genome', 'score_1x', f'score_{st.get("factor", "k")}x', 'seconds_1x'])
        for i, g in enumerate(st.get('genomes', [])):
            w.writerow([g, f'{st["score_1x"][i]:.4f}', f'{st["score_kx"][i]:.4f}', f'{st["seconds_1x"][i]:.1f}'])
    atomic_write_json(paths['json'], summary)
    L = [f'# Proxy fidelity{": " + label if label else ""}', '']
    if command:
        L += ['Produced by:', '', '```bash', command, '```', '']
    L += [f'Proxy `{summary["proxy"]}`, architectures {", ".join(archs)}, {summary["epochs"]} epochs, '
          f'{summary["seeds"]} seeds per attention and architecture, no rejection; scores are validation '
          f'accuracies (mean ± sd over seeds, [bootstrap 95 % interval of the mean]). The objective is '
          f'the search\'s: the mean over architectures.', '']
    head = '| attention | ' + ' | '.join(archs) + ' | objective | ImageNet DeiT-T | ImageNet PVT-T |'
    L += [head, '|' + '---|' * (len(archs) + 4)]
    order = sorted(sc, key=lambda n: -sc[n]['objective']['mean'])
    for n in order:
        L.append(f'| {n} | ' + ' | '.join(_fmt(sc[n][a]) for a in archs) + f' | {_fmt(sc[n]["objective"])} | '
                 f'{deit.get(n, "–")} | {pvt.get(n, "–")} |')
    L += ['', '## Rank agreement with the published ImageNet results', '',
          '| backbone | proxy score | attentions | Kendall tau-b | Spearman |', '|---|---|---|---|---|']
    for c in summary['correlations'].values():
        L.append(f'| {c["backbone"]} | {c["score"]} | {c["n"]} | {c["kendall_tau_b"]:.3f} | {c["spearman"]:.3f} |')
    if st.get('n'):
        L += ['', '## Rank stability and cost', '',
              (f'{st["n"]} genomes' if st.get('planned', st['n']) == st['n'] else
               f'**{st["n"]} of the {st["planned"]} planned genomes** (the others have not finished: an '
               f'interrupted run, resumed by its command without `--report-only`)') +
              ' sampled from the space (program check passed, functionally distinct), '
              f'one seed each, the search objective at 1x and {st["factor"]}x the epochs: '
              f'Kendall tau-b **{st["kendall_tau_b"]:.3f}**, Spearman {st["spearman"]:.3f}; '
              f'{st["distinct_1x"]} distinct 1x scores. One candidate\'s evaluation over all '
              f'architectures: mean {st["seconds_per_candidate"]:.1f} s, max '
              f'{st["seconds_per_candidate_max"]:.1f} s (one thread; `stability.csv` has every genome).']
    L += ['', f'Reference attentions: mean {summary["seconds_per_reference_candidate"]:.1f} s per candidate '
          f'over all architectures.', '', '## Acceptance (issue 14)', '', '| criterion | measured | pass |',
          '|---|---|---|']
    for a in summary['acceptance']:
        verdict = 'not measured' if a['ok'] is None else 'yes' if a['ok'] else '**no**'
        L.append(f'| {a["criterion"]} | {a["value"]} | {verdict} |')
    L += ['', 'Published numbers and their sources: `attnzero/data/published_imagenet.json`.', '']
    with open(paths['md'], 'w', encoding='utf-8') as f:
        f.write('\n'.join(L))
    _plot(summary, paths['png'], label)
    return paths


def _plot(summary: Dict[str, Any], path: str, label: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    sc = summary['scores']
    st = summary['stability']
    panels = [('deit_t', 'objective'), ('pvt_t', 'pvt' if 'pvt' in summary['archs'] else 'objective')]
    fig, axes = plt.subplots(1, 3 if st.get('n') else 2, figsize=(15 if st.get('n') else 10, 4.5))
    for ax, (bb, col) in zip(axes, panels):
        pub = _published_col(bb)
        for n, top1 in pub.items():
            if n not in sc:
                continue
            e = sc[n][col]
            ax.errorbar(top1, e['mean'], yerr=[[e['mean'] - e['lo']], [e['hi'] - e['mean']]], fmt='o', capsize=3)
            ax.annotate(n, (top1, e['mean']), textcoords='offset points', xytext=(4, 4), fontsize=8)
        if 'identity' in sc:
            ax.axhline(sc['identity'][col]['mean'], ls=':', c='grey', lw=1, label='identity (no mixing)')
            ax.legend(fontsize=8, loc='lower right')
        key = f'{bb}|{col}'
        tau = summary['correlations'].get(key, {}).get('kendall_tau_b', float('nan'))
        ax.set_xlabel(f'published ImageNet top-1, {bb} (%)')
        ax.set_ylabel(f'proxy score ({col}, validation accuracy)')
        ax.set_title(f'{bb}: Kendall tau-b {tau:.2f}')
        ax.grid(alpha=0.3)
    if st.get('n'):
        ax = axes[2]
        ax.scatter(st['score_1x'], st['score_kx'], s=14)
        ax.set_xlabel('objective at 1x budget')
        ax.set_ylabel(f'objective at {st["factor"]}x budget')
        ax.set_title(f'rank stability, {st["n"]} genomes: tau-b {st["kendall_tau_b"]:.2f}')
        ax.grid(alpha=0.3)
    fig.suptitle(f'Proxy fidelity{": " + label if label else ""} ({summary["proxy"]})')
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_comparison(summaries: Dict[str, Dict[str, Any]], path: str, commands: Sequence[str] = ()) -> None:
    """One markdown table with several proxies side by side (label -> :func:`summarise` result)."""
    labels = list(summaries)
    names = list(REFERENCES)
    L = ['# Proxy fidelity: proxies side by side', '']
    if commands:
        L += ['Produced by:', '', '```bash', *commands, '```', '']
    L += ['Objective (mean validation accuracy over the proxy architectures, mean over seeds) per '
          'reference attention; the published ImageNet-1k top-1 for comparison.', '',
          '| attention | ' + ' | '.join(labels) + ' | ImageNet DeiT-T | ImageNet PVT-T |',
          '|' + '---|' * (len(labels) + 3)]
    deit, pvt = _published_col('deit_t'), _published_col('pvt_t')
    for n in names:
        cells = []
        for lb in labels:
            e = summaries[lb]['scores'].get(n)
            cells.append(f'{e["objective"]["mean"]:.3f} ± {e["objective"]["sd"]:.3f}' if e else '–')
        L.append(f'| {n} | ' + ' | '.join(cells) + f' | {deit.get(n, "–")} | {pvt.get(n, "–")} |')
    L += ['', '| figure | ' + ' | '.join(labels) + ' |', '|' + '---|' * (len(labels) + 1)]
    rows = {}
    for lb in labels:
        s = summaries[lb]
        for k, c in s['correlations'].items():
            rows.setdefault(f'Kendall tau-b, {c["backbone"]} vs {c["score"]}', {})[lb] = f'{c["kendall_tau_b"]:.3f}'
        st = s['stability']
        if st.get('n'):
            rows.setdefault(f'rank stability vs {st["factor"]}x budget (tau-b)', {})[lb] = (
                f'{st["kendall_tau_b"]:.3f} ({st["n"]} genomes)')
            rows.setdefault('seconds per candidate (all archs, one thread)', {})[lb] = f'{st["seconds_per_candidate"]:.1f}'
        for a in s['acceptance']:
            # one row per criterion: a trailing "(...)" that differs between proxies (the score
            # judged, the genome count) goes into the cell
            m = re.match(r'^(.*?)\s*\(([^()]*)\)$', a['criterion'])
            crit, detail = (m.group(1), f'; {m.group(2)}') if m else (a['criterion'], '')
            rows.setdefault(f'acceptance: {crit}', {})[lb] = (
                f'{a["value"]} ({"not measured" if a["ok"] is None else "pass" if a["ok"] else "FAIL"}{detail})')
    for k, v in rows.items():
        L.append(f'| {k} | ' + ' | '.join(v.get(lb, '–') for lb in labels) + ' |')
    L.append('')
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(L))
