"""Where evaluations run: in this process, in local worker processes, or on a Dask cluster.

All three executors take jobs ``(key, fn, payload)`` and yield ``(key, result)`` as results arrive
(completion order), so that the runner can checkpoint after every evaluation.

Failure handling (worker processes and Dask): an evaluation whose worker dies, or that runs past
``timeout`` seconds, is lost -- only that one -- and resubmitted ``retries`` times (default once);
after that it yields ``{'status': 'rejected', 'reason': 'worker_died' | 'timeout', ...}``.
Local workers are one single-process pool per slot, so a dead or hung worker is killed and replaced
without touching the other slots. In-process evaluation has no timeout (nothing to kill).

A local worker exits by itself within about a second when the process that started it is gone
(killed with SIGKILL or SIGTERM, which run no clean-up): otherwise it would train its candidate to
the end, and then wait forever, holding a core the resumed run needs.
"""
from __future__ import annotations

import collections
import json
import logging
import multiprocessing
import os
import threading
import time
import uuid
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, Optional, Tuple

import psutil

from attnzero.io import append_line

from . import evaluate as _evaluate  # noqa: F401  (a warmed worker has the evaluation imports)

__all__ = ['Job', 'SerialExecutor', 'ProcessExecutor', 'DaskExecutor', 'make_executor', 'failure', 'run_logged']

log = logging.getLogger('attnzero.search')

Job = Tuple[str, Callable[[Dict[str, Any]], Dict[str, Any]], Dict[str, Any]]


def failure(reason: str, message: str, attempts: int) -> Dict[str, Any]:
    return dict(status='rejected', reason=reason, message=message, attempts=attempts,
                per_arch=[], seconds=0.0, gflops=0.0, samples=0, lost=True)


def _ping() -> bool:
    """Run in a new worker to warm it: unpickling this function imports this module, and with it
    the evaluation pipeline (:mod:`attnzero.search.evaluate`)."""
    return True


def _exit_with_parent(pid: int, started: float, interval: float = 1.0) -> None:
    """Worker initialiser: a daemon thread that ends this worker (``os._exit``) once the process
    ``pid`` (the one that made the pool; its ``started`` creation time tells it from a later
    process that reuses the pid) no longer runs."""
    def alive() -> bool:
        try:
            return psutil.Process(pid).create_time() == started
        except psutil.Error:
            return False

    def watch() -> None:
        while alive():
            time.sleep(interval)
        os._exit(3)

    threading.Thread(target=watch, name='attnzero-parent-watch', daemon=True).start()


def _own_identity() -> Tuple[int, float]:
    pid = os.getpid()
    return pid, psutil.Process(pid).create_time()


class SerialExecutor:
    """Evaluate in this process, one job at a time."""

    name = 'serial'

    def run(self, jobs: Iterable[Job]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        for key, fn, payload in jobs:
            try:
                yield key, fn(payload)
            except Exception as e:  # noqa: BLE001 - the pipeline catches candidate errors itself
                yield key, failure('crash', f'{type(e).__name__}: {e}', 1)

    def close(self) -> None:
        pass


class _Slot:
    def __init__(self, ctx) -> None:
        self.ctx = ctx
        self.pool: Optional[ProcessPoolExecutor] = None
        self.job: Optional[Job] = None
        self.future = None
        self.deadline = 0.0

    def start(self) -> None:
        self.pool = ProcessPoolExecutor(max_workers=1, mp_context=self.ctx, initializer=_exit_with_parent,
                                        initargs=_own_identity())

    def warm(self, timeout: float) -> None:
        assert self.pool is not None
        self.pool.submit(_ping).result(timeout=timeout)

    def kill(self) -> None:
        pool, self.pool = self.pool, None
        if pool is None:
            return
        for p in list(getattr(pool, '_processes', {}).values()):  # no public API to kill a worker
            try:
                p.kill()
            except Exception:  # noqa: BLE001
                pass
        pool.shutdown(wait=False, cancel_futures=True)


class ProcessExecutor:
    """``n`` local worker processes (forkserver), each in its own single-worker pool."""

    name = 'processes'

    def __init__(self, n: int, timeout: float, retries: int = 1, start_timeout: float = 300.0) -> None:
        self.n, self.timeout, self.retries = n, timeout, retries
        self.start_timeout = start_timeout
        # forkserver: workers fork from a clean server process that has imported torch and the
        # search once, so (re)starting a worker is fast and never forks a process with threads
        ctx = multiprocessing.get_context('forkserver')
        ctx.set_forkserver_preload(['attnzero.search.evaluate'])
        self.slots = [_Slot(ctx) for _ in range(n)]
        for s in self.slots:
            s.start()
        futs = [s.pool.submit(_ping) for s in self.slots]  # start all workers concurrently
        for f in futs:
            f.result(timeout=start_timeout)

    def _restart(self, slot: _Slot) -> None:
        slot.kill()
        slot.start()
        slot.warm(self.start_timeout)

    def run(self, jobs: Iterable[Job]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        queue: Deque[Job] = collections.deque(jobs)
        attempts: Dict[str, int] = collections.defaultdict(int)
        while queue or any(s.job for s in self.slots):
            for s in self.slots:
                if s.job is None and queue:
                    job = queue.popleft()
                    if s.pool is None:
                        self._restart(s)
                    s.job, s.future = job, s.pool.submit(job[1], job[2])
                    s.deadline = time.monotonic() + self.timeout
                    attempts[job[0]] += 1
            busy = [s for s in self.slots if s.job]
            wait_for = max(0.0, min(s.deadline for s in busy) - time.monotonic())
            futures_wait([s.future for s in busy], timeout=wait_for, return_when=FIRST_COMPLETED)
            now = time.monotonic()
            for s in busy:
                key = s.job[0]
                lost: Optional[Tuple[str, str]] = None
                if s.future.done():
                    try:
                        result = s.future.result()
                    except Exception as e:  # noqa: BLE001 - BrokenProcessPool: the worker died
                        lost = ('worker_died', f'{type(e).__name__}: {e}')
                    else:
                        s.job = s.future = None
                        yield key, result
                        continue
                elif now >= s.deadline:
                    lost = ('timeout', f'no result after {self.timeout:g} s')
                else:
                    continue
                job = s.job
                s.job = s.future = None
                log.warning('evaluation %s lost (%s: %s), attempt %d', key, lost[0], lost[1], attempts[key])
                self._restart(s)
                if attempts[key] <= self.retries:
                    queue.appendleft(job)
                else:
                    yield key, failure(lost[0], lost[1], attempts[key])

    def close(self) -> None:
        for s in self.slots:
            s.kill()


class DaskExecutor:
    """Dask futures on a running scheduler (``tcp://host:port``) or a given ``Client``."""

    name = 'dask'

    def __init__(self, address: Any, timeout: float, retries: int = 1, connect_timeout: float = 30.0) -> None:
        from distributed import Client

        self.timeout, self.retries = timeout, retries
        if isinstance(address, Client):
            self.client, self._own = address, False
        else:
            try:
                self.client = Client(address, timeout=connect_timeout)
            except Exception as e:  # noqa: BLE001
                raise ConnectionError(f'cannot connect to the Dask scheduler {address!r}: {e}') from e
            self._own = True

    def _capacity(self) -> int:
        try:
            return max(1, sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001
            return 1

    def run(self, jobs: Iterable[Job]) -> Iterator[Tuple[str, Dict[str, Any]]]:
        from distributed import wait as dask_wait

        queue: Deque[Job] = collections.deque(jobs)
        attempts: Dict[str, int] = collections.defaultdict(int)
        running: Dict[Any, Tuple[Job, float]] = {}
        while queue or running:
            cap = self._capacity()
            while queue and len(running) < cap:
                job = queue.popleft()
                attempts[job[0]] += 1
                fut = self.client.submit(job[1], job[2], pure=False,
                                         key=f'attnzero-{job[0]}-{attempts[job[0]]}-{uuid.uuid4().hex[:8]}')
                running[fut] = (job, time.monotonic() + self.timeout)
            wait_for = max(0.05, min(d for _, d in running.values()) - time.monotonic())
            try:
                dask_wait(list(running), timeout=wait_for, return_when='FIRST_COMPLETED')
            except Exception:  # noqa: BLE001 - distributed raises TimeoutError on timeout
                pass
            now = time.monotonic()
            for fut in list(running):
                job, deadline = running[fut]
                key = job[0]
                lost: Optional[Tuple[str, str]] = None
                if fut.status == 'finished':
                    del running[fut]
                    yield key, fut.result()
                    continue
                if fut.status in ('error', 'cancelled', 'lost'):
                    try:
                        exc = fut.exception(timeout=5)
                    except Exception as e:  # noqa: BLE001
                        exc = e
                    lost = ('worker_died', f'{type(exc).__name__}: {exc}')
                elif now >= deadline:
                    fut.cancel()
                    lost = ('timeout', f'no result after {self.timeout:g} s')
                else:
                    continue
                del running[fut]
                log.warning('evaluation %s lost (%s: %s), attempt %d', key, lost[0], lost[1], attempts[key])
                if attempts[key] <= self.retries:
                    queue.appendleft(job)
                else:
                    yield key, failure(lost[0], lost[1], attempts[key])

    def close(self) -> None:
        if self._own:
            self.client.close()


def make_executor(workers: int, dask_scheduler: Any, timeout: float, retries: int):
    if dask_scheduler:
        return DaskExecutor(dask_scheduler, timeout, retries)
    if workers and workers > 0:
        return ProcessExecutor(workers, timeout, retries)
    return SerialExecutor()


def run_logged(jobs: Iterable[Job], record: Callable[[str, Dict[str, Any]], Dict[str, Any]], *,
               workers: int, timeout: float, retries: int, log_path: Optional[str] = None,
               done: Optional[Dict[str, Dict[str, Any]]] = None, progress: Optional[str] = None,
               total: Optional[int] = None) -> Dict[str, Dict[str, Any]]:
    """Run ``jobs`` on local workers (``workers`` > 0) or in this process, as a measurement does:
    each result becomes ``record(key, result)``, which is stored in ``done`` (returned) and
    appended as one JSON line to ``log_path`` the moment it arrives, so that a killed measurement
    loses at most the runs in flight. ``progress``: the description of a tqdm bar over ``total``
    runs (default: the jobs given), starting at the runs already done."""
    jobs = list(jobs)
    done = {} if done is None else done
    if not jobs:
        return done
    bar = None
    if progress:
        from tqdm import tqdm

        n = len(jobs) if total is None else total
        bar = tqdm(total=n, initial=n - len(jobs), desc=progress, unit='run', dynamic_ncols=True)
    executor = make_executor(workers, None, timeout, retries)
    try:
        for key, res in executor.run(jobs):
            rec = record(key, res)
            done[key] = rec
            if log_path is not None:
                append_line(log_path, json.dumps(rec))
            if bar is not None:
                bar.update(1)
    finally:
        executor.close()
        if bar is not None:
            bar.close()
    return done
