"""Kill a search mid-way (SIGKILL) and resume it: same final population, no finished evaluation
run twice."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from attnzero.search import Search, preset

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _cfg():
    # a little larger than 'tiny' so that the kill lands mid-run
    return preset('tiny').replace(generations=3, seed=7)


def _n_records(run_dir: str) -> int:
    try:
        with open(os.path.join(run_dir, 'state.json')) as f:
            return len(json.load(f)['records'])
    except (OSError, ValueError, KeyError):
        return 0


def test_kill_and_resume_same_final_population(tmp_path):
    killed = str(tmp_path / 'killed')
    cfg_file = tmp_path / 'cfg.json'
    cfg_file.write_text(_cfg().to_json())
    proc = subprocess.Popen(
        [sys.executable, os.path.join(ROOT, 'tools', 'search.py'), '--preset', 'tiny',
         '--config', str(cfg_file), '--run-dir', killed, '--no-progress'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    try:
        deadline = time.monotonic() + 150
        while _n_records(killed) < 4:
            assert proc.poll() is None, 'the search ended before it could be killed'
            assert time.monotonic() < deadline, 'no evaluations within 150 s'
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    with open(os.path.join(killed, 'state.json')) as f:
        before = json.load(f)
    assert not before['done'], 'killed too late: the run had finished'
    finished = {r['idx']: r for r in before['records']}

    resumed = Search(None, killed, resume=True, progress=False)
    resumed.run()
    # no finished evaluation was dispatched again in the resumed session
    log = open(os.path.join(killed, 'search.log')).read()
    session2 = log.split('session 2 in')[1]
    redone = {int(m) for m in re.findall(r'dispatch idx=(\d+)', session2)} & set(finished)
    assert not redone, f'evaluations {sorted(redone)} were run twice'
    for idx, r in finished.items():  # and their results are kept as they were
        assert resumed.state.records[idx]['F'] == r['F']
    lines = [json.loads(x) for x in open(os.path.join(killed, 'evaluations.jsonl'))]
    assert sorted(x['idx'] for x in lines) == sorted(resumed.state.records)

    fresh = Search(_cfg(), str(tmp_path / 'fresh'), progress=False)
    fresh.run()
    assert resumed.state.population == fresh.state.population
    assert resumed.state.generation == fresh.state.generation == 3
    assert {i: r['F'] for i, r in resumed.state.records.items()} == \
        {i: r['F'] for i, r in fresh.state.records.items()}


def test_resume_of_finished_run_is_a_noop(tmp_path):
    s = Search(preset('tiny').replace(generations=1), str(tmp_path / 'r'), progress=False)
    s.run()
    n = len(s.state.records)
    again = Search(None, str(tmp_path / 'r'), resume=True, progress=False)
    again.run()
    assert len(again.state.records) == n
    log = open(tmp_path / 'r' / 'search.log').read()
    assert 'dispatch' not in log.split('session 2 in')[1]
    with pytest.raises(Exception, match='cannot change'):
        Search(None, str(tmp_path / 'r'), resume=True, progress=False, overrides={'lr': 1.0})
