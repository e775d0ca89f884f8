"""The benchmark scripts run on a tiny setting (no timed assertions: results live in docs/)."""
from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / 'tools'))


def test_benchmark_attention_quick(tmp_path):
    import benchmark_attention as ba
    out = tmp_path / 'att'
    assert ba.main(['--quick', '--N', '196', '--hd', '1x64', '--attn', 'softmax', 'linear', 'attnzero',
                    '--genome', 'i3n303:elu;min_max_normalize;-;normalize;-;l2norm_last:einsum2,matmul,product',
                    '--out', str(out), '--mem-limit-gib', '0', '--default-malloc']) == 0
    rows = list(csv.DictReader(open(out.with_suffix('.csv'))))
    names = {r['attn'] for r in rows}
    assert {'softmax', 'linear', 'attnzero', 'attnzero_fn', 'floor_dd'} <= names
    assert any(n.startswith('genome:') for n in names)
    assert {r['mode'] for r in rows} == {'fwd', 'fwdbwd'}
    assert all(float(r['ms']) > 0 for r in rows)
    assert all(float(r['faults_per_call']) >= 0 for r in rows)
    assert out.with_suffix('.png').stat().st_size > 0
    assert 'exponent' in out.with_suffix('.md').read_text()
    # the tables of an existing (e.g. interrupted) sweep can be re-rendered from its csv
    again = tmp_path / 'again'
    assert ba.main(['--quick', '--N', '196', '784', '--hd', '1x64', '--summarize-csv', str(out.with_suffix('.csv')),
                    '--out', str(again), '--default-malloc']) == 0
    text = again.with_suffix('.md').read_text()
    assert 'summarized from' in text and '| linear |' in text
    assert '- fwd 1x64 B=1 N=784' in text  # cells absent from the csv are listed as not run


def test_benchmark_attention_acceptance_quick(tmp_path):
    import benchmark_attention as ba
    out = tmp_path / 'acc'
    assert ba.main(['--acceptance', '--quick', '--out', str(out), '--mem-limit-gib', '0', '--default-malloc']) == 0
    text = out.with_suffix('.md').read_text()
    assert 'Trial-105' in text and 'load avg' in text


def test_interleaved_blocks_time_per_call():
    import torch

    import benchmark_attention as ba
    calls = {'a': 0, 'b': 0}

    def fa():
        calls['a'] += 1

    def fb():
        calls['b'] += 1
    times = ba.interleaved({'a': fa, 'b': fb}, torch.device('cpu'), rounds=3, warmup=2, block_ms=1.0)
    assert len(times['a']) == len(times['b']) == 3
    # a block repeats the cheap call many times; each sample is the time per call
    assert calls['a'] > 10 and all(0 < t < 1.0 for t in times['a'])


def test_interleaved_cold_cache_flushes_before_every_call(tmp_path):
    import torch

    import benchmark_attention as ba
    order = []
    flush = ba.cache_flusher(torch.device('cpu'), 1.0)
    assert ba.cache_flusher(torch.device('cpu'), 0) is None
    times = ba.interleaved({'a': lambda: order.append('a'), 'b': lambda: order.append('b')},
                           torch.device('cpu'), rounds=3, block_ms=5.0,
                           flush=lambda: (flush(), order.append('flush')))
    assert len(times['a']) == len(times['b']) == 3
    timed = order[2:]                              # after the two one-call warm-ups
    assert timed == ['flush', 'a', 'flush', 'b', 'flush', 'b', 'flush', 'a', 'flush', 'a', 'flush', 'b']
    out = tmp_path / 'cold'
    assert ba.main(['--quick', '--N', '196', '--hd', '1x64', '--attn', 'linear', '--modes', 'fwd',
                    '--cold-cache', '2', '--out', str(out), '--mem-limit-gib', '0', '--default-malloc']) == 0
    assert 'caches cold (a 2 MiB buffer' in out.with_suffix('.md').read_text()
    with pytest.raises(SystemExit):
        ba.main(['--quick', '--cold-cache', '-1', '--default-malloc'])


def test_benchmark_ops_quick(tmp_path):
    import benchmark_ops as bo
    out = tmp_path / 'ops'
    assert bo.main(['--quick', '--default-malloc', '--out', str(out)]) == 0
    text = out.with_suffix('.md').read_text()
    assert 'elu_plus_one(x)' in text and 'faults/call' in text and 'two_temporaries' in text


def test_fit_exponent():
    import benchmark_attention as ba
    assert abs(ba.fit_exponent([3136, 12544, 50176], [1.0, 4.0, 16.0]) - 1.0) < 1e-9
    assert ba.fit_exponent([196], [1.0]) != ba.fit_exponent([196], [1.0])  # NaN: too few points


def test_peak_memory_sees_torch_allocations():
    import torch

    import benchmark_attention as ba
    mib = ba.peak_memory_mib(lambda: torch.ones(64 * 2 ** 20 // 4).add_(1), torch.device('cpu'))
    if mib == mib:  # NaN where /proc/self/clear_refs is not available
        assert mib > 48


def test_benchmark_backbone_quick(tmp_path):
    pytest.importorskip('timm')
    import benchmark_backbone as bb
    out = tmp_path / 'bb'
    assert bb.main(['--quick', '--inprocess', '--out', str(out), '--mem-limit-gib', '0', '--default-malloc']) == 0
    rows = list(csv.DictReader(open(out.with_suffix('.csv'))))
    assert {r['kind'] for r in rows} == {'throughput', 'highres'}
    assert all(r['status'] == 'ok' for r in rows), rows
