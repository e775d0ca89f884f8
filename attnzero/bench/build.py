"""Building a bench: sample genomes, de-duplicate by functional equivalence, evaluate, append.

Used by ``tools/build_bench.py``. The sampling stream is deterministic in ``sampler_seed``, so a
resumed build regenerates the same stream and skips every genome (and every functionally equivalent
genome) already in ``bench.jsonl``; records are appended one by one with an fsync, so a killed
build loses at most the evaluations in flight. Evaluations run where the search runs its own:
in-process, local worker processes or Dask, through :func:`attnzero.search.executor.make_executor`.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import time
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

import numpy as np

from attnzero.io import atomic_write_text
from attnzero.search.executor import make_executor
from attnzero.space import (DEFAULT_DISTRIBUTION, ORIGINAL_DISTRIBUTION, REFERENCE_GENOMES,
                            fingerprint, sample)

from .evaluate import (REFERENCE_ATTENTIONS, REFERENCE_GENOME_NAMES, BenchSettings, arch_config,
                       baseline_eval_task, evaluate_task)
from .format import (BASELINES_FILE, BENCH_FILE, LEVELS_FILE, PARQUET_FILE, BenchError,
                     append_record, read_jsonl, write_manifest)
from .query import Bench
from .records import merge_levels

__all__ = ['build', 'finalize', 'BUILD_FILE', 'STOP_FILE', 'load_build_info']

log = logging.getLogger('attnzero.bench')

#: build parameters saved next to the data (settings + sampler), so that a resume needs no flags
BUILD_FILE = 'build.json'


def load_build_info(out_dir: str) -> Optional[Dict[str, Any]]:
    p = os.path.join(out_dir, BUILD_FILE)
    if not os.path.exists(p):
        return None
    with open(p, encoding='utf-8') as f:
        return json.load(f)


def _counts(records: Sequence[Dict[str, Any]]) -> Dict[str, int]:
    c: Dict[str, int] = {}
    for r in records:
        c[r['status']] = c.get(r['status'], 0) + 1
    c['records'] = len(records)
    c['trained'] = sum(1 for r in records if r['status'] != 'check_failed')
    return dict(sorted(c.items()))


def finalize(out_dir: str, command: str, parquet: bool = False,
             more: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Rewrite ``MANIFEST.json`` (atomically) over the records present; optional parquet export;
    ``more``: further manifest fields (a multi-fidelity build's progress:
    :func:`attnzero.bench.multifidelity.finalize`)."""
    info = load_build_info(out_dir) or {}
    records, _ = read_jsonl(os.path.join(out_dir, BENCH_FILE), repair=True)
    baselines, _ = read_jsonl(os.path.join(out_dir, BASELINES_FILE), repair=True)
    levels_path = os.path.join(out_dir, LEVELS_FILE)
    level_lines = read_jsonl(levels_path, repair=True)[0] if os.path.exists(levels_path) else []
    settings = info.get('settings')
    public = BenchSettings.from_dict(settings).public() if settings else (
        records[0]['settings'] if records else None)
    version = BenchSettings.from_dict(settings).format_version if settings else (
        records[0].get('format_version', 1) if records else 1)
    compute = _compute(records, baselines, level_lines)
    if level_lines:
        merge_levels(records, baselines, level_lines, public)
    if parquet:
        Bench(records, baselines, path=out_dir).to_pandas().to_parquet(
            os.path.join(out_dir, PARQUET_FILE), index=False)
    elif os.path.exists(os.path.join(out_dir, PARQUET_FILE)):
        os.unlink(os.path.join(out_dir, PARQUET_FILE))  # a stale export must not be certified
    proxy = records[0]['proxy'] if records else None
    arch_cfg = None
    if settings:
        arch_cfg = arch_config(BenchSettings.from_dict(settings))
    commands = list(info.get('commands') or [])
    if commands:  # the manifest names the command that created the data; finalize runs come after
        extra_cmd = dict(build_commands=commands, finalize_command=command)
        command = commands[0]
    else:
        extra_cmd = {}
    counts = _counts(records)
    if version >= 2:  # genomes per fidelity level
        for r in records:
            if r.get('fidelity'):
                for k in r.get('scores') or {}:
                    counts[f'level:{k}'] = counts.get(f'level:{k}', 0) + 1
        counts = dict(sorted(counts.items()))
    extra = dict(counts=counts, compute=compute,
                 baselines=sorted(str(b.get('name')) for b in baselines),
                 proxy=proxy, sampler=info.get('sampler'), arch_config=arch_cfg,
                 created=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), **extra_cmd)
    extra.update(more or {})
    return write_manifest(out_dir, settings=public, command=command, extra=extra,
                          files=(BENCH_FILE, BASELINES_FILE, LEVELS_FILE, BUILD_FILE, PARQUET_FILE),
                          format_version=version)


def _compute(records, baselines, level_lines) -> Dict[str, Any]:
    """The compute a bench holds: wall seconds of its evaluations and CPU seconds of its training
    runs (summed over the records, references and later levels; ``cpu_hours`` counts only the runs
    that recorded their CPU time)."""
    wall = sum(float(r.get('eval_seconds') or 0.0) for r in list(records) + list(baselines) + list(level_lines))
    runs = [run for r in list(records) + list(baselines) + list(level_lines) for run in r.get('runs') or []]
    cpu = [float(run['cpu_seconds']) for run in runs if run.get('cpu_seconds') is not None]
    return dict(eval_hours=round(wall / 3600.0, 3), cpu_hours=round(sum(cpu) / 3600.0, 3),
                runs=len(runs), runs_with_cpu=len(cpu))


def random_stream(sampler_seed: int, space: str) -> Iterator[Tuple[int, Any]]:
    """``(sample_index, genome)``: the seeded sampling stream of the space (``'default'`` or
    ``'original'`` operators), duplicates included."""
    dist = {'default': DEFAULT_DISTRIBUTION, 'original': ORIGINAL_DISTRIBUTION}[space]
    rng = np.random.default_rng(sampler_seed)
    i = 0
    while True:
        yield i, sample(rng, dist)
        i += 1


def _candidates(sampler_seed: int, space: str, skip_hash: set, skip_fec: set
                ) -> Iterator[Tuple[int, Any, str]]:
    """``(sample_index, genome, fingerprint)`` of the deterministic sampling stream, skipping
    genomes whose hash or fingerprint is in the skip sets (which the caller keeps updated)."""
    for i, g in random_stream(sampler_seed, space):
        if g.hash in skip_hash:
            continue
        fp = fingerprint(g)
        if fp in skip_fec:
            skip_hash.add(g.hash)
            continue
        skip_hash.add(g.hash)
        skip_fec.add(fp)
        yield i, g, fp


class _Stop(BaseException):
    """SIGTERM: a BaseException, so that no ``except Exception`` of the pipeline swallows it."""


#: create this file in the bench directory to stop a running build after the genome in progress
STOP_FILE = 'STOP'
LOCK_FILE = '.build.lock'


def build(out_dir: str, n: int, settings: Optional[BenchSettings] = None, *, until: str = 'trained',
          sampler_seed: int = 0, space: str = 'default', workers: int = 0,
          dask_scheduler: Any = None, timeout: float = 1800.0, retries: int = 1,
          baselines: bool = True, baseline_seeds: Optional[Sequence[int]] = None,
          progress: bool = True, command: str = '', do_finalize: bool = True,
          parquet: bool = False, chunk: Optional[int] = None,
          max_seconds: Optional[float] = None) -> Dict[str, Any]:
    """Grow the bench in ``out_dir`` until it holds ``n`` genomes (``until='trained'``: genomes
    that passed the program check and were trained; ``'records'``: all sampled genomes).

    ``settings`` may be ``None`` to resume with the ones saved in ``out_dir/build.json``; given
    settings must equal the saved ones. Returns the counts."""
    if until not in ('trained', 'records'):
        raise ValueError(f"until must be 'trained' or 'records', got {until!r}")
    with locked(out_dir):
        return _build(out_dir, n, settings, until=until, sampler_seed=sampler_seed, space=space,
                      workers=workers, dask_scheduler=dask_scheduler, timeout=timeout,
                      retries=retries, baselines=baselines, baseline_seeds=baseline_seeds,
                      progress=progress, command=command, do_finalize=do_finalize, parquet=parquet,
                      chunk=chunk, max_seconds=max_seconds)


@contextlib.contextmanager
def locked(out_dir: str):
    """Hold the build lock of ``out_dir`` (created if needed) for the ``with`` block."""
    os.makedirs(out_dir, exist_ok=True)
    lock = _lock(out_dir)
    try:
        yield
    finally:
        try:
            os.unlink(os.path.join(out_dir, LOCK_FILE))
        except OSError:
            pass
        lock.close()


def _lock(out_dir: str):
    """An exclusive lock on ``out_dir/.build.lock``: two builds must never append to one bench."""
    import fcntl  # POSIX only: imported where the lock is taken

    f = open(os.path.join(out_dir, LOCK_FILE), 'a+')
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.seek(0)
        holder = f.read().strip()
        f.close()
        raise BenchError(f'another build is running on {out_dir} (pid {holder or "?"}); stop it first '
                         f'(touch {os.path.join(out_dir, STOP_FILE)})') from None
    f.seek(0)
    f.truncate()
    f.write(str(os.getpid()))
    f.flush()
    return f


def resume_info(out_dir: str, settings: Optional[BenchSettings], sampler_seed: int, space: str
                ) -> Tuple[Dict[str, Any], BenchSettings]:
    """``(build info, settings)`` of a build in ``out_dir``: the saved ones on a resume (given
    settings must equal them, and the sampler must be the same), new ones otherwise."""
    info = load_build_info(out_dir)
    if info is not None:
        saved = BenchSettings.from_dict(info['settings'])
        if settings is None:
            settings = saved
        elif settings.id != saved.id:
            raise BenchError(f'{out_dir} was built with other settings ({saved.public()}); resume '
                             f'with the same settings (or no settings flags), or use another --out')
        if (info['sampler']['seed'], info['sampler']['space']) != (sampler_seed, space):
            raise BenchError(f'{out_dir} was sampled with {info["sampler"]}; resume with the same '
                             f'--sampler-seed/--space')
        return info, settings
    if settings is None:
        raise BenchError(f'{out_dir} holds no bench yet: give the settings')
    return dict(format_version=settings.format_version, settings=settings.to_dict(),
                sampler=dict(seed=sampler_seed, space=space, distribution=f'{space}')), settings


def save_info(out_dir: str, info: Dict[str, Any], settings: BenchSettings, command: str,
              **more: Any) -> None:
    """Check that the proxy ViTs (defined in code: :mod:`attnzero.search.archs`) are those the build
    started with, add ``command`` and ``more`` to the build info and write it (atomically)."""
    current = json.loads(json.dumps(arch_config(settings)))
    if info.get('arch_config') is not None and info['arch_config'] != current:
        raise BenchError(f'the proxy architectures changed in code since {out_dir} was started '
                         f'(saved {info["arch_config"]}, now {current}); build a new bench')
    info.update(arch_config=current, **more)
    if command and command not in info.setdefault('commands', []):
        info['commands'].append(command)
    atomic_write_text(os.path.join(out_dir, BUILD_FILE), json.dumps(info, indent=2, sort_keys=True) + '\n')


def _build(out_dir, n, settings, *, until, sampler_seed, space, workers, dask_scheduler, timeout,
           retries, baselines, baseline_seeds, progress, command, do_finalize, parquet, chunk,
           max_seconds) -> Dict[str, Any]:
    info, settings = resume_info(out_dir, settings, sampler_seed, space)
    save_info(out_dir, info, settings, command)
    bench_path = os.path.join(out_dir, BENCH_FILE)
    base_path = os.path.join(out_dir, BASELINES_FILE)
    records, dropped = read_jsonl(bench_path, repair=True)
    if dropped:
        log.warning('%s: dropped a torn last line (interrupted append)', bench_path)
    for r in records:
        if r.get('settings_id') != settings.id:
            raise BenchError(f'{bench_path}: record {r.get("genome")} has settings {r.get("settings_id")}, '
                             f'not {settings.id}')
    base_records, _ = read_jsonl(base_path, repair=True)
    done_base = {b['name'] for b in base_records}
    skip_hash = {r['hash'] for r in records}
    skip_fec = {r['fec'] for r in records}
    count_of = (lambda rs: sum(1 for r in rs if r['status'] != 'check_failed')) if until == 'trained' else len
    have = count_of(records)
    sdict = settings.to_dict()
    bseeds = list(baseline_seeds) if baseline_seeds else list(settings.seeds)

    executor = make_executor(workers, dask_scheduler, timeout, retries)
    bar = None
    old_term = signal.getsignal(signal.SIGTERM)

    def _on_term(signum, frame):  # a clean stop: the records written so far are complete
        raise _Stop()

    try:
        signal.signal(signal.SIGTERM, _on_term)
    except ValueError:  # not the main thread
        old_term = None
    t_start = time.monotonic()
    stopped = False
    try:
        if baselines:
            jobs = []
            for name in REFERENCE_ATTENTIONS:
                if name not in done_base:
                    jobs.append((f'base-{name}', baseline_eval_task,
                                 dict(attn=name, settings=sdict, seeds=bseeds)))
            for name in REFERENCE_GENOME_NAMES:
                if name not in done_base:
                    jobs.append((f'base-{name}', evaluate_task,
                                 dict(genome=REFERENCE_GENOMES[name].to_string(), settings=sdict,
                                      seeds=bseeds, role='reference', name=name)))
            for key, res in executor.run(jobs):
                if res.get('lost'):
                    log.warning('baseline %s lost: %s', key, res.get('message'))
                    continue
                append_record(base_path, res)
                log.info('baseline %s: score %s (%.1f s)', key, res.get('score'), res.get('eval_seconds', 0))
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=n, initial=min(have, n), desc=f'bench ({until})', unit='genome',
                       dynamic_ncols=True)
        stream = _candidates(sampler_seed, space, skip_hash, skip_fec)
        size = chunk or max(1, 2 * max(1, workers))
        while have < n:
            if max_seconds is not None and time.monotonic() - t_start > max_seconds:
                log.info('time budget reached')
                break
            stop = os.path.join(out_dir, STOP_FILE)
            if os.path.exists(stop):
                os.unlink(stop)
                log.warning('%s found: stopping', stop)
                stopped = True
                break
            jobs = []
            for _ in range(size if workers or dask_scheduler else 1):
                idx, g, fp = next(stream)
                jobs.append((f'g{idx}', evaluate_task,
                             dict(genome=g.to_string(), fec=fp, settings=sdict, sample_index=idx,
                                  sampler=dict(seed=sampler_seed, space=space))))
            for key, res in executor.run(jobs):
                if res.get('lost') or 'genome' not in res:
                    log.warning('evaluation %s lost (%s: %s); it will be retried by a resumed build',
                                key, res.get('reason'), res.get('message'))
                    continue
                append_record(bench_path, res)
                records.append(res)
                log.info('record %d: sample %s status=%s reason=%s score=%s (%.1f s) %s', len(records),
                         res.get('sample_index'), res['status'], res.get('reject_reason') or '-',
                         None if res.get('score') is None else round(res['score'], 4),
                         res.get('eval_seconds', 0.0), res['genome'])
                new = count_of(records)
                if bar is not None:
                    bar.update(max(0, min(new, n) - min(have, n)))
                    c = _counts(records)
                    bar.set_postfix(records=c['records'], ok=c.get('ok', 0), refresh=False)
                have = new
    except (_Stop, KeyboardInterrupt):
        stopped = True
        log.warning('build interrupted; records written so far are complete')
    finally:
        if bar is not None:
            bar.close()
        executor.close()
        if old_term is not None:
            signal.signal(signal.SIGTERM, old_term)
    counts = _counts(records)
    if do_finalize:
        finalize(out_dir, command, parquet=parquet)
    counts['stopped'] = int(stopped)
    return counts
