"""Issue 2: mmengine checkpoints load and resume on torch >= 2.6 with weights-only loading kept on."""
from __future__ import annotations

import os
import pickle
import subprocess
import sys

import pytest
import torch
from torch import nn

from conftest import requires_mm

pytestmark = [requires_mm, pytest.mark.mm]


class _Evil:
    """An arbitrary class: weights-only loading must keep refusing it."""

    def __reduce__(self):
        return (os.getcwd, ())


class _SneakyGetattr:
    """Reaches a private attribute through the getattr that mmengine checkpoints need."""

    def __reduce__(self):
        from mmengine.logging.history_buffer import HistoryBuffer
        return (getattr, (HistoryBuffer, '__init__'))


def _runner(work_dir, max_iters, resume):
    import attnzero.compat  # noqa: F401
    from mmengine.model import BaseModel
    from mmengine.runner import Runner

    class TinyRegressor(BaseModel):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 1)

        def forward(self, inputs, targets=None, mode='tensor'):
            out = self.fc(inputs).squeeze(-1)
            if mode == 'loss':
                return dict(loss=((out - targets) ** 2).mean())
            return out

    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=g)
    y = x @ torch.tensor([1., -2., 0.5, 3.])
    dataset = [dict(inputs=x[i], targets=y[i]) for i in range(16)]
    return Runner(
        model=TinyRegressor(),
        work_dir=str(work_dir),
        train_dataloader=dict(dataset=dataset, batch_size=4, num_workers=0,
                              sampler=dict(type='DefaultSampler', shuffle=True),
                              collate_fn=dict(type='default_collate')),
        optim_wrapper=dict(optimizer=dict(type='AdamW', lr=0.01)),
        param_scheduler=dict(type='CosineAnnealingLR', T_max=max_iters, by_epoch=False),
        train_cfg=dict(by_epoch=False, max_iters=max_iters),
        default_hooks=dict(checkpoint=dict(type='CheckpointHook', interval=1, by_epoch=False),
                           logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        resume=resume,
        default_scope='mmengine',
    )


def test_runner_trains_checkpoints_and_resumes(tmp_path):
    runner = _runner(tmp_path, max_iters=2, resume=False)
    runner.train()
    ckpt = tmp_path / 'iter_2.pth'
    assert ckpt.is_file()
    weights_after_2 = runner.model.fc.weight.detach().clone()

    resumed = _runner(tmp_path, max_iters=4, resume=True)
    resumed.load_or_resume()
    # the resumed state is the saved one: iteration counter, weights, optimizer moments, scheduler
    assert resumed.iter == 2
    torch.testing.assert_close(resumed.model.fc.weight, weights_after_2)
    assert resumed.optim_wrapper.optimizer.state_dict()['state'], 'optimizer state not restored'
    loss_hist = resumed.message_hub.get_scalar('train/loss')
    assert len(loss_hist.data[0]) == 2  # the HistoryBuffer came back from the checkpoint

    resumed.train()
    assert resumed.iter == 4
    assert (tmp_path / 'iter_4.pth').is_file()


def test_checkpoint_needs_the_allow_list_and_safety_stays_on(tmp_path):
    runner = _runner(tmp_path, max_iters=1, resume=False)
    runner.train()
    ckpt = str(tmp_path / 'iter_1.pth')

    # Without attnzero.compat, torch's default weights-only load refuses mmengine's HistoryBuffer.
    code = ('import torch, sys\n'
            'try:\n'
            f'    torch.load({ckpt!r})\n'
            'except Exception as e:\n'
            '    print(type(e).__name__, e); sys.exit(3)\n')
    proc = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert 'HistoryBuffer' in proc.stdout

    # With it, the same default call works...
    import attnzero.compat  # noqa: F401
    state = torch.load(ckpt)
    assert 'message_hub' in state and 'state_dict' in state
    # ...and weights-only loading is still on: arbitrary globals are refused.
    evil = tmp_path / 'evil.pt'
    with open(evil, 'wb') as f:
        torch.save({'x': _Evil()}, f, pickle_module=pickle)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(evil)
    # the getattr registered for HistoryBuffer's statistic methods resolves nothing else
    sneaky = tmp_path / 'sneaky.pt'
    torch.save({'x': _SneakyGetattr()}, sneaky)
    with pytest.raises(pickle.UnpicklingError, match='refusing getattr'):
        torch.load(sneaky)
