"""Attn-Bench-101 file format: atomic appends, torn-line repair, manifest verification."""
from __future__ import annotations

import json
import os

import pytest

from attnzero.bench.format import (BENCH_FILE, BenchIntegrityError, append_record, dumps_record,
                                   read_jsonl, verify_manifest, write_manifest)


def test_append_read_and_repair_torn_line(tmp_path):
    p = str(tmp_path / BENCH_FILE)
    append_record(p, {'genome': 'a', 'x': 1.0})
    append_record(p, {'genome': 'b', 'x': float('nan')})  # NaN is stored as null (strict JSON)
    with open(p, 'ab') as f:
        f.write(b'{"genome": "c", "x"')  # a crash in the middle of an append
    recs, dropped = read_jsonl(p)
    assert [r['genome'] for r in recs] == ['a', 'b'] and recs[1]['x'] is None and dropped == 1
    recs, dropped = read_jsonl(p, repair=True)
    assert dropped == 1
    append_record(p, {'genome': 'd'})
    recs, dropped = read_jsonl(p)
    assert [r['genome'] for r in recs] == ['a', 'b', 'd'] and dropped == 0
    assert dumps_record({'b': 1, 'a': [1, 2]}) == '{"a":[1,2],"b":1}'


def test_manifest_roundtrip_and_mismatch(tmp_path):
    d = str(tmp_path)
    append_record(os.path.join(d, BENCH_FILE), {'genome': 'a'})
    m = write_manifest(d, settings={'k': 1}, command='test')
    assert m['records'] == 1
    assert verify_manifest(d)['files'][BENCH_FILE]['sha256'] == m['files'][BENCH_FILE]['sha256']
    append_record(os.path.join(d, BENCH_FILE), {'genome': 'b'})
    with pytest.raises(BenchIntegrityError, match='does not match'):
        verify_manifest(d)
    with open(os.path.join(d, 'MANIFEST.json')) as f:
        assert json.load(f)['creation_command'] == 'test'
