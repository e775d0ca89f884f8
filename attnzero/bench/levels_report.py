"""The report of a multi-fidelity bench (format 2): each level analysed as a single-fidelity bench
(:meth:`attnzero.bench.Bench.view` + :func:`attnzero.bench.analyze.analyse`), the rank agreement
between levels, the references at several seeds, and the paper's Attn-Bench-101 claims set beside
the measurements, point by point.

Deterministic (fixed orders and rounding, seeded surrogate, no timestamps): the report regenerates
identically from the files, which a test checks.
"""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from attnzero.attention import VBranch, build_kernel
from attnzero.io import atomic_savefig
from attnzero.space import Genome
from attnzero.space.features import GRAD_FEATURES, PROBE_FEATURES, gradient_features, probe_features

from .analyze import MIN_SUPPORT, _corr, _enrichment, _f, _findings, _md_table, _sd, _top_set, analyse
from .build import load_build_info
from .format import BENCH_FILE, LEVELS_FILE, sha256_file
from .records import budget_key, level_score, trained_with
from .surrogate import Surrogate

__all__ = ['analyse_levels', 'render_levels_report', 'make_levels_plots', 'levels_report_text',
           'PAPER_GRAPHS', 'PAPER_OPERATORS']

#: the graphs the paper's Attn-Bench-101 prefers
PAPER_GRAPHS = ('i3n302', 'i3n303')
#: the operators of the paper's discovered module (ELU, min-max normalisation, l2 normalisation)
PAPER_OPERATORS = ('elu', 'min_max_normalize', 'l2_norm', 'l2norm_last')
#: the category of the paper's "advanced normalisation + activation combinations help"
COMBO = 'activation + normalisation on one edge'


def _levels(bench) -> List[float]:
    return sorted([float(r) for r in bench.rungs] + [float(b) for b in bench.budgets])


def _level_name(bench, b: float) -> str:
    if budget_key(b) in map(budget_key, bench.rungs):
        return f'rung ({budget_key(b)} ep)'
    if float(b) == float(bench.budgets[0]):
        return f'full budget ({budget_key(b)} ep)'
    return f'{float(b) / float(bench.budgets[0]):g}x budget ({budget_key(b)} ep)'


def _ref_table(bench) -> List[Dict[str, Any]]:
    """Per reference: mean / sd over seeds of the score at each level."""
    rows = []
    for b in sorted(bench.baselines, key=lambda b: (b.get('role') != 'baseline', b.get('name') or '')):
        row = dict(name=b.get('name'), role=b.get('role'), genome=b.get('genome'), levels={})
        for lv in _levels(bench):
            k = budget_key(lv)
            per_seed = []
            for arch in bench.archs:
                vals = ((b.get('acc') or {}).get(arch) or {}).get(k)
                if vals is None:
                    continue
                per_seed.append([bench.chance if v is None else v for v in vals])
            if per_seed:
                seeds = np.mean(np.array(per_seed, dtype=float), axis=0).tolist()
                row['levels'][k] = dict(mean=float(np.mean(seeds)), sd=_sd(seeds), n=len(seeds),
                                        rejected=sum(1 for a in bench.archs for v in
                                                     ((b.get('acc') or {}).get(a) or {}).get(k, []) if v is None))
        rows.append(row)
    return rows


def _verdict(enrichment: Optional[float], p: Optional[float]) -> str:
    if enrichment is None or p is None:
        return 'not measurable'
    if enrichment > 1 and p < 0.05:
        return 'reproduced'
    if enrichment > 1:
        return 'same direction, not significant'
    if p < 0.05:
        return 'contradicted'
    return 'not reproduced'


def _graph_rows(view) -> List[Dict[str, Any]]:
    trained = trained_with(view.records)
    top = _top_set(trained) if trained else []
    rows = _enrichment(trained, top, lambda r: [r['graph']], min_support=1)
    for r in rows:
        sc = [x['score'] for x in trained if x['graph'] == r['key']]
        r['median'] = float(np.median(sc)) if sc else None
    return sorted(rows, key=lambda d: (-(d['enrichment'] or 0.0), d['key']))


def _claims(bench, res: Dict[str, Any]) -> List[Dict[str, Any]]:
    """The paper's claims about its bench, with the measurement on this one."""
    out = []
    for lv_key, lv in res['levels'].items():
        g = lv['graph_rows']
        pref = [r for r in g if r['key'] in PAPER_GRAPHS]
        ranks = {r['key']: i + 1 for i, r in enumerate(g)}
        txt = '; '.join(f'`{r["key"]}` x{_f(r["enrichment"], 2)} (p {_f(r["p"], 3)}, rank {ranks[r["key"]]} of '
                        f'{len(g)})' for r in pref) or 'not sampled'
        best = (f'most enriched: `{g[0]["key"]}` x{_f(g[0]["enrichment"], 2)}' if g else '')
        both = [r for r in pref if (r['enrichment'] or 0) > 1 and r['p'] < 0.05]
        some = [r for r in pref if (r['enrichment'] or 0) > 1]
        verdict = ('reproduced' if len(both) == len(PAPER_GRAPHS) else
                   'partly reproduced' if both else
                   'same direction, not significant' if some else 'not reproduced')
        out.append(dict(claim='graphs i3n302 and i3n303 are preferred', level=lv['name'],
                        measured=f'{txt}; {best}', verdict=verdict))
    for lv_key, lv in res['levels'].items():
        row = next((r for r in lv['analysis']['category_enrichment'] if r['key'] == COMBO), None)
        measured = ('no genome has one' if row is None else
                    f'{row["n_top"]}/{lv["analysis"]["top_n"]} top vs {row["n"]}/{lv["analysis"]["n_trained"]} '
                    f'all: x{_f(row["enrichment"], 2)} (Fisher p {_f(row["p"], 3)}); mean score '
                    f'{_f(row["mean_score"])}')
        out.append(dict(claim='advanced normalisation + activation combinations help (an activation '
                              'and a normalisation on one edge)', level=lv['name'], measured=measured,
                        verdict='not measurable' if row is None else _verdict(row['enrichment'], row['p'])))
    for lv_key, lv in res['levels'].items():
        rows = {r['key']: r for r in lv['analysis']['unary_enrichment']}
        parts, verdicts = [], []
        for op in PAPER_OPERATORS:
            r = rows.get(op)
            if r is None:
                parts.append(f'`{op}` (under {MIN_SUPPORT} genomes)')
                continue
            parts.append(f'`{op}` x{_f(r["enrichment"], 2)} (p {_f(r["p"], 3)})')
            verdicts.append(_verdict(r['enrichment'], r['p']))
        n_rep = verdicts.count('reproduced')
        verdict = (f'{n_rep} of {len(verdicts)} enriched significantly' if verdicts else 'not measurable')
        out.append(dict(claim='the discovered module\'s operators (ELU, min-max and l2 normalisation) '
                              'mark good attentions', level=lv['name'], measured='; '.join(parts),
                        verdict=verdict))
    return out


#: the fewest trained genomes of a level whose surrogate is fitted and reported
SURROGATE_MIN_GENOMES = 50


def analyse_levels(bench, surrogate: bool = True) -> Dict[str, Any]:
    """Every measurement of the multi-fidelity report, as plain data."""
    levels = _levels(bench)
    res: Dict[str, Any] = dict(levels={}, archs=bench.archs, chance=bench.chance,
                               settings=bench.settings, n_records=len(bench.records))
    status: Dict[str, int] = {}
    for r in bench.records:
        status[r['status']] = status.get(r['status'], 0) + 1
    res['status'] = dict(sorted(status.items()))
    src: Dict[str, Dict[str, int]] = {}
    for r in bench.records:
        kind = (r.get('source') or {}).get('kind', 'unknown')
        d = src.setdefault(kind, {})
        d['records'] = d.get('records', 0) + 1
        for k in r.get('scores') or {}:
            d[k] = d.get(k, 0) + 1
    res['sources'] = dict(sorted(src.items()))
    sel: Dict[str, Dict[str, int]] = {}
    for r in bench.records:
        for p in r.get('promotions') or []:
            d = sel.setdefault(budget_key(p['budget']), {})
            d[p.get('selection') or '?'] = d.get(p.get('selection') or '?', 0) + 1
    res['selections'] = dict(sorted(sel.items()))
    views = [(budget_key(lv), _level_name(bench, lv), bench.view(lv)) for lv in levels]
    first_budget = budget_key(bench.budgets[0])
    views.insert([k for k, _, _ in views].index(first_budget) + 1,
                 (f'{first_budget}:random', f'full budget, random promotions only ({first_budget} ep)',
                  bench.view(bench.budgets[0], selection='random')))
    for key, name, view in views:
        n = len(view.filter(trained=True))
        if n == 0:
            continue
        fit = surrogate and n >= SURROGATE_MIN_GENOMES and ':' not in key
        a = analyse(view, surrogate=fit)
        if fit and bench.rungs and key not in map(budget_key, bench.rungs):
            # stacked on the first rung, on the same split (its cross-validation: tools/surrogate_cv.py)
            a['surrogate_stacked'] = Surrogate.fit(view, refit=False, folds=0, aux=budget_key(bench.rungs[0]),
                                                   aux_bench=bench).summary()
        res['levels'][key] = dict(name=name, n=n, analysis=a, graph_rows=_graph_rows(view))
    # rank agreement between levels
    keys = [budget_key(lv) for lv in levels]
    agree = {}
    for i in range(len(keys)):
        for j in range(i + 1, len(keys)):
            a, b = keys[i], keys[j]
            both = [r for r in bench.records if a in (r.get('scores') or {}) and b in r['scores']]
            if len(both) >= 3:
                agree[f'genomes: {a} ep vs {b} ep'] = _corr([r['scores'][a] for r in both],
                                                           [r['scores'][b] for r in both])
            rnd = [r for r in both if any(p.get('selection') == 'random' and budget_key(p['budget']) == b
                                          for p in r.get('promotions') or [])]
            if len(rnd) >= 3 and len(rnd) < len(both):
                agree[f'genomes promoted at random: {a} ep vs {b} ep'] = _corr(
                    [r['scores'][a] for r in rnd], [r['scores'][b] for r in rnd])
            refs = [r for r in bench.baselines if a in (r.get('scores') or {}) and b in r['scores']]
            if len(refs) >= 3:
                agree[f'references: {a} ep vs {b} ep'] = _corr([r['scores'][a] for r in refs],
                                                              [r['scores'][b] for r in refs])
    cross_archs = sorted({a for r in list(bench.records) + list(bench.baselines) for a in r.get('cross_scores') or {}})
    for arch in cross_archs:
        for lv in levels:
            k = budget_key(lv)
            for label, rs in (('genomes', bench.records), ('references', bench.baselines)):
                both = [r for r in rs if k in (r.get('scores') or {}) and k in (r.get('cross_scores') or {}).get(arch, {})]
                if len(both) >= 3:
                    agree[f'{label}: {"/".join(bench.archs)} vs {arch} at {k} ep'] = _corr(
                        [r['scores'][k] for r in both], [r['cross_scores'][arch][k] for r in both])
    res['cross_archs'] = cross_archs
    res['agreement'] = agree
    res['probe'] = _probe_rows(views)
    res['references'] = _ref_table(bench)
    res['noise'] = _noise(bench, res)
    res['claims'] = _claims(bench, res)
    runs = [run for r in list(bench.records) + list(bench.baselines) for run in r.get('runs') or []]
    cpu = [run['cpu_seconds'] for run in runs if run.get('cpu_seconds') is not None]
    res['compute'] = dict(runs=len(runs), cpu_hours=sum(cpu) / 3600.0,
                          train_hours=sum(run.get('seconds') or 0.0 for run in runs) / 3600.0)
    return res


#: the fewest trained genomes of a level whose probe-feature correlations are reported
PROBE_MIN_GENOMES = 30


#: the behaviour features of the insight section: the probe's and the gradient features (their
#: ``*_ok`` flags left out)
BEHAVIOUR_FEATURES = tuple(f for f in PROBE_FEATURES + GRAD_FEATURES if not f.endswith('_ok'))


def _probe_rows(views) -> Dict[str, Dict[str, Dict[str, Any]]]:
    """``{level: {feature: Kendall tau / p / n with the level's score}}``: which behaviours on the
    probe input (:func:`attnzero.space.features.probe_features` and
    :func:`~attnzero.space.features.gradient_features`) go with good attentions."""
    out: Dict[str, Dict[str, Dict[str, Any]]] = {}
    for key, _, view in views:
        trained = trained_with(view.records)
        if len(trained) < PROBE_MIN_GENOMES:
            continue
        genomes = [Genome.parse(r['genome']) for r in trained]
        P = np.stack([np.concatenate([probe_features(g), gradient_features(g)]) for g in genomes])
        y = [r['score'] for r in trained]
        out[key] = {name: _corr(P[:, j].tolist(), y) for j, name in enumerate(PROBE_FEATURES + GRAD_FEATURES)
                    if name in BEHAVIOUR_FEATURES}
    return out


def _ceiling(reliability: Optional[float]) -> Optional[float]:
    """Kendall tau between a variable and a noisy measurement of it whose correlation with it is
    ``sqrt(reliability)`` (bivariate normal: tau = 2/pi arcsin r)."""
    if reliability is None:
        return None
    return float(2.0 / np.pi * np.arcsin(np.sqrt(min(1.0, max(0.0, reliability)))))


def _noise(bench, res: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Per level, how much of the spread of the genomes' single-seed scores is seed noise, and so
    the best rank agreement any predictor can reach with them: from the references' seeds (pooled
    within-reference variance) and, where the bench has a retest level, from the same genomes
    trained at a second seed (test-retest)."""
    out = []
    chance = bench.chance
    for lv in _levels(bench):
        k = budget_key(lv)
        sc = [r['scores'][k] for r in trained_with(bench.records, level_score(k))]
        if len(sc) < 3:
            continue
        var_g = float(np.var(sc, ddof=1))
        sg = (res['levels'].get(k) or {}).get('analysis', {}).get('surrogate')
        near = None if chance is None else float(np.mean([abs(x - chance) <= 0.05 for x in sc]))
        base = dict(level=k, name=_level_name(bench, lv), n_genomes=len(sc), genome_sd=float(np.sqrt(var_g)),
                    near_chance=near, n_top=res['selections'].get(k, {}).get('top', 0),
                    surrogate_tau=sg['tau'] if sg else None,
                    surrogate_cv=sg['cv_tau_mean'] if sg else None)
        ss = dof = 0.0
        n_refs = 0
        for ref in res['references']:
            v = ref['levels'].get(k)
            if v and v['n'] > 1 and v['sd'] is not None:
                ss += (v['n'] - 1) * v['sd'] ** 2
                dof += v['n'] - 1
                n_refs += 1
        if dof:
            var_n = ss / dof
            rel = max(0.0, 1.0 - var_n / var_g) if var_g > 0 else None
            out.append(dict(base, kind='references', source=f'references ({n_refs}, pooled over their seeds)', n=n_refs,
                            noise_sd=float(np.sqrt(var_n)), reliability=rel, ceiling=_ceiling(rel),
                            retest_tau=None, retest_rho=None))
        seeds = sorted({s for r in bench.records for s in ((r.get('retest_scores') or {}).get(k) or {})}, key=int)
        for s in seeds:
            both = [r for r in trained_with(bench.records, level_score(k))
                    if ((r.get('retest_scores') or {}).get(k) or {}).get(s) is not None]
            if len(both) < 3:
                continue
            x = np.array([r['scores'][k] for r in both])
            y = np.array([r['retest_scores'][k][s] for r in both])
            c = _corr(x.tolist(), y.tolist())
            r_xy = float(np.corrcoef(x, y)[0, 1]) if np.ptp(x) > 0 and np.ptp(y) > 0 else None
            what = f'the same genomes at seed {s}'
            out.append(dict(base, kind='retest', what=what, source=f'retest: {what}', n=len(both),
                            noise_sd=float(np.std(x - y, ddof=1) / np.sqrt(2.0)), reliability=r_xy,
                            ceiling=_ceiling(r_xy), retest_tau=c['tau'], retest_rho=c['rho']))
    return out


def _noise_paragraphs(noise: List[Dict[str, Any]], references: List[Dict[str, Any]]) -> List[str]:
    """What the seed-noise table says, level by level: a references' ceiling the surrogate beats (so
    too low), a retest set beside the surrogate, and a surrogate well below the references' ceiling
    with no retest at its level (so limited by something other than seed noise)."""
    L: List[str] = []
    for n in noise:
        if (n['kind'] == 'references' and n['surrogate_tau'] is not None
                and n['ceiling'] is not None and n['surrogate_tau'] > n['ceiling']):
            means = [r['levels'][n['level']]['mean'] for r in references
                     if (r['levels'].get(n['level']) or {}).get('mean') is not None]
            near = '' if n['near_chance'] is None or not means else (
                f' {100 * n["near_chance"]:.1f}% of the genomes score within 0.05 of chance there, '
                f'against reference means of {_f(min(means))}-{_f(max(means))};')
            retest = [m for m in noise if m['level'] == n['level'] and m['kind'] == 'retest']
            tail = (' a retest of the genomes themselves measures their noise.' if not retest else
                    ' the retest of the genomes themselves measures it: ' +
                    '; '.join(f'{m["what"]}, tau ceiling {_f(m["ceiling"])}'
                              for m in retest) + '.')
            L.append(f'At the {n["name"]} the surrogate\'s held-out tau ({_f(n["surrogate_tau"])}) is above '
                     f'the ceiling computed from the references\' seed noise ({_f(n["ceiling"])}), so that '
                     f'ceiling is too low: the references are attentions that all learn, and their seed '
                     f'noise overstates that of the genomes as a whole;{near}{tail}')
            L.append('')
        elif n['kind'] == 'retest' and n['surrogate_tau'] is not None and n['retest_tau'] is not None:
            d = n['surrogate_tau'] - n['retest_tau']
            how = ('level with it: the surrogate predicts a genome\'s single-seed score about as well as '
                   'training the genome again does' if abs(d) <= 0.02 else
                   'above it: the surrogate predicts a genome\'s single-seed score better than training the '
                   'genome again does' if d > 0 else
                   'below it: training the genome again predicts its single-seed score better than the surrogate')
            L.append(f'At the {n["name"]} a second training of {n["n"]} of the genomes '
                     f'({n["what"]}) ranks them against the first at tau '
                     f'{_f(n["retest_tau"])}; the surrogate\'s held-out tau ({_f(n["surrogate_tau"])}) is {how}. '
                     f'What is left to gain is the distance to the retest\'s ceiling ({_f(n["ceiling"])}).')
            L.append('')
        elif (n['kind'] == 'references' and n['surrogate_tau'] is not None
              and n['ceiling'] is not None and n['surrogate_tau'] < n['ceiling'] - 0.05
              and not any(m['level'] == n['level'] and m['kind'] == 'retest' for m in noise)):
            first = noise[0]
            sample = ('' if first['level'] == n['level'] else
                      f' It is fitted on {n["n_genomes"]} genomes (the {first["name"]} has '
                      f'{first["n_genomes"]}), {n["n_top"]} of them promoted as the best of their batch: '
                      f'`tools/surrogate_cv.py` predicts the {first["name"]}\'s scores on exactly these genomes '
                      f'and on a random sample of the same size, which tells the sample\'s share of the gap.')
            L.append(f'At the {n["name"]} the surrogate\'s held-out tau ({_f(n["surrogate_tau"])}) is well below '
                     f'the ceiling from the references\' seed noise ({_f(n["ceiling"])}): seed noise is not '
                     f'what limits it there.{sample}')
            L.append('')
    return L


def _ref_rows(res: Dict[str, Any], keys: Sequence[str]) -> List[List[Any]]:
    rows = []
    for r in res['references']:
        cells = [f'`{r["name"]}`' + (' (genome)' if r['role'] == 'reference' else '')]
        for k in keys:
            v = r['levels'].get(k)
            cells.append('-' if v is None else (f'{_f(v["mean"])} ± {_f(v["sd"])} ({v["n"]})' if v['n'] > 1
                                                 else f'{_f(v["mean"])} (1)'))
        rows.append(cells)
    return rows


def has_v_branch(attn: str) -> bool:
    """Whether the zoo attention ``attn``, built with its defaults as the proxy builds it, adds a
    local branch on V (a depthwise convolution, :class:`~attnzero.attention.VBranch`)."""
    return any(isinstance(m, VBranch) for m in build_kernel(attn, 16, 2).modules())


def _v_branch_note(res: Dict[str, Any]) -> str:
    """Which references have a depthwise-convolution branch on V: the zoo attentions as their papers
    define them, every genome as AttnZero does. A zoo attention and a genome of the same name differ
    by it."""
    zoo = sorted({r['name'] for r in res['references'] if r['role'] != 'reference'})
    if not zoo:
        return ''
    with_b = [n for n in zoo if has_v_branch(n)]
    without = [n for n in zoo if n not in with_b]
    names = lambda ns: ', '.join(f'`{n}`' for n in ns) or 'none'  # noqa: E731
    both = sorted(set(zoo) & {r['name'] for r in res['references'] if r['role'] == 'reference'})
    return (f'The zoo attentions are their published modules. {names(with_b)} add a depthwise convolution on V '
            f'(a local branch, as in their papers); {names(without)} do not. Every genome, the references marked '
            '(genome) and every candidate, has that branch, as in AttnZero.'
            + (f' So a zoo attention and the genome of the same name ({names(both)}) differ by that branch.'
               if both else ''))


def render_levels_report(bench, res: Dict[str, Any], bench_label: str, plots: Sequence[str] = ()) -> str:
    s = res['settings'] or {}
    search = s.get('search', {})
    sha = sha256_file(os.path.join(bench.path, BENCH_FILE)) if bench.path else 'n/a'
    lv_path = os.path.join(bench.path, LEVELS_FILE) if bench.path else None
    lsha = sha256_file(lv_path) if lv_path and os.path.exists(lv_path) else 'n/a'
    proxy = bench.records[0]['proxy'] if bench.records else {}
    keys = [budget_key(lv) for lv in _levels(bench)]
    L: List[str] = ['# Attn-Bench-101 v2: analysis report', '',
                    f'Generated by `tools/analyze_bench.py` from `{bench_label}` (`{BENCH_FILE}` sha256 '
                    f'`{sha}`, `{LEVELS_FILE}` sha256 `{lsha}`). Do not edit: regenerate.', '']
    m = bench.manifest or {}
    if m.get('complete') is False:
        prog = m.get('plan_progress') or {}
        plan = ((load_build_info(bench.path) or {}).get('plan') or {}) if bench.path else {}
        want = dict(rung=plan.get('n'), full=plan.get('n_full'), long=plan.get('n_long'), cross=plan.get('n_cross'),
                    retest=plan.get('n_retest'))
        got = ', '.join(f'{k} {prog[k]}' + (f' of {want[k]}' if want.get(k) is not None else '')
                        for k in ('rung', 'full', 'long', 'cross', 'retest') if k in prog)
        L += [f'**Unfinished build** (manifest `complete: false`): genomes per level so far: {got}. '
              'Every figure below is provisional and will change as the build goes on.', '']
    L += ['## Bench', '']
    counts = [[res['levels'][k]['name'], res['levels'][k]['n']] for k in res['levels']]
    src = '; '.join(f'{kind}: ' + ', '.join(f'{k} {v}' for k, v in d.items()) for kind, d in res['sources'].items())
    sel = '; '.join(f'to {k} ep: ' + ', '.join(f'{s2} {v}' for s2, v in d.items()) for k, d in res['selections'].items())
    L.append(_md_table(['item', 'value'], [
        ['records (distinct genomes, hash- and FEC-deduplicated)', res['n_records']],
        ['status counts', ', '.join(f'{k} {v}' for k, v in res['status'].items())],
        *[[f'genomes at the {n}', c] for n, c in counts],
        ['how the genomes were chosen (records, then genomes per level)', src],
        ['promotions by reason', sel or 'none'],
        ['proxy', f'`{proxy.get("name")}`: {proxy.get("train")} train / {proxy.get("val")} validation / '
                  f'{proxy.get("test")} test images {proxy.get("img_size")}x{proxy.get("img_size")}, '
                  f'{proxy.get("num_classes")} classes, chance {_f(res["chance"])}'],
        ['architectures', ', '.join(res['archs'])],
        ['levels (epochs)', f'rung {", ".join(budget_key(r) for r in s.get("rungs") or [])} of the first '
                            f'budget, budgets {", ".join(budget_key(b) for b in s.get("budgets") or [])}; seeds '
                            f'{s.get("seeds")}'],
        ['training', f'batch {search.get("batch_size")}, AdamW lr {search.get("lr")}, wd '
                     f'{search.get("weight_decay")}, warm-up {search.get("warmup_frac")}, threads '
                     f'{search.get("threads")}, common random numbers {search.get("common_seed")}'],
        ['compute (training runs, records and references)',
         f'{res["compute"]["runs"]} runs, {res["compute"]["cpu_hours"]:.2f} CPU-hours '
         f'({res["compute"]["train_hours"]:.2f} h of run wall time)'],
        ['build commands', '<br>'.join(f'`{c}`' for c in m.get('build_commands') or [m.get('creation_command')] if c)],
    ]))
    L += ['', 'A level\'s score is the mean over architectures and seeds of the validation accuracy at '
              'that level, a run stopped by the rejection protocol counting as chance. The rung is '
              'the first budget\'s training paused (the search\'s first successive-halving rung); the '
              'full budget continues it; the longer budget is its own training.', '']
    # claims
    L += ['## The paper\'s claims, point by point', '']
    L.append(_md_table(['claim (AttnZero paper, Attn-Bench-101)', 'level', 'measured here', 'verdict'],
                       [[c['claim'], c['level'], c['measured'], f'**{c["verdict"]}**'] for c in res['claims']]))
    L.append('')
    L.append('Enrichment: the share of genomes with the property among the top 10 % of a level (at least '
             '10 genomes) over its share among all genomes of that level; Fisher exact test, two-sided. '
             'The full budget holds the best genomes of each batch by rung score and a random part: its '
             'enrichments are measured within an already selected set, so the random promotions alone '
             'are the unbiased sample.')
    L.append('')
    # agreement
    L += ['## Rank agreement between budgets and between architectures', '']
    L.append(_md_table(['pair', 'n', 'Kendall tau', 'Spearman', 'p'],
                       [[k, v['n'], _f(v['tau']), _f(v['rho']), _f(v['p'], 4)] for k, v in res['agreement'].items()]))
    L.append('')
    if len(res['archs']) < 2 and not res.get('cross_archs'):
        L.append(f'Between architectures: not measured here. The bench trains the default proxy\'s one '
                 f'architecture ({", ".join(res["archs"])}); the version 1 bench (the earlier '
                 f'relational proxy, DeiT and PVT) reports its DeiT-vs-PVT agreement in '
                 f'`docs/bench/v1/REPORT.md`.')
        L.append('')
    # probe features
    if res.get('probe'):
        pk = list(res['probe'])
        names = {k: res['levels'][k]['name'] if k in res['levels'] else k for k in pk}
        L += ['## What good attentions do: probe and gradient features against the score', '']
        L.append('Kendall tau (two-sided p) between each probe and gradient feature of a trained genome -- what '
                 'its attention does on one fixed input of 64 tokens in 4 clusters '
                 '(`attnzero.space.features.probe_features`), and how a signal at its output reaches q, k and v '
                 'there (`gradient_features`) -- and its score at each level:')
        L.append('')
        L.append(_md_table(['feature'] + [f'{names[k]} (n {next(iter(res["probe"][k].values()))["n"]})'
                                                for k in pk],
                           [[f'`{f}`'] + ['-' if res['probe'][k][f]['tau'] is None else
                                          f'{_f(res["probe"][k][f]["tau"])} ({_f(res["probe"][k][f]["p"], 4)})'
                                          for k in pk]
                            for f in BEHAVIOUR_FEATURES]))
        L.append('')
        L.append('`cos_softmax`, `cos_cluster_mean`, `cos_v`: centred cosine similarity of the output to softmax '
                 'attention\'s, to the within-cluster mean of v, to v; `log10_scale`: output scale over v\'s; '
                 '`sens_q`, `sens_k`: relative change of the output when q or k is replaced by noise; '
                 '`sens_qk_scale`: when q and k are doubled; `v_nonlinearity`: |f(2v) - 2f(v)| / |2f(v)|; '
                 '`effective_rank`, `token_spread`: of the centred output; `gain_q`, `gain_k`, `gain_v`: '
                 'log10 of the elasticity of a fixed random readout of the output in q, k, v (-12: the output '
                 'ignores it); `dir_gain_*`: the same for the readout of the output\'s direction.')
        L.append('')
        for k in pk:
            sig = sorted(((f, c) for f, c in res['probe'][k].items() if c['p'] is not None and c['p'] < 0.01),
                         key=lambda t: -abs(t[1]['tau']))
            if sig:
                L.append(f'- {names[k]}: ' + '; '.join(f'`{f}` {"higher" if c["tau"] > 0 else "lower"} in better '
                                                      f'attentions (tau {_f(c["tau"])})' for f, c in sig) + '.')
            else:
                L.append(f'- {names[k]}: no probe or gradient feature with p < 0.01.')
        L.append('')
    # seed noise
    if res.get('noise'):
        L += ['## Seed noise: the ceiling of any predictor', '']
        L.append(_md_table(['level', 'noise measured from', 'n', 'seed-noise sd', 'genome-score sd',
                            'reliability', 'tau ceiling', 'tau seed 0 vs retest seed', 'surrogate tau (held-out / CV)'],
                           [[n['name'], n['source'], n['n'], _f(n['noise_sd']), _f(n['genome_sd']),
                             _f(n['reliability']), _f(n['ceiling']), _f(n['retest_tau']),
                             '-' if n['surrogate_tau'] is None else
                             f'{_f(n["surrogate_tau"])} / {_f(n["surrogate_cv"])}'] for n in res['noise']]))
        L.append('')
        L.append('Each genome is trained once (seed 0), so its score is its expected score plus seed noise. '
                 '*Reliability* is the share of the genomes\' score variance that is not seed noise: 1 minus '
                 'the noise variance (pooled over the references\' seeds) over the variance of the genomes\' '
                 'scores, or, from a retest, the correlation between the two seeds\' scores. The *tau '
                 'ceiling* is the Kendall tau that a predictor knowing every genome\'s expected score exactly '
                 'would reach against the recorded single-seed scores (2/pi arcsin of the square root of the '
                 'reliability, for normal scores); the *tau seed 0 vs retest seed* is how well a second '
                 'training predicts the first. A surrogate near these figures is limited by the noise of the '
                 'bench, not by its features.')
        L.append('')
        L += _noise_paragraphs(res['noise'], res['references'])
    # references
    L += ['## References (zoo attentions and published genomes)', '']
    L.append(_md_table(['reference'] + [f'{k} ep: mean ± sd (seeds)' for k in keys], _ref_rows(res, keys)))
    L.append('')
    note = _v_branch_note(res)
    if note:
        L += [note, '']
    # per level
    for k, lv in res['levels'].items():
        a = lv['analysis']
        d = a['distribution']
        L += [f'## Level: {lv["name"]}', '', f'{lv["n"]} genomes.', '']
        L += [x for x in _findings(a)[2:] if x]
        L.append('')
        if d:
            L.append(_md_table(['min', 'p10', 'p25', 'median', 'p75', 'p90', 'max', 'within 0.05 of chance'],
                               [[_f(d['quantiles'][q]) for q in (0, 10, 25, 50, 75, 90, 100)] +
                                [f'{d["at_chance"]} ({100.0 * d["at_chance"] / lv["n"]:.1f}%)']]))
            L.append('')
        L.append(_md_table(['graph', 'genomes', 'median score', 'in the top set', 'enrichment', 'Fisher p'],
                           [[f'`{g["key"]}`', g['n'], _f(g['median']), g['n_top'], _f(g['enrichment'], 2),
                             _f(g['p'], 3)] for g in lv['graph_rows']]))
        L.append('')
        L.append(_md_table(['operator', 'genomes', 'in the top set', 'enrichment', 'Fisher p'],
                           [[f'`{r["key"]}`', r['n'], r['n_top'], _f(r['enrichment'], 2), _f(r['p'], 3)]
                            for r in a['unary_enrichment'] + a['binary_enrichment'] if r['p'] < 0.05]
                           or [['(none with p < 0.05)', '', '', '', '']]))
        L.append('')
        if a.get('top10'):
            L.append(_md_table(['top genomes', 'score', 'static GFLOPs (3136 tokens, d 32)'],
                               [[f'`{t["genome"]}`', _f(t['score']),
                                 _f(None if t['flops'] is None else t['flops'] / 1e9, 3)] for t in a['top10']]))
            L.append('')
        sg = a.get('surrogate')
        if sg:
            L.append(f'Surrogate (gradient boosting on genome, probe and gradient features) fitted on this level: held-out '
                     f'Kendall tau **{_f(sg["tau"])}** on {sg["n_test"]} genomes (trained on '
                     f'{sg["n_train"]}); {sg["folds"]}-fold mean {_f(sg["cv_tau_mean"])} ± {_f(sg["cv_tau_sd"])}.')
            sx = a.get('surrogate_syntax')
            if sx:
                L.append(f'Without the probe and gradient features (the genome\'s text alone, the same split): held-out '
                         f'tau {_f(sx["tau"])}, {sx["folds"]}-fold mean {_f(sx["cv_tau_mean"])} ± '
                         f'{_f(sx["cv_tau_sd"])}.')
            st = a.get('surrogate_stacked')
            if st:
                L.append(f'Stacked on the rung (`bench.surrogate(aux={st["aux"]!r})`: a model of the '
                         f'{st["aux"]} ep scores, fitted on every genome that reached it but the held-out ones, '
                         f'gives one more feature; the same split): held-out tau **{_f(st["tau"])}** (its repeated '
                         f'cross-validation: `tools/surrogate_cv.py`).')
            L.append('')
    for p in plots:
        L.append(f'![{p}]({p})')
    L.append('')
    return '\n'.join(L)


def plot_names_levels(res: Dict[str, Any]) -> List[str]:
    return ['levels_scores.png', 'levels_agreement.png']


def make_levels_plots(bench, res: Dict[str, Any], out_dir: str) -> List[str]:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    keys = [budget_key(lv) for lv in _levels(bench)]
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
    for ax, k in zip(axes[0], keys):
        sc = [r['scores'][k] for r in bench.records if k in (r.get('scores') or {})]
        ax.hist(sc, bins=30, color='#4477aa')
        for b, c in (('softmax', '#cc3311'), ('identity', '#999999'), ('trial_105', '#228833')):
            ref = next((r for r in bench.baselines if r.get('name') == b and k in (r.get('scores') or {})), None)
            if ref is not None:
                ax.axvline(ref['scores'][k], color=c, ls='--', label=b)
        ax.set_title(f'{k} ep ({len(sc)} genomes)')
        ax.set_xlabel('validation accuracy')
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, os.path.join(out_dir, 'levels_scores.png'), dpi=110)
    plt.close(fig)
    pairs = [(keys[i], keys[i + 1]) for i in range(len(keys) - 1)]
    fig, axes = plt.subplots(1, len(pairs), figsize=(4.2 * len(pairs), 3.6), squeeze=False)
    for ax, (a, b) in zip(axes[0], pairs):
        for sel, c in (('top', '#cc3311'), ('random', '#4477aa')):
            rs = [r for r in bench.records if a in (r.get('scores') or {}) and b in r['scores']
                  and any(p.get('selection') == sel and budget_key(p['budget']) == b
                          for p in r.get('promotions') or [])]
            ax.scatter([r['scores'][a] for r in rs], [r['scores'][b] for r in rs], s=8, c=c, label=sel, alpha=0.7)
        refs = [r for r in bench.baselines if a in (r.get('scores') or {}) and b in r['scores']]
        ax.scatter([r['scores'][a] for r in refs], [r['scores'][b] for r in refs], s=20, c='k', marker='x',
                   label='references')
        ax.set_xlabel(f'{a} ep')
        ax.set_ylabel(f'{b} ep')
        ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_savefig(fig, os.path.join(out_dir, 'levels_agreement.png'), dpi=110)
    plt.close(fig)
    return plot_names_levels(res)


def levels_report_text(bench, bench_label: str, res: Optional[Dict[str, Any]] = None) -> str:
    res = analyse_levels(bench) if res is None else res
    return render_levels_report(bench, res, bench_label, plot_names_levels(res))
