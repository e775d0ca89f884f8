"""``tools/transfer.py`` (:mod:`attnzero.transfer`, issue 19): attentions from a search run, genome
texts and zoo names; the derived configs; bad input stopped before any run; resuming and skipping
with a stand-in trainer; and (``-m slow``, about 90 s on 2 quiet cores) a real 2-attention x 1-task
transfer on a tiny setting that is killed, resumed and tabulated."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import has_mm_stack

pytestmark = pytest.mark.skipif(not has_mm_stack(), reason='OpenMMLab stack not installed')

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
T105 = 'i3n303:elu;min_max_normalize;l2norm_last;normalize;-;l2norm_last:einsum2,matmul,product'


@pytest.fixture(scope='module')
def tr():
    from attnzero import transfer
    return transfer


def _args(tr, out, *extra):
    return tr.arg_parser().parse_args(['--out', str(out), '--no-progress', *extra])


def test_attentions_from_a_run_genomes_and_the_zoo(tr, tmp_path):
    run = tmp_path / 'search'
    run.mkdir()
    (run / 'best_genomes.json').write_text(json.dumps([{'genome': T105, 'acc_mean': 0.5},
                                                       {'genome': 'i3n303:relu;-;-;-;-;-:einsum2,matmul,product'}]))
    atts = tr.resolve_attentions(['softmax', 'trial_105', 'agent'], genomes=[T105], runs=[str(run)], top=2)
    # the run's first genome is Trial-105: the --genome and zoo copies are the same attention
    assert [a.attn for a in atts] == ['attnzero', 'attnzero', 'softmax', 'agent']
    assert atts[0].label.startswith('search-1-') and atts[0].genome == T105
    assert 'front #2' in atts[1].source
    assert tr.resolve_attentions(['trial_105'])[0].genome == T105


@pytest.mark.parametrize('kwargs, message', [
    (dict(zoo=['softmax', 'nope']), "unknown zoo attention 'nope'"),
    (dict(zoo=[], genomes=['i3n303:elu']), "bad genome 'i3n303:elu'"),
    (dict(zoo=[], runs=['/nonexistent/run']), "search run directory '/nonexistent/run' does not exist"),
    (dict(zoo=[]), 'no attention to compare'),
])
def test_bad_attentions_are_named(tr, kwargs, message):
    with pytest.raises(tr.ToolError, match=message.replace('(', r'\(').replace(')', r'\)')):
        tr.resolve_attentions(**kwargs)


def test_a_run_without_a_front_is_named(tr, tmp_path):
    with pytest.raises(tr.ToolError, match='has no best_genomes.json'):
        tr.resolve_attentions([], runs=[str(tmp_path)])


@pytest.mark.parametrize('argv, message', [
    (['--tasks', 'coco-mask,coco-keypoints'], "unknown task 'coco-keypoints'"),
    (['--backbone', 'deit-t', '--tasks', 'ade-fpn'], "backbone 'deit-t' has no config for task 'ade-fpn'"),
    (['--data-root', '/nonexistent/data'], "--data-root '/nonexistent/data' does not exist"),
    (['--zoo', 'softmax', '--genome', 'i3n303:elu;-;-;-;-;-:matmul,matmul'], 'bad genome'),
])
def test_bad_input_stops_before_any_run(tr, tmp_path, capsys, argv, message):
    out = tmp_path / 'out'
    assert tr.main(['--out', str(out), '--no-progress', '--toy-root', str(tmp_path / 'toy'), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('attnzero-transfer: error: ') and message in err[0], err
    assert not (out / 'runs').exists()


def test_a_data_root_without_the_task_data_is_named(tr, tmp_path):
    (tmp_path / 'data' / 'coco').mkdir(parents=True)
    args = _args(tr, tmp_path / 'out', '--data-root', str(tmp_path / 'data'), '--tasks', 'coco-retina,ade-fpn',
                 '--zoo', 'softmax')
    with pytest.raises(tr.ToolError, match="no ade/ADEChallengeData2016 folder for task 'ade-fpn'"):
        tr.plan(args)


def test_derived_toy_config_on_another_backbone(tr, tmp_path):
    att = tr.resolve_attentions(['focused'])[0]
    cfg = tr.derive_config('ade-upernet', 'pvt-t', att, configs_dir=tr.default_configs_dir(),
                           scratch_dir=str(tmp_path), toy_root=str(tmp_path / 'toy'), schedule=0.5)
    bb = cfg.model.backbone
    assert bb.type == 'AttnZeroPVT' and bb.arch == 'tiny' and bb.attn == 'focused' and bb.init_cfg is None
    assert cfg.model.decode_head.num_classes == 4  # the toy overlay
    assert cfg.train_dataloader.dataset.data_root == str(tmp_path / 'toy' / 'ade' / 'ADEChallengeData2016')
    assert cfg.train_cfg.max_iters == 50 and cfg.train_cfg.val_interval == 50
    assert [s['end'] for s in cfg.param_scheduler] == [10, 50]
    assert dict(type='MetricsDumpHook') in cfg.custom_hooks


def test_schedule_scaling_of_an_epoch_config(tr, tmp_path):
    att = tr.resolve_attentions(['trial_105'])[0]
    cfg = tr.derive_config('coco-mask', 'pvtv2-b0', att, configs_dir=tr.default_configs_dir(),
                           scratch_dir=str(tmp_path), toy_root=str(tmp_path), schedule=0.5)
    assert cfg.model.backbone.genome == T105 and cfg.model.backbone.attn == 'attnzero'
    assert cfg.train_cfg.max_epochs == 6 and cfg.train_cfg.val_interval == 6
    warm, steps = cfg.param_scheduler
    assert warm['end'] == 10 and steps['end'] == 6 and steps['milestones'] == [4, 6]
    assert cfg.default_hooks.checkpoint.interval == 2


def test_real_data_configs_point_at_the_data_root(tr, tmp_path):
    att = tr.resolve_attentions(['softmax'])[0]
    cfg = tr.derive_config('coco-retina', 'pvtv2-b0', att, configs_dir=tr.default_configs_dir(),
                           scratch_dir=str(tmp_path), data_root='/data/real', pretrained='ckpt/{backbone}-{attn}.pth')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        assert cfg[loader].dataset.data_root == '/data/real/coco/'
    assert cfg.val_evaluator.ann_file == '/data/real/coco/annotations/instances_val2017.json'
    assert cfg.model.backbone.init_cfg == dict(type='Pretrained', checkpoint='ckpt/pvtv2-b0-softmax.pth')


def test_other_settings_in_the_same_folder_are_refused(tr, tmp_path):
    toy = str(tmp_path / 'toy')
    tr.plan(_args(tr, tmp_path / 'out', '--zoo', 'softmax', '--tasks', 'ade-fpn', '--toy-root', toy))
    with pytest.raises(tr.ToolError, match=r'holds runs made with other settings \(schedule=1.0\)'):
        tr.plan(_args(tr, tmp_path / 'out', '--zoo', 'softmax', '--tasks', 'ade-fpn', '--toy-root', toy,
                      '--schedule', '0.5'))


def _rows(path):
    with open(path) as f:
        return {r['attention']: r for r in csv.DictReader(f)}


FAKE_TRAIN = """
import json, os, sys
args = sys.argv[1:]
wd = args[args.index('--work-dir') + 1]
mode = os.environ['FAKE_MODE']
assert mode != 'forbidden', 'a finished run was launched again'

def ckpt(name):
    path = os.path.join(wd, name)
    open(path, 'w').write(name)
    open(os.path.join(wd, 'last_checkpoint'), 'w').write(path)

if '--resume' not in args:
    ckpt('iter_1.pth')
    if mode == 'killed':
        sys.exit(137)
ckpt('iter_2.pth')
if mode != 'no-final-val':
    json.dump(dict(epoch=0, iter=2, max_epochs=1, max_iters=2, metrics={'mIoU': 42.5}),
              open(os.path.join(wd, 'val_metrics.json'), 'w'))
"""
FAKE_TEST = """
import json, sys
json.dump({'mIoU': 41.0}, open(sys.argv[sys.argv.index('--metrics-out') + 1], 'w'))
"""


def _fake_launch(tr, tmp_path):
    train, test = tmp_path / 'fake_train.py', tmp_path / 'fake_test.py'
    train.write_text(FAKE_TRAIN)
    test.write_text(FAKE_TEST)

    class Fake(tr.Launch):
        def train_cmd(self, run, resume):
            return [sys.executable, str(train), '--work-dir', run.work_dir] + (['--resume'] if resume else [])

        def test_cmd(self, run, ckpt):
            return [sys.executable, str(test), ckpt, '--metrics-out', os.path.join(run.work_dir, 'test_metrics.json')]
    return Fake()


def test_a_killed_run_resumes_and_a_finished_one_is_skipped(tr, tmp_path, monkeypatch):
    """The orchestration of one run with a stand-in trainer (seconds): a run killed after its first
    checkpoint is continued with --resume, its result written once, its intermediate checkpoints
    removed, and a finished run is never launched again."""
    launch = _fake_launch(tr, tmp_path)
    att = tr.resolve_attentions(['softmax'])[0]
    run = tr.Run('ade-fpn', att, 0, 0, str(tmp_path / 'run'))
    os.makedirs(run.work_dir)
    monkeypatch.setenv('FAKE_MODE', 'killed')
    res = tr.execute(run, launch)
    assert res['status'] == 'failed' and res['rc'] == 137 and not os.path.exists(run.result_path)
    monkeypatch.setenv('FAKE_MODE', 'ok')
    res = tr.execute(run, launch)
    assert res['status'] == 'ok' and res['resumed'] and '--resume' in res['commands'][0]
    assert res['metrics'] == {'mIoU': 42.5}
    assert sorted(f for f in os.listdir(run.work_dir) if f.endswith('.pth')) == ['iter_2.pth']
    monkeypatch.setenv('FAKE_MODE', 'forbidden')
    assert tr.execute(run, launch) == res
    log = open(os.path.join(run.work_dir, 'run.log')).read()
    assert log.count('$ ') == 2


def test_a_run_trained_to_the_end_without_its_final_validation_is_tested(tr, tmp_path, monkeypatch):
    launch = _fake_launch(tr, tmp_path)
    run = tr.Run('ade-fpn', tr.resolve_attentions(['focused'])[0], 0, 0, str(tmp_path / 'run'))
    os.makedirs(run.work_dir)
    monkeypatch.setenv('FAKE_MODE', 'no-final-val')
    res = tr.execute(run, launch)
    assert res['status'] == 'ok' and res['metrics'] == {'mIoU': 41.0} and len(res['commands']) == 2


def test_table_and_plots_from_results(tr, tmp_path):
    atts = tr.resolve_attentions(['softmax', 'trial_105'])
    runs = []
    for a, vals in zip(atts, ([40.0, 42.0], [45.0])):
        for i, v in enumerate(vals):
            r = tr.Run('ade-fpn', a, i, i, str(tmp_path / a.label / str(i)))
            r.result = dict(status='ok', metrics={'mIoU': v}, commands=[f'python -m attnzero.mm train {i}'],
                            seconds=1.0)
            runs.append(r)
    failed = tr.Run('ade-fpn', atts[1], 1, 1, str(tmp_path / 'f'))
    failed.result = dict(status='failed', task='ade-fpn', attention='trial_105', seed=1, rc=1, reason='boom',
                         commands=[], seconds=1.0, log='x.log')
    runs.append(failed)
    stats = {('ade-fpn', 'softmax'): dict(resolution=[512, 512], mparams=7.5, backbone_gmacs=3.8,
                                          backbone_img_s=1.2, load_avg='0.50 0.40 0.30')}
    summary = tr.collect(runs, atts, ['ade-fpn'], stats)
    args = tr.arg_parser().parse_args(['--out', str(tmp_path / 'out'), '--seeds', '2'])
    os.makedirs(args.out)
    tr.report(args, summary, dict(backbone='pvtv2-b0', data='toy', schedule=1.0, seed=0))
    rows = _rows(tmp_path / 'out' / 'transfer.csv')
    assert rows['softmax']['ade-fpn mIoU mean'] == '41.0000' and rows['softmax']['ade-fpn mIoU n'] == '2'
    assert rows['trial_105']['ade-fpn mIoU n'] == '1' and rows['trial_105']['ade-fpn mIoU sd'] == 'nan'
    assert rows['softmax']['ade-fpn backbone img/s'] == '1.200'
    md = (tmp_path / 'out' / 'transfer.md').read_text()
    assert '| softmax | 41.0 ± 1.4 |' in md and '| trial_105 | 45.0 |' in md
    assert 'trial_105 / seed 1: rc 1: boom' in md and '0.50 0.40 0.30' in md
    assert (tmp_path / 'out' / 'transfer_ade-fpn_mIoU.png').stat().st_size > 0


@pytest.mark.slow
def test_transfer_is_killed_resumed_and_tabulated(tmp_path):
    """Two attentions x ade-fpn, 5 iterations each: killed (SIGKILL, the whole process group) once
    the first run has saved a checkpoint; the same command then continues that run from the
    checkpoint, trains the second, and writes the table; a third call trains nothing."""
    out = tmp_path / 'out'
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'transfer.py'), '--zoo', 'softmax,trial_105',
           '--tasks', 'ade-fpn', '--schedule', '0.05', '--speed-iters', '-1', '--no-progress',
           '--toy-root', str(tmp_path / 'toy'), '--out', str(out),
           '--cfg-options', 'train_dataloader.batch_size=2', 'val_dataloader.dataset.indices=2']
    first = out / 'runs' / 'ade-fpn' / 'softmax' / 'seed0'
    proc = subprocess.Popen(cmd, cwd=str(tmp_path), start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while not (first / 'last_checkpoint').exists():
        assert proc.poll() is None, 'transfer ended before the first checkpoint'
        assert time.time() < deadline, 'no checkpoint within 300 s'
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (first / 'result.json').exists()

    done = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert '2 runs, 0 already finished' in done.stdout
    r1 = json.loads((first / 'result.json').read_text())
    assert r1['resumed'] and '--resume' in r1['commands'][0]
    r2 = json.loads((out / 'runs' / 'ade-fpn' / 'trial_105' / 'seed0' / 'result.json').read_text())
    assert not r2['resumed']
    assert [f for f in os.listdir(first) if f.endswith('.pth')] == ['iter_5.pth']  # only the final one kept

    rows = _rows(out / 'transfer.csv')
    assert list(rows) == ['softmax', 'trial_105']
    for r in rows.values():
        assert r['ade-fpn mIoU n'] == '1' and 0.0 <= float(r['ade-fpn mIoU mean']) <= 100.0
    md = (out / 'transfer.md').read_text()
    assert '| softmax |' in md and '--resume' in md and 'python -m attnzero.mm train' in md
    assert (out / 'transfer_ade-fpn_mIoU.png').stat().st_size > 0

    again = subprocess.run(cmd, cwd=str(tmp_path), capture_output=True, text=True)
    assert again.returncode == 0 and '2 runs, 2 already finished' in again.stdout
    assert json.loads((first / 'result.json').read_text()) == r1


def test_model_figures(tr):
    att = tr.resolve_attentions(['trial_105'])[0]
    st = tr.model_stats('imagenet', 'pvtv2-b0', att, tr.default_configs_dir(), speed_iters=1)
    assert st['resolution'] == [224, 224]
    assert 3.0 < st['mparams'] < 4.0 and 0.3 < st['backbone_gmacs'] < 1.0 and st['backbone_img_s'] > 0


def test_multi_gpu_runs_go_through_dist_train(tr, tmp_path):
    run = tr.Run('coco-mask', tr.resolve_attentions(['softmax'])[0], 0, 0, str(tmp_path / 'r'))
    launch = tr.Launch('pytorch', gpus=8)
    cmd = launch.train_cmd(run, resume=True)
    assert cmd[:2] == ['bash', os.path.join(ROOT, 'tools', 'dist_train.sh')] and os.path.isfile(cmd[1])
    assert cmd[2:] == [run.config_path, '8', '--work-dir', run.work_dir, '--resume']
    assert launch.env()['PYTHON'] == sys.executable
    single = tr.Launch('none', threads=1)
    assert single.train_cmd(run, resume=False)[1:4] == ['-m', 'attnzero.mm', 'train']
    assert single.env()['OMP_NUM_THREADS'] == '1'
