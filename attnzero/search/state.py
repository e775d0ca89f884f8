"""Run directory and checkpointed search state.

Layout of ``RUN_DIR``::

    config.json          the SearchConfig (read back by --resume)
    state.json           search state: every evaluation, baselines, generation, population,
                         NSGA-II random state -- rewritten atomically after every evaluation
    evaluations.jsonl    one line per evaluation (append + fsync; rebuilt from state.json on resume)
    search.log           log
    pareto.csv, pareto.png, best_genomes.json, best_genome.py, final_population.json,
    summary.json         written at the end (a joint search, ``space='joint'``: best_archs.json and
                         best_arch_mmconfig.py instead of best_genomes.json and best_genome.py)

Atomic write (:func:`attnzero.io.atomic_write_text`): the new content goes to a temporary file in
the same directory, is fsync'ed, then ``os.replace``-d over the old file (and the directory
fsync'ed), so a kill at any point leaves either the old or the new state, never a torn one.
Evaluation lines are appended with :func:`attnzero.io.append_line` (one write, then fsync).
"""
from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional

from attnzero.io import append_line, atomic_write_text

__all__ = ['atomic_write_text', 'atomic_write_json', 'RunState', 'RunDirError', 'STATE_VERSION']

STATE_VERSION = 1


class RunDirError(ValueError):
    """A run directory that cannot be used (missing, not a run, or already used)."""


def atomic_write_json(path: str, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=1, sort_keys=True, allow_nan=True) + '\n')


class RunState:
    """In-memory search state mirrored to ``RUN_DIR/state.json``."""

    def __init__(self, run_dir: str) -> None:
        self.run_dir = run_dir
        self.records: Dict[int, Dict[str, Any]] = {}
        #: successive-halving results per evaluation index, one per rung below the last, kept
        #: after the candidate is final (a resume recomputes the same promotions from them)
        self.rungs: Dict[int, List[Dict[str, Any]]] = {}
        #: pre-screen results per evaluation index (``SearchConfig.prescreen``), kept likewise
        self.prescreen: Dict[int, Dict[str, Any]] = {}
        #: the prior the run was started with (``SearchConfig.prior``): path, sha256, lines
        self.prior: Dict[str, Any] = {}
        self.baselines: Dict[str, Dict[str, Any]] = {}
        self.generation = 0
        self.population: List[Dict[str, Any]] = []
        self.rng_state: Optional[Dict[str, Any]] = None
        self.rng_history: List[Dict[str, Any]] = []
        self.done = False
        #: why the run ended before its last generation (a ``Search(stop=...)`` criterion), else ''
        self.stopped = ''
        self.wall_seconds = 0.0
        self.sessions = 0

    # ---- paths ---------------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.run_dir, name)

    # ---- persistence ----------------------------------------------------------------------
    def to_dict(self) -> Dict[str, Any]:
        return dict(version=STATE_VERSION, records=[self.records[k] for k in sorted(self.records)],
                    rungs={str(k): self.rungs[k] for k in sorted(self.rungs)},
                    prescreen={str(k): self.prescreen[k] for k in sorted(self.prescreen)},
                    prior=self.prior,
                    baselines=self.baselines, generation=self.generation,
                    population=self.population, rng_state=self.rng_state,
                    rng_history=self.rng_history, done=self.done, stopped=self.stopped,
                    wall_seconds=self.wall_seconds, sessions=self.sessions)

    def save(self) -> None:
        atomic_write_json(self.path('state.json'), self.to_dict())

    def append_evaluation(self, record: Dict[str, Any]) -> None:
        """Log one evaluation line (durable) -- after :meth:`save` has made it part of the state."""
        append_line(self.path('evaluations.jsonl'), json.dumps(record, sort_keys=True, allow_nan=True))

    def rewrite_evaluations(self) -> None:
        """Rebuild evaluations.jsonl from the state (drops a line torn by a kill)."""
        lines = ''.join(json.dumps(self.records[k], sort_keys=True, allow_nan=True) + '\n'
                        for k in sorted(self.records, key=lambda i: self.records[i].get('order', i)))
        atomic_write_text(self.path('evaluations.jsonl'), lines)

    @classmethod
    def load(cls, run_dir: str) -> 'RunState':
        p = os.path.join(run_dir, 'state.json')
        st = cls(run_dir)
        if not os.path.exists(p):
            return st  # killed before the first checkpoint: start over, same config
        try:
            with open(p, encoding='utf-8') as f:
                data = json.load(f)
        except (OSError, json.JSONDecodeError) as e:
            raise RunDirError(f'{p}: unreadable search state ({e}); the file is left untouched') from e
        if data.get('version') != STATE_VERSION:
            raise RunDirError(f'{p}: state version {data.get("version")!r}, expected {STATE_VERSION}')
        st.records = {int(r['idx']): r for r in data.get('records', [])}
        st.rungs = {int(k): v for k, v in data.get('rungs', {}).items()}
        st.prescreen = {int(k): v for k, v in data.get('prescreen', {}).items()}
        st.prior = data.get('prior', {})
        st.baselines = data.get('baselines', {})
        st.generation = int(data.get('generation', 0))
        st.population = data.get('population', [])
        st.rng_state = data.get('rng_state')
        st.rng_history = data.get('rng_history', [])
        st.done = bool(data.get('done', False))
        st.stopped = str(data.get('stopped', ''))
        st.wall_seconds = float(data.get('wall_seconds', 0.0))
        st.sessions = int(data.get('sessions', 0))
        return st
