"""tools/train.py and tools/test.py: each bad input is one line naming the bad value, exit code 2,
before anything is built or written (issue 22)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import has_mm_stack

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


pytestmark = [pytest.mark.mm, pytest.mark.skipif(not has_mm_stack('mmpretrain'),
                                                  reason='OpenMMLab stack not installed')]

# (configs without ``{{$ENV}}`` substitutions: mmengine logs those through a process-wide logger)
CFG = os.path.join(ROOT, 'mmconfigs/imagenet/pvtv2-b0-attnzero_8xb128-300e_in1k.py')
DET = os.path.join(ROOT, 'mmconfigs/mask_rcnn/mask-rcnn_pvtv2-b0-attnzero_fpn_1x_coco.py')
LOADERS = ('train_dataloader', 'val_dataloader', 'test_dataloader')


@pytest.fixture
def toy_ckpt(tmp_path):
    """An existing data root and an (empty) checkpoint file."""
    (tmp_path / 'data').mkdir()
    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'')
    return str(ckpt)


def _roots(d):
    return [f'{ld}.dataset.data_root={d}' for ld in LOADERS]


def _tools():
    from attnzero.mm.runner import test, train
    return {'train': train, 'test': test}


BAD = {
    # name: (tool, argv builder, text the message must contain)
    'missing config': ('both', lambda c: ['mmconfigs/nonexistent.py'], "'mmconfigs/nonexistent.py'"),
    'bad genome': ('both', lambda c: [CFG, '--genome', 'i3n303:bogus'], "'i3n303:bogus'"),
    'unknown graph in genome': ('both', lambda c: [CFG, '--genome', 'i3n999:a:b'], "'i3n999:a:b'"),
    'genome via cfg-options': ('both', lambda c: [CFG, '--cfg-options', 'model.genome=xyz'], "'xyz'"),
    'unknown scope': ('both', lambda c: [CFG, '--cfg-options', 'default_scope=mmfoo'], "'mmfoo'"),
    'missing data root': ('both', lambda c: [CFG, '--cfg-options',
                                             'train_dataloader.dataset.data_root=/nope/train',
                                             'val_dataloader.dataset.data_root=/nope/val',
                                             'test_dataloader.dataset.data_root=/nope/test'],
                          "'/nope/"),
    'missing annotation file': ('both', lambda c: [DET, '--cfg-options', 'model.backbone.init_cfg=None',
                                                   *_roots(os.path.dirname(c) + '/data')] +
                                [f'{ld}.dataset.ann_file=nope.json' for ld in LOADERS],
                                'nope.json'),
    'missing resume checkpoint': ('train', lambda c: [CFG, '--resume', '/nope/x.pth'], "'/nope/x.pth'"),
    'missing load_from': ('train', lambda c: [CFG, '--cfg-options', 'load_from=/nope/l.pth'],
                          "'/nope/l.pth'"),
    'missing pretrained backbone': ('train', lambda c: [CFG, '--cfg-options',
                                                        "model.init_cfg.type=Pretrained",
                                                        'model.init_cfg.checkpoint=/nope/bb.pth'],
                                    "'/nope/bb.pth'"),
    'missing test checkpoint': ('test', None, "'/nope/ckpt.pth'"),
}


def _cases():
    for name, (tool, _, _) in BAD.items():
        for t in (('train', 'test') if tool == 'both' else (tool,)):
            yield pytest.param(name, t, id=f'{t}-{name}')


@pytest.mark.parametrize('name,tool', list(_cases()))
def test_bad_input_is_one_line_with_exit_code_2(name, tool, toy_ckpt, tmp_path, capsys):
    from attnzero.mm.runner import run_tool

    _, build, needle = BAD[name]
    if name == 'missing test checkpoint':
        argv = [CFG, '/nope/ckpt.pth']
    else:
        argv = build(toy_ckpt)
        if tool == 'test':
            argv = argv[:1] + [toy_ckpt] + argv[1:]
    work = tmp_path / 'work'
    argv += ['--work-dir', str(work)]
    rc = run_tool(_tools()[tool], argv, f'tools/{tool}.py')
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2, err
    assert len(err) == 1 and err[0].startswith(f'tools/{tool}.py: error: '), err
    assert needle in err[0], err
    assert not work.exists()  # nothing built, nothing written


def test_the_real_command_lines_exit_2_with_one_line(tmp_path):
    for tool, argv in (('train.py', ['mmconfigs/nonexistent.py']),
                       ('test.py', [CFG, str(tmp_path / 'missing.pth')])):
        r = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', tool), *argv],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.returncode == 2, r.stderr
        assert lines[-1].startswith(f'tools/{tool}: error: ') and argv[-1] in lines[-1], r.stderr
        assert 'Traceback' not in r.stderr
