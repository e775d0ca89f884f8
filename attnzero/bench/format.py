"""The Attn-Bench-101 file format (version :data:`FORMAT_VERSION`): jsonl records + a sha256 manifest.

A bench is a directory::

    bench.jsonl       one JSON object per line, one line per sampled genome (see docs/bench.md)
    baselines.jsonl   one line per reference attention (softmax, linear, identity, published genomes)
    MANIFEST.json     format version, sha256 / size / record count of every data file, the proxy
                      settings and the command that created the bench
    bench.parquet     optional flat export (``attnzero.bench.export_parquet``)

Everything here is plain ``json`` / ``hashlib`` / ``os``: the format is readable without this project.
Appends are atomic at line granularity (one ``write`` of a whole line, then ``fsync``:
:func:`attnzero.io.append_line`); a reader repairs a torn last line left by a crash
(:func:`read_jsonl` with ``repair=True``). The manifest is replaced atomically
(:func:`attnzero.io.atomic_write_text`).
"""
from __future__ import annotations

import hashlib
import json
import math
import os
from typing import Any, Dict, Iterable, List, Optional, Tuple

from attnzero.io import JsonlError, append_line, atomic_write_text, sha256_file
from attnzero.io import read_jsonl as _read_jsonl

__all__ = ['FORMAT_NAME', 'FORMAT_VERSION', 'BENCH_FILE', 'BASELINES_FILE', 'MANIFEST_FILE',
           'PARQUET_FILE', 'LEVELS_FILE', 'SUPPORTED_VERSIONS', 'BenchError', 'BenchIntegrityError', 'BenchFormatError', 'sha256_file',
           'dumps_record', 'append_record', 'read_jsonl', 'write_manifest', 'read_manifest',
           'verify_manifest', 'atomic_write_text', 'settings_id']

FORMAT_NAME = 'attn-bench-101'
#: bump on any incompatible change of the record layout (docs/bench.md lists the changes);
#: version 2 (multi-fidelity: rungs, ``levels.jsonl``, ``source``) is written by a build with rungs,
#: version 1 by a single-fidelity build
FORMAT_VERSION = 2
#: the versions this reader loads
SUPPORTED_VERSIONS = (1, 2)

BENCH_FILE = 'bench.jsonl'
BASELINES_FILE = 'baselines.jsonl'
MANIFEST_FILE = 'MANIFEST.json'
PARQUET_FILE = 'bench.parquet'
#: a multi-fidelity bench's later levels: one line per record key and budget (version 2)
LEVELS_FILE = 'levels.jsonl'


class BenchError(RuntimeError):
    """Base class of bench errors."""


class BenchIntegrityError(BenchError):
    """A data file does not match its manifest (sha256, size or record count), or is missing."""


class BenchFormatError(BenchError):
    """A file is not a bench of a supported format version."""



def _clean(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become ``None`` (strict JSON has no NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, 'item') and callable(x.item):  # numpy / torch scalars
        return _clean(x.item())
    return x


def dumps_record(record: Dict[str, Any]) -> str:
    """One canonical JSON line (sorted keys, no NaN, no trailing newline)."""
    return json.dumps(_clean(record), sort_keys=True, separators=(',', ':'), allow_nan=False)


def append_record(path: str, record: Dict[str, Any]) -> None:
    """Append one record as one line: a single ``write`` of the whole line, then fsync
    (:func:`attnzero.io.append_line`)."""
    append_line(path, dumps_record(record))


def read_jsonl(path: str, repair: bool = False) -> Tuple[List[Dict[str, Any]], int]:
    """:func:`attnzero.io.read_jsonl` (``(records, n_dropped)``; a torn last line is dropped, and
    cut with ``repair=True``), with any other malformed line raised as :class:`BenchFormatError`."""
    try:
        return _read_jsonl(path, repair=repair)
    except JsonlError as e:
        raise BenchFormatError(str(e)) from None


def settings_id(settings: Dict[str, Any]) -> str:
    """Short stable id of a settings dict (sha256 of its canonical JSON, 12 hex digits)."""
    text = json.dumps(_clean(settings), sort_keys=True, separators=(',', ':'))
    return hashlib.sha256(text.encode('utf-8')).hexdigest()[:12]


def _count_lines(path: str) -> int:
    with open(path, 'rb') as f:
        return sum(1 for line in f if line.strip())


def write_manifest(bench_dir: str, *, settings: Optional[Dict[str, Any]], command: str,
                   extra: Optional[Dict[str, Any]] = None,
                   files: Iterable[str] = (BENCH_FILE, BASELINES_FILE, PARQUET_FILE),
                   format_version: int = FORMAT_VERSION) -> Dict[str, Any]:
    """(Re)write ``MANIFEST.json`` atomically over the data files present in ``bench_dir``."""
    entries: Dict[str, Any] = {}
    for name in files:
        p = os.path.join(bench_dir, name)
        if not os.path.exists(p):
            continue
        entry: Dict[str, Any] = dict(sha256=sha256_file(p), bytes=os.path.getsize(p))
        if name.endswith('.jsonl'):
            entry['records'] = _count_lines(p)
        entries[name] = entry
    if BENCH_FILE not in entries:
        raise BenchError(f'{bench_dir}: no {BENCH_FILE} to write a manifest for')
    if format_version not in SUPPORTED_VERSIONS:
        raise BenchFormatError(f'format version {format_version!r} is not one of {SUPPORTED_VERSIONS}')
    manifest: Dict[str, Any] = dict(format=FORMAT_NAME, format_version=format_version,
                                    files=entries, records=entries[BENCH_FILE]['records'],
                                    settings=settings, settings_id=settings_id(settings or {}),
                                    creation_command=command)
    manifest.update(extra or {})
    atomic_write_text(os.path.join(bench_dir, MANIFEST_FILE),
                      json.dumps(_clean(manifest), indent=2, sort_keys=True) + '\n')
    return manifest


def read_manifest(bench_dir: str) -> Dict[str, Any]:
    p = os.path.join(bench_dir, MANIFEST_FILE)
    if not os.path.exists(p):
        raise BenchIntegrityError(f'{bench_dir}: no {MANIFEST_FILE} (an unfinished build? run '
                                  f'`python tools/build_bench.py --out {bench_dir} --finalize`)')
    with open(p, encoding='utf-8') as f:
        try:
            m = json.load(f)
        except ValueError as e:
            raise BenchFormatError(f'{p}: not valid JSON ({e})') from None
    if m.get('format') != FORMAT_NAME:
        raise BenchFormatError(f'{p}: format {m.get("format")!r} is not {FORMAT_NAME!r}')
    if m.get('format_version') not in SUPPORTED_VERSIONS:
        raise BenchFormatError(f'{p}: format version {m.get("format_version")!r} is not supported '
                               f'(this reader knows versions {", ".join(map(str, SUPPORTED_VERSIONS))})')
    return m


def verify_manifest(bench_dir: str, manifest: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Check every file listed in the manifest (sha256, size, record count); raise
    :class:`BenchIntegrityError` naming the file and both digests on a mismatch."""
    m = manifest or read_manifest(bench_dir)
    for name, entry in sorted(m.get('files', {}).items()):
        p = os.path.join(bench_dir, name)
        if not os.path.exists(p):
            raise BenchIntegrityError(f'{p}: listed in {MANIFEST_FILE} but missing')
        digest = sha256_file(p)
        if digest != entry.get('sha256'):
            raise BenchIntegrityError(
                f'{p}: sha256 {digest} does not match {MANIFEST_FILE} ({entry.get("sha256")}); the '
                f'file was modified after the manifest was written (a build still running or '
                f'interrupted? finalize it with `python tools/build_bench.py --out {bench_dir} '
                f'--finalize`, or restore the file)')
    return m
