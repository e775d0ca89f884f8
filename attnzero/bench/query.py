"""Query API of a bench: load (with manifest verification), look up by genome in any equivalent
form, filter, top-k, pandas export.

Genomes are accepted in any form through :func:`attnzero.space.as_genome` (re-exported here):
a ``Genome``, genome text, or an original-format cfg mapping; ``None`` or another type raises
``TypeError`` (there is no default genome in a look-up).
"""
from __future__ import annotations

import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

from attnzero.io import data_path
from attnzero.space import GenomeLike, as_genome, fingerprint

from .format import (BASELINES_FILE, BENCH_FILE, LEVELS_FILE, SUPPORTED_VERSIONS, BenchError, BenchFormatError,
                     BenchIntegrityError, read_jsonl, read_manifest, verify_manifest)
from .records import budget_key, merge_levels, reference_kind
from .surrogate import Surrogate

__all__ = ['Bench', 'load', 'default_path', 'as_genome', 'GenomeLike', 'VERSIONS', 'DEFAULT_VERSION']

#: the shipped benches by version name: folders inside the package (``attnzero/data/``)
VERSIONS = {'v1': 'attn-bench-101', 'v2': 'attn-bench-101-v2'}
#: the version :func:`load` gives without a name
DEFAULT_VERSION = 'v2'
#: the folder of the default shipped bench
BENCH_DATA = VERSIONS[DEFAULT_VERSION]


def default_path(version: Optional[str] = None) -> str:
    """A shipped bench (default :data:`DEFAULT_VERSION`): ``attnzero/data/<folder>``, package data
    located from the installed package (:func:`attnzero.io.data_path`), so it is found from a source
    checkout and from an installed package alike."""
    version = version or DEFAULT_VERSION
    if version not in VERSIONS:
        raise ValueError(f'unknown bench version {version!r}; shipped: {", ".join(VERSIONS)}')
    return data_path(VERSIONS[version])


def _get(rec: Dict[str, Any], key: str) -> Any:
    """Objective value of a record: ``score``, ``acc_mean``, ``acc:<arch>`` (seed mean at the largest
    budget), ``acc:<arch>:<epochs>``, ``ckpt:<arch>[:<epochs>]``, ``-flops`` (negated static FLOPs),
    or any top-level key."""
    if key in ('score', 'acc_mean'):
        return rec.get(key)
    if key in ('-flops', 'neg_flops'):
        f = (rec.get('static') or {}).get('flops_ref')
        return None if f is None else -f
    if key.startswith(('acc:', 'ckpt:')):
        kind, _, rest = key.partition(':')
        arch, _, b = rest.partition(':')
        table = rec.get('acc' if kind == 'acc' else 'ckpt_acc') or {}
        per = table.get(arch) or {}
        if not per:
            return None
        b = b or max(per, key=int)
        vals = [v for v in per.get(b, []) if v is not None]
        return sum(vals) / len(vals) if vals else None
    return rec.get(key)


class Bench:
    """An in-memory bench: ``records`` (sampled genomes) and ``baselines`` (reference attentions).

    >>> b = load()                                            # doctest: +SKIP
    >>> b.lookup({'graph_type': 'i3n303', 'unary_op': [[16], [0]], ...})   # doctest: +SKIP
    """

    def __init__(self, records: List[Dict[str, Any]], baselines: Optional[List[Dict[str, Any]]] = None,
                 manifest: Optional[Dict[str, Any]] = None, path: Optional[str] = None) -> None:
        self.records = list(records)
        self.baselines = list(baselines or [])
        self.manifest = manifest
        self.path = path
        self._by_hash: Dict[str, Dict[str, Any]] = {}
        self._by_fec: Dict[str, Dict[str, Any]] = {}
        for r in self.records:
            v = r.get('format_version')
            if v not in SUPPORTED_VERSIONS or v != self.records[0].get('format_version'):
                raise BenchFormatError(f'record {r.get("genome")!r} has format version {v!r}, '
                                       f'expected one of {SUPPORTED_VERSIONS} (the same for every '
                                       f'record)')
            self._by_hash.setdefault(r['hash'], r)
            fec = r.get('fec')
            if fec and not str(fec).startswith('invalid-'):
                self._by_fec.setdefault(fec, r)

    # ---- container --------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[Dict[str, Any]]:
        return iter(self.records)

    def __contains__(self, genome: GenomeLike) -> bool:
        return self.lookup(genome) is not None

    def __getitem__(self, genome: GenomeLike) -> Dict[str, Any]:
        rec = self.lookup(genome)
        if rec is None:
            raise KeyError(f'{as_genome(genome).to_string()} (and no functionally equivalent genome) '
                           f'is not in the bench')
        return rec

    def __repr__(self) -> str:
        return f'Bench({len(self.records)} records, {len(self.baselines)} baselines, path={self.path!r})'

    @property
    def settings(self) -> Optional[Dict[str, Any]]:
        if self.manifest and self.manifest.get('settings'):
            return self.manifest['settings']
        return self.records[0]['settings'] if self.records else None

    @property
    def archs(self) -> List[str]:
        s = self.settings
        return list(s['search']['archs']) if s else []

    @property
    def budgets(self) -> List[int]:
        s = self.settings
        return list(s['budgets']) if s else []

    @property
    def rungs(self) -> List[float]:
        """The successive-halving rungs of a multi-fidelity bench (``[]`` in a version 1 bench)."""
        s = self.settings
        return list(s.get('rungs') or []) if s else []

    @property
    def format_version(self) -> Optional[int]:
        if self.manifest:
            return self.manifest.get('format_version')
        return self.records[0].get('format_version') if self.records else None

    def view(self, epochs: float, selection: Optional[str] = None) -> 'Bench':
        """A single-fidelity view of a multi-fidelity bench at the level ``epochs``: the records that
        reached it, copied with ``score`` / ``acc_mean`` / ``acc`` of that level (``acc`` holds
        that level's column only), and settings whose one budget is that level, so that every
        single-fidelity analysis applies. ``selection`` (``'top'`` / ``'random'``) keeps the genomes
        promoted to that level for that reason (``'random'``: an unbiased sample of the rung's
        genomes). The baselines are viewed at the same level."""
        key = budget_key(epochs)
        if not self.rungs:
            raise ValueError('view() needs a multi-fidelity bench (a version 1 bench has one level)')

        def at(r):
            if key not in (r.get('scores') or {}):
                return None
            c = dict(r)
            c['acc'] = {a: {key: v[key]} for a, v in (r.get('acc') or {}).items() if key in v}
            c['ckpt_acc'] = {a: {key: v[key]} for a, v in (r.get('ckpt_acc') or {}).items() if key in v}
            c['score'] = r['scores'][key]
            ok = all(x is not None for v in c['acc'].values() for x in v[key])
            c['acc_mean'] = c['score'] if ok and r['status'] != 'check_failed' else None
            if selection is not None and r.get('role', 'sample') == 'sample':
                sel = [p.get('selection') for p in r.get('promotions') or []
                       if budget_key(p['budget']) == key]
                if selection not in sel:
                    return None
            return c

        recs = [c for c in map(at, self.records) if c is not None]
        bases = [c for c in map(at, self.baselines) if c is not None]
        b = float(key)
        settings = dict(self.settings or {}, budgets=[int(b) if b.is_integer() else b], rungs=[])
        manifest = dict(self.manifest or {}, settings=settings)
        for c in recs + bases:
            c['settings'] = settings
        return Bench(recs, bases, manifest, self.path)

    def at_level(self, epochs: float) -> 'Bench':
        """The records that reached the fidelity level ``epochs`` (a rung or a budget)."""
        key = budget_key(epochs)
        if not self.rungs:
            return self.filter(trained=True) if float(epochs) in map(float, self.budgets) else \
                Bench([], self.baselines, self.manifest, self.path)
        return self.filter(lambda r: key in (r.get('scores') or {}))

    @property
    def chance(self) -> Optional[float]:
        return self.records[0]['proxy']['chance'] if self.records else None

    # ---- look-up ----------------------------------------------------------------------------
    def match(self, genome: GenomeLike) -> Tuple[Optional[Dict[str, Any]], Optional[str]]:
        """``(record, how)``: ``how`` is ``'hash'`` (same canonical genome), ``'fec'`` (a
        functionally equivalent genome, by fingerprint) or ``None`` (not in the bench)."""
        g = as_genome(genome)
        rec = self._by_hash.get(g.hash)
        if rec is not None:
            return rec, 'hash'
        fp = fingerprint(g)
        rec = self._by_fec.get(fp)
        if rec is not None:
            return rec, 'fec'
        return None, None

    def lookup(self, genome: GenomeLike) -> Optional[Dict[str, Any]]:
        """The record of ``genome`` or of a functionally equivalent genome, else ``None``."""
        return self.match(genome)[0]

    def baseline(self, name: str, kind: Optional[str] = None) -> Optional[Dict[str, Any]]:
        """The reference record named ``name`` (``None`` if absent). ``kind`` is ``'zoo'`` (a zoo
        attention module) or ``'genome'`` (a reference genome, e.g. a published AttnZero one); it
        is needed only where both kinds share the name (v2: ``relu_linear``), and an ambiguous
        name without it is a one-line error."""
        if kind not in (None, 'zoo', 'genome'):
            raise ValueError(f"kind {kind!r}: expected 'zoo' or 'genome'")
        found = [b for b in self.baselines if b.get('name') == name and kind in (None, reference_kind(b))]
        if len(found) > 1:
            raise ValueError(f"baseline {name!r} names a zoo attention and a reference genome: pass kind='zoo' "
                             "or kind='genome'")
        return found[0] if found else None

    # ---- selection --------------------------------------------------------------------------
    def filter(self, fn: Optional[Callable[[Dict[str, Any]], bool]] = None, *,
               graph: Union[str, Sequence[str], None] = None, status: Union[str, Sequence[str], None] = None,
               trained: Optional[bool] = None, unary: Optional[str] = None, binary: Optional[str] = None,
               original: Optional[bool] = None, min_score: Optional[float] = None,
               max_flops: Optional[float] = None) -> 'Bench':
        """A sub-bench of the records matching every given condition (``unary``/``binary``: the
        genome uses that operator somewhere; ``trained``: passed the program check)."""
        def as_set(x):
            return None if x is None else ({x} if isinstance(x, str) else set(x))

        graphs, statuses = as_set(graph), as_set(status)
        out = []
        for r in self.records:
            if graphs is not None and r['graph'] not in graphs:
                continue
            if statuses is not None and r['status'] not in statuses:
                continue
            if trained is not None and (r['status'] != 'check_failed') != trained:
                continue
            if unary is not None and unary not in r['operators']['unary']:
                continue
            if binary is not None and binary not in r['operators']['binary']:
                continue
            if original is not None and bool(r.get('is_original')) != original:
                continue
            if min_score is not None and (r.get('score') is None or r['score'] < min_score):
                continue
            if max_flops is not None:
                f = (r.get('static') or {}).get('flops_ref')
                if f is None or f > max_flops:
                    continue
            if fn is not None and not fn(r):
                continue
            out.append(r)
        return Bench(out, self.baselines, self.manifest, self.path)

    def topk(self, k: int = 10, objective: Union[str, Callable[[Dict[str, Any]], Any]] = 'score',
             ascending: bool = False) -> List[Dict[str, Any]]:
        """The ``k`` best records by ``objective`` (a key understood by :func:`_get` -- ``score``,
        ``acc_mean``, ``acc:deit``, ``ckpt:pvt:3``, ``-flops`` -- or a callable); records without a
        value are left out; ties broken by canonical genome text (deterministic)."""
        f = objective if callable(objective) else (lambda r: _get(r, objective))
        scored = [(f(r), r) for r in self.records]
        scored = [(v, r) for v, r in scored if v is not None]
        scored.sort(key=lambda vr: (vr[0] if ascending else -vr[0], vr[1]['genome']))
        return [r for _, r in scored[:k]]

    def values(self, objective: str = 'score') -> List[Optional[float]]:
        return [_get(r, objective) for r in self.records]

    # ---- export -----------------------------------------------------------------------------
    def to_pandas(self):
        """One flat row per record (accuracies as seed means per arch and budget)."""
        import pandas as pd

        rows = []
        for r in self.records:
            st = r.get('static') or {}
            row: Dict[str, Any] = dict(
                genome=r['genome'], hash=r['hash'], fec=r['fec'], graph=r['graph'],
                unary=';'.join(','.join(x) or '-' for x in r['unary']), binary=','.join(r['binary']),
                n_unary_ops=r.get('n_unary_ops'), is_original=r.get('is_original'),
                batch_global=r.get('batch_global'), kind=st.get('kind'), flops_ref=st.get('flops_ref'),
                check_ok=r['check']['ok'], check_reason=r['check']['reason'], status=r['status'],
                reject_reason=r.get('reject_reason', ''), score=r.get('score'),
                acc_mean=r.get('acc_mean'), train_seconds=r.get('train_seconds'),
                sample_index=r.get('sample_index'), proxy=r['proxy']['name'],
                settings_id=r.get('settings_id'), format_version=r.get('format_version'))
            for table, prefix in (('acc', 'acc'), ('ckpt_acc', 'ckpt')):
                for arch, per in (r.get(table) or {}).items():
                    for b, vals in per.items():
                        v = [x for x in vals if x is not None]
                        row[f'{prefix}_{arch}_e{b}'] = sum(v) / len(v) if v else None
            for arch, p in (r.get('params') or {}).items():
                row[f'params_{arch}'] = p
            rows.append(row)
        return pd.DataFrame(rows)

    def export_parquet(self, path: str) -> str:
        self.to_pandas().to_parquet(path, index=False)
        return path

    def surrogate(self, **kw):
        """Fit the accuracy surrogate (:class:`attnzero.bench.surrogate.Surrogate`) on this bench."""
        return Surrogate.fit(self, **kw)

    def estimate(self, genome: GenomeLike, surrogate=None) -> Dict[str, Any]:
        """``{'score', 'source'}``: the measured score if the genome (or an equivalent one) is in the
        bench (``source`` ``'bench:hash'`` / ``'bench:fec'``), else the surrogate's prediction
        (``'surrogate'``; fitted on demand and cached)."""
        rec, how = self.match(genome)
        if rec is not None:
            return dict(score=rec.get('score'), source=f'bench:{how}', record=rec)
        if surrogate is None:
            if getattr(self, '_surrogate', None) is None:
                self._surrogate = self.surrogate(folds=0)
            surrogate = self._surrogate
        return dict(score=float(surrogate.predict([genome])[0]), source='surrogate', record=None)


def load(path: Optional[str] = None, verify: bool = True, partial: bool = False) -> Bench:
    """Load a bench directory (or its ``bench.jsonl`` / ``MANIFEST.json``), or a shipped bench by
    version name (``'v1'``, ``'v2'``); default: the shipped :data:`DEFAULT_VERSION`.

    With ``verify=True`` (default) the manifest must exist and every file's sha256 must match it;
    otherwise :class:`attnzero.bench.format.BenchIntegrityError` names the file and both digests.
    A multi-fidelity bench's later levels (``levels.jsonl``) are merged into its records; one whose
    build has not finished its plan (manifest ``complete: false``) is refused unless ``partial=True``.
    """
    if path in VERSIONS:
        path = default_path(path)
    path = path or default_path()
    if os.path.isfile(path):
        path = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(path):
        raise FileNotFoundError(f'no bench directory at {path!r}')
    manifest = verify_manifest(path) if verify else (
        read_manifest(path) if os.path.exists(os.path.join(path, 'MANIFEST.json')) else None)
    if manifest is not None and manifest.get('complete') is False and not partial:
        raise BenchError(f'{path}: its build has not finished its plan ({manifest.get("plan_progress")}); '
                         f'load(..., partial=True) reads it as it is')
    records, _ = read_jsonl(os.path.join(path, BENCH_FILE))
    baselines, _ = read_jsonl(os.path.join(path, BASELINES_FILE))
    if manifest is not None and verify and manifest.get('records') != len(records):
        raise BenchIntegrityError(f'{path}: manifest says {manifest.get("records")} records, '
                                  f'{BENCH_FILE} holds {len(records)}')
    levels_path = os.path.join(path, LEVELS_FILE)
    if os.path.exists(levels_path):
        lines, _ = read_jsonl(levels_path)
        settings = (manifest or {}).get('settings') or (records[0]['settings'] if records else None)
        try:
            merge_levels(records, baselines, lines, settings)
        except KeyError as e:
            raise BenchFormatError(f'{levels_path}: {e.args[0]}') from None
    return Bench(records, baselines, manifest, path)
