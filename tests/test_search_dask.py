"""``--dask-scheduler``: a search evaluated through dask.distributed futures on a LocalCluster."""
from __future__ import annotations

import pytest

from attnzero.search import Search, preset

distributed = pytest.importorskip('distributed')


def test_dask_scheduler_matches_serial(tmp_path):
    cfg = preset('tiny').replace(generations=2, seed=3)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster:
        dask_run = Search(cfg.replace(dask_scheduler=cluster.scheduler_address),
                          str(tmp_path / 'dask'), progress=False)
        dask_run.run()
    serial = Search(cfg, str(tmp_path / 'serial'), progress=False)
    serial.run()
    assert dask_run.state.done
    assert len(dask_run.state.records) == len(serial.state.records)
    # evaluations are deterministic given seed and genome, wherever they run
    assert dask_run.state.population == serial.state.population


def test_dask_bad_address_is_a_clear_error(tmp_path):
    from attnzero.search.executor import DaskExecutor

    with pytest.raises(ConnectionError, match='tcp://127.0.0.1:9'):
        DaskExecutor('tcp://127.0.0.1:9', timeout=10, connect_timeout=2)
