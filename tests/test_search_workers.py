"""Local worker processes: a worker that dies or hangs loses only its evaluation (retried once)."""
from __future__ import annotations

from attnzero.search import Search, preset
from attnzero.space import ELU_LINEAR, SOFTMAX, TRIAL_105


def test_worker_death_loses_only_that_evaluation(tmp_path):
    cfg = preset('tiny').replace(
        generations=1, pop_size=3, workers=1, eval_timeout_s=300.0, retries=1,
        init_genomes=[TRIAL_105.to_string(), ELU_LINEAR.to_string()],
        fault_injection={TRIAL_105.to_string(): 'exit'})
    s = Search(cfg, str(tmp_path / 'run'), progress=False)
    s.run()
    died = next(r for r in s.state.records.values() if r['genome'] == TRIAL_105.to_string())
    assert (died['status'], died['reason'], died['attempts']) == ('rejected', 'worker_died', 2)
    others = [r for r in s.state.records.values() if r is not died]
    assert others and all(r['reason'] not in ('worker_died', 'timeout') for r in others)
    assert any(r['stage'] == 'train' for r in others)  # the replacement worker trained the others
    assert s.state.done


def test_worker_hang_times_out(tmp_path):
    # the only dispatched candidate hangs (the softmax genome is rejected by the static check)
    cfg = preset('tiny').replace(
        generations=1, pop_size=2, workers=1, eval_timeout_s=3.0, retries=1,
        init_genomes=[ELU_LINEAR.to_string(), SOFTMAX.to_string()],
        fault_injection={ELU_LINEAR.to_string(): 'hang'})
    s = Search(cfg, str(tmp_path / 'run'), progress=False)
    s.run()
    hung = next(r for r in s.state.records.values() if r['genome'] == ELU_LINEAR.to_string())
    assert (hung['status'], hung['reason'], hung['attempts']) == ('rejected', 'timeout', 2)
    assert s.state.done


def test_workers_exit_when_the_search_process_is_killed():
    """SIGKILL of the process that owns the local workers (a killed search, fidelity run or bench
    build) must not leave a worker training on: it would hold a core the resumed run needs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import psutil

    script = (
        'import time\n'
        'from attnzero.search.executor import ProcessExecutor\n'
        'ex = ProcessExecutor(1, timeout=600.0)\n'
        'slot = ex.slots[0]\n'
        'fut = slot.pool.submit(time.sleep, 600)\n'
        'time.sleep(0.5)\n'
        'print(*slot.pool._processes, flush=True)\n'
        'fut.result()\n')
    proc = subprocess.Popen([sys.executable, '-c', script], stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path)))
    try:
        worker = int(proc.stdout.readline().split()[0])
        assert psutil.pid_exists(worker)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def gone() -> bool:
        try:
            return psutil.Process(worker).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    deadline = time.monotonic() + 20
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert gone(), f'worker {worker} still runs after its parent was killed'
