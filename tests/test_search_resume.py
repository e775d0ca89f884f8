"""Kill a search mid-way (SIGKILL) and resume it: same final population, no finished evaluation
run twice."""
from __future__ import annotations

import json
import os
import re

import pytest

from attnzero.search import Search, preset
from conftest import kill_search_when


def _cfg():
    # a little larger than 'tiny' so that the kill lands mid-run
    return preset('tiny').replace(generations=3, seed=7)


def test_kill_and_resume_same_final_population(tmp_path):
    killed = str(tmp_path / 'killed')
    cfg_file = tmp_path / 'cfg.json'
    cfg_file.write_text(_cfg().to_json())
    before = kill_search_when(str(cfg_file), killed, lambda st: len(st.get('records', [])) >= 4)
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
