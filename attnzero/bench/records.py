"""Bench records from their training runs: budget keys, the accuracy tables and scores of a record,
and the merge of a multi-fidelity bench's later levels into its records.

Pure Python over the stored JSON (no torch): the loader (:mod:`.query`) and the builder use the same
functions, so a record read from the files is the record the builder would write.

A run is one training of one architecture at one seed for ``epochs`` epochs: a whole budget of
``settings['budgets']`` (its own learning-rate schedule), or a successive-halving rung of
``settings['rungs']`` (the first budget's schedule paused after that many epochs; a later run at the
first budget continues it, so the two together are the one-piece training).
"""
from __future__ import annotations

from typing import Any, Dict, Iterable, List, Optional, Sequence

__all__ = ['budget_key', 'levels', 'score_budget', 'summarise', 'merge_levels', 'trained_with', 'level_score']


def budget_key(epochs: float) -> str:
    """The key of an epoch budget in a record's ``acc`` tables: ``'2'`` for 2 epochs, ``'0.6667'``
    for a rung at 2/3 epoch (4 significant digits)."""
    b = float(epochs)
    return str(int(b)) if b.is_integer() else f'{b:.4g}'


def level_score(key: str):
    """A record's score at the level ``key`` (``scores[key]``), or ``None``."""
    return lambda r: (r.get('scores') or {}).get(key)


def trained_with(records: Iterable[Dict[str, Any]], value=lambda r: r.get('score')) -> List[Dict[str, Any]]:
    """The records that passed the program check and have a ``value`` (default: a ``score``;
    :func:`level_score` for a level's), in their order."""
    return [r for r in records if r['status'] != 'check_failed' and value(r) is not None]


def levels(settings: Dict[str, Any]) -> List[float]:
    """Every fidelity level of a bench's settings, ascending: its rungs, then its budgets."""
    return sorted([float(r) for r in settings.get('rungs') or []] +
                  [float(b) for b in settings['budgets']])


def reference_kind(baseline: Dict[str, Any]) -> str:
    """``'genome'`` for a reference genome (a published AttnZero one, or a zoo attention written as a
    genome), ``'zoo'`` for a zoo attention module. Two references may share a name across kinds
    (v2: ``relu_linear``)."""
    return 'genome' if baseline.get('genome') else 'zoo'


def score_budget(settings: Dict[str, Any]) -> float:
    """The budget of a record's ``score``: the first budget (the search's) in a bench with rungs,
    the largest budget in a single-fidelity bench (version 1)."""
    b = settings['budgets']
    return float(b[0] if settings.get('rungs') else b[-1])


def _mean(vals: Iterable[Optional[float]]) -> Optional[float]:
    v = [x for x in vals if x is not None]
    return sum(v) / len(v) if v else None


def summarise(record: Dict[str, Any], settings: Dict[str, Any], chance: float,
              seeds: Optional[Sequence[int]] = None) -> Dict[str, Any]:
    """Fill a record's ``acc`` / ``ckpt_acc`` tables (``{arch: {budget key: [per seed]}}``), ``score``,
    ``acc_mean``, ``test_score``, ``train_seconds`` and ``status`` from its ``runs`` (in place).

    ``score`` is the mean over architectures and seeds of the final validation accuracy at
    :func:`score_budget`, a run stopped by the rejection protocol counting as chance (the search
    scores it infeasible); ``acc_mean`` the same when no run was rejected, else ``None``. With rungs
    (a multi-fidelity bench) a record holds only the levels it reached: ``scores`` maps each level's
    key to that mean, ``fidelity`` names the highest level, and ``score`` is ``None`` for a genome
    never trained to the first budget.
    """
    runs = record['runs']
    archs = list(settings['search']['archs'])
    seeds = list(seeds if seeds is not None else settings['seeds'])
    multi = bool(settings.get('rungs'))
    acc: Dict[str, Dict[str, List[Optional[float]]]] = {}
    ckpt: Dict[str, Dict[str, List[Optional[float]]]] = {}
    for arch in archs:
        acc[arch], ckpt[arch] = {}, {}
        for b in levels(settings):
            key = budget_key(b)
            row = [r for r in runs if r['arch'] == arch and budget_key(r['epochs']) == key
                   and r['seed_index'] in seeds]
            if multi and not row:
                continue
            row.sort(key=lambda r: seeds.index(r['seed_index']))
            acc[arch][key] = [r['acc'] if r['status'] == 'ok' else None for r in row]
            ckpt[arch][key] = [r.get('ckpt_acc') for r in row]
    record['acc'], record['ckpt_acc'] = acc, ckpt

    def level_score(key: str):
        vals, all_ok = [], True
        for arch in archs:
            for a in acc[arch].get(key, []):
                all_ok = all_ok and a is not None
                vals.append(chance if a is None else a)
        return (sum(vals) / len(vals), all_ok) if vals else (None, False)

    top = budget_key(score_budget(settings))
    score, all_ok = level_score(top) if runs else (None, False)
    record['score'] = score
    record['acc_mean'] = score if all_ok else None
    if multi:
        record['scores'] = {k: v for k, v in ((budget_key(b), level_score(budget_key(b))[0])
                                              for b in levels(settings)) if v is not None}
        reached = [budget_key(b) for b in levels(settings) if budget_key(b) in record['scores']]
        record['fidelity'] = reached[-1] if reached else None
    if multi:  # runs in other architectures than the bench's (a plan's cross-architecture level)
        cross: Dict[str, Dict[str, List[Optional[float]]]] = {}
        for r in sorted((r for r in runs if r['arch'] not in archs),
                        key=lambda r: (r['arch'], float(r['epochs']), r['seed_index'])):
            cross.setdefault(r['arch'], {}).setdefault(budget_key(r['epochs']), []).append(
                r['acc'] if r['status'] == 'ok' else None)
        if cross:
            record['cross'] = cross
            record['cross_scores'] = {a: {k: sum(chance if x is None else x for x in v) / len(v)
                                          for k, v in per.items()} for a, per in cross.items()}
    if multi:  # a genome's runs at other seeds than the bench's (a plan's retest level): kept apart
        retest: Dict[str, Dict[str, List[Optional[float]]]] = {}
        for r in sorted((r for r in runs if r['arch'] in archs and r['seed_index'] not in seeds),
                        key=lambda r: (float(r['epochs']), r['seed_index'], archs.index(r['arch']))):
            retest.setdefault(budget_key(r['epochs']), {}).setdefault(str(r['seed_index']), []).append(
                r['acc'] if r['status'] == 'ok' else None)
        if retest:
            record['retest'] = retest   # {level key: {seed index: [acc per architecture]}}
            record['retest_scores'] = {k: {s: sum(chance if x is None else x for x in v) / len(v)
                                           for s, v in per.items()} for k, per in retest.items()}
    own = [r for r in runs if r['arch'] not in archs or r['seed_index'] in seeds]
    # the separate test column (never a selection criterion): mean test accuracy of the completed
    # runs at the score's budget
    record['test_score'] = _mean(r.get('test_acc') for r in own if budget_key(r['epochs']) == top
                                 and r['status'] == 'ok' and r['arch'] in archs)
    record['train_seconds'] = float(sum(r.get('seconds') or 0.0 for r in runs))
    if record['status'] == 'check_failed':
        return record
    rej = [r for r in own if r['status'] != 'ok']
    if rej:
        record['status'] = 'rejected' if len(rej) == len(own) else 'partial'
        record['reject_reason'] = rej[0]['reason']
    else:
        record['status'], record['reject_reason'] = 'ok', ''
    return record


def merge_levels(records: List[Dict[str, Any]], baselines: List[Dict[str, Any]],
                 level_lines: Sequence[Dict[str, Any]], settings: Dict[str, Any]) -> None:
    """Add the runs of a multi-fidelity bench's later levels (``levels.jsonl``: one line per record
    key and budget) to their records and recompute the records' summaries (in place). A line's
    ``key`` is the record's ``hash`` (a genome) or ``name`` (a zoo baseline); a line whose key is no
    record is an error (the files do not belong together). A line with an ``arch`` outside the bench's
    architectures (the cross-architecture level) fills the record's ``cross`` / ``cross_scores``; a
    ``retest`` line (the rung again at other seeds) its ``retest`` / ``retest_scores``."""
    if not level_lines:
        return
    by_key: Dict[str, Dict[str, Any]] = {}
    for r in list(records) + list(baselines):
        by_key[r.get('hash') or r.get('name')] = r
    touched = {}
    for line in level_lines:
        rec = by_key.get(line['key'])
        if rec is None:
            raise KeyError(f'levels line {line["key"]!r} (budget {line.get("budget")}) has no record')
        rec['runs'] = list(rec['runs']) + list(line['runs'])
        if not line.get('retest'):  # (a retest is no promotion: the rung again, at other seeds)
            rec.setdefault('promotions', []).append(
                {k: line.get(k) for k in ('budget', 'selection', 'batch', 'resumed', 'eval_seconds', 'arch')})
        touched[id(rec)] = rec
    chance = None
    for rec in touched.values():
        chance = rec['proxy']['chance']
        seeds = sorted({r['seed_index'] for r in rec['runs']}, key=int) if rec.get('role') != 'sample' else None
        summarise(rec, settings, chance, seeds=seeds)
