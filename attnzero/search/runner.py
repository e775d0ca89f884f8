"""The search loop: pymoo NSGA-II driven by ask/tell, with checkpointing after every evaluation.

Resume works by deterministic replay: the algorithm is rebuilt from the run seed and every
generation is asked again; candidates already evaluated (``state.json``) are answered from the
state and never re-run, the rest are evaluated. Because proposals depend only on the seed and on the
objectives told so far, and evaluations only on seed and genome, a resumed run ends with the same
population as an uninterrupted one. The NSGA-II random state recorded at every generation is
compared during replay, so a divergence is reported instead of silently producing another run.
"""
from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
from pymoo.core.evaluator import Evaluator
from pymoo.problems.static import StaticProblem

from . import report
from .config import ConfigError, SearchConfig
from .evaluate import baseline_task, objectives, precheck, training_task
from .supernet import supernet_task
from .executor import make_executor
from .operators import GenomeProblem, build_algorithm, fec_key, pareto_order
from . import prior as prior_mod
from . import surrogate as surrogate_mod
from .prescreen import prescreen_task
from .proxies import load_proxy
from .state import RunDirError, RunState, atomic_write_json
from attnzero.io import atomic_write_bytes

__all__ = ['Search', 'run_search', 'RESUMABLE_FIELDS']

log = logging.getLogger('attnzero.search')

#: config fields a resumed run may change (they do not change what is computed)
RESUMABLE_FIELDS = ('workers', 'dask_scheduler', 'eval_timeout_s', 'retries')


def _setup_logging(run_dir: str, verbose: bool) -> logging.Handler:
    log.setLevel(logging.INFO)
    fh = logging.FileHandler(os.path.join(run_dir, 'search.log'), encoding='utf-8')
    fh.setFormatter(logging.Formatter('%(asctime)s %(levelname)s %(message)s'))
    log.addHandler(fh)
    if verbose and not any(getattr(h, '_attnzero_console', False) for h in log.handlers):
        class _TqdmHandler(logging.Handler):
            _attnzero_console = True

            def emit(self, record):
                try:
                    from tqdm import tqdm

                    tqdm.write(self.format(record))
                except Exception:  # noqa: BLE001
                    pass
        ch = _TqdmHandler(logging.WARNING)
        ch.setFormatter(logging.Formatter('%(levelname)s %(message)s'))
        log.addHandler(ch)
    return fh


def keep_count(n: int, keep: float) -> int:
    """How many of ``n`` ranked candidates a deferral stage keeps (``prior_keep`` /
    ``prescreen_keep``): ``ceil(keep * n)``, at least one."""
    return max(1, math.ceil(keep * n - 1e-9))


class Search:
    """One search run in ``run_dir``.

    Args:
        cfg: configuration (ignored when resuming: the run's ``config.json`` is used, with the
            execution fields in :data:`RESUMABLE_FIELDS` taken from ``overrides``).
        run_dir: the run directory (created; must be new or empty unless ``resume``).
        resume: continue the run in ``run_dir``.
        progress: show a progress bar.
        dask_client: an existing ``distributed.Client`` to evaluate on (tests, notebooks).
    """

    def __init__(self, cfg: Optional[SearchConfig], run_dir: str, *, resume: bool = False,
                 progress: bool = True, overrides: Optional[Dict[str, Any]] = None,
                 dask_client: Any = None,
                 stop: Optional[Callable[[Dict[int, Dict[str, Any]]], str]] = None) -> None:
        self.run_dir = os.path.abspath(run_dir)
        #: checked after every generation with the records so far; a non-empty answer ends the run
        #: there (``state.stopped``). It must depend on the records only, so that a resumed run
        #: stops where an uninterrupted one does (``tools/search_efficiency.py`` stops a search
        #: once it reaches the naive search's result)
        self.stop = stop
        self.progress = progress
        self.dask_client = dask_client
        cfg_path = os.path.join(self.run_dir, 'config.json')
        if resume:
            if not os.path.isdir(self.run_dir):
                raise RunDirError(f'--resume {run_dir!r}: no such directory')
            if not os.path.exists(cfg_path):
                raise RunDirError(f'--resume {run_dir!r}: not a search run directory (no config.json)')
            try:
                with open(cfg_path, encoding='utf-8') as f:
                    saved = json.load(f)
            except (OSError, ValueError) as e:
                raise RunDirError(f'{cfg_path}: unreadable config ({e})') from e
            try:
                self.cfg = SearchConfig.from_dict(saved)
            except (ConfigError, TypeError, ValueError) as e:
                raise RunDirError(f'{cfg_path}: invalid config: {e}') from e
            bad = sorted(k for k in (overrides or {}) if k not in RESUMABLE_FIELDS)
            if bad:
                raise ConfigError(f'a resumed run keeps its search settings; cannot change {bad} '
                                  f'(changeable: {", ".join(RESUMABLE_FIELDS)})')
            if overrides:
                self.cfg = self.cfg.replace(**overrides)
            self.state = RunState.load(self.run_dir)
            self.prior = self._fit_prior()
            if self.prior is not None and self.state.prior.get('sha256') not in (None, self.prior.sha256):
                raise RunDirError(f'prior {self.cfg.prior!r} changed since this run started (sha256 '
                                  f'{self.state.prior["sha256"][:12]}..., now {self.prior.sha256[:12]}...); '
                                  f'its decisions would differ: restore the file or start a new run')
            self.state.rewrite_evaluations()
        else:
            if cfg is None:
                raise ConfigError('a new search needs a config')
            self.cfg = cfg.validate()
            load_proxy(self.cfg.proxy)  # a missing dataset fails here, before anything is written
            self.prior = self._fit_prior()  # so does a bad prior
            if os.path.exists(self.run_dir):
                if not os.path.isdir(self.run_dir):
                    raise RunDirError(f'run directory {run_dir!r} exists and is not a directory')
                if os.listdir(self.run_dir):
                    raise RunDirError(f'run directory {run_dir!r} is not empty; use --resume {run_dir} '
                                      f'to continue it or choose a new directory')
            os.makedirs(self.run_dir, exist_ok=True)
            atomic_write_json(cfg_path, self.cfg.to_dict())
            self.state = RunState(self.run_dir)
            self.state.prior = prior_mod.describe(self.prior)
            open(self.state.path('evaluations.jsonl'), 'a').close()
        if self.cfg.surrogate:
            surrogate_mod.require_sklearn()
        self.state.sessions += 1
        self._order = max([r.get('order', -1) for r in self.state.records.values()] + [-1]) + 1
        self._by_hash: Dict[str, int] = {}
        self._by_fec: Dict[str, int] = {}
        for idx in sorted(self.state.records):
            self._index(self.state.records[idx])
        self.counts = dict(done=0, rejected=0, cached=0)
        for r in self.state.records.values():
            self._count(r)

    def _fit_prior(self) -> Optional['prior_mod.Prior']:
        if not self.cfg.prior:
            return None
        surrogate_mod.require_sklearn()
        p = prior_mod.Prior.fit(self.cfg.prior, self.cfg.prior_key, self.cfg.prior_where, seed=self.cfg.seed,
                                features=self.cfg.prior_features)
        log.info('prior: %d results of %s (sha256 %s...)', p.n, p.path, p.sha256[:12])
        return p

    # ---- cache ---------------------------------------------------------------------------
    def _index(self, rec: Dict[str, Any]) -> None:
        if rec['status'] == 'cached' or rec.get('lost') or rec.get('stage') in ('prior', 'prescreen', 'surrogate'):
            return  # only first-hand results are cache sources; a lost worker or a deferral is no verdict
        if rec.get('hash'):
            self._by_hash.setdefault(rec['hash'], rec['idx'])
        if rec.get('fec') and rec.get('stage') != 'check':
            self._by_fec.setdefault(rec['fec'], rec['idx'])

    def _count(self, rec: Dict[str, Any]) -> None:
        self.counts['done'] += 1
        if rec['status'] == 'rejected':
            self.counts['rejected'] += 1
        elif rec['status'] == 'cached':
            self.counts['cached'] += 1

    # ---- bookkeeping -----------------------------------------------------------------------
    def _commit(self, rec: Dict[str, Any]) -> None:
        rec['order'] = self._order
        rec['session'] = self.state.sessions
        self._order += 1
        self.state.records[rec['idx']] = rec
        self._index(rec)
        self._count(rec)
        self.state.wall_seconds = self._wall0 + (time.perf_counter() - self._t0)
        self.state.save()
        self.state.append_evaluation(rec)
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix(rejected=self.counts['rejected'], cached=self.counts['cached'],
                                  refresh=False)
        log.info('done idx=%d gen=%d status=%s reason=%s acc=%s cost=%s genome=%s', rec['idx'],
                 rec['gen'], rec['status'], rec.get('reason', ''), rec.get('acc_mean'),
                 rec.get('cost'), rec['genome'])

    def _payload_cfg(self) -> Dict[str, Any]:
        d = self.cfg.to_dict()
        d.update(workers=0, dask_scheduler=None)  # what a worker needs; execution is not its business
        return d

    # ---- baselines -------------------------------------------------------------------------
    def _run_baselines(self, executor) -> None:
        if not self.cfg.rejection:
            return  # the baselines only set the rejection protocol's threshold
        todo = [a for a in self.cfg.archs if a not in self.state.baselines]
        if not todo:
            return
        log.info('training baseline %r in %s', self.cfg.baseline, todo)
        jobs = [(f'baseline-{a}', baseline_task, dict(attn=self.cfg.baseline, arch=a,
                                                         config=self._payload_cfg())) for a in todo]
        for key, res in executor.run(jobs):
            arch = key.split('-', 1)[1]
            if res.get('status') != 'ok':
                raise RuntimeError(f'baseline {self.cfg.baseline!r} failed in {arch}: '
                                   f'{res.get("reason")}: {res.get("message")}')
            res['attn'] = self.cfg.baseline
            self.state.baselines[arch] = res
            self.state.save()
            log.info('baseline %s in %s: acc %.4f (epoch-%d acc %s) in %.1f s', self.cfg.baseline,
                     arch, res['acc'], self.cfg.checkpoint_epoch, res.get('ckpt_acc'), res['seconds'])

    def baseline_ckpt(self) -> Dict[str, float]:
        if not (0 < self.cfg.checkpoint_epoch < self.cfg.epochs):
            return {}
        return {a: b['ckpt_acc'] for a, b in self.state.baselines.items() if b.get('ckpt_acc') is not None}

    # ---- one generation ---------------------------------------------------------------------
    def _record(self, idx: int, gen: int, text: str) -> Dict[str, Any]:
        return dict(idx=idx, gen=gen, genome=text, hash=None, fec=None, status='rejected',
                    reason='', message='', stage='', accs={}, acc_mean=None, cost=None, F=None,
                    G=None, per_arch=[], seconds=0.0, check_seconds=0.0, cpu_seconds=0.0,
                    check_cpu_seconds=0.0, gflops=0.0, samples=0,
                    attempts=0, cached_from=None)

    def _finish_trained(self, rec: Dict[str, Any], res: Dict[str, Any]) -> None:
        rec['status'] = 'ok' if res.get('status') == 'ok' else 'rejected'
        rec['reason'], rec['message'] = res.get('reason', ''), res.get('message', '')
        rec['stage'] = 'worker' if res.get('lost') else 'train'
        rec['lost'] = bool(res.get('lost'))
        rec['attempts'] = res.get('attempts', 1)
        rec['per_arch'] = res.get('per_arch', [])
        rec['seconds'] = float(res.get('seconds', 0.0))
        rec['cpu_seconds'] = float(res.get('cpu_seconds', 0.0))
        gflops = res.get('gflops', 0.0)
        if 'prescreen_gflops' in rec:   # the pre-screen's passes are part of this candidate's compute
            pg = rec['prescreen_gflops']
            gflops = None if gflops is None or pg is None else gflops + pg
        rec['gflops'] = None if gflops is None else float(gflops)  # None: FLOPs could not be counted
        rec['samples'] = int(res.get('samples', 0))
        rec['accs'] = {r['arch']: r['acc'] for r in rec['per_arch'] if r.get('acc') is not None}
        if rec['status'] == 'ok':
            rec['acc_mean'] = sum(rec['accs'][a] for a in self.cfg.archs) / len(self.cfg.archs)
        if 'rung' in res:   # successive halving: which budget this result is of, and the rungs run
            rec.update(rung=res['rung'], fidelity_epochs=res['fidelity_epochs'], rungs=res['rungs'])
            if not res['promoted']:
                rec['stage'] = f'rung{res["rung"]}'
                rec['message'] = (rec['message'] + '; ' if rec['message'] else '') + (
                    f'not promoted after rung {res["rung"]} ({res["fidelity_epochs"]} of '
                    f'{self.cfg.epochs} epochs)')
        rec['F'], rec['G'] = objectives(self.cfg, rec['status'], rec['accs'], rec['cost'], rec.get('macs'))

    def _evaluate_generation(self, gen: int, first_idx: int, texts: List[str], executor
                             ) -> List[Dict[str, Any]]:
        out: Dict[int, Dict[str, Any]] = {}
        jobs, waiting = [], []
        fault = self.cfg.fault_injection
        for j, text in enumerate(texts):
            idx = first_idx + j
            if idx in self.state.records:  # finished before a kill: replay, never re-run
                old = self.state.records[idx]
                if old['genome'] != text:
                    raise RunDirError(f'resume diverged at evaluation {idx}: the run proposed {text!r} '
                                      f'but the saved state has {old["genome"]!r}')
                out[idx] = old
                continue
            rec = self._record(idx, gen, text)
            pre = precheck(text, self.cfg)
            rec['genome'], rec['hash'], rec['cost'] = pre['canonical'], pre['hash'], pre['cost']
            if self.cfg.space == 'joint':   # the shape, its full-size parameter count and MACs
                rec.update(shape=pre['shape'], params=pre['params'], macs=pre['macs'])
            rec['check_seconds'] = float(pre['seconds'])
            rec['check_cpu_seconds'] = float(pre.get('cpu_seconds', 0.0))
            rec['fec'] = fec_key(rec['genome'])
            if not pre['ok']:
                rec.update(status='rejected', reason=pre['reason'], message=pre['message'], stage='check')
                rec['F'], rec['G'] = objectives(self.cfg, 'rejected', {}, rec['cost'], rec.get('macs'))
                self._commit(rec)
                out[idx] = rec
                continue
            if self.cfg.cache:
                src = self._by_hash.get(rec['hash'])
                if src is None:
                    src = self._by_fec.get(rec['fec'])
                if src is not None and src in self.state.records:
                    self._fill_cached(rec, self.state.records[src])
                    self._commit(rec)
                    out[idx] = rec
                    continue
                pending = [p for p in jobs if p[2]['hash'] == rec['hash'] or p[2]['fec'] == rec['fec']]
                if pending:  # same function already queued in this generation: wait for its result
                    waiting.append((rec, pending[0][2]['idx']))
                    continue
            payload = dict(idx=idx, genome=rec['genome'], hash=rec['hash'], fec=rec['fec'],
                           config=self._payload_cfg(), baselines=self.baseline_ckpt(),
                           fault=fault.get(rec['genome']))
            task = training_task
            if self.cfg.shape_evaluator == 'supernet':   # one supernet per genome, kept in the run
                payload['supernet_dir'] = self.state.path('supernets')
                task = supernet_task
            jobs.append((f'cand-{idx}', task, payload))
            out[idx] = rec
        generation = range(first_idx, first_idx + len(texts))
        if self.prior is not None and jobs:
            jobs = self._prior(jobs, generation, out)
        if self.cfg.prescreen and jobs:
            jobs = self._prescreen(jobs, executor, generation, out)
        if self.cfg.surrogate and jobs:
            jobs = self._surrogate(jobs, gen, out)
        for _, _, payload in jobs:
            log.info('dispatch idx=%d genome=%s', payload['idx'], payload['genome'])
        results = (self._successive_halving(jobs, executor, generation, out)
                   if self.cfg.rungs > 1 else executor.run(jobs))
        for key, res in results:
            idx = int(key.split('-', 1)[1])
            rec = out[idx]
            self._finish_trained(rec, res)
            self._commit(rec)
        for rec, src in waiting:
            self._fill_cached(rec, self.state.records[src])
            self._commit(rec)
            out[rec['idx']] = rec
        if self.cfg.rungs > 1:   # every evaluation of the generation is final: no rung resumes
            self._drop_rung_states(generation)
        return [out[first_idx + j] for j in range(len(texts))]

    def _prescreen(self, jobs: List[Tuple[str, Any, Dict[str, Any]]], executor, generation: range,
                   out: Dict[int, Dict[str, Any]]) -> List[Tuple[str, Any, Dict[str, Any]]]:
        """Score the generation's candidates that would train (``cfg.prescreen``), commit the
        ones below the kept fraction as deferred, and return the jobs of the others.

        The ranking is over every candidate of the generation that was scored: those of ``jobs``
        and, after a resume, those already final whose scores are in ``state.prescreen``."""
        cfg = self.cfg
        pending = {p['idx']: (key, fn, p) for key, fn, p in jobs}
        todo = [(f'pre-{i}', prescreen_task, dict(pending[i][2], config=self._payload_cfg()))
                for i in sorted(pending) if i not in self.state.prescreen]
        for key, res in executor.run(todo):
            i = int(key.split('-', 1)[1])
            if 'scores' not in res:   # the worker was lost: no score, ranked last
                res = dict(scores={a: float('nan') for a in cfg.archs}, seconds=res.get('seconds', 0.0),
                           cpu_seconds=res.get('cpu_seconds', 0.0), gflops=None, lost=True)
            self.state.prescreen[i] = res
            self.state.save()
        scored = sorted(set(pending) | {i for i in generation if i in self.state.prescreen})
        rank = {i: 0.0 for i in scored}
        for a in cfg.archs:   # mean over the architectures of the per-architecture rank (1 = best)
            vals = [self.state.prescreen[i]['scores'].get(a) for i in scored]
            order = sorted(range(len(scored)), key=lambda j: (not _finite(vals[j]), -(vals[j] if _finite(vals[j]) else 0.0),
                                                               scored[j]))
            for r, j in enumerate(order):
                rank[scored[j]] += (r + 1) / len(cfg.archs)
        if cfg.prescreen_by == 'pareto':   # NSGA-II's order of (mean score rank, cost)
            ranked = pareto_order({i: [rank[i]] + self._cost_objectives(out[i]) for i in scored})[0]
        else:
            ranked = sorted(scored, key=lambda i: (rank[i], i))
        kept = set(ranked[:keep_count(len(scored), cfg.prescreen_keep)])
        for i in sorted(pending):
            pre = self.state.prescreen[i]
            rec = out[i]
            rec['prescreen'] = dict(score=cfg.prescreen, scores=pre['scores'], rank=ranked.index(i) + 1,
                                    of=len(scored), kept=i in kept)
            rec['check_seconds'] += float(pre.get('seconds', 0.0))
            rec['check_cpu_seconds'] += float(pre.get('cpu_seconds', 0.0))
            if i in kept:
                rec['prescreen_gflops'] = pre.get('gflops')
                continue
            how = ' (Pareto order with cost)' if cfg.prescreen_by == 'pareto' else ''
            self._defer(rec, 'prescreen', f'pre-screen {cfg.prescreen}{how}: rank {ranked.index(i) + 1} of '
                        f'{len(scored)}, below the best {cfg.prescreen_keep:g} that train', pre.get('gflops'))
        return [pending[i] for i in sorted(pending) if i in kept]

    def _cost_objectives(self, rec: Dict[str, Any]) -> List[float]:
        """The cost part of ``rec``'s minimised objectives (what follows the accuracies)."""
        n_acc = len(self.cfg.archs) if self.cfg.acc_objective == 'per_arch' else 1
        return objectives(self.cfg, 'rejected', {}, rec['cost'], rec.get('macs'))[0][n_acc:]

    def _pareto_rank(self, accs: Dict[int, Dict[str, float]], recs: Dict[int, Dict[str, Any]]
                     ) -> Tuple[List[int], Dict[int, int]]:
        """:func:`~attnzero.search.operators.pareto_order` of candidates by index, from their
        accuracies ``accs`` and the costs of their records ``recs``."""
        return pareto_order({i: objectives(self.cfg, 'ok', a, recs[i]['cost'], recs[i].get('macs'))[0]
                                       for i, a in accs.items()})

    def _prior(self, jobs: List[Tuple[str, Any, Dict[str, Any]]], generation: range,
               out: Dict[int, Dict[str, Any]]) -> List[Tuple[str, Any, Dict[str, Any]]]:
        """Rank the generation's candidates that would train as NSGA-II ranks a population, on their
        objectives with the prior's predicted score in place of the accuracy
        (:func:`attnzero.search.operators.pareto_order`); commit the ones below the best ``prior_keep``
        as deferred and return the jobs of the others. The ranking is over those of ``jobs`` and,
        after a resume, those of the generation already final that were ranked (their prediction is
        in their record). Its CPU time is charged evenly to the candidates' check time."""
        cfg = self.cfg
        t0, c0 = time.perf_counter(), time.process_time()
        pending = {p['idx']: (key, fn, p) for key, fn, p in jobs}
        order = sorted(pending)
        preds = {i: float(v) for i, v in zip(order, self.prior.predict([pending[i][2]['genome'] for i in order]))}
        recs = {i: out[i] for i in order}
        for i in generation:
            rec = self.state.records.get(i)
            if i not in pending and rec is not None and 'prior' in rec:
                preds[i] = float(rec['prior']['pred'])
                recs[i] = rec
        ranked, front = self._pareto_rank({i: {a: preds[i] for a in cfg.archs} for i in preds}, recs)
        rank = {i: r + 1 for r, i in enumerate(ranked)}
        kept = set(ranked[:keep_count(len(ranked), cfg.prior_keep)])
        share_s = (time.perf_counter() - t0) / len(order)
        share_cpu = (time.process_time() - c0) / len(order)
        for i in order:
            rec = out[i]
            rec['prior'] = dict(pred=preds[i], front=front[i], rank=rank[i], of=len(ranked), kept=i in kept)
            rec['check_seconds'] += share_s
            rec['check_cpu_seconds'] += share_cpu
            if i not in kept:
                self._defer(rec, 'prior', f'prior: predicted score {preds[i]:.4f} at cost {rec["cost"]:.4g}, '
                            f'front {front[i]}, rank {rank[i]} of {len(ranked)}, below the best '
                            f'{cfg.prior_keep:g} that train', 0.0)
        return [pending[i] for i in order if i in kept]

    def _defer(self, rec: Dict[str, Any], stage: str, message: str, gflops: Optional[float]) -> None:
        """Commit ``rec`` as deferred by ``stage`` (``prior`` / ``prescreen`` / ``surrogate``): rejected with
        reason ``deferred``, never trained; ``gflops``: what deciding it cost."""
        rec.update(status='rejected', reason='deferred', stage=stage, message=message, gflops=gflops)
        rec['F'], rec['G'] = objectives(self.cfg, 'rejected', {}, rec['cost'], rec.get('macs'))
        self._commit(rec)

    def _surrogate(self, jobs: List[Tuple[str, Any, Dict[str, Any]]], gen: int,
                   out: Dict[int, Dict[str, Any]]) -> List[Tuple[str, Any, Dict[str, Any]]]:
        """Predict the candidates of ``jobs`` with the online surrogate
        (:mod:`attnzero.search.surrogate`), commit the deferred ones and return the jobs of the
        others. Its CPU time is charged evenly to the candidates' check time."""
        cfg = self.cfg
        cands = [out[p['idx']] for _, _, p in jobs]
        res = surrogate_mod.decide(cands, list(self.state.records.values()), gen, cfg, objectives)
        share_s, share_cpu = res['seconds'] / len(cands), res['cpu_seconds'] / len(cands)
        kept = []
        for job, rec in zip(jobs, cands):
            rec['check_seconds'] += share_s
            rec['check_cpu_seconds'] += share_cpu
            d = res['decisions'].get(rec['idx'])
            if d is None:   # too few results yet: the candidate trains
                kept.append(job)
                continue
            rec['surrogate'] = d
            if not d['deferred']:
                kept.append(job)
                continue
            by = self.state.records[d['dominated_by']]
            self._defer(rec, 'surrogate',
                        f'surrogate: predicted accuracy {d["pred"]:.4f} + {cfg.surrogate_z:g} x {d["std"]:.4f} '
                        f'is dominated by evaluation {by["idx"]} (accuracy {by["acc_mean"]:.4f}, cost '
                        f'{by["cost"]:.4g}); fitted on {d["n_train"]} results', rec.pop('prescreen_gflops', 0.0))
        return kept

    def _successive_halving(self, jobs: List[Tuple[str, Any, Dict[str, Any]]], executor,
                            generation: range, recs: Dict[int, Dict[str, Any]]
                            ) -> Iterator[Tuple[str, Dict[str, Any]]]:
        """``executor.run(jobs)`` with the rungs of ``cfg.rungs``: yields ``(key, result)`` for
        every job once its last rung is known (not promoted, or the full budget).

        The candidates of a rung are all the generation's trained candidates that reached it:
        those of ``jobs`` and, after a resume, those already final whose rung results are in
        ``state.rungs``; so the promotions after a kill are the ones the first session made.

        A rung continues the training of the rung below it: it pauses the full budget's training
        after the rung's epochs, and the promoted candidates resume from the saved training state
        (``rungs/<idx>-r<rung>-<arch>.pt`` in the run directory, written before the rung's result
        is checkpointed in the state, removed once the generation is final). Each rung's result
        holds the compute of its own segment only. ``recs``: the generation's records by index
        (their costs, for ``promote_by='pareto'``)."""
        cfg = self.cfg
        budgets = cfg.rung_epochs
        pending = {p['idx']: (key, fn, p) for key, fn, p in jobs}
        alive = sorted(set(pending) | {i for i in generation if i in self.state.rungs})
        for r, epochs in enumerate(budgets):
            last = r == len(budgets) - 1
            results: Dict[int, Dict[str, Any]] = {}
            todo = []
            for i in alive:
                done = self.state.rungs.get(i, [])
                if not last and len(done) > r:
                    results[i] = done[r]
                elif i in pending:
                    key, fn, p = pending[i]
                    rung = dict(stop_epochs=None if last else epochs,
                                resume=self._rung_states(i, r - 1) if r else None)
                    todo.append((key, fn, dict(p, rung=rung)))
            for key, res in executor.run(todo):
                i = int(key.split('-', 1)[1])
                states = res.pop('states', None)
                res = dict(res, epochs=epochs)
                res.pop('paused', None)
                if last:
                    yield key, self._rung_result(i, res, r, len(budgets))
                    continue
                if res.get('status') == 'ok':
                    if not states:   # a paused training always returns its state
                        raise RuntimeError(f'rung {r} of evaluation {i} returned no training state')
                    for arch, data in states.items():
                        atomic_write_bytes(self._rung_state_path(i, r, arch), data)
                self.state.rungs.setdefault(i, []).append(res)
                self.state.save()
                results[i] = res
                log.info('rung %d (%g epochs) idx=%d status=%s', r, epochs, i, res.get('status'))
            if last:
                return
            ok = [i for i in alive if results[i].get('status') == 'ok']
            if cfg.promote_by == 'pareto':   # NSGA-II's order of the objectives at this rung
                ok = self._pareto_rank({i: _rung_accs(results[i]) for i in ok}, recs)[0]
            else:
                ok.sort(key=lambda i: (-_mean_acc(results[i]), i))
            promoted = set(ok[:-(-len(alive) // cfg.eta)])
            for i in alive:
                if i not in promoted and i in pending:
                    yield pending[i][0], self._rung_result(i, results[i], r, len(budgets))
            alive = [i for i in alive if i in promoted]

    def _rung_state_path(self, idx: int, rung: int, arch: str) -> str:
        folder = self.state.path('rungs')
        os.makedirs(folder, exist_ok=True)
        return os.path.join(folder, f'{idx}-r{rung}-{arch}.pt')

    def _rung_states(self, idx: int, rung: int) -> Dict[str, bytes]:
        """The saved training states of evaluation ``idx`` after rung ``rung``, per architecture."""
        out = {}
        for arch in self.cfg.archs:
            path = self._rung_state_path(idx, rung, arch)
            try:
                with open(path, 'rb') as f:
                    out[arch] = f.read()
            except FileNotFoundError:
                raise RunDirError(f'{path}: the training state of evaluation {idx} after rung {rung} is '
                                  'missing; its promotion cannot continue it') from None
        return out

    def _drop_rung_states(self, indices) -> None:
        """Remove the saved training states of these (final) evaluations."""
        folder = self.state.path('rungs')
        if not os.path.isdir(folder):
            return
        prefixes = tuple(f'{i}-r' for i in indices)
        for name in os.listdir(folder):
            if name.startswith(prefixes):
                os.remove(os.path.join(folder, name))
        if not os.listdir(folder):  # nothing waits for a promotion: no empty folder left in the run
            os.rmdir(folder)

    def _rung_result(self, idx: int, res: Dict[str, Any], rung: int, n_rungs: int) -> Dict[str, Any]:
        """The result of rung ``rung`` as the candidate's result: its compute summed over every
        rung it trained, and the history of those rungs."""
        runs = list(self.state.rungs.get(idx, [])[:rung]) + [res]
        out = dict(res, rung=rung, promoted=rung == n_rungs - 1, fidelity_epochs=res['epochs'])
        out['rungs'] = [dict(epochs=x['epochs'], status=x.get('status'), reason=x.get('reason', ''),
                             accs={a['arch']: a.get('acc') for a in x.get('per_arch', [])},
                             seconds=x.get('seconds', 0.0), cpu_seconds=x.get('cpu_seconds', 0.0),
                             gflops=x.get('gflops'), samples=x.get('samples', 0)) for x in runs]
        for k in ('seconds', 'cpu_seconds', 'samples'):
            out[k] = sum(x.get(k, 0) or 0 for x in runs)
        g = [x.get('gflops') for x in runs]
        out['gflops'] = None if any(v is None for v in g) else float(sum(g))
        return out

    def _fill_cached(self, rec: Dict[str, Any], src: Dict[str, Any]) -> None:
        rec.update(status='cached', stage='cache', cached_from=src['idx'],
                   source_status=src['status'], reason=src.get('reason', ''),
                   accs=dict(src.get('accs', {})), acc_mean=src.get('acc_mean'))
        rec['message'] = ('same genome as' if src['hash'] == rec['hash'] else
                          'functionally equivalent to') + f' evaluation {src["idx"]}'
        if 'fidelity_epochs' in src:   # a rung's result: say which budget the accuracy is of
            rec['fidelity_epochs'] = src['fidelity_epochs']
        # accuracy from the source; cost is the candidate's own (equivalent functions can differ in cost)
        rec['F'], rec['G'] = objectives(self.cfg, src['status'], rec['accs'], rec['cost'], rec.get('macs'))

    # ---- main loop -------------------------------------------------------------------------
    def run(self) -> Dict[str, Any]:
        """Run (or continue) the search to the end; writes the outputs and returns the summary."""
        handler = _setup_logging(self.run_dir, self.progress)
        try:
            return self._run()
        finally:
            log.removeHandler(handler)
            handler.close()

    def _run(self) -> Dict[str, Any]:
        self._t0 = time.perf_counter()
        self._wall0 = self.state.wall_seconds
        self._bar = None
        cfg = self.cfg
        log.info('session %d in %s: config %s', self.state.sessions, self.run_dir, cfg.to_json().replace('\n', ' '))
        try:
            executor = (make_executor(0, self.dask_client, cfg.eval_timeout_s, cfg.retries)
                        if self.dask_client is not None else
                        make_executor(cfg.workers, cfg.dask_scheduler, cfg.eval_timeout_s, cfg.retries))
        except ConnectionError as e:
            raise ConnectionError(f'{e}; nothing was evaluated -- continue this run with '
                                  f'--resume {self.run_dir} --dask-scheduler ADDR') from e
        try:
            problem = GenomeProblem(cfg.n_objectives)
            algorithm = build_algorithm(cfg)
            algorithm.setup(problem, termination=('n_gen', cfg.generations), seed=cfg.seed, verbose=False)
            expected = cfg.pop_size + (cfg.generations - 1) * (cfg.n_offsprings or cfg.pop_size)
            if self.progress:
                from tqdm import tqdm

                self._bar = tqdm(total=expected, desc='evaluations', unit='cand', dynamic_ncols=True,
                                 initial=len(self.state.records))
                self._bar.set_postfix(rejected=self.counts['rejected'], cached=self.counts['cached'])
            self._run_baselines(executor)
            next_idx, gen = 0, 0
            while algorithm.has_next():
                pop = algorithm.ask()
                gen += 1
                rs = _jsonable_rng(algorithm.random_state)
                if gen <= len(self.state.rng_history):
                    if self.state.rng_history[gen - 1] != rs:
                        raise RunDirError(f'resume diverged: the NSGA-II random state at generation {gen} '
                                          f'differs from the saved run (different code or packages?)')
                else:
                    self.state.rng_history.append(rs)
                self.state.rng_state = rs
                texts = [str(x[0]) for x in pop.get('X')]
                recs = self._evaluate_generation(gen, next_idx, texts, executor)
                next_idx += len(texts)
                F = np.array([r['F'] for r in recs], dtype=float)
                G = np.array([r['G'] for r in recs], dtype=float)
                Evaluator().eval(StaticProblem(problem, F=F, G=G), pop)
                algorithm.tell(infills=pop)
                self.state.generation = max(self.state.generation, gen)
                self.state.population = _population(algorithm)
                self.state.rng_state = _jsonable_rng(algorithm.random_state)
                self.state.save()
                log.info('generation %d done: %d evaluations so far', gen, len(self.state.records))
                if self.state.stopped and gen >= self.state.generation:
                    break   # a run that stopped early stays stopped: a resume replays it to there
                why = self.stop(self.state.records) if self.stop is not None else ''
                if why and algorithm.has_next():
                    self.state.stopped = f'stopped after generation {gen} of {cfg.generations}: {why}'
                    log.info(self.state.stopped)
                    break
            self.state.done = True
            self.state.wall_seconds = self._wall0 + (time.perf_counter() - self._t0)
            self.state.save()
        finally:
            if self._bar is not None:
                self._bar.close()
            executor.close()
        return report.write_outputs(self.cfg, self.state)


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def _rung_accs(res: Dict[str, Any]) -> Dict[str, float]:
    return {a['arch']: a['acc'] for a in res.get('per_arch', []) if a.get('acc') is not None}


def _mean_acc(res: Dict[str, Any]) -> float:
    accs = [a.get('acc') for a in res.get('per_arch', [])]
    return sum(accs) / len(accs) if accs and all(a is not None for a in accs) else float('-inf')


def _jsonable_rng(rs: Optional[np.random.Generator]) -> Optional[Dict[str, Any]]:
    if rs is None:
        return None
    st = rs.bit_generator.state
    return {k: (v if not isinstance(v, dict) else {kk: int(vv) if isinstance(vv, (int, np.integer)) else vv
                                                   for kk, vv in v.items()})
            for k, v in st.items()}


def _population(algorithm) -> List[Dict[str, Any]]:
    pop = algorithm.pop
    out = []
    for ind in pop:
        out.append(dict(genome=str(ind.X[0]), F=[float(v) for v in ind.F],
                        G=[float(v) for v in np.atleast_1d(ind.G)] if ind.G is not None else []))
    return out


def run_search(cfg: Optional[SearchConfig], run_dir: str, **kw) -> Dict[str, Any]:
    return Search(cfg, run_dir, **kw).run()
