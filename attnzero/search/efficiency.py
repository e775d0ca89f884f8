"""Search efficiency: the compute the search needs to reach what a naive search finds (issue 17).

``tools/search_efficiency.py`` is the command line (:func:`attnzero.search.cli.search_efficiency_main`).

What is run
-----------
For each seed (``cfg.seed``, ``cfg.seed + 1``, ...) the same configuration is searched several
times, each in its own run directory ``OUT/seed-<seed>/<variant>/``:

* ``naive`` -- every accelerator of :data:`ACCELERATORS` off: no static/program check, no
  evaluation cache (duplicates are trained again), no rejection protocol (every candidate trains
  the full budget; no baselines);
* ``full`` -- every accelerator on (the search as it runs by default);
* ``no_<name>`` -- ablations: ``full`` with the one accelerator ``<name>`` off.

Everything else (proxy, architectures, population, seed) is the same, and so are the generations,
except that with ``extend > 1`` (the command line's ``--extend``, 3 by default) every search but
the naive one may run up to ``extend`` x the generations and stops after the first generation at
which its hypervolume reaches the naive run's final one (:func:`stop_at_target`, a criterion on the
records only, so a resumed run stops where an uninterrupted one does). A search whose candidates
cost less is given the chance to reach the naive result, and is not charged for searching beyond
it. An
interrupted measurement continues where it stopped: a finished run is reused, an unfinished one
is continued with the search's own resume (:class:`~attnzero.search.runner.Search`), a missing
one is started. An accelerator added later (rungs, a pre-screen, a surrogate) is one more entry
of :data:`ACCELERATORS`: it is switched off in ``naive`` and gets its own ablation run.

What is measured
----------------
*Compute* is counted per evaluation, in the order the search proposes candidates (evaluation
index: the order a one-worker search evaluates them, so the curves do not depend on
``--workers``):

* CPU-seconds -- CPU time of the evaluating process (``cpu_seconds`` + ``check_cpu_seconds`` of
  each record; the search fixes the torch threads of an evaluation, 1 by default). It does not
  grow when other work shares the cores, as wall time does. For runs recorded before the search
  measured CPU time, the evaluations' own wall seconds are used instead (and the report says so);
* GFLOPs -- the records' ``gflops`` (training and evaluation FLOPs of the proxy models); an
  evaluation whose FLOPs could not be counted makes the GFLOPs figures of its run ``n/a``.

The baseline trainings of a run with the rejection protocol are charged before its first
evaluation (the protocol needs them); a naive run trains none. Evaluations lost to a dead worker
or a timeout have unknown compute (counted as 0; the report gives their number).

*Quality* is the hypervolume (:class:`pymoo.indicators.hv.HV`) of the search's own minimised
objectives (the records' ``F``: negative validation accuracy, ``log10`` cost) over every
feasible evaluation so far that the full search could also return: a result of a run without the
program check counts only if its genome passes :func:`~attnzero.search.evaluate.precheck` with the
checks on (a quadratic or batch-dependent genome is not a result of this search space, however
well it trains; that check is run here, and not charged to the run). The objectives are
normalised per seed so that the naive run's admissible points span [0, 1] (its ideal -> 0, its
nadir -> 1; an objective with no spread is only shifted; a better point of another run lies below
0) and the reference point is 1.1 in every objective (the naive nadir plus 10 % of its range), so
every run of a seed is measured against the same fixed point, and the target does not move when
runs are added. Without a naive run the union of the runs' points makes the box.

*The ratio*: the naive search's final hypervolume ``T`` is the target; each search's compute to
reach it is its compute at the first evaluation where its hypervolume is ``>= T``. The report
gives two ratios: naive compute *to reach* ``T`` (its own first evaluation at ``T``; like for like,
the conservative one) over the search's compute to reach ``T``, and naive *total* compute over the
search's compute to reach ``T``. A search that never reaches ``T`` gets no ratio ("not reached",
with the hypervolume it did reach); in a median over seeds it ranks below every ratio.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from attnzero.io import append_line, atomic_savefig, atomic_write_text, loadavg, read_jsonl

from . import report
from .config import ACCELERATOR_FIELDS, PRESCREEN_SCORES, SearchConfig, with_defaults
from .evaluate import precheck
from .runner import RESUMABLE_FIELDS, Search
from .state import RunState, atomic_write_json

__all__ = ['Accelerator', 'ACCELERATORS', 'EfficiencyError', 'variants', 'variant_config',
           'run_measurement', 'curve', 'hv_normaliser', 'reach', 'median_ratio', 'analyse',
           'write_report', 'loadavg', 'has_cpu_seconds', 'SESSIONS_FILE', 'rungs_accelerator',
           'prescreen_accelerator', 'surrogate_accelerator', 'prior_accelerator']

SESSIONS_FILE = 'sessions.jsonl'
#: reasons of the rejection protocol (``crash`` is a failure, not a rejection)
PROTOCOL_REASONS = ('nonfinite_loss', 'loss_not_decreasing', 'below_baseline')
#: reference point of the normalised objectives (nadir of the union + 10 % of its range)
REF = 1.1


class EfficiencyError(ValueError):
    """A measurement that cannot be run or reported (names the value)."""


@dataclass(frozen=True)
class Accelerator:
    """One accelerator of the search: the config fields that turn it on and off."""

    name: str
    on: Dict[str, Any]
    off: Dict[str, Any]
    doc: str


#: the accelerators the measurement switches off (in ``naive`` all of them, in ``no_<name>`` one)
ACCELERATORS: Tuple[Accelerator, ...] = (
    Accelerator('program_check', dict(program_check=True), dict(program_check=False),
                'static linear-cost check and program check before training'),
    Accelerator('cache', dict(cache=True), dict(cache=False),
                'evaluation cache by hash and functional equivalence; NSGA-II duplicate elimination '
                'by function'),
    Accelerator('rejection', dict(rejection=True), dict(rejection=False),
                'rejection protocol: non-finite loss, loss not decreasing, below the baseline'),
)
assert {f for a in ACCELERATORS for f in a.on} <= set(ACCELERATOR_FIELDS)


def rungs_accelerator(rungs: int) -> Accelerator:
    """The successive-halving rungs (``SearchConfig.rungs``, opt-in) as an accelerator of the
    measurement: ``rungs`` in the full search, 1 (none) in the naive one; ``tools/search_efficiency.py
    --rungs N`` adds it to :data:`ACCELERATORS`."""
    if not isinstance(rungs, int) or rungs < 2:
        raise EfficiencyError(f'rungs={rungs!r}: the rungs accelerator needs >= 2 rungs')
    return Accelerator('rungs', dict(rungs=rungs), dict(rungs=1),
                       f'successive-halving rungs ({rungs} budgets, the best 1/eta promoted)')


def prescreen_accelerator(score: str, pool: Optional[int] = None,
                          offsprings: Optional[int] = None) -> Accelerator:
    """The pre-screen deferral (``SearchConfig.prescreen``, opt-in) as an accelerator:
    ``tools/search_efficiency.py --prescreen SCORE``. ``pool``: the offspring a generation proposes
    when it is pre-screened (``--prescreen-pool``: the pre-screen picks the ones that train from a
    larger pool); off, a generation has the base config's ``offsprings`` (``None``: the population
    size), so the naive search and the ``no_prescreen`` ablation are unchanged by it."""
    if score not in PRESCREEN_SCORES:
        raise EfficiencyError(f'--prescreen {score!r}: one of {", ".join(PRESCREEN_SCORES)}')
    if pool is None:
        return Accelerator('prescreen', dict(prescreen=score), dict(prescreen=''),
                           f'pre-screen deferral by {score} (the best prescreen_keep of a generation train)')
    if not isinstance(pool, int) or pool < 1:
        raise EfficiencyError(f'--prescreen-pool {pool!r}: must be an integer >= 1')
    return Accelerator('prescreen', dict(prescreen=score, n_offsprings=pool),
                       dict(prescreen='', n_offsprings=offsprings),
                       f'pre-screen by {score}: a generation proposes {pool} offspring and the best '
                       f'prescreen_keep of them train')


def surrogate_accelerator() -> Accelerator:
    """The online surrogate's deferral (``SearchConfig.surrogate``, opt-in) as an accelerator:
    ``tools/search_efficiency.py --surrogate``."""
    return Accelerator('surrogate', dict(surrogate=True), dict(surrogate=False),
                       'online surrogate: a candidate whose optimistic predicted accuracy is dominated by a '
                       'result of the run is deferred')


def prior_accelerator(path: str, key: str = 'score', where: str = '', keep: float = 0.5,
                      features: str = 'syntax') -> Accelerator:
    """The prior's warm start (``SearchConfig.prior``, opt-in) as an accelerator:
    ``tools/search_efficiency.py --prior FILE`` (``prior_key`` / ``prior_where`` / ``prior_keep``
    from ``--set``). Its settings are the accelerator's: off, every prior field is at its default,
    so the naive search and the ``no_prior`` ablation are the same runs as without a prior."""
    if not path:
        raise EfficiencyError('--prior: give the file of prior results')
    on = dict(prior=path, prior_key=key, prior_where=where, prior_keep=float(keep), prior_features=features)
    default = SearchConfig()
    return Accelerator('prior', on, {k: getattr(default, k) for k in on},
                       f'prior warm start: a model fitted on results measured before the search (`{path}`, '
                       f'score `{key}`{", lines where " + where if where else ""}; {features} features) ranks '
                       f'each generation as NSGA-II does, on predicted score and cost; the best {keep:g} train, '
                       f'the others are deferred')


def variants(accelerators: Sequence[Accelerator] = ACCELERATORS) -> Dict[str, Dict[str, Any]]:
    """``{variant name: config fields}``: ``naive``, ``full``, then ``no_<name>`` per accelerator."""
    on: Dict[str, Any] = {}
    off: Dict[str, Any] = {}
    for a in accelerators:
        on.update(a.on)
        off.update(a.off)
    out = {'naive': dict(off), 'full': dict(on)}
    for a in accelerators:
        out[f'no_{a.name}'] = {**on, **a.off}
    return out


def variant_config(base: SearchConfig, variant: str, seed: int,
                   accelerators: Sequence[Accelerator] = ACCELERATORS, extend: int = 1) -> SearchConfig:
    """``base`` with the variant's switches and ``seed``; every variant but ``naive`` may search
    up to ``extend`` times the generations (it stops once it reaches the naive search's result)."""
    table = variants(accelerators)
    if variant not in table:
        raise EfficiencyError(f'unknown variant {variant!r}; known: {", ".join(table)}')
    gens = base.generations * (1 if variant == 'naive' else extend)
    return base.replace(seed=int(seed), generations=gens, **table[variant])


def naive_target(run_dir: str) -> Optional[Tuple[Callable[[np.ndarray], np.ndarray], float]]:
    """``(normalise, target)`` of a finished naive run: the normalisation of its admissible
    feasible points (its ideal -> 0, its nadir -> 1) and its final hypervolume under it (``None``
    if the run is not finished or has no such point). Every run of the seed is measured in this
    box (:func:`analyse`), and a search of the measurement stops once it reaches ``target``."""
    status, cfg, state = _run_state(run_dir)
    if status != 'finished':
        return None
    pts = _admissible_points(state.records.values(), cfg, _admissibility())
    if not len(pts):
        return None
    normalise, _ = hv_normaliser(pts)
    hv = HV(ref_point=np.full(cfg.n_objectives, REF))
    return normalise, float(hv(normalise(pts)))


def stop_at_target(target: Tuple[Callable[[np.ndarray], np.ndarray], float], cfg: SearchConfig
                   ) -> Callable[[Dict[int, Dict[str, Any]]], str]:
    """A ``Search(stop=...)`` criterion: the run's hypervolume (admissible feasible points, the
    naive run's box) has reached the naive run's final one. It reads the records only."""
    normalise, goal = target
    hv = HV(ref_point=np.full(cfg.n_objectives, REF))
    admissible = _admissibility()

    def stop(records: Dict[int, Dict[str, Any]]) -> str:
        pts = _admissible_points(records.values(), cfg, admissible)
        if len(pts) and float(hv(normalise(pts))) >= goal:
            return f"reached the naive search's final hypervolume ({goal:.4f})"
        return ''

    return stop


def _jsonable(d: Dict[str, Any]) -> Dict[str, Any]:
    return json.loads(json.dumps(d))


def _search_fields(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in _jsonable(with_defaults(d)).items() if k not in RESUMABLE_FIELDS}


def _run_state(run_dir: str) -> Tuple[str, Optional[SearchConfig], Optional[RunState]]:
    """``(status, config, state)`` of a run directory: ``missing`` / ``empty`` / ``unfinished`` /
    ``finished``."""
    cfg_path = os.path.join(run_dir, 'config.json')
    if not os.path.isdir(run_dir):
        return 'missing', None, None
    if not os.path.exists(cfg_path):
        return ('empty' if not os.listdir(run_dir) else 'foreign'), None, None
    try:
        with open(cfg_path, encoding='utf-8') as f:
            cfg = SearchConfig.from_dict(json.load(f))
    except (OSError, ValueError, TypeError) as e:
        raise EfficiencyError(f'{cfg_path}: unreadable search config ({e})') from e
    state = RunState.load(run_dir)
    return ('finished' if state.done else 'unfinished'), cfg, state


def run_measurement(base: SearchConfig, out_dir: str, *, seeds: int = 3, progress: bool = True,
                    command: str = '', accelerators: Sequence[Accelerator] = ACCELERATORS,
                    only: Optional[Sequence[str]] = None, extend: int = 1,
                    log: Callable[[str], None] = lambda s: None) -> Dict[Tuple[int, str], str]:
    """Run (or continue) every search of the measurement; returns ``{(seed, variant): action}``
    with action ``reused`` / ``resumed`` / ``new``. ``only``: run just these variants (for example
    ``naive`` and ``full`` of every seed first, the ablations later; the report takes what is
    there). ``extend``: every search but the naive one may run up to ``extend`` x the generations
    and stops after the first generation at which it reaches the naive search's final hypervolume
    (:func:`stop_at_target`; with no finished naive run of its seed it runs them all), so that
    a cheaper search gets the chance to reach that result. Each search session is logged to
    ``OUT/sessions.jsonl`` (load averages at its start and end, wall seconds, command)."""
    if not isinstance(extend, int) or extend < 1:
        raise EfficiencyError(f'--extend {extend!r}: must be an integer >= 1')
    seed_list = _seed_list(base, seeds)
    _check_base(base, accelerators)
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise EfficiencyError(f'--out {out_dir!r} exists and is not a directory')
    table = variants(accelerators)
    if only is not None:
        unknown = [v for v in only if v not in table]
        if unknown or not only:
            raise EfficiencyError(f'--variants {",".join(only)!r}: unknown variant {(unknown or [""])[0]!r}; '
                                  f'known: {", ".join(table)}')
        table = {k: v for k, v in table.items() if k in set(only)}
    os.makedirs(out_dir, exist_ok=True)
    # check every existing run first: a mismatch stops the measurement before anything is run
    plan = []
    for seed in seed_list:
        for name in table:
            cfg = variant_config(base, name, seed, accelerators, extend)
            run_dir = os.path.join(out_dir, f'seed-{seed}', name)
            status, saved, _ = _run_state(run_dir)
            if status == 'foreign':
                raise EfficiencyError(f'{run_dir} is not empty and not a search run; use another --out')
            if saved is not None:
                a, b = _search_fields(saved.to_dict()), _search_fields(cfg.to_dict())
                diff = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
                if diff:
                    k = diff[0]
                    raise EfficiencyError(f'{run_dir} was run with {k}={a.get(k)!r}, this measurement has '
                                          f'{k}={b.get(k)!r}; use another --out (or the same settings)')
            plan.append((seed, name, cfg, run_dir, status))
    actions: Dict[Tuple[int, str], str] = {}
    for seed, name, cfg, run_dir, status in plan:
        if status == 'finished':
            actions[(seed, name)] = 'reused'
            log(f'seed {seed} {name}: finished run reused ({run_dir})')
            continue
        action = 'resumed' if status == 'unfinished' else 'new'
        log(f'seed {seed} {name}: {"resuming" if action == "resumed" else "starting"} {run_dir}')
        t0, load0, started = time.perf_counter(), loadavg(), time.strftime('%Y-%m-%d %H:%M:%S')
        stop = None
        if name != 'naive' and extend > 1:
            target = naive_target(os.path.join(out_dir, f'seed-{seed}', 'naive'))
            stop = None if target is None else stop_at_target(target, cfg)
        if action == 'resumed':
            search = Search(None, run_dir, resume=True, progress=progress, stop=stop,
                            overrides=dict(workers=cfg.workers, dask_scheduler=cfg.dask_scheduler))
        else:
            search = Search(cfg, run_dir, progress=progress, stop=stop)
        search.run()
        append_line(os.path.join(out_dir, SESSIONS_FILE), json.dumps(dict(
            seed=seed, variant=name, action=action, started=started, load_start=load0,
            load_end=loadavg(), wall_s=time.perf_counter() - t0, workers=cfg.workers,
            machine=_machine(), command=command)))
        actions[(seed, name)] = action
    return actions


def _machine() -> str:
    return f'{platform.machine()}, {os.cpu_count()} cores'


def _seed_list(base: SearchConfig, seeds: int) -> List[int]:
    if not isinstance(seeds, int) or seeds < 1:
        raise EfficiencyError(f'seeds={seeds!r}: must be >= 1')
    return [base.seed + i for i in range(seeds)]


def _check_base(base: SearchConfig, accelerators: Sequence[Accelerator]) -> None:
    for a in accelerators:
        for k, v in a.on.items():
            if getattr(base, k) != v:
                raise EfficiencyError(f'{k}={getattr(base, k)!r}: the measurement switches the '
                                      f'accelerators itself; leave {k} at {v!r}')
    for field, (off, flag) in _OPT_IN.items():
        value = getattr(base, field)
        if value != off and not any(field in a.on for a in accelerators):
            raise EfficiencyError(f'{field}={value!r}: the naive search would have it too; measure it as an '
                                  f'accelerator ({flag(value)})')


#: the opt-in accelerators set on a base config: field -> (its off value, the option that measures it)
_OPT_IN: Dict[str, Tuple[Any, Callable[[Any], str]]] = {
    'rungs': (1, lambda v: f'--rungs {v}'),
    'prescreen': ('', lambda v: f'--prescreen {v}'),
    'surrogate': (False, lambda v: '--surrogate'),
    'prior': ('', lambda v: f'--prior {v}'),
}


# ---- curves ----------------------------------------------------------------------------------
def _uses_baselines(cfg: SearchConfig) -> bool:
    return bool(cfg.rejection)


def _cpu_of(rec: Dict[str, Any], cpu: bool) -> float:
    if cpu:
        return float(rec.get('cpu_seconds') or 0.0) + float(rec.get('check_cpu_seconds') or 0.0)
    return float(rec.get('seconds') or 0.0) + float(rec.get('check_seconds') or 0.0)


def has_cpu_seconds(state: RunState, cfg: SearchConfig) -> bool:
    """Whether every record (and charged baseline) of the run has its CPU time."""
    items = list(state.records.values())
    if _uses_baselines(cfg):
        items += list(state.baselines.values())
    return all('cpu_seconds' in r for r in items)


def curve(records: Sequence[Dict[str, Any]], baselines: Dict[str, Dict[str, Any]], cfg: SearchConfig,
          admissible: Callable[[Dict[str, Any]], bool], normalise: Callable[[np.ndarray], np.ndarray],
          cpu: bool = True) -> Dict[str, Any]:
    """Compute and hypervolume after each evaluation (in evaluation-index order).

    Returns lists ``idx``, ``cpu_s``, ``gflops`` (``nan`` once an unknown GFLOPs value has been
    met), ``hv``; and ``offset_cpu_s`` / ``offset_gflops`` (the baselines charged before the
    first evaluation), ``points`` (admissible feasible points), ``excluded`` (feasible results
    that are not admissible), ``lost`` (evaluations of unknown compute).
    """
    n_obj = cfg.n_objectives
    hv_ind = HV(ref_point=np.full(n_obj, REF))
    c_cpu, c_g = 0.0, 0.0
    if _uses_baselines(cfg):
        for b in baselines.values():
            c_cpu += _cpu_of(b, cpu)
            c_g = math.nan if b.get('gflops') is None else c_g + float(b['gflops'])
    out: Dict[str, Any] = dict(idx=[], cpu_s=[], gflops=[], hv=[], offset_cpu_s=c_cpu, offset_gflops=c_g,
                               points=0, excluded=0, lost=0)
    pts: List[List[float]] = []
    hv = 0.0
    for rec in sorted(records, key=lambda r: r['idx']):
        c_cpu += _cpu_of(rec, cpu)
        g = rec.get('gflops', 0.0)
        c_g = math.nan if g is None else c_g + float(g)
        out['lost'] += bool(rec.get('lost'))
        if rec.get('G') is not None and rec.get('F') is not None and rec['G'][0] <= 0:
            if admissible(rec):
                pts.append(list(rec['F']))
                hv = float(hv_ind(normalise(np.asarray(pts, dtype=float))))
            else:
                out['excluded'] += 1
        out['idx'].append(rec['idx'])
        out['cpu_s'].append(c_cpu)
        out['gflops'].append(c_g)
        out['hv'].append(hv)
    out['points'] = len(pts)
    return out


def hv_normaliser(points: np.ndarray) -> Tuple[Callable[[np.ndarray], np.ndarray], Dict[str, List[float]]]:
    """Per-objective map of ``points``' ideal to 0 and nadir to 1 (an objective without spread is
    only shifted); returns ``(function, {'ideal', 'nadir'})``."""
    points = np.asarray(points, dtype=float)
    if points.size == 0:
        return (lambda F: F), dict(ideal=[], nadir=[])
    ideal, nadir = points.min(axis=0), points.max(axis=0)
    scale = np.where(nadir - ideal > 0, nadir - ideal, 1.0)
    return (lambda F: (np.asarray(F, dtype=float) - ideal) / scale), dict(ideal=ideal.tolist(),
                                                                        nadir=nadir.tolist())


def reach(c: Dict[str, Any], target: float, unit: str = 'cpu_s') -> Optional[Tuple[int, float]]:
    """``(evaluation index, compute in unit)`` at the first evaluation where the hypervolume is
    ``>= target`` (relative tolerance 1e-9), or ``None`` if it never is."""
    tol = 1e-9 * max(1.0, abs(target))
    for i, hv in enumerate(c['hv']):
        if hv >= target - tol:
            return c['idx'][i], c[unit][i]
    return None


def median_ratio(values: Sequence[Optional[float]]) -> Tuple[Optional[float], str]:
    """Median over seeds where ``None`` (not reached) ranks below every ratio; returns
    ``(median, 'N.NNx')``, or ``(None, 'not reached')`` where the median falls on a seed that did
    not reach the target."""
    vals = [(-math.inf if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)) for v in values]
    if not vals:
        return None, 'n/a'
    vals.sort()
    n = len(vals)
    mid = vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2
    if math.isinf(mid):
        return None, 'not reached'
    return mid, f'{mid:.2f}x'


def _admissibility() -> Callable[[SearchConfig, Dict[str, Any]], bool]:
    """``admissible(cfg, record)``: could the full search return this result? (memoised)"""
    memo: Dict[Tuple[str, str], bool] = {}

    def admissible(cfg: SearchConfig, rec: Dict[str, Any]) -> bool:
        if cfg.program_check:
            return True  # checked before it was trained (or a cache answer for a checked genome)
        full = cfg.replace(program_check=True)
        key = (json.dumps(_search_fields(full.to_dict()), sort_keys=True), rec['genome'])
        if key not in memo:
            memo[key] = bool(precheck(rec['genome'], full)['ok'])
        return memo[key]

    return admissible


def _admissible_records(records, cfg: SearchConfig,
                        admissible: Callable[[SearchConfig, Dict[str, Any]], bool]) -> List[Dict[str, Any]]:
    """The feasible records the full search could return, in the given order."""
    return [r for r in records
            if r.get('G') is not None and r['G'][0] <= 0 and r.get('F') is not None and admissible(cfg, r)]


def _admissible_points(records, cfg: SearchConfig,
                       admissible: Callable[[SearchConfig, Dict[str, Any]], bool]) -> np.ndarray:
    """The objectives ``F`` of the feasible records the full search could return (an array of
    shape ``(n, n_objectives)``)."""
    pts = [list(r['F']) for r in _admissible_records(records, cfg, admissible)]
    return np.asarray(pts, dtype=float).reshape(len(pts), cfg.n_objectives)


def _counts(state: RunState) -> Dict[str, int]:
    c = dict(evaluations=0, trained=0, ok=0, check=0, protocol=0, crash=0, cached=0, lost=0, deferred=0)
    for r in state.records.values():
        c['evaluations'] += 1
        if r['status'] == 'cached':
            c['cached'] += 1
            continue
        if r.get('stage') in ('train', 'worker') or str(r.get('stage', '')).startswith('rung'):
            c['trained'] += 1
        if r.get('reason') == 'deferred':
            c['deferred'] += 1
        if r.get('lost'):
            c['lost'] += 1
        if r['status'] == 'ok':
            c['ok'] += 1
        elif r.get('stage') == 'check':
            c['check'] += 1
        elif r.get('reason') in PROTOCOL_REASONS:
            c['protocol'] += 1
        elif r.get('reason') == 'crash':
            c['crash'] += 1
    return c


def analyse(out_dir: str, seeds: Optional[Sequence[int]] = None,
            accelerators: Sequence[Accelerator] = ACCELERATORS) -> Dict[str, Any]:
    """Read every run under ``out_dir`` (finished or not) and compute the curves, the ratios and
    the ablation table; ``seeds``: the seeds to report (default: every ``seed-*`` folder)."""
    if not os.path.isdir(out_dir):
        raise EfficiencyError(f'{out_dir!r}: no such directory')
    if seeds is None:
        seeds = sorted(int(d.split('-', 1)[1]) for d in os.listdir(out_dir)
                       if d.startswith('seed-') and d.split('-', 1)[1].lstrip('-').isdigit())
    names = list(variants(accelerators))
    per_seed: Dict[int, Dict[str, Any]] = {}
    for seed in seeds:
        runs: Dict[str, Dict[str, Any]] = {}
        for name in names:
            run_dir = os.path.join(out_dir, f'seed-{seed}', name)
            status, cfg, state = _run_state(run_dir)
            if cfg is None or state is None or not state.records:
                continue
            runs[name] = dict(status=status, cfg=cfg, state=state, run_dir=run_dir)
        if runs:
            per_seed[seed] = _analyse_seed(runs)
    if not per_seed:
        raise EfficiencyError(f'{out_dir}: no search runs with evaluations to report '
                              f'(expected {os.path.join(out_dir, "seed-<seed>", "<variant>")})')
    return dict(out_dir=os.path.abspath(out_dir), variants=names,
                accelerators=[dict(name=a.name, on=a.on, off=a.off, doc=a.doc) for a in accelerators],
                seeds=per_seed, summary=_summarise(per_seed, names), sessions=_sessions(out_dir))


def _analyse_seed(runs: Dict[str, Dict[str, Any]]) -> Dict[str, Any]:
    admissible = _admissibility()
    # the box: the naive run's admissible points (its final hypervolume is the target every run is
    # measured against, and the criterion a search of the measurement stops at); without a naive
    # run, the union of the runs'
    boxed = [runs['naive']] if 'naive' in runs else list(runs.values())
    pts = [p for r in boxed for p in _admissible_points(r['state'].records.values(), r['cfg'], admissible).tolist()]
    normalise, box = hv_normaliser(np.asarray(pts, dtype=float))
    out: Dict[str, Any] = dict(box=box, runs={})
    for name, r in runs.items():
        cfg, state = r['cfg'], r['state']
        cpu = has_cpu_seconds(state, cfg)
        c = curve(list(state.records.values()), state.baselines, cfg,
                  lambda rec, cfg=cfg: admissible(cfg, rec), normalise, cpu=cpu)
        old = report.efficiency(cfg, state)
        out['runs'][name] = dict(
            status=r['status'], run_dir=r['run_dir'], cpu_measure='cpu' if cpu else 'wall',
            curve=c, final_hv=c['hv'][-1], total_cpu_s=c['cpu_s'][-1], total_gflops=c['gflops'][-1],
            wall_seconds=state.wall_seconds, counts=_counts(state), generations=state.generation,
            max_generations=cfg.generations, stopped=state.stopped,
            switches={k: getattr(cfg, k) for k in ACCELERATOR_FIELDS},
            same_candidates_speedup=old['speedup_seconds'])
    naive = out['runs'].get('naive')
    if naive is None:
        return out
    target = naive['final_hv']
    out['target_hv'] = target
    out['naive_finished'] = naive['status'] == 'finished'
    for name, run in out['runs'].items():
        run['reach'] = {}
        for unit in ('cpu_s', 'gflops'):
            naive_total = naive['curve'][unit][-1]
            got = reach(run['curve'], target, unit) if target > 0 else None
            own = reach(naive['curve'], target, unit) if target > 0 else None
            entry: Dict[str, Any] = dict(reached=got is not None, at_idx=None, compute=None,
                                         ratio_to_reach=None, ratio_total=None)
            if got is not None:
                entry.update(at_idx=got[0], compute=got[1])
                if got[1] > 0 and math.isfinite(got[1]):
                    if own is not None and math.isfinite(own[1]):
                        entry['ratio_to_reach'] = own[1] / got[1]
                    if math.isfinite(naive_total):
                        entry['ratio_total'] = naive_total / got[1]
            entry['naive_to_reach'] = None if own is None else own[1]
            entry['naive_total'] = naive_total
            run['reach'][unit] = entry
    out['oracle'] = _oracle(runs['naive'], normalise, target, admissible, naive)
    return out


def _oracle(run: Dict[str, Any], normalise, target: float, admissible, naive: Dict[str, Any]) -> Dict[str, Any]:
    """What a search that knew the naive search's results beforehand would spend: the training
    compute of the fewest of the naive run's own admissible results whose hypervolume is the target
    (its non-dominated points, less any whose removal keeps the hypervolume; the costliest tried
    first). Not a lower bound for every search (another search may reach the target with other
    genomes), but the scale of what any accelerator can gain over this naive search: the naive
    compute to reach its result over this."""
    cfg, state = run['cfg'], run['state']
    recs = _admissible_records(sorted(state.records.values(), key=lambda r: r['idx']), cfg, admissible)
    if not recs or target <= 0:
        return dict(n=0, cpu_s=None, gflops=None, ratio_cpu_s=None, ratio_gflops=None)
    F = np.asarray([r['F'] for r in recs], dtype=float)
    hv = HV(ref_point=np.full(cfg.n_objectives, REF))
    cost = lambda i: float(recs[i].get('cpu_seconds') or 0.0) + float(recs[i].get('check_cpu_seconds') or 0.0)  # noqa: E731
    keep = sorted(int(i) for i in NonDominatedSorting().do(F, only_non_dominated_front=True))
    for i in sorted(keep, key=lambda i: (-cost(i), i)):
        rest = [j for j in keep if j != i]
        if rest and float(hv(normalise(F[rest]))) >= target - 1e-12:
            keep = rest
    cpu = sum(cost(i) for i in keep)
    g = [recs[i].get('gflops') for i in keep]
    gflops = None if any(v is None for v in g) else float(sum(g))
    out: Dict[str, Any] = dict(n=len(keep), cpu_s=cpu, gflops=gflops, idx=[recs[i]['idx'] for i in keep])
    for unit, v in (('cpu_s', cpu), ('gflops', gflops)):
        own = naive['reach'][unit]['naive_to_reach'] if 'reach' in naive else None
        out[f'ratio_{unit}'] = own / v if own is not None and v else None
    return out


def _median(values: Sequence[float]) -> Optional[float]:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    return statistics.median(vals) if vals else None


def _summarise(per_seed: Dict[int, Dict[str, Any]], names: Sequence[str]) -> Dict[str, Any]:
    rows = {}
    for name in names:
        runs = [s['runs'][name] for s in per_seed.values() if name in s['runs'] and 'target_hv' in s]
        if not runs:
            continue
        row: Dict[str, Any] = dict(seeds=len(runs),
                                   final_hv=_median([r['final_hv'] for r in runs]),
                                   total_cpu_s=_median([r['total_cpu_s'] for r in runs]),
                                   total_gflops=_median([r['total_gflops'] for r in runs]),
                                   reached=sum(r['reach']['cpu_s']['reached'] for r in runs))
        for unit in ('cpu_s', 'gflops'):
            for kind in ('ratio_to_reach', 'ratio_total'):
                entries = [r['reach'][unit] for r in runs]
                if any(e['reached'] and e[kind] is None for e in entries):
                    m, text = None, 'n/a'  # reached, but some compute is unknown (GFLOPs not counted)
                else:
                    m, text = median_ratio([e[kind] if e['reached'] else None for e in entries])
                row[f'{kind}_{unit}'] = m
                row[f'{kind}_{unit}_text'] = text
        rows[name] = row
    return rows


def _sessions(out_dir: str) -> List[Dict[str, Any]]:
    return read_jsonl(os.path.join(out_dir, SESSIONS_FILE))[0]


# ---- report ------------------------------------------------------------------------------------
def _f(v: Optional[float], fmt: str = '.4f') -> str:
    return 'n/a' if v is None or (isinstance(v, float) and not math.isfinite(v)) else format(v, fmt)


def _ratio(v: Optional[float]) -> str:
    return 'n/a' if _f(v) == 'n/a' else f'{v:.2f}x'


def _ratio_text(entry: Dict[str, Any], kind: str) -> str:
    if not entry['reached']:
        return 'not reached'
    return _f(entry[kind], '.2f') + 'x' if entry[kind] is not None else 'n/a'


def _runs_in_order(seeds: Dict[Any, Dict[str, Any]], names: Sequence[str]):
    """``(seed, variant, run)`` of every run present, seed by seed in ``names`` order."""
    for seed, s in seeds.items():
        for name in names:
            r = s['runs'].get(name)
            if r is not None:
                yield seed, name, r


def write_report(result: Dict[str, Any], out_dir: str, command: str = '',
                 load_now: Optional[str] = None) -> Dict[str, str]:
    """``efficiency.md`` / ``.csv`` / ``.json`` / ``.png`` and ``curves.csv`` in ``out_dir``
    (atomic writes); returns their paths."""
    paths = {k: os.path.join(out_dir, f) for k, f in
             (('md', 'efficiency.md'), ('csv', 'efficiency.csv'), ('json', 'efficiency.json'),
              ('png', 'efficiency.png'), ('curves', 'curves.csv'))}
    seeds = result['seeds']
    names = result['variants']
    # per seed x variant table
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(['seed', 'variant', 'status', 'generations', 'max_generations', 'evaluations', 'trained',
                'rejected_check', 'rejected_protocol', 'deferred', 'crash', 'cached', 'lost', 'excluded_inadmissible', 'final_hv',
                'target_hv', 'cpu_s', 'gflops', 'cpu_measure', 'reached', 'reached_at_idx',
                'cpu_s_to_reach', 'gflops_to_reach', 'ratio_to_reach_cpu', 'ratio_total_cpu',
                'ratio_to_reach_gflops', 'ratio_total_gflops', 'wall_s'])
    for seed, name, r in _runs_in_order(seeds, names):
        c = r['counts']
        rc, rg = (r.get('reach') or {}).get('cpu_s'), (r.get('reach') or {}).get('gflops')
        w.writerow([seed, name, r['status'], r['generations'], r['max_generations'], c['evaluations'],
                    c['trained'], c['check'], c['protocol'], c['deferred'], c['crash'], c['cached'], c['lost'], r['curve']['excluded'], f'{r["final_hv"]:.6f}',
                    _f(seeds[seed].get('target_hv'), '.6f'), f'{r["total_cpu_s"]:.3f}', _f(r['total_gflops'], '.3f'),
                    r['cpu_measure'], '' if rc is None else int(rc['reached']),
                    '' if rc is None else _f(rc['at_idx'], 'd'),
                    '' if rc is None else _f(rc['compute'], '.3f'), '' if rg is None else _f(rg['compute'], '.3f'),
                    '' if rc is None else _f(rc['ratio_to_reach'], '.4f'),
                    '' if rc is None else _f(rc['ratio_total'], '.4f'),
                    '' if rg is None else _f(rg['ratio_to_reach'], '.4f'),
                    '' if rg is None else _f(rg['ratio_total'], '.4f'), f'{r["wall_seconds"]:.1f}'])
    atomic_write_text(paths['csv'], buf.getvalue())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(['seed', 'variant', 'idx', 'cpu_s', 'gflops', 'hv'])
    for seed, s in seeds.items():
        for name, r in s['runs'].items():
            cv = r['curve']
            for i in range(len(cv['idx'])):
                w.writerow([seed, name, cv['idx'][i], f'{cv["cpu_s"][i]:.4f}', _f(cv['gflops'][i], '.4f'),
                            f'{cv["hv"][i]:.6f}'])
    atomic_write_text(paths['curves'], buf.getvalue())
    atomic_write_json(paths['json'], dict(result, command=command))
    try:
        _plot(result, paths['png'])
    except Exception as e:  # noqa: BLE001 - a plotting failure must not lose the other outputs
        atomic_write_text(paths['png'] + '.error.txt', f'{type(e).__name__}: {e}\n')
    atomic_write_text(paths['md'], _markdown(result, command, load_now))
    return paths


def _markdown(result: Dict[str, Any], command: str, load_now: Optional[str]) -> str:
    seeds, names, summ = result['seeds'], result['variants'], result['summary']
    sessions = result['sessions']
    any_run = next(iter(next(iter(seeds.values()))['runs'].values()))
    with open(os.path.join(any_run['run_dir'], 'config.json'), encoding='utf-8') as f:
        cfg0 = SearchConfig.from_dict(json.load(f))
    machines = sorted({s['machine'] for s in sessions if s.get('machine')}) or [_machine()]
    L = ['# Search efficiency: compute to reach the naive search\'s result', '']
    if command:
        L += ['Produced by:', '', '```bash', command, '```', '']
        other = sorted({s.get('command', '') for s in sessions} - {command, ''})
        if other:
            L += ['Runs were also made by:', '', '```bash', *other, '```', '']
    full = summ.get('full')
    if full:
        head = f'**Full search vs naive search, median over {full["seeds"]} seed(s): '
        if full['ratio_to_reach_cpu_s'] is None and full['ratio_to_reach_cpu_s_text'] == 'not reached':
            head += (f'the full search does not reach the naive search\'s final hypervolume** (it does in '
                     f'{full["reached"]} of {full["seeds"]} seeds; per seed below).')
        else:
            head += (f'{full["ratio_to_reach_cpu_s_text"]} less CPU time and {full["ratio_to_reach_gflops_text"]} '
                     f'fewer GFLOPs to reach the naive search\'s final hypervolume** (naive compute to reach '
                     f'its own final hypervolume / full-search compute to reach it; reached in '
                     f'{full["reached"]} of {full["seeds"]} seeds). Against the naive search\'s total compute: '
                     f'{full["ratio_total_cpu_s_text"]} (CPU) and {full["ratio_total_gflops_text"]} (GFLOPs).')
        L += [head, '']
    unfinished = [(sd, n) for sd, s in seeds.items() for n, r in s['runs'].items() if r['status'] != 'finished']
    missing = [(sd, n) for sd, s in seeds.items() for n in names if n not in s['runs']]
    if unfinished or missing:
        L += ['**Provisional**: ' + '; '.join(
            ([f'unfinished runs: {", ".join(f"seed {a} {b}" for a, b in unfinished)}'] if unfinished else [])
            + ([f'missing runs: {", ".join(f"seed {a} {b}" for a, b in missing)}'] if missing else [])) + '.', '']
    cpu_kinds = {r['cpu_measure'] for s in seeds.values() for r in s['runs'].values()}
    gens = {n: r['max_generations'] for s in seeds.values() for n, r in s['runs'].items()}
    gens_naive = gens.get('naive', cfg0.generations)
    gens_max = max(gens.values())
    L += ['## Setting', '',
          f'Proxy `{cfg0.proxy}`, architectures {", ".join(cfg0.archs)}, {cfg0.epochs} epoch(s), '
          f'population {cfg0.pop_size}, {gens_naive} generation(s) (naive), offspring '
          f'{cfg0.n_offsprings or cfg0.pop_size}, objectives {", ".join(cfg0.objective_names)}; '
          f'torch threads per evaluation {cfg0.threads}, {cfg0.workers} worker process(es); seeds '
          f'{", ".join(str(s) for s in seeds)}. Machine: {"; ".join(machines)}.', '',
          'Compute is **CPU time of the evaluations** (CPU-seconds of the evaluating process, summed over '
          'evaluations, with the check and the baseline trainings a run needs), not wall time, and '
          'GFLOPs of the proxy trainings and evaluations. ' +
          ('Some runs predate CPU-time records: for them the evaluations\' wall seconds are used. '
           if 'wall' in cpu_kinds else '') +
          'Compute is accumulated in evaluation-index order (the order of a one-worker search).', '']
    loads = [(s.get('load_start'), s.get('load_end')) for s in sessions]
    if loads:
        L += [f'Load average (1, 5, 15 min) at the start of the first search session: {loads[0][0]}; '
              f'at the end of the last: {loads[-1][1]} ({len(sessions)} search session(s); every one in '
              f'`sessions.jsonl`).' + (f' At this report: {load_now}.' if load_now else ''), '']
    elif load_now:
        L += [f'Load average at this report: {load_now}.', '']
    L += ['Hypervolume: `pymoo.indicators.hv.HV` of the search\'s minimised objectives over every feasible '
          'evaluation so far whose genome passes the static and program checks (results of a run without '
          'the check that fail it are excluded: the full search could not return them). Per seed the '
          'objectives are normalised so that the naive run\'s points span [0, 1] (its ideal -> 0, its nadir '
          f'-> 1; a better point of another run lies below 0) and the reference point is {REF} in each (the '
          'naive nadir + 10 % of its range); the same for every run of the seed, and the naive run\'s final '
          'hypervolume in this box is the target.' + (
              f' Every search but the naive one may run up to {gens_max} generations (the naive one runs '
              f'{gens_naive}) and stops after the first generation at which it reaches the target: a '
              'cheaper search gets the chance to reach the naive result, and is not charged beyond it.'
              if gens_max > gens_naive else ''),
          '', '## Accelerators', '', '| accelerator | what it does | naive | ablation |', '|---|---|---|---|']
    for a in result['accelerators']:
        L.append(f'| {a["name"]} | {a["doc"]} | off | `no_{a["name"]}`: only this one off |')
    L += ['', '## Per seed: the full search against the naive search', '',
          '| seed | naive final HV | naive CPU-s (to reach / total) | full final HV | full CPU-s to reach '
          '| ratio CPU (to reach / total) | naive GFLOPs (to reach / total) | full GFLOPs to reach '
          '| ratio GFLOPs (to reach / total) |', '|---|---|---|---|---|---|---|---|---|']
    for seed, s in seeds.items():
        if 'target_hv' not in s or 'full' not in s['runs']:
            L.append(f'| {seed} | {"n/a" if "naive" not in s["runs"] else _f(s["runs"]["naive"]["final_hv"])} '
                     f'| | {"n/a" if "full" not in s["runs"] else _f(s["runs"]["full"]["final_hv"])} | '
                     f'(naive or full run missing) | | | | |')
            continue
        f, rc, rg = s['runs']['full'], s['runs']['full']['reach']['cpu_s'], s['runs']['full']['reach']['gflops']
        if s['target_hv'] <= 0:
            L.append(f'| {seed} | 0 | | {_f(f["final_hv"])} | naive found no admissible result: no target | | | | |')
            continue
        reach_cpu = _f(rc['compute'], '.1f') if rc['reached'] else f'not reached (HV {_f(f["final_hv"])})'
        reach_g = _f(rg['compute'], '.1f') if rg['reached'] else 'not reached'
        L.append(f'| {seed} | {_f(s["target_hv"])} | {_f(rc["naive_to_reach"], ".1f")} / {_f(rc["naive_total"], ".1f")} '
                 f'| {_f(f["final_hv"])} | {reach_cpu} | {_ratio_text(rc, "ratio_to_reach")} / '
                 f'{_ratio_text(rc, "ratio_total")} | {_f(rg["naive_to_reach"], ".1f")} / {_f(rg["naive_total"], ".1f")} '
                 f'| {reach_g} | {_ratio_text(rg, "ratio_to_reach")} / {_ratio_text(rg, "ratio_total")} |')
    oracle = [(seed, s['oracle']) for seed, s in seeds.items() if s.get('oracle') and s['oracle']['n']]
    if oracle:
        L += ['', '## The scale of the possible gain: a search that knew the naive results', '',
              '| seed | naive results needed for its HV | their CPU-s | naive CPU-s to reach its HV | ratio CPU '
              '| their GFLOPs | ratio GFLOPs |', '|---|---|---|---|---|---|---|']
        for seed, o in oracle:
            rc = seeds[seed]['runs']['naive']['reach']['cpu_s']
            L.append(f'| {seed} | {o["n"]} | {_f(o["cpu_s"], ".1f")} | {_f(rc["naive_to_reach"], ".1f")} '
                     f'| {_ratio(o["ratio_cpu_s"])} | {_f(o["gflops"], ".1f")} | {_ratio(o["ratio_gflops"])} |')
        med = _median([o['ratio_cpu_s'] for _, o in oracle])
        L += ['', f'Median {_ratio(med)} (CPU). A search that trained only the naive run\'s own results that make '
                  'its hypervolume (its non-dominated points, less any it does not need; no baseline, no '
                  'other candidate) would spend this; the ratio is the naive compute to reach its result '
                  'over it. It is the scale of what any accelerator can gain over this naive search, not a '
                  'bound on every search: another search may reach the target with other genomes.']
    L += ['', '## Ablation: each accelerator off in turn (median over seeds)', '',
          '| variant | seeds | final HV | CPU-s | GFLOPs | reached naive HV | ratio CPU (to reach / total) '
          '| ratio GFLOPs (to reach / total) |', '|---|---|---|---|---|---|---|---|']
    for name in names:
        row = summ.get(name)
        if row is None:
            continue
        L.append(f'| {name} | {row["seeds"]} | {_f(row["final_hv"])} | {_f(row["total_cpu_s"], ".1f")} | '
                 f'{_f(row["total_gflops"], ".1f")} | {row["reached"]} of {row["seeds"]} | '
                 f'{row["ratio_to_reach_cpu_s_text"]} / {row["ratio_total_cpu_s_text"]} | '
                 f'{row["ratio_to_reach_gflops_text"]} / {row["ratio_total_gflops_text"]} |')
    L += ['', '## Runs', '',
          '| seed | variant | status | generations | evaluations | trained | rejected: check | rejected: protocol '
          '| deferred | crash | cached | lost | excluded (inadmissible) | same-candidates speedup | wall s |',
          '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|']
    for seed, name, r in _runs_in_order(seeds, names):
        c = r['counts']
        status = r['status'] + (' (stopped at the target)' if r.get('stopped') else '')
        L.append(f'| {seed} | {name} | {status} | {r["generations"]} of {r["max_generations"]} | '
                 f'{c["evaluations"]} | {c["trained"]} | {c["check"]} | '
                 f'{c["protocol"]} | {c["deferred"]} | {c["crash"]} | {c["cached"]} | {c["lost"]} | '
                 f'{r["curve"]["excluded"]} | {_ratio(r["same_candidates_speedup"])} | {r["wall_seconds"]:.1f} |')
    L += ['', 'The *same-candidates speedup* is the figure each search prints (`summary.json`): the compute '
          'a naive search would spend on **the candidates this search proposed**, estimated from the mean '
          'full-budget training time, over the compute spent. It does not ask whether a naive search '
          'would find results as good, and it counts wall seconds. The ratios above compare two real '
          'searches at equal result quality.', '',
          'Files: `efficiency.csv` (one row per seed and run), `curves.csv` (compute and hypervolume after '
          'every evaluation), `efficiency.json`, `efficiency.png`; the runs are in `seed-<seed>/<variant>/`.',
          '']
    return '\n'.join(L)


def _plot(result: Dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), dpi=120)
    colours = {'naive': 'tab:blue', 'full': 'tab:red'}
    styles = ['-', '--', ':', '-.']
    for ax, unit, label in ((axes[0], 'cpu_s', 'CPU-seconds of evaluation'), (axes[1], 'gflops', 'GFLOPs')):
        span = []
        for k, (seed, s) in enumerate(result['seeds'].items()):
            for name in ('naive', 'full'):
                r = s['runs'].get(name)
                if r is None:
                    continue
                x = np.asarray(r['curve'][unit], dtype=float)
                y = np.asarray(r['curve']['hv'], dtype=float)
                ok = np.isfinite(x) & (x > 0)
                if not ok.any():
                    continue
                span += [x[ok].min(), x[ok].max()]
                ax.step(x[ok], y[ok], where='post', c=colours[name], ls=styles[k % len(styles)], lw=1.4,
                        label=f'{name}, seed {seed}')
                if name == 'full' and 'target_hv' in s and s['runs']['full']['reach'][unit]['reached']:
                    e = s['runs']['full']['reach'][unit]
                    ax.plot([e['compute']], [s['target_hv']], 'o', c=colours['full'], ms=5)
            if 'target_hv' in s:
                ax.axhline(s['target_hv'], c='0.6', lw=0.8, ls=styles[k % len(styles)])
        if span and max(span) / max(min(span), 1e-12) > 20:
            ax.set_xscale('log')
        ax.set_xlabel(label)
        ax.set_ylabel('hypervolume (normalised per seed)')
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc='lower right')
    fig.suptitle('Hypervolume against compute (grey: naive final hypervolume; dot: full search reaches it)',
                 fontsize=9)
    fig.tight_layout()
    atomic_savefig(fig, path)
    plt.close(fig)
