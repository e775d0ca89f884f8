"""Design insights measured on a bench, and the markdown report of ``tools/analyze_bench.py``.

Every number of the report is computed here from the bench files; the output is deterministic
(fixed ordering, fixed rounding, seeded surrogate, no timestamps), so a test can regenerate the
report from the shipped bench and compare it with the committed one.
"""
from __future__ import annotations

import math
import os
import random
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from attnzero.search.config import SearchConfig
from attnzero.space import GRAPHS

from .format import BENCH_FILE, sha256_file
from .records import budget_key, levels as bench_levels, reference_kind, trained_with
from .surrogate import Surrogate

__all__ = ['analyse', 'render_report', 'report_text', 'make_plots', 'plot_names',
           'zero_cost_rows', 'OP_CATEGORIES', 'TOP_FRAC']

#: share of the trained genomes that forms the "top candidates" set (at least ``TOP_MIN`` genomes)
TOP_FRAC = 0.10
TOP_MIN = 10
#: operators counted in enrichment tables only if used by at least this many trained genomes
MIN_SUPPORT = 5

#: operator families (a definition, used for the "activation + normalisation" insight)
OP_CATEGORIES = {
    'activation': ('elu', 'relu', 'sigmoid', 'softplus', 'silu', 'relu2', 'focus3', 'softsign',
                   'exp', 'sigmoid_1_reverse', 'abs'),
    'normalisation': ('normalize', 'min_max_normalize', 'l2_norm', 'l2norm_last', 'normalize_ps',
                      'min_max_normalize_ps', 'l1norm_last', 'strange_op', 'softmax'),
}


def _f(x: Optional[float], nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return 'n/a'
    return f'{x:.{nd}f}'


def _pct(a: int, b: int) -> str:
    return f'{100.0 * a / b:.1f}%' if b else 'n/a'


def _mean(xs: Sequence[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return float(np.mean(xs)) if xs else None


def _sd(xs: Sequence[float]) -> Optional[float]:
    xs = [x for x in xs if x is not None]
    return float(np.std(xs, ddof=1)) if len(xs) > 1 else None


def _acc(rec: Dict[str, Any], arch: str, budget: int, table: str = 'acc') -> Optional[float]:
    vals = ((rec.get(table) or {}).get(arch) or {}).get(str(budget)) or []
    vals = [v for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def _corr(x: Sequence[float], y: Sequence[float]) -> Dict[str, Any]:
    from scipy.stats import kendalltau, spearmanr

    pairs = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
    if len(pairs) < 3:
        return dict(n=len(pairs), tau=None, rho=None, p=None)
    a, b = np.array(pairs).T
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return dict(n=len(pairs), tau=None, rho=None, p=None)
    t, p = kendalltau(a, b)
    return dict(n=len(pairs), tau=float(t), rho=float(spearmanr(a, b)[0]), p=float(p))


def _top_set(trained: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    k = max(TOP_MIN, int(math.ceil(TOP_FRAC * len(trained))))
    ranked = sorted(trained, key=lambda r: (-r['score'], r['genome']))
    return ranked[:min(k, len(ranked))]


def _enrichment(trained, top, key_fn, min_support: int = MIN_SUPPORT) -> List[Dict[str, Any]]:
    """Per key: genomes using it among all trained / among the top set, enrichment, Fisher p."""
    from scipy.stats import fisher_exact

    top_ids = {r['hash'] for r in top}
    keys: Dict[str, List[Dict[str, Any]]] = {}
    for r in trained:
        for k in sorted(set(key_fn(r))):
            keys.setdefault(k, []).append(r)
    n_all, n_top = len(trained), len(top)
    rows = []
    for k, rs in keys.items():
        if len(rs) < min_support:
            continue
        a = sum(1 for r in rs if r['hash'] in top_ids)
        frac_all, frac_top = len(rs) / n_all, a / n_top if n_top else 0.0
        table = [[a, n_top - a], [len(rs) - a, (n_all - n_top) - (len(rs) - a)]]
        p = float(fisher_exact(table, alternative='two-sided')[1])
        rows.append(dict(key=k, n=len(rs), n_top=a, frac_all=frac_all, frac_top=frac_top,
                         enrichment=(frac_top / frac_all) if frac_all else None, p=p,
                         mean_score=_mean([r['score'] for r in rs])))
    rows.sort(key=lambda d: (-(d['enrichment'] or 0.0), -d['n'], d['key']))
    return rows


def analyse(bench, surrogate: bool = True) -> Dict[str, Any]:
    """All measurements of the report, as plain data."""
    recs = bench.records
    archs, budgets = bench.archs, bench.budgets
    chance = bench.chance
    top_b = budgets[-1] if budgets else None
    trained = trained_with(recs)
    out: Dict[str, Any] = dict(archs=archs, budgets=budgets, chance=chance,
                               settings=bench.settings, n_records=len(recs), n_trained=len(trained))
    # ---- counts and rejection reasons -------------------------------------------------------
    status: Dict[str, int] = {}
    for r in recs:
        status[r['status']] = status.get(r['status'], 0) + 1
    out['status'] = dict(sorted(status.items()))
    idx = [r['sample_index'] for r in recs if r.get('sample_index') is not None]
    out['draws'] = (max(idx) + 1) if idx else None  # draws of the sampling stream behind the records
    check: Dict[str, int] = {}
    for r in recs:
        if r['status'] == 'check_failed':
            check[r['check']['reason']] = check.get(r['check']['reason'], 0) + 1
    out['check_reasons'] = sorted(check.items(), key=lambda kv: (-kv[1], kv[0]))
    runs: Dict[Tuple[str, str], int] = {}
    n_runs = 0
    for r in trained:
        for run in r['runs']:
            n_runs += 1
            if run['status'] != 'ok':
                key = (run['arch'], run['reason'])
                runs[key] = runs.get(key, 0) + 1
    out['n_runs'] = n_runs
    out['run_reasons'] = sorted(runs.items(), key=lambda kv: (-kv[1], kv[0]))
    # ---- spread: baselines vs the bench ------------------------------------------------------
    base_rows = []
    for b in sorted(bench.baselines, key=lambda b: (b.get('role') != 'baseline', b.get('name'))):
        row = dict(name=b.get('name'), role=b.get('role'), genome=b.get('genome'), score=b.get('score'),
                   seeds=len(((b.get('acc') or {}).get(archs[0]) or {}).get(str(top_b), [])) if archs else 0)
        for a in archs:
            vals = [v for v in ((b.get('acc') or {}).get(a) or {}).get(str(top_b), [])]
            ok = [v for v in vals if v is not None]
            row[a] = dict(mean=_mean(ok), sd=_sd(ok), min=min(ok) if ok else None,
                          max=max(ok) if ok else None, rejected=sum(1 for v in vals if v is None))
        per_seed = []
        for s_i in range(row['seeds']):
            v = [((b.get('acc') or {}).get(a) or {}).get(str(top_b), [None] * (s_i + 1))[s_i] for a in archs]
            per_seed.append(float(np.mean([chance if x is None else x for x in v])))
        row['score_sd'] = _sd(per_seed)
        base_rows.append(row)
    out['baselines'] = base_rows
    scores = np.array(sorted(r['score'] for r in trained)) if trained else np.array([])
    dist: Dict[str, Any] = {}
    if len(scores):
        qs = (0, 10, 25, 50, 75, 90, 100)
        dist['quantiles'] = {q: float(np.percentile(scores, q)) for q in qs}
        dist['mean'] = float(scores.mean())
        k = max(1, int(math.ceil(0.1 * len(scores))))
        dist['top10_mean'] = float(scores[-k:].mean())
        dist['bottom10_mean'] = float(scores[:k].mean())
        dist['spread_top_bottom'] = dist['top10_mean'] - dist['bottom10_mean']
        dist['at_chance'] = int(np.sum(scores < chance + 0.05))
        dist['above_0_5'] = int(np.sum(scores >= 0.5))
        dist['above_0_9'] = int(np.sum(scores >= 0.9))
        for b in base_rows:
            if b['name'] in ('softmax', 'linear') and b['score'] is not None:
                dist[f'beat_{b["name"]}'] = int(np.sum(scores > b['score']))
            if b['name'] == 'identity' and archs:
                best = [b[a]['max'] for a in archs if b[a]['max'] is not None]
                if best:  # best seed of the no-mixing model, mean over archs
                    dist['identity_best'] = float(np.mean(best))
                    dist['beat_identity_best'] = int(np.sum(scores > dist['identity_best'] + 0.02))
    out['distribution'] = dist
    # ---- graphs -------------------------------------------------------------------------------
    top = _top_set(trained) if trained else []
    out['top_n'] = len(top)
    out['top_threshold'] = top[-1]['score'] if top else None
    top_ids = {r['hash'] for r in top}
    graphs = sorted({r['graph'] for r in recs})
    grows = []
    for g in graphs:
        rs = [r for r in recs if r['graph'] == g]
        tr = [r for r in trained if r['graph'] == g]
        sc = [r['score'] for r in tr]
        n_top = sum(1 for r in tr if r['hash'] in top_ids)
        grows.append(dict(graph=g, n=len(rs), n_trained=len(tr), pass_rate=len(tr) / len(rs) if rs else None,
                          mean=_mean(sc), median=float(np.median(sc)) if sc else None,
                          p90=float(np.percentile(sc, 90)) if sc else None, max=max(sc) if sc else None,
                          n_top=n_top,
                          enrichment=((n_top / len(top)) / (len(tr) / len(trained))) if tr and top else None,
                          scores=sc))
    out['graphs'] = grows
    # ---- operators ----------------------------------------------------------------------------
    out['unary_enrichment'] = _enrichment(trained, top, lambda r: r['operators']['unary'])
    out['binary_enrichment'] = _enrichment(trained, top, lambda r: r['operators']['binary'])

    def cats(r):
        names = r['operators']['unary']
        has = {c for c, ops in OP_CATEGORIES.items() if any(n in ops for n in names)}
        keys = ['activation' if 'activation' in has else 'no activation',
                'normalisation' if 'normalisation' in has else 'no normalisation']
        if has == {'activation', 'normalisation'}:
            keys.append('activation + normalisation')
        # the same edge holding both (the paper's "advanced normalisation + activation" combos)
        for lst in r['unary']:
            kinds = {c for c, ops in OP_CATEGORIES.items() if any(n in ops for n in lst)}
            if kinds == {'activation', 'normalisation'}:
                keys.append('activation + normalisation on one edge')
                break
        keys.append('original operators only' if r.get('is_original') else 'uses new operators')
        keys.append('batch-global statistics' if r.get('batch_global') else 'per-sample statistics')
        return keys

    out['category_enrichment'] = _enrichment(trained, top, cats, min_support=1)

    def on_inputs(r):  # which operator is applied directly to which input (feature maps of q / k / v)
        src = GRAPHS[r['graph']].sources
        return [f'{op} on {src[i]}' for i, lst in enumerate(r['unary']) if src[i] in ('q', 'k', 'v')
                for op in lst]

    out['input_enrichment'] = _enrichment(trained, top, on_inputs, min_support=2 * MIN_SUPPORT)
    # ---- correlations ------------------------------------------------------------------------
    corr: Dict[str, Any] = {}
    if len(archs) >= 2 and top_b is not None:
        for i in range(len(archs)):
            for j in range(i + 1, len(archs)):
                a, b = archs[i], archs[j]
                corr[f'{a} vs {b} (final, {top_b} ep)'] = _corr([_acc(r, a, top_b) for r in trained],
                                                                [_acc(r, b, top_b) for r in trained])
    for a in archs:
        for bud in budgets:
            ck = (bench.settings or {}).get('search', {}).get('checkpoint_epoch', 1)
            ck = min(int(ck), bud)
            if ck < bud:
                corr[f'{a}: epoch {ck} of {bud} vs final ({bud} ep)'] = _corr(
                    [_acc(r, a, bud, 'ckpt_acc') for r in trained], [_acc(r, a, bud) for r in trained])
        for i in range(len(budgets) - 1):
            corr[f'{a}: budget {budgets[i]} ep vs {budgets[-1]} ep'] = _corr(
                [_acc(r, a, budgets[i]) for r in trained], [_acc(r, a, budgets[-1]) for r in trained])
    out['correlations'] = corr
    # ---- top genomes and cost -----------------------------------------------------------------
    out['top10'] = [dict(genome=r['genome'], score=r['score'],
                         accs={a: _acc(r, a, top_b) for a in archs},
                         flops=(r.get('static') or {}).get('flops_ref')) for r in top[:10]]
    fl = [(math.log10(r['static']['flops_ref']), r['score']) for r in trained
          if (r.get('static') or {}).get('flops_ref')]
    out['flops_vs_score'] = _corr([x for x, _ in fl], [y for _, y in fl])
    out['train_seconds'] = dict(total=float(sum(r.get('train_seconds') or 0.0 for r in recs)),
                                per_trained=_mean([r.get('train_seconds') for r in trained]))
    # ---- surrogate ----------------------------------------------------------------------------
    out['surrogate'] = out['surrogate_syntax'] = None
    if surrogate and len(trained) >= 10:
        out['surrogate'] = Surrogate.fit(bench, refit=False).summary()
        out['surrogate_syntax'] = Surrogate.fit(bench, refit=False, features='syntax').summary()
    return out


def _md_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '|'.join('---' for _ in header) + '|']
    lines += ['| ' + ' | '.join(str(c) for c in row) + ' |' for row in rows]
    return '\n'.join(lines)


def _findings(res: Dict[str, Any]) -> List[str]:
    """Headline sentences, every number taken from ``res``."""
    out: List[str] = []
    d = res['distribution']
    base = {b['name']: b for b in res['baselines']}
    if d:
        parts = [f'scores of the {res["n_trained"]} trained genomes range {_f(d["quantiles"][0])}–'
                 f'{_f(d["quantiles"][100])} (median {_f(d["quantiles"][50])}); top-10% mean '
                 f'{_f(d["top10_mean"])} vs bottom-10% mean {_f(d["bottom10_mean"])}']
        refs = [f'`{k}` {_f(base[k]["score"])} (seed sd {_f(base[k]["score_sd"])})'
                for k in ('softmax', 'identity') if k in base]
        if refs:
            parts.append('reference scores ' + ', '.join(refs))
        out.append('- Spread: ' + '; '.join(parts) + '.')
    gs = [g for g in res['graphs'] if g['enrichment'] is not None and g['n_trained'] >= MIN_SUPPORT]
    if gs:
        gs = sorted(gs, key=lambda g: (-g['enrichment'], g['graph']))
        out.append('- Graphs among the top candidates: ' + ', '.join(
            f'`{g["graph"]}` x{_f(g["enrichment"], 2)} ({g["n_top"]}/{g["n_trained"]})' for g in gs) + '.')
    for label, rows in (('unary', res['unary_enrichment']), ('binary', res['binary_enrichment'])):
        sig = [r for r in rows if r['p'] < 0.05]
        over = [r for r in sig if (r['enrichment'] or 0) > 1]
        under = [r for r in sig if (r['enrichment'] or 0) < 1]
        txt = (', '.join(f'`{r["key"]}` x{_f(r["enrichment"], 2)}' for r in over) or 'none')
        txt2 = (', '.join(f'`{r["key"]}` x{_f(r["enrichment"], 2)}' for r in under) or 'none')
        out.append(f'- {label.capitalize()} operators significantly over-represented among the top '
                   f'candidates (Fisher p < 0.05): {txt}; under-represented: {txt2}.')
    for k, v in res['correlations'].items():
        out.append(f'- Rank correlation {k}: Kendall tau {_f(v["tau"])} ({v["n"]} genomes).')
    sg = res['surrogate']
    if sg:
        out.append(f'- Surrogate held-out Kendall tau {_f(sg["tau"])} ({sg["n_test"]} held-out genomes; '
                   f'{sg["folds"]}-fold mean {_f(sg["cv_tau_mean"])}).')
    return ['## Findings', ''] + out + ['']


def render_report(bench, res: Dict[str, Any], bench_label: str, plots: Sequence[str] = ()) -> str:
    """The markdown report (deterministic given the bench)."""
    s = res['settings'] or {}
    search = s.get('search', {})
    chance = res['chance']
    archs, budgets = res['archs'], res['budgets']
    sha = sha256_file(os.path.join(bench.path, BENCH_FILE)) if bench.path else 'n/a'
    L: List[str] = []
    L.append('# Attn-Bench-101: analysis report')
    L.append('')
    L.append(f'Generated by `tools/analyze_bench.py` from `{bench_label}` '
             f'(`{BENCH_FILE}` sha256 `{sha}`). Do not edit: regenerate.')
    L.append('')
    L.append('## Bench')
    L.append('')
    proxy = bench.records[0]['proxy'] if bench.records else {}
    L.append(_md_table(['item', 'value'], [
        ['records (distinct genomes, FEC-deduplicated)', res['n_records']],
        ['trained (passed the program check)', res['n_trained']],
        ['sampler draws behind them (the rest were duplicates by hash or FEC fingerprint)',
         'n/a' if res['draws'] is None else f'{res["draws"]} ({res["draws"] - res["n_records"]} duplicates skipped)'],
        ['status counts', ', '.join(f'{k} {v}' for k, v in res['status'].items())],
        ['proxy', f'`{proxy.get("name")}`: {proxy.get("train")} train / {proxy.get("test")} test images '
                  f'{proxy.get("img_size")}x{proxy.get("img_size")}, {proxy.get("num_classes")} classes, '
                  f'chance {_f(chance)}'],
        ['architectures', ', '.join(archs)],
        ['epoch budgets / seeds', f'{budgets} / {s.get("seeds")}'],
        ['training', f'batch {search.get("batch_size")}, AdamW lr {search.get("lr")}, wd '
                     f'{search.get("weight_decay")}, warm-up {search.get("warmup_frac")}, '
                     f'checkpoint epoch {search.get("checkpoint_epoch")}, threads {search.get("threads")}'],
        ['training time (sum of runs)', f'{res["train_seconds"]["total"] / 3600:.2f} h, '
                                        f'{_f(res["train_seconds"]["per_trained"], 1)} s per trained genome'],
    ]))
    L.append('')
    L.append('`score` = mean over architectures and seeds of the final test accuracy at the largest '
             'budget; a run stopped by the rejection protocol counts as chance.')
    L.append('')
    L += _findings(res)
    # spread
    L.append('## Does the proxy separate good from bad attentions? (spread)')
    L.append('')
    hdr = ['attention', 'kind'] + [f'{a} acc (mean ± sd, min–max)' for a in archs] + ['score', 'score sd (seeds)']
    rows = []
    for b in res['baselines']:
        cells = [f'`{b["name"]}`', b['role']]
        for a in archs:
            d = b[a]
            rej = f', {d["rejected"]} rejected' if d['rejected'] else ''
            cells.append(f'{_f(d["mean"])} ± {_f(d["sd"])} ({_f(d["min"])}–{_f(d["max"])}{rej})')
        cells += [_f(b['score']), _f(b['score_sd'])]
        rows.append(cells)
    L.append(f'Reference attentions, {res["baselines"][0]["seeds"] if res["baselines"] else 0} seeds '
             f'each, same settings (`baseline` = zoo attention trained without rejection; '
             f'`reference` = genome evaluated exactly like the bench genomes):')
    L.append('')
    L.append(_md_table(hdr, rows) if rows else '(no baselines in this bench)')
    L.append('')
    d = res['distribution']
    if d:
        q = d['quantiles']
        L.append(f'Score distribution of the {res["n_trained"]} trained genomes:')
        L.append('')
        L.append(_md_table(['min', 'p10', 'p25', 'median', 'p75', 'p90', 'max', 'mean'],
                           [[_f(q[0]), _f(q[10]), _f(q[25]), _f(q[50]), _f(q[75]), _f(q[90]), _f(q[100]),
                             _f(d['mean'])]]))
        L.append('')
        n = res['n_trained']
        items = [f'top-10% mean {_f(d["top10_mean"])} vs bottom-10% mean {_f(d["bottom10_mean"])}: '
                 f'spread **{_f(d["spread_top_bottom"])}** accuracy',
                 f'at chance (score < chance + 0.05): {d["at_chance"]} ({_pct(d["at_chance"], n)})',
                 f'score >= 0.5: {d["above_0_5"]} ({_pct(d["above_0_5"], n)}); score >= 0.9: '
                 f'{d["above_0_9"]} ({_pct(d["above_0_9"], n)})']
        if 'beat_identity_best' in d:
            items.append(f'clearly above the no-token-mixing model (score > its best seed '
                         f'{_f(d["identity_best"])} + 0.02): {d["beat_identity_best"]} '
                         f'({_pct(d["beat_identity_best"], n)})')
        for name in ('softmax', 'linear'):
            if f'beat_{name}' in d:
                items.append(f'better than the `{name}` baseline score: {d[f"beat_{name}"]} '
                             f'({_pct(d[f"beat_{name}"], n)})')
        L += [f'- {x}' for x in items]
        L.append('')
    # rejection reasons
    L.append('## Rejection reasons')
    L.append('')
    L.append(f'Program check (before any training), of {res["n_records"]} genomes (distinct functions: '
             f'genomes with the same fingerprint, e.g. every all-NaN program, are counted once):')
    L.append('')
    L.append(_md_table(['reason', 'genomes', 'share'],
                       [[f'`{k}`', v, _pct(v, res['n_records'])] for k, v in res['check_reasons']]
                       or [['(none)', 0, '']]))
    L.append('')
    L.append(f'Rejection protocol during training, of {res["n_runs"]} training runs:')
    L.append('')
    L.append(_md_table(['architecture', 'reason', 'runs', 'share'],
                       [[a, f'`{r}`', v, _pct(v, res['n_runs'])] for (a, r), v in res['run_reasons']]
                       or [['-', '(none)', 0, '']]))
    L.append('')
    # graphs
    L.append('## Graphs')
    L.append('')
    L.append(f'Top candidates = the best {res["top_n"]} trained genomes by score (top '
             f'{int(TOP_FRAC * 100)}%, at least {TOP_MIN}; threshold score {_f(res["top_threshold"])}). '
             f'Enrichment = share among the top candidates / share among all trained genomes.')
    L.append('')
    L.append(_md_table(['graph', 'sampled', 'trained', 'pass rate', 'mean', 'median', 'p90', 'max',
                        'in top', 'enrichment'],
                       [[f'`{g["graph"]}`', g['n'], g['n_trained'], _f(g['pass_rate'], 2), _f(g['mean']),
                         _f(g['median']), _f(g['p90']), _f(g['max']), g['n_top'], _f(g['enrichment'], 2)]
                        for g in res['graphs']]))
    L.append('')
    # operators

    def enr_table(rows, label):
        if not rows:
            return '(no operator has enough support yet)'
        return _md_table([label, 'trained genomes using it', 'in top', 'share all', 'share top',
                          'enrichment', 'Fisher p', 'mean score'],
                         [[f'`{r["key"]}`', r['n'], r['n_top'], _f(r['frac_all'], 2), _f(r['frac_top'], 2),
                           _f(r['enrichment'], 2), f'{r["p"]:.2g}', _f(r['mean_score'])] for r in rows])

    L.append('## Operators')
    L.append('')
    L.append(f'Unary operators used by at least {MIN_SUPPORT} trained genomes, most over-represented '
             f'among the top candidates first:')
    L.append('')
    L.append(enr_table(res['unary_enrichment'], 'unary operator'))
    L.append('')
    L.append('Binary operators:')
    L.append('')
    L.append(enr_table(res['binary_enrichment'], 'binary operator'))
    L.append('')
    rows = res['input_enrichment']
    over = [r for r in rows if (r['enrichment'] or 0) > 1][:10]
    under = [r for r in rows if (r['enrichment'] or 0) < 1][-5:]
    L.append(f'Operator applied directly to an input (`op on q/k/v`, used by at least {2 * MIN_SUPPORT} '
             f'trained genomes): the 10 most over-represented and the 5 most under-represented:')
    L.append('')
    L.append(enr_table(over + under, 'operator on input'))
    L.append('')
    L.append('Operator families (' + '; '.join(f'{c}: {", ".join(ops)}' for c, ops in OP_CATEGORIES.items())
             + '):')
    L.append('')
    L.append(enr_table(res['category_enrichment'], 'property'))
    L.append('')
    # correlations
    L.append('## Rank correlations')
    L.append('')
    L.append('Across architectures (is a good attention good in every ViT?) and between a short and the '
             'full budget (can training be cut shorter?); genomes with both values, Kendall tau and '
             'Spearman rho:')
    L.append('')
    L.append(_md_table(['pair', 'genomes', 'Kendall tau', 'Spearman rho', 'p (tau)'],
                       [[k, v['n'], _f(v['tau']), _f(v['rho']), 'n/a' if v['p'] is None else f'{v["p"]:.2g}']
                        for k, v in res['correlations'].items()]))
    L.append('')
    fv = res['flops_vs_score']
    L.append(f'Static cost vs score: Kendall tau of log10 FLOPs (at N = '
             f'{s.get("ref_tokens")}, d = {s.get("ref_head_dim")}) with the score = {_f(fv["tau"])} '
             f'({fv["n"]} genomes).')
    L.append('')
    # top genomes
    L.append('## Top 10 genomes')
    L.append('')
    L.append(_md_table(['#', 'genome', 'score'] + [f'{a} acc' for a in archs] + ['MFLOPs'],
                       [[i + 1, f'`{t["genome"]}`', _f(t['score'])] + [_f(t['accs'][a]) for a in archs]
                        + [_f(None if t['flops'] is None else t['flops'] / 1e6, 2)]
                        for i, t in enumerate(res['top10'])]))
    L.append('')
    # surrogate
    L.append('## Surrogate')
    L.append('')
    sg = res['surrogate']
    if sg:
        L.append(f'`attnzero.bench.Surrogate` ({sg["model"]} on graph / operator / cost features and '
                 f'probe and gradient features, target `{sg["target"]}`), fitted on {sg["n_train"]} trained genomes and '
                 f'tested on {sg["n_test"]} held-out ones: **Kendall tau {_f(sg["tau"])}** (p = '
                 f'{sg["tau_p"]:.2g}), Spearman rho {_f(sg["spearman"])}; {sg["folds"]}-fold '
                 f'cross-validation tau {_f(sg["cv_tau_mean"])} ± {_f(sg["cv_tau_sd"])}.')
        sx = res.get('surrogate_syntax')
        if sx:
            L.append('')
            L.append(f'Without the probe and gradient features (`features=\'syntax\'`: the genome\'s text '
                     f'alone, the same split): held-out tau {_f(sx["tau"])}, cross-validation tau '
                     f'{_f(sx["cv_tau_mean"])} ± {_f(sx["cv_tau_sd"])}. The probe features '
                     f'(`attnzero.space.features.probe_features`) describe what the attention does on one '
                     f'fixed input: its similarity to softmax attention, its sensitivity to q and k, its '
                     f'output scale and rank; the gradient features '
                     f'(`attnzero.space.features.gradient_features`) how strongly a signal at its output '
                     f'reaches q, k and v there.')
    else:
        L.append('Not enough trained genomes to fit the surrogate.')
    L.append('')
    if plots:
        L.append('## Plots')
        L.append('')
        for p in plots:
            L.append(f'![{os.path.splitext(p)[0]}]({p})')
            L.append('')
    return '\n'.join(L).rstrip() + '\n'


def plot_names(bench, res: Dict[str, Any]) -> List[str]:
    """The PNG files :func:`make_plots` writes for this bench (decided without drawing)."""
    trained = res['n_trained']
    archs, budgets = res['archs'], res['budgets']
    if not trained:
        return []
    names = ['score_hist.png', 'graph_scores.png']
    if res['unary_enrichment'] or res['binary_enrichment']:
        names.append('op_enrichment.png')
    if len(archs) >= 2 and budgets:
        names.append('arch_agreement.png')
    ck = min(int((res['settings'] or {}).get('search', {}).get('checkpoint_epoch', 1)), budgets[-1]) if budgets else 0
    if budgets and ck < budgets[-1]:
        names.append('short_vs_long.png')
    return names


def make_plots(bench, res: Dict[str, Any], out_dir: str) -> List[str]:
    """PNG plots into ``out_dir``; returns their file names (= :func:`plot_names`)."""
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    names: List[str] = []
    meta = {'Software': None}
    os.makedirs(out_dir, exist_ok=True)
    trained = trained_with(bench.records)
    archs, budgets = res['archs'], res['budgets']
    top_b = budgets[-1] if budgets else None
    if trained:
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.hist([r['score'] for r in trained], bins=30, range=(0, 1), color='#888')
        colours = ['C0', 'C1', 'C2', 'C3', 'C4', 'C5', 'C6', 'C7']
        for i, b in enumerate(res['baselines']):
            if b['score'] is not None:
                ax.axvline(b['score'], color=colours[i % len(colours)], ls='--', label=b['name'])
        ax.set_xlabel('score (mean final accuracy over architectures)')
        ax.set_ylabel('genomes')
        ax.set_title(f'{len(trained)} trained genomes vs reference attentions')
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, 'score_hist.png'), dpi=90, metadata=meta)
        plt.close(fig)
        names.append('score_hist.png')

        gs = [g for g in res['graphs'] if g['scores']]
        fig, ax = plt.subplots(figsize=(7, 4))
        ax.boxplot([g['scores'] for g in gs])
        ax.set_xticks(range(1, len(gs) + 1), [f'{g["graph"]}\n(n={g["n_trained"]})' for g in gs], fontsize=7)
        ax.axhline(res['chance'], color='k', lw=0.5, ls=':')
        ax.set_ylabel('score')
        ax.set_title('score per graph')
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, 'graph_scores.png'), dpi=90, metadata=meta)
        plt.close(fig)
        names.append('graph_scores.png')

        rows = res['unary_enrichment'] + res['binary_enrichment']
        rows = sorted(rows, key=lambda r: (r['enrichment'] or 0.0, r['key']))
        if rows:
            fig, ax = plt.subplots(figsize=(6, max(3, 0.2 * len(rows))))
            vals = [math.log2(r['enrichment']) if r['enrichment'] else -3.0 for r in rows]
            ax.barh(range(len(rows)), vals, color=['C2' if v > 0 else 'C3' for v in vals])
            ax.set_yticks(range(len(rows)), [r['key'] for r in rows], fontsize=6)
            ax.axvline(0, color='k', lw=0.5)
            ax.set_xlabel('log2 enrichment among top candidates')
            fig.tight_layout()
            fig.savefig(os.path.join(out_dir, 'op_enrichment.png'), dpi=90, metadata=meta)
            plt.close(fig)
            names.append('op_enrichment.png')

        if len(archs) >= 2 and top_b is not None:
            fig, ax = plt.subplots(figsize=(4.5, 4.5))
            x = [_acc(r, archs[0], top_b) for r in trained]
            y = [_acc(r, archs[1], top_b) for r in trained]
            pts = [(a, b) for a, b in zip(x, y) if a is not None and b is not None]
            if pts:
                ax.scatter(*zip(*pts), s=6, alpha=0.5)
            ax.set_xlabel(f'{archs[0]} accuracy')
            ax.set_ylabel(f'{archs[1]} accuracy')
            ax.set_title('cross-architecture agreement')
            fig.tight_layout()
            fig.savefig(os.path.join(out_dir, 'arch_agreement.png'), dpi=90, metadata=meta)
            plt.close(fig)
            names.append('arch_agreement.png')

        ck = min(int((res['settings'] or {}).get('search', {}).get('checkpoint_epoch', 1)), top_b or 1)
        if top_b is not None and ck < top_b:
            fig, axes = plt.subplots(1, len(archs), figsize=(4 * len(archs), 4), squeeze=False)
            for ax, a in zip(axes[0], archs):
                pts = [(_acc(r, a, top_b, 'ckpt_acc'), _acc(r, a, top_b)) for r in trained]
                pts = [p for p in pts if None not in p]
                if pts:
                    ax.scatter(*zip(*pts), s=6, alpha=0.5)
                ax.set_xlabel(f'accuracy after epoch {ck}')
                ax.set_ylabel(f'accuracy after {top_b} epochs')
                ax.set_title(a)
            fig.tight_layout()
            fig.savefig(os.path.join(out_dir, 'short_vs_long.png'), dpi=90, metadata=meta)
            plt.close(fig)
            names.append('short_vs_long.png')
    assert names == plot_names(bench, res), (names, plot_names(bench, res))
    return names


def report_text(bench, bench_label: str, res: Optional[Dict[str, Any]] = None) -> str:
    """The report text of a single-fidelity bench (plots linked, not drawn);
    :func:`attnzero.bench.report.write_report` writes it with its plots."""
    res = analyse(bench) if res is None else res
    return render_report(bench, res, bench_label, plot_names(bench, res))


def zero_cost_rows(bench, n: Optional[int] = None, seed: int = 0,
                   level: Optional[float] = None) -> Tuple[List[Dict[str, Any]], Any, str]:
    """The bench's trained genomes (status ``ok``; ``n`` of them drawn without replacement with
    ``seed``, or all) and its zoo baselines as rows for
    :func:`attnzero.search.prescreen.correlate`, the bench's search configuration, and a
    description of them for the report. The trained score is the bench's ``score`` (the mean proxy
    accuracy over its architectures at its budget).

    A multi-fidelity bench (v2) is read at ``level`` (epochs; default its first budget, a rung is
    allowed): the genomes and references that reached that level, with their score there, and as
    the 4x score their score at four times that level where they have one (v2: the long level, 8
    epochs, against the 2-epoch budget). A single-fidelity bench has one level, its budget."""
    four: Dict[str, float] = {}
    four_ref: Dict[str, float] = {}
    levels: List[float] = []
    if bench.rungs:
        level = float(bench.budgets[0] if level is None else level)
        levels = bench_levels(bench.settings)
        if budget_key(level) not in map(budget_key, levels):
            raise ValueError(f'level {level:g}: the bench has the levels {", ".join(map(budget_key, levels))} (epochs)')
        k4 = budget_key(4 * level)
        four = {r['hash']: r['scores'][k4] for r in bench.records if k4 in (r.get('scores') or {})}
        four_ref = {(b['name'], b.get('genome')): b['scores'][k4] for b in bench.baselines
                    if k4 in (b.get('scores') or {})}
        bench = bench.view(level)
    elif level is not None and float(level) not in map(float, bench.budgets):
        raise ValueError(f'level {float(level):g}: the bench has one level, its budget {bench.budgets} (epochs)')
    fields = {k: v for k, v in bench.settings['search'].items() if k in SearchConfig.__dataclass_fields__}
    cfg = SearchConfig(**fields)
    trained = [r for r in bench.records if r.get('status') == 'ok' and r.get('score') is not None]
    if n is not None and n < len(trained):
        pos = {id(r): i for i, r in enumerate(trained)}  # the bench's order (v1: by sample index)
        trained = sorted(random.Random(seed).sample(trained, n), key=lambda r: pos[id(r)])
    nan = float('nan')
    rows = [dict(kind='sample', name=r['genome'], attn='attnzero', genome=r['genome'],
                 trained_1x=float(r['score']), trained_4x=float(four.get(r['hash'], nan))) for r in trained]
    zoo_names = {b['name'] for b in bench.baselines if reference_kind(b) == 'zoo'}
    for b in bench.baselines:
        if b.get('acc_mean') is not None:
            # a reference genome named like a zoo attention (v2: relu_linear) is told apart, as in the report
            name = f'{b["name"]} (genome)' if reference_kind(b) == 'genome' and b['name'] in zoo_names else b['name']
            rows.append(dict(kind='reference', name=name, attn=b.get('attn') or 'attnzero', genome=b.get('genome'),
                             trained_1x=float(b['acc_mean']),
                             trained_4x=float(four_ref.get((b['name'], b.get('genome')), nan))))
    n_ok = sum(1 for r in bench.records if r.get('status') == 'ok')
    near_chance = sum(1 for r in trained if abs(float(r['score']) - bench.chance) <= 0.05)
    n4 = sum(1 for r in rows if r['kind'] == 'sample' and math.isfinite(r['trained_4x']))
    if levels:
        at = (f'at {budget_key(level)} epochs (of its levels {", ".join(map(budget_key, levels))}), '
              + (f'{n4} of them also at {budget_key(4 * level)} epochs (the 4x score)' if n4 else 'with no 4x score'))
    else:
        at = f'at budget {bench.budgets} epochs; there is no 4x score'
    source = (f'Attn-Bench-101 `{os.path.basename(os.path.normpath(bench.path))}` (format {bench.records[0].get("format_version")}): '
              f'{len(trained)} of its {n_ok} trained genomes' + (f' (drawn with seed {seed})' if len(trained) < n_ok else '')
              + f' and {len(rows) - len(trained)} zoo baselines, scored by the bench {at}. {near_chance} of the {len(trained)} genomes '
              f'score within 0.05 of chance ({bench.chance:.3f})')
    return rows, cfg, source

