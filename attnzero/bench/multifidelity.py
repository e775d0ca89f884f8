"""Building a multi-fidelity bench (format version 2): every genome at the first rung, the best and a
random part of each batch promoted to the first budget, a chosen set at the longest budget.

The plan (:class:`LevelPlan`), in the order the builder runs it:

1. **references**: every zoo attention of :data:`ZOO_REFERENCES` and the published genomes of
   :data:`attnzero.bench.evaluate.REFERENCE_GENOME_NAMES`, at ``reference_seeds`` seeds, the first
   budget through its rungs (``baselines.jsonl``);
2. **genomes** in a fixed candidate sequence: first the distinct genomes evaluated by the search runs
   named in ``runs`` (their ``evaluations.jsonl``: the fronts and neighbourhoods a real search
   visits; ``source.kind='search'``), then the seeded random stream of the space
   (``source.kind='random'``). Functionally equivalent genomes (hash or fingerprint) are taken once.
   A genome that fails the program check is recorded as such; every other one is trained to the
   first rung (``bench.jsonl``), in batches of ``batch`` trained genomes. After each batch its
   ``promote_top`` best genomes by rung accuracy, and ``promote_random`` drawn from the rest with
   a generator seeded by the sampler seed and the batch, continue their paused rung runs to the
   first budget (``levels.jsonl``, ``selection`` ``'top'`` / ``'random'``). Genomes stopped by the
   rejection protocol at the rung are not promoted (a search drops them too). Batches run until
   ``n`` genomes are trained at the rung and ``n_full`` at the first budget;
3. **long budget**: ``n_long`` of the first-budget genomes (the best ``long_top`` by first-budget
   score, the rest drawn at random from the others) and every reference at ``reference_long_seeds``
   are trained for the longest budget (their own schedule; ``levels.jsonl``);
4. **other architectures** (``cross_archs``): ``n_cross`` of the genomes promoted at random (an
   unbiased sample) and every reference, seed 0, at the first budget in each of them, for the rank
   agreement between architectures (``levels.jsonl`` lines with ``arch``);
5. **retest** (``n_retest``): the first ``n_retest`` genomes of the random stream trained at the rung
   (an unbiased sample of the space, in batch order), trained again to the rung at ``retest_seeds``
   (``levels.jsonl`` lines with ``retest: true``). Their agreement with the seed-0 rung scores is
   the test-retest reliability of a single-seed score: the ceiling of any predictor's rank agreement
   with the bench (the surrogate's included). The retest runs never enter a record's ``scores``;
   they are its ``retest`` / ``retest_scores``.

Everything is deterministic in the settings, the plan and the sampler seed, so a killed build resumes
where it stopped: records and level lines are appended one by one (fsync), the paused training
states of a batch wait in ``states/`` until its promotions are written (a lost state is retrained:
the same run), and a resume walks the same sequence, skipping what is recorded. Evaluations run
in-process, on local worker processes or on Dask workers (:func:`attnzero.search.executor.make_executor`).
"""
from __future__ import annotations

import logging
import os
import pickle
import signal
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from attnzero.io import atomic_write_bytes, read_jsonl as _read_jsonl
from attnzero.search.evaluate import precheck
from attnzero.search.executor import make_executor
from attnzero.space import REFERENCE_GENOMES, Genome, fingerprint

from .build import (BUILD_FILE, STOP_FILE, _compute, load_build_info, locked, random_stream, resume_info,
                    save_info)
from .build import finalize as _finalize
from .evaluate import (REFERENCE_GENOME_NAMES, BenchSettings, baseline_eval_task,
                       evaluate_task, level_task)
from .format import (BASELINES_FILE, BENCH_FILE, LEVELS_FILE, BenchError, append_record,
                     read_jsonl, sha256_file)
from .records import budget_key

__all__ = ['LevelPlan', 'ZOO_REFERENCES', 'build_levels', 'candidate_sequence', 'status', 'finalize',
           'STATES_DIR']

log = logging.getLogger('attnzero.bench')

#: the zoo attentions a multi-fidelity bench trains as references (the proxy-fidelity tool's set)
ZOO_REFERENCES = ('softmax', 'linear', 'relu_linear', 'focused', 'hydra', 'agent', 'identity')
#: where the paused rung states of the batch in progress wait for their promotion
STATES_DIR = 'states'


@dataclass
class LevelPlan:
    """Who is trained to which level (see the module docstring)."""

    n: int = 2000
    n_full: int = 500
    n_long: int = 30
    batch: int = 24
    promote_top: int = 4
    promote_random: int = 2
    long_top: int = 15
    reference_seeds: List[int] = field(default_factory=lambda: [0, 1, 2, 3, 4])
    reference_long_seeds: List[int] = field(default_factory=lambda: [0])
    runs: List[str] = field(default_factory=list)
    cross_archs: List[str] = field(default_factory=list)
    n_cross: int = 0
    n_retest: int = 0
    retest_seeds: List[int] = field(default_factory=lambda: [1])

    #: fields a resumed build may change (growing the bench); the others fix its sequence
    GROWABLE = ('n', 'n_full', 'n_long', 'long_top', 'cross_archs', 'n_cross', 'n_retest')

    def __post_init__(self) -> None:
        if self.batch < 1 or self.promote_top < 0 or self.promote_random < 0:
            raise ValueError(f'bad plan: batch {self.batch}, promote_top {self.promote_top}, '
                             f'promote_random {self.promote_random}')
        if self.promote_top + self.promote_random > self.batch:
            raise ValueError(f'promote_top + promote_random ({self.promote_top + self.promote_random}) '
                             f'exceeds the batch ({self.batch})')
        if self.n_full > 0 and self.promote_top + self.promote_random == 0:
            raise ValueError('n_full > 0 needs promotions (promote_top or promote_random)')
        if not 0 <= self.long_top <= self.n_long:
            raise ValueError(f'long_top must be between 0 and n_long ({self.n_long}), got {self.long_top}')
        if self.n_retest < 0:
            raise ValueError(f'n_retest must be >= 0, got {self.n_retest}')
        self.retest_seeds = [int(s) for s in self.retest_seeds]
        if self.n_retest and (not self.retest_seeds or 0 in self.retest_seeds):
            raise ValueError(f'retest_seeds must be seeds other than the bench\'s seed 0, got {self.retest_seeds}')
        self.runs = [str(r) for r in self.runs]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> 'LevelPlan':
        return cls(**d)


# ----------------------------------------------------------------------------- the sequence
def _run_genomes(path: str) -> Iterator[Tuple[int, str]]:
    """``(index, genome text)`` of a search run's ``evaluations.jsonl``, in its order."""
    recs, _ = _read_jsonl(path)
    for i, r in enumerate(recs):
        if r.get('genome'):
            yield i, r['genome']


def candidate_sequence(plan: LevelPlan, sampler_seed: int, space: str = 'default', root: str = '.'
                       ) -> Iterator[Tuple[Dict[str, Any], Genome, str]]:
    """The build's deterministic candidate sequence: ``(source, genome, fingerprint)``, the search
    runs' genomes first, then the random stream; each function (hash or fingerprint) once."""
    seen_hash: set = set()
    seen_fec: set = set()

    def fresh(g: Genome) -> Optional[str]:
        if g.hash in seen_hash:
            return None
        fp = fingerprint(g)
        seen_hash.add(g.hash)
        if fp in seen_fec:
            return None
        seen_fec.add(fp)
        return fp

    for path in plan.runs:
        full = path if os.path.isabs(path) else os.path.join(root, path)
        for i, text in _run_genomes(full):
            try:
                g = Genome.parse(text)
            except Exception:  # noqa: BLE001 - a run may hold a genome this version cannot parse
                continue
            fp = fresh(g)
            if fp is not None:
                yield dict(kind='search', run=path, index=i), g, fp
    for i, g in random_stream(sampler_seed, space):
        fp = fresh(g)
        if fp is not None:
            yield dict(kind='random', sampler_seed=sampler_seed, space=space, index=i), g, fp


def promotions(batch_records: Sequence[Dict[str, Any]], plan: LevelPlan, sampler_seed: int,
               batch: int, rung_key: str) -> List[Tuple[Dict[str, Any], str]]:
    """``[(record, 'top' | 'random')]``: the genomes of a batch promoted to the first budget."""
    ok = [r for r in batch_records if r['status'] == 'ok' and (r.get('scores') or {}).get(rung_key) is not None]
    ok.sort(key=lambda r: (-r['scores'][rung_key], r['genome']))
    top = ok[:plan.promote_top]
    rest = sorted(ok[plan.promote_top:], key=lambda r: r['genome'])
    rng = np.random.default_rng([int(sampler_seed), int(batch)])
    k = min(plan.promote_random, len(rest))
    picked = sorted(rng.choice(len(rest), size=k, replace=False).tolist()) if k else []
    return [(r, 'top') for r in top] + [(rest[i], 'random') for i in picked]


def long_selection(full_records: Sequence[Dict[str, Any]], plan: LevelPlan, sampler_seed: int,
                   full_key: str) -> List[Tuple[Dict[str, Any], str]]:
    """``[(record, 'top' | 'random')]``: the genomes trained for the longest budget."""
    ranked = sorted(full_records, key=lambda r: (-r['scores'][full_key], r['genome']))
    top = ranked[:plan.long_top]
    rest = sorted(ranked[plan.long_top:], key=lambda r: r['genome'])
    rng = np.random.default_rng([int(sampler_seed), 10 ** 6])
    k = min(plan.n_long - len(top), len(rest))
    picked = sorted(rng.choice(len(rest), size=k, replace=False).tolist()) if k > 0 else []
    return [(r, 'top') for r in top] + [(rest[i], 'random') for i in picked]


def retest_pool(records) -> List[Dict[str, Any]]:
    """The genomes the retest level draws from, in its order: those of the random stream trained at
    the rung (ok or stopped by the rejection protocol), by batch and stream index."""
    return sorted((r for r in records if r['status'] != 'check_failed'
                   and (r.get('source') or {}).get('kind') == 'random'),
                  key=lambda r: (r.get('batch') or 0, r['source'].get('index', 0), r['genome']))


# ----------------------------------------------------------------------------- the build
class _Stop(BaseException):
    """SIGTERM, a STOP file or the time budget: stop after the evaluation in progress."""


class _Builder:
    def __init__(self, out_dir: str, settings: BenchSettings, plan: LevelPlan, sampler_seed: int,
                 space: str, executor, root: str, max_seconds: Optional[float], progress: bool) -> None:
        self.out, self.settings, self.plan = out_dir, settings, plan
        self.sampler_seed, self.space, self.root = sampler_seed, space, root
        self.executor = executor
        self.sdict = settings.to_dict()
        self.rung_key = budget_key(settings.rungs[0])
        self.full_key = budget_key(settings.budgets[0])
        self.t0 = time.monotonic()
        self.max_seconds = max_seconds
        self.bench_path = os.path.join(out_dir, BENCH_FILE)
        self.base_path = os.path.join(out_dir, BASELINES_FILE)
        self.levels_path = os.path.join(out_dir, LEVELS_FILE)
        self.states_dir = os.path.join(out_dir, STATES_DIR)
        os.makedirs(self.states_dir, exist_ok=True)
        self.records: Dict[str, Dict[str, Any]] = {}
        for r in self._read(self.bench_path):
            if r.get('settings_id') != settings.id:
                raise BenchError(f'{self.bench_path}: record {r.get("genome")} has settings '
                                 f'{r.get("settings_id")}, not {settings.id}')
            self.records[r['hash']] = r
        self.baselines = {self._base_key(b): b for b in self._read(self.base_path)}
        self.levels: Dict[Tuple[str, int, Optional[str]], Dict[str, Any]] = {}
        self.retests: Dict[str, Dict[str, Any]] = {}  # the retest lines, by record key
        for ln in self._read(self.levels_path):
            self._index_level(ln)
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=plan.n, initial=min(self.n_rung(), plan.n), desc='bench v2 (rung)',
                            unit='genome', dynamic_ncols=True)

    @staticmethod
    def _read(path: str, repair: bool = True) -> List[Dict[str, Any]]:
        """The lines of ``path`` (none if it does not exist); a torn last line is dropped, and cut
        from the file with ``repair`` (only the build itself may: it alone appends)."""
        recs, dropped = read_jsonl(path, repair=repair) if os.path.exists(path) else ([], 0)
        if dropped and repair:
            log.warning('%s: dropped a torn last line (interrupted append)', path)
        return recs

    @staticmethod
    def _base_key(b: Dict[str, Any]) -> str:
        return b.get('hash') or b['name']

    # ---- counts -----------------------------------------------------------------------------
    def n_rung(self) -> int:
        return sum(1 for r in self.records.values() if r['status'] != 'check_failed')

    def n_full(self) -> int:
        return sum(1 for (k, b, a) in self.levels if b == self.settings.budgets[0] and a is None
                   and k in self.records)

    # ---- plumbing ---------------------------------------------------------------------------
    def _check_stop(self) -> None:
        stop = os.path.join(self.out, STOP_FILE)
        if os.path.exists(stop):
            os.unlink(stop)
            log.warning('%s found: stopping', stop)
            raise _Stop()
        if self.max_seconds is not None and time.monotonic() - self.t0 > self.max_seconds:
            log.info('time budget reached: stopping')
            raise _Stop()

    def _run(self, jobs: List[Tuple[str, Any, Dict[str, Any]]]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """Results of ``jobs`` as they come; a lost one stops the build (a resume retries it)."""
        lost = []
        for key, res in self.executor.run(jobs):
            if res.get('lost') or ('runs' not in res and res.get('status') != 'check_failed'):
                log.warning('evaluation %s lost (%s: %s); a resumed build retries it', key,
                            res.get('reason'), res.get('message'))
                lost.append(key)
                continue
            yield key, res
        if lost:
            raise BenchError(f'{len(lost)} evaluation(s) lost ({", ".join(lost[:5])}); resume the build '
                             f'to retry them')

    def _state_path(self, h: str) -> str:
        return os.path.join(self.states_dir, f'{h}.pkl')

    def _save_states(self, h: str, states: Dict[str, bytes]) -> None:
        atomic_write_bytes(self._state_path(h), pickle.dumps(states, protocol=pickle.HIGHEST_PROTOCOL))

    def _load_states(self, h: str) -> Optional[Dict[str, bytes]]:
        p = self._state_path(h)
        if not os.path.exists(p):
            return None
        with open(p, 'rb') as f:
            return pickle.load(f)

    def _drop_states(self, h: str) -> None:
        try:
            os.unlink(self._state_path(h))
        except FileNotFoundError:
            pass

    def _index_level(self, line: Dict[str, Any]) -> None:
        if line.get('retest'):
            self.retests[line['key']] = line
        else:
            self.levels[(line['key'], line['budget'], line.get('arch'))] = line

    def _append_level(self, line: Dict[str, Any]) -> None:
        append_record(self.levels_path, line)
        self._index_level(line)
        log.info('level %s ep %s %s %s: %s', line['budget'], line.get('arch') or '', line.get('selection'),
                 line['key'], [r['acc'] for r in line['runs']])

    # ---- phases -----------------------------------------------------------------------------
    def references(self) -> None:
        jobs = []
        seeds = list(self.plan.reference_seeds)
        first = [self.settings.budgets[0]]
        for name in ZOO_REFERENCES:
            if name not in self.baselines:
                jobs.append((f'base-{name}', baseline_eval_task,
                             dict(attn=name, settings=self.sdict, seeds=seeds, budgets=first,
                                  source=dict(kind='reference'))))
        for name in REFERENCE_GENOME_NAMES:
            g = REFERENCE_GENOMES[name]
            if g.hash not in self.baselines:
                jobs.append((f'base-{name}', evaluate_task,
                             dict(genome=g.to_string(), settings=self.sdict, seeds=seeds, budgets=first,
                                  role='reference', name=name, source=dict(kind='reference'))))
        for key, res in self._run(jobs):
            append_record(self.base_path, res)
            self.baselines[self._base_key(res)] = res
            log.info('reference %s: score %s (%.1f s)', key, res.get('score'), res.get('eval_seconds', 0))
            self._check_stop()

    def genomes(self) -> None:
        plan = self.plan
        members: List[Tuple[Dict[str, Any], Genome, str]] = []
        batch = 0
        cfg0 = self.settings.config(epochs=self.settings.budgets[-1])
        for source, g, fp in candidate_sequence(plan, self.sampler_seed, self.space, self.root):
            if not members and self.n_rung() >= plan.n and self.n_full() >= plan.n_full:
                break
            rec = self.records.get(g.hash)
            if rec is None and not precheck(g.to_string(), cfg0)['ok']:
                rec = evaluate_task(dict(genome=g.to_string(), fec=fp, settings=self.sdict,
                                         source=source))
                append_record(self.bench_path, rec)
                self.records[g.hash] = rec
            if rec is not None and rec['status'] == 'check_failed':
                continue
            members.append((source, g, fp))
            if len(members) == plan.batch:
                self._batch(batch, members)  # (it stops after an evaluation, never between batches:
                batch += 1                   # a resume replays the done batches without work)
                members = []

    def _batch(self, batch: int, members: List[Tuple[Dict[str, Any], Genome, str]]) -> None:
        jobs = []
        for source, g, fp in members:
            rec = self.records.get(g.hash)
            if rec is None:
                jobs.append((g.hash, evaluate_task,
                             dict(genome=g.to_string(), fec=fp, settings=self.sdict, source=source,
                                  level='rung', batch=batch)))
            elif rec.get('batch') != batch:
                raise BenchError(f'{self.bench_path}: {rec["genome"]} was trained in batch '
                                 f'{rec.get("batch")}, the sequence puts it in batch {batch} (the '
                                 f'plan or the search runs it reads changed; build a new bench)')
        for h, res in self._run(jobs):
            states = res.pop('_states', None) or {}
            if states:
                self._save_states(h, states)  # before the record: a written record's state exists
            append_record(self.bench_path, res)
            self.records[h] = res
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(batch=batch, full=self.n_full(), refresh=False)
            self._check_stop()
        batch_recs = [self.records[g.hash] for _, g, _ in members]
        chosen = promotions(batch_recs, self.plan, self.sampler_seed, batch, self.rung_key)
        chosen_hashes = {r['hash'] for r, _ in chosen}
        for r in batch_recs:
            if r['hash'] not in chosen_hashes:
                self._drop_states(r['hash'])
        b0 = self.settings.budgets[0]
        jobs = []
        for r, why in chosen:
            if (r['hash'], b0, None) in self.levels:
                self._drop_states(r['hash'])
                continue
            jobs.append((r['hash'], level_task,
                         dict(key=r['hash'], genome=r['genome'], settings=self.sdict, budget=b0,
                              states=self._load_states(r['hash']), selection=why, batch=batch)))
        for h, line in self._run(jobs):
            self._append_level(line)
            self._drop_states(h)
            self._check_stop()

    def long_budget(self) -> None:
        plan, long_b = self.plan, self.settings.budgets[-1]
        if long_b == self.settings.budgets[0] or plan.n_long == 0:
            return
        b0 = self.settings.budgets[0]
        full = []
        for (key, b, arch), line in self.levels.items():  # (long_selection orders them)
            if b != b0 or arch is not None or key not in self.records:
                continue
            accs = [r['acc'] if r['status'] == 'ok' else self.records[key]['proxy']['chance']
                    for r in line['runs']]
            full.append(dict(self.records[key], scores={self.full_key: sum(accs) / len(accs)}))
        jobs = []
        for r, why in long_selection(full, plan, self.sampler_seed, self.full_key):
            if (r['hash'], long_b, None) not in self.levels:
                jobs.append((f'long-{r["hash"]}', level_task,
                             dict(key=r['hash'], genome=r['genome'], settings=self.sdict, budget=long_b,
                                  selection=why)))
        jobs += self._reference_jobs(long_b, list(plan.reference_long_seeds))
        for _, line in self._run(jobs):
            self._append_level(line)
            self._check_stop()

    def _reference_jobs(self, budget: int, seeds: List[int], arch: Optional[str] = None) -> list:
        """A level of every reference (zoo attention or published genome) not yet in the levels."""
        jobs = []
        for key, base in sorted(self.baselines.items()):
            if (key, budget, arch) in self.levels:
                continue
            payload = dict(key=key, settings=self.sdict, budget=budget, selection='reference',
                           seeds=seeds, name=base.get('name'), arch=arch)
            if base.get('genome'):
                payload['genome'] = base['genome']
            else:
                payload['attn'] = base['attn']
            jobs.append((f'{arch or "long"}-{key}', level_task, payload))
        return jobs

    def cross_archs(self) -> None:
        """The cross-architecture level: ``n_cross`` genomes promoted at random (an unbiased sample,
        in batch order) and every reference, seed 0, trained at the first budget (through the rung)
        in each architecture of ``cross_archs``."""
        plan, b0 = self.plan, self.settings.budgets[0]
        if not plan.cross_archs:
            return
        rnd = sorted((r for (key, b, a), line in self.levels.items() if b == b0 and a is None
                      and line.get('selection') == 'random' and key in self.records
                      for r in [self.records[key]]), key=lambda r: (r.get('batch') or 0, r['genome']))
        chosen = rnd[:plan.n_cross]
        jobs = []
        for arch in plan.cross_archs:
            if arch in self.settings.archs:
                raise BenchError(f'cross architecture {arch!r} is one of the bench\'s {self.settings.archs}')
            for r in chosen:
                if (r['hash'], b0, arch) not in self.levels:
                    jobs.append((f'cross-{arch}-{r["hash"]}', level_task,
                                 dict(key=r['hash'], genome=r['genome'], settings=self.sdict, budget=b0,
                                      arch=arch, selection='cross', batch=r.get('batch'))))
            jobs += self._reference_jobs(b0, [0], arch)
        for _, line in self._run(jobs):
            self._append_level(line)
            self._check_stop()

    def retest(self) -> None:
        """The retest level: the first ``n_retest`` genomes of the random stream trained at the rung
        (ok or stopped by the rejection protocol: an unbiased sample of the trainable space, in batch
        order) trained to the rung again at each of ``retest_seeds``."""
        plan, b0 = self.plan, self.settings.budgets[0]
        if not plan.n_retest:
            return
        if not self.settings.rungs:
            raise BenchError('the retest level retrains the rung: the bench has no rungs')
        jobs = []
        for r in retest_pool(self.records.values())[:plan.n_retest]:
            if r['hash'] not in self.retests:
                jobs.append((f'retest-{r["hash"]}', level_task,
                             dict(key=r['hash'], genome=r['genome'], settings=self.sdict, budget=b0,
                                  seeds=list(plan.retest_seeds), rung_only=True, selection='retest',
                                  batch=r.get('batch'))))
        for _, line in self._run(jobs):
            self._append_level(line)
            self._check_stop()


def status(out_dir: str) -> Dict[str, Any]:
    """Where a multi-fidelity build stands, from its files alone (safe while it runs): whether its
    plan is done (``complete``), genomes per level against the plan, references, the CPU hours
    spent, the mean CPU seconds of each kind of run so far, and the CPU hours the rest of the plan
    would take at those means (a projection)."""
    info = load_build_info(out_dir)
    if not info or 'plan' not in info:
        raise BenchError(f'{out_dir} holds no multi-fidelity build ({BUILD_FILE} with a plan)')
    plan = LevelPlan.from_dict(info['plan'])
    settings = BenchSettings.from_dict(info['settings'])
    recs, bases, all_lines = (_Builder._read(os.path.join(out_dir, name), repair=False)  # (it may be running)
                              for name in (BENCH_FILE, BASELINES_FILE, LEVELS_FILE))
    lines = [ln for ln in all_lines if not ln.get('retest')]
    retests = [ln for ln in all_lines if ln.get('retest')]
    b0, long_b = settings.budgets[0], settings.budgets[-1]

    def cpu(runs):
        return [float(r['cpu_seconds']) for r in runs if r.get('cpu_seconds') is not None]

    rung_cpu = cpu(r for rec in recs for r in rec.get('runs') or [])
    full_cpu = cpu(r for ln in lines if ln['budget'] == b0 and not ln.get('arch') for r in ln['runs'])
    long_cpu = cpu(r for ln in lines if ln['budget'] == long_b and not ln.get('arch') for r in ln['runs'])
    cross_cpu = cpu(r for ln in lines if ln.get('arch') for r in ln['runs'])
    retest_cpu = cpu(r for ln in retests for r in ln['runs'])
    trained = sum(1 for r in recs if r['status'] != 'check_failed')
    n_full = sum(1 for ln in lines if ln['budget'] == b0 and not ln.get('arch'))
    n_long = sum(1 for ln in lines if ln['budget'] == long_b and not ln.get('arch') and not ln.get('name'))
    n_cross = sum(1 for ln in lines if ln.get('arch') and not ln.get('name'))
    ref_long = sum(1 for ln in lines if ln['budget'] == long_b and not ln.get('arch') and ln.get('name'))
    ref_cross = sum(1 for ln in lines if ln.get('arch') and ln.get('name'))
    pool = sum(1 for ln in lines if ln['budget'] == b0 and not ln.get('arch') and ln.get('selection') == 'random'
               and not ln.get('name'))
    n_refs_all = len(ZOO_REFERENCES) + len(REFERENCE_GENOME_NAMES)
    n_retest = len(retests)
    n_pool = len(retest_pool(recs))
    complete = (trained >= plan.n and n_full >= plan.n_full and n_long >= min(plan.n_long, n_full)
                and len(bases) >= n_refs_all
                and (long_b == b0 or ref_long >= n_refs_all)
                and n_cross >= len(plan.cross_archs) * min(plan.n_cross, pool)
                and ref_cross >= len(plan.cross_archs) * n_refs_all
                and n_retest >= min(plan.n_retest, n_pool))
    mean = lambda xs: sum(xs) / len(xs) if xs else None  # noqa: E731
    spent = _compute(recs, bases, all_lines)['cpu_hours']
    per = dict(rung=mean(rung_cpu), full_continued=mean(full_cpu), long=mean(long_cpu),
               cross=mean(cross_cpu), retest=mean(retest_cpu))
    left = None
    if per['rung'] and per['full_continued']:
        long_s = per['long'] or per['full_continued'] * (long_b / b0) * 1.0
        cross_s = per['cross'] or per['rung'] + per['full_continued']
        n_refs = len(ZOO_REFERENCES) + len(REFERENCE_GENOME_NAMES)
        left = (max(0, plan.n - trained) * per['rung'] + max(0, plan.n_full - n_full) * per['full_continued']
                + max(0, plan.n_long - n_long) * long_s
                + max(0, n_refs - len(bases)) * len(plan.reference_seeds) * (per['rung'] + per['full_continued'])
                + max(0, n_refs - ref_long) * len(plan.reference_long_seeds) * long_s
                + max(0, len(plan.cross_archs) * (plan.n_cross + n_refs) - n_cross - ref_cross) * cross_s
                + max(0, plan.n_retest - n_retest) * len(plan.retest_seeds) * (per['retest'] or per['rung'])
                ) / 3600.0
    return dict(complete=bool(complete), records=len(recs), check_failed=len(recs) - trained, rung=trained, full=n_full,
                long=n_long, cross=n_cross, retest=n_retest, references=len(bases),
                plan=dict(n=plan.n, n_full=plan.n_full, n_long=plan.n_long, n_cross=plan.n_cross,
                          n_retest=plan.n_retest),
                cpu_hours_spent=round(spent, 3), cpu_seconds_per_run={k: None if v is None else round(v, 1)
                                                                     for k, v in per.items()},
                cpu_hours_left_projected=None if left is None else round(left, 2),
                states_waiting=len(os.listdir(os.path.join(out_dir, STATES_DIR)))
                if os.path.isdir(os.path.join(out_dir, STATES_DIR)) else 0)


def finalize(out_dir: str, command: str, parquet: bool = False) -> Dict[str, Any]:
    """:func:`attnzero.bench.build.finalize` with the plan's progress in the manifest: ``complete``
    (whether the plan is done; :func:`attnzero.bench.load` refuses an unfinished bench unless
    ``partial=True``) and ``plan_progress``."""
    st = status(out_dir)
    return _finalize(out_dir, command, parquet=parquet, more=dict(
        complete=st['complete'], plan_progress={k: st[k] for k in ('rung', 'full', 'long', 'cross', 'retest',
                                                                  'references')}))


def build_levels(out_dir: str, settings: Optional[BenchSettings] = None,
                 plan: Optional[LevelPlan] = None, *, sampler_seed: int = 0, space: str = 'default',
                 workers: int = 0, dask_scheduler: Any = None, timeout: float = 1800.0,
                 retries: int = 1, progress: bool = True, command: str = '',
                 do_finalize: bool = True, parquet: bool = False, root: str = '.',
                 max_seconds: Optional[float] = None) -> Dict[str, Any]:
    """Build (or resume) the multi-fidelity bench in ``out_dir`` (see the module docstring).

    ``settings`` and ``plan`` may be ``None`` to resume with the ones saved in ``build.json``;
    given settings must equal the saved ones, and a given plan may differ only in
    :attr:`LevelPlan.GROWABLE` fields. ``root``: the folder the plan's relative run paths are read
    from. Returns the counts (``stopped``: 1 if the build stopped before its plan was done)."""
    with locked(out_dir):
        return _build(out_dir, settings, plan, sampler_seed, space, workers, dask_scheduler, timeout,
                      retries, progress, command, do_finalize, parquet, root, max_seconds)


def _runs_digest(plan: LevelPlan, root: str) -> Dict[str, str]:
    out = {}
    for p in plan.runs:
        full = p if os.path.isabs(p) else os.path.join(root, p)
        if not os.path.exists(full):
            raise BenchError(f'search run file {full!r} of the plan does not exist')
        out[p] = sha256_file(full)
    return out


def _build(out_dir, settings, plan, sampler_seed, space, workers, dask_scheduler, timeout, retries,
           progress, command, do_finalize, parquet, root, max_seconds) -> Dict[str, Any]:
    resumed = load_build_info(out_dir) is not None
    info, settings = resume_info(out_dir, settings, sampler_seed, space)
    if resumed:
        if 'plan' not in info:
            raise BenchError(f'{out_dir} is a single-fidelity bench (no plan in {BUILD_FILE})')
        saved_plan = LevelPlan.from_dict(info['plan'])
        if plan is None:
            plan = saved_plan
        else:
            fixed = {k: v for k, v in plan.to_dict().items() if k not in LevelPlan.GROWABLE}
            was = {k: v for k, v in saved_plan.to_dict().items() if k not in LevelPlan.GROWABLE}
            if fixed != was:
                diff = sorted(k for k in fixed if fixed[k] != was.get(k))
                raise BenchError(f'{out_dir} was built with another plan ({", ".join(diff)} differ); '
                                 f'only {", ".join(LevelPlan.GROWABLE)} may change on resume (the plan '
                                 f'is saved in {BUILD_FILE}: resume without the plan flags)')
        if info.get('runs_sha256') and info['runs_sha256'] != _runs_digest(plan, root):
            raise BenchError(f'the search runs of the plan changed since {out_dir} was started '
                             f'({sorted(info["runs_sha256"])}); build a new bench')
    elif plan is None:
        raise BenchError(f'{out_dir} holds no bench yet: give the settings and the plan')
    if not settings.rungs:
        raise BenchError('a multi-fidelity bench needs rungs (e.g. --rungs 0.6667)')
    if len(settings.rungs) != 1:
        raise BenchError(f'the multi-fidelity builder promotes from one rung; got rungs {settings.rungs}')
    save_info(out_dir, info, settings, command, plan=plan.to_dict(), runs_sha256=_runs_digest(plan, root))

    executor = make_executor(workers, dask_scheduler, timeout, retries)
    old_term = signal.getsignal(signal.SIGTERM)

    def _on_term(signum, frame):
        raise _Stop()

    try:
        signal.signal(signal.SIGTERM, _on_term)
    except ValueError:  # not the main thread
        old_term = None
    stopped = False
    b = None
    try:
        b = _Builder(out_dir, settings, plan, sampler_seed, space, executor, root, max_seconds, progress)
        b.references()
        b.genomes()
        b.long_budget()
        b.cross_archs()
        b.retest()
    except (_Stop, KeyboardInterrupt):
        stopped = True
        log.warning('build stopped; what is written is complete (resume with the same command)')
    finally:
        if b is not None and b.bar is not None:
            b.bar.close()
        executor.close()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    counts = dict(records=len(b.records) if b else 0, rung=b.n_rung() if b else 0,
                  full=b.n_full() if b else 0,
                  long=sum(1 for (k, bb, a) in (b.levels if b else {}) if bb == settings.budgets[-1]
                           and a is None and k in b.records),
                  cross=sum(1 for (k, bb, a) in (b.levels if b else {}) if a is not None and k in b.records),
                  retest=len(b.retests) if b else 0,
                  stopped=int(stopped))
    if do_finalize and os.path.exists(os.path.join(out_dir, BENCH_FILE)):
        finalize(out_dir, command, parquet=parquet)  # (a build stopped among its references has no genomes yet)
    return counts
