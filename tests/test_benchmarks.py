"""The benchmark tools (:mod:`attnzero.perf`) run on a tiny setting. No timed assertions (results
live in docs/), but every measured number must be a number: a NaN or infinite time, memory or
ratio fails."""
from __future__ import annotations

import csv
import math

import pytest

from attnzero.perf import attention as ba
from attnzero.perf import timing


def _finite(row, *keys):
    """``row[k]`` as floats; each must be finite."""
    vals = [float(row[k]) for k in keys]
    assert all(math.isfinite(v) for v in vals), {k: row[k] for k in keys}
    return vals


def _peak_memory_available() -> bool:
    """Peak memory is NaN where ``/proc/self/clear_refs`` cannot be written (not Linux, some
    containers)."""
    import torch

    return not math.isnan(timing.peak_memory_mib(lambda: None, torch.device('cpu')))


def test_benchmark_attention_quick(tmp_path):
    out = tmp_path / 'att'
    assert ba.main(['--quick', '--N', '196', '--hd', '1x64', '--attn', 'softmax', 'linear', 'attnzero',
                    '--genome', 'i3n303:elu;min_max_normalize;-;normalize;-;l2norm_last:einsum2,matmul,product',
                    '--out', str(out), '--mem-limit-gib', '0', '--default-malloc']) == 0
    rows = list(csv.DictReader(open(out.with_suffix('.csv'))))
    names = {r['attn'] for r in rows}
    assert {'softmax', 'linear', 'attnzero', 'attnzero_fn', 'floor_dd'} <= names
    assert any(n.startswith('genome:') for n in names)
    assert {r['mode'] for r in rows} == {'fwd', 'fwdbwd'}
    assert not any(r['skipped'] for r in rows), rows  # (N=196: nothing is predicted too slow)
    for r in rows:
        ms, ms_min, faults = _finite(r, 'ms', 'ms_min', 'faults_per_call')
        assert 0 < ms_min <= ms and faults >= 0, r
    if _peak_memory_available():  # the memory a call adds on top of its inputs
        assert all(_finite(r, 'mib')[0] >= 0 for r in rows), rows
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
    out = tmp_path / 'acc'
    assert ba.main(['--acceptance', '--quick', '--out', str(out), '--mem-limit-gib', '0', '--default-malloc']) == 0
    text = out.with_suffix('.md').read_text()
    assert 'Trial-105' in text and 'load avg' in text
    rows = list(csv.DictReader(open(out.with_suffix('.csv'))))
    assert len(rows) == 1 and rows[0]['N'] == '784'
    times = _finite(rows[0], 'trial105_ms', 'floor_ms', 'elu_linear_eager_ms', 'trial105_module_ms',
                    'sdpa_ms')
    assert all(t > 0 for t in times)
    _finite(rows[0], 'ratio_floor', 'ratio_elu', 'sdpa_speedup', 'ratio_floor_min', 'ratio_elu_min')


def test_sequential_times_each_variant_in_a_row(tmp_path):
    import torch

    order = []
    times = timing.interleaved({'a': lambda: order.append('a'), 'b': lambda: order.append('b')},
                               torch.device('cpu'), rounds=3, warmup=2, sequential=True)
    assert len(times['a']) == len(times['b']) == 3
    assert order == ['a'] * 5 + ['b'] * 5          # 2 warm-up calls, then its 3 timed calls
    out = tmp_path / 'seq'
    assert ba.main(['--acceptance', '--quick', '--sequential', '--out', str(out), '--mem-limit-gib', '0',
                    '--default-malloc']) == 0
    text = out.with_suffix('.md').read_text()
    assert 'each variant timed for all its rounds in a row' in text and 'Median of the rounds (each' in text
    with pytest.raises(SystemExit):  # an acceptance-only option without --acceptance is an error
        ba.main(['--quick', '--sequential', '--default-malloc'])


def test_eager_elu_linear_is_elu_plus_one_linear_attention():
    """The acceptance baseline computes ELU+1 linear attention (written out here in einsums)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 3, 49, 16, generator=g) for _ in range(3))
    fq, fk = F.elu(q) + 1, F.elu(k) + 1
    ref = (torch.einsum('bhnd,bhde->bhne', fq, torch.einsum('bhmd,bhme->bhde', fk, v))
           / (torch.einsum('bhnd,bhd->bhn', fq, fk.sum(dim=-2)).unsqueeze(-1) + 1e-6))
    with torch.no_grad():
        out = ba.eager_elu_linear(q, k, v)
    assert out.dtype == q.dtype and torch.allclose(out, ref, rtol=1e-5, atol=1e-6)


def test_interleaved_blocks_time_per_call():
    import torch

    calls = {'a': 0, 'b': 0}

    def fa():
        calls['a'] += 1

    def fb():
        calls['b'] += 1
    times = timing.interleaved({'a': fa, 'b': fb}, torch.device('cpu'), rounds=3, warmup=2, block_ms=1.0)
    assert len(times['a']) == len(times['b']) == 3
    # a block repeats the cheap call many times; each sample is the time per call
    assert calls['a'] > 10 and all(0 < t < 1.0 for t in times['a'])


def test_interleaved_cold_cache_flushes_before_every_call(tmp_path):
    import torch

    order = []
    flush = timing.cache_flusher(torch.device('cpu'), 1.0)
    assert timing.cache_flusher(torch.device('cpu'), 0) is None
    times = timing.interleaved({'a': lambda: order.append('a'), 'b': lambda: order.append('b')},
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
    from attnzero.perf import ops as bo

    out = tmp_path / 'ops'
    assert bo.main(['--quick', '--default-malloc', '--out', str(out)]) == 0
    text = out.with_suffix('.md').read_text()
    assert 'elu_plus_one(x)' in text and 'faults/call' in text and 'two_temporaries' in text
    # every cell of the fault table is a number ('—' is how a NaN is printed)
    fault_rows = [ln for ln in text.splitlines() if ln.startswith('| 1×2×196×32 |')]
    assert len(fault_rows) == 3 and not any('—' in ln for ln in fault_rows), fault_rows
    elu = {r[0]: r[1:] for r in bo.elu_table((1, 2, 196, 32), rounds=1, block_ms=0.0, warmup_ms=0.0)}
    assert all(math.isfinite(t) and t > 0 for times in elu.values() for t in times[:2]), elu
    assert 0 <= elu['elu_plus_one(x)'][2] < 1e-5 and 0 <= elu['F.elu(x) + 1'][2] < 1e-5, elu


def test_benchmark_ops_pass_table(tmp_path):
    from attnzero.perf import ops as bo

    out = tmp_path / 'ops'
    assert bo.main(['--quick', '--default-malloc', '--passes', '--no-inductor', '--out', str(out)]) == 0
    base = tmp_path / 'ops_passes'
    text = base.with_suffix('.md').read_text()
    assert 'python tools/benchmark_ops.py --quick --default-malloc --passes --no-inductor' in text
    assert 'Interleaved single calls (1 rounds)' in text and 'inductor' not in text.split('| what |')[1]
    assert base.with_suffix('.png').stat().st_size > 0
    with open(base.with_suffix('.csv')) as f:
        rows = {r['name']: r for r in csv.DictReader(f)}
    assert float(rows['floor']['ratio']) == 1.0
    assert 'Trial-105, eager executor' in rows and 'Trial-105, inductor (static shapes)' not in rows
    # the derived row is the sum of its parts' minima (not a timing) and its ratio is to the floor
    parts = sum(float(rows[n]['min_ms']) for n in bo.BOUND_PARTS)
    bound = rows[bo.BOUND_NAME]
    assert float(bound['min_ms']) == pytest.approx(parts, rel=1e-9)
    assert float(bound['ratio']) == pytest.approx(parts / float(rows['floor']['min_ms']), rel=1e-9)
    assert bound['median_ms'] == 'nan'
    assert all(float(r['min_ms']) > 0 for r in rows.values())


def test_fit_exponent():
    assert abs(timing.fit_exponent([3136, 12544, 50176], [1.0, 4.0, 16.0]) - 1.0) < 1e-9
    assert math.isnan(timing.fit_exponent([196], [1.0]))  # too few points


def test_peak_memory_sees_torch_allocations():
    import torch

    mib = timing.peak_memory_mib(lambda: torch.ones(64 * 2 ** 20 // 4).add_(1), torch.device('cpu'))
    if mib == mib:  # NaN where /proc/self/clear_refs is not available
        assert mib > 48


def test_benchmark_backbone_quick(tmp_path):
    pytest.importorskip('timm')
    from attnzero.perf import backbone as bb

    out = tmp_path / 'bb'
    assert bb.main(['--quick', '--inprocess', '--out', str(out), '--mem-limit-gib', '0', '--default-malloc']) == 0
    rows = list(csv.DictReader(open(out.with_suffix('.csv'))))
    assert {r['kind'] for r in rows} == {'throughput', 'highres'}
    assert all(r['status'] == 'ok' for r in rows), rows
    for r in rows:
        if r['kind'] == 'throughput':
            assert all(v > 0 for v in _finite(r, 'ms', 'img_s')), r
        else:
            assert all(v > 0 for v in _finite(r, 'ms', 'peak_rss_mib')), r


def test_benchmark_deploy_quick(tmp_path):
    from attnzero.perf import deploy as bd

    out = tmp_path / 'deploy'
    assert bd.main(['--quick', '--out', str(out)]) == 0
    rows = list(csv.DictReader(open(str(out) + '.csv')))
    assert len(rows) == 1 and rows[0]['host_syncs'] == 'n/a' and rows[0]['error'] == '', rows
    assert float(rows[0]['eager_fp32_img_s']) > 0
    assert (tmp_path / 'deploy.png').stat().st_size > 0
    assert 'Free of host syncs' in (tmp_path / 'deploy.md').read_text()
    assert bd.main(['--models', 'no_such_model', '--out', str(out)]) == 2


def test_deploy_check_compiles_and_reports_failures():
    import torch
    from attnzero.perf import deploy as bd

    cpu = torch.device('cpu')
    row = bd.check('deit_tiny', 'no_such_attention', cpu, img=32, batch=1, iters=1, warmup=0)
    assert row['error'] and row['eager_fp32_img_s'] != row['eager_fp32_img_s']  # recorded, not raised
    # host syncs: the check needs CUDA; elsewhere it says so instead of passing silently
    m = torch.nn.Linear(4, 4)
    assert bd.host_sync_check(m, torch.randn(2, 4)) == 'n/a'
