"""The weight-sharing supernet of the shape space (:mod:`attnzero.search.supernet`) and its
measurement against stand-alone training (``tools/supernet.py``): extraction, weight sharing,
determinism, the checkpoint, errors, and the tool end to end with resume (tiny settings: seconds)."""
from __future__ import annotations

import json
import os

import pytest
import torch

from attnzero.models import DeiT
from attnzero.search import ConfigError, SearchConfig, preset
from attnzero.search import supernet as sn
from attnzero.search import supernet_fidelity as sf
from attnzero.search.cli import supernet_main
from attnzero.search.config import JOINT_SEED_SHAPE, SEARCH_ONLY_FIELDS
from attnzero.search.evaluate import candidate_seed
from attnzero.search.proxies import load_proxy
from attnzero.search.supernet import (Supernet, SupernetError, largest_shape, load_or_train, score_subnets,
                                      supernet_scores, supernet_task, train_supernet)
from attnzero.space import TRIAL_105, Genome
from attnzero.space.shape import SHAPE_SPACES, JointGenome, ShapeError, ViTShape

SPACE = SHAPE_SPACES['proxy']
SMALLEST = 'e32:hd24:h1,1,1:r1.5,1.5,1.5'
LARGEST = 'e48:hd24:h2,2,2,2,2:r2,2,2,2,2'
MIXED = 'e40:hd24:h2,1,2,1:r1.5,2,2,1.5'
SHAPES = [SMALLEST, LARGEST, MIXED, JOINT_SEED_SHAPE, 'e32:hd24:h2,2,1,1,2:r2,1.5,1.5,2,2']


def _cfg(**kw):
    return preset('joint-tiny').replace(**kw)


@pytest.fixture(scope='module')
def trained():
    """A supernet after one epoch (its weights no longer the initialisation)."""
    cfg = _cfg()
    data = load_proxy(cfg.proxy)
    net = Supernet.for_config(cfg, data)
    info = train_supernet(net, cfg, data, seed=3, epochs=1)
    return cfg, data, net, info


def test_largest_shape_and_attention_choice():
    assert largest_shape(SPACE).to_string() == LARGEST
    assert sn.resolve_attention(None) == ('attnzero', TRIAL_105.to_string())
    assert sn.resolve_attention('softmax') == ('softmax', None)
    with pytest.raises(SupernetError, match='neither a zoo attention'):
        sn.resolve_attention('no_such_attention')


@pytest.mark.parametrize('mode', ['eval', 'train'])
def test_extracted_subnet_computes_what_the_supernet_computes(trained, mode):
    cfg, data, net, _ = trained
    x = data.val_x[:16]
    net.train(mode == 'train')
    for shape in SHAPES:
        model = net.extract(shape)
        assert isinstance(model, DeiT) and model.vit_shape == ViTShape.parse(shape)
        with torch.no_grad():
            a, b = net(x, shape), model(x)
        assert a.shape == (16, data.num_classes)
        assert (a - b).abs().max().item() <= 1e-6, shape
    net.eval()


def test_subnet_weights_are_the_leading_slices(trained):
    """Checked against slices written out here (q, k and v each keep their first heads*head_dim
    channels), not against the module's own slicing."""
    _, _, net, _ = trained
    full = net.model.state_dict()
    s = ViTShape.parse(MIXED)
    e, A = s.embed_dim, largest_shape(SPACE).attn_dim(0)
    sub = net.extract(s).state_dict()
    for i in range(s.depth):
        a, hid = s.attn_dim(i), s.mlp_hidden(i)
        W = full[f'blocks.{i}.attn.qkv.weight']
        want = torch.cat([W[j * A:j * A + a, :e] for j in range(3)])
        assert torch.equal(sub[f'blocks.{i}.attn.qkv.weight'], want)
        assert torch.equal(sub[f'blocks.{i}.attn.kernel.dwc.weight'], full[f'blocks.{i}.attn.kernel.dwc.weight'][:a])
        assert torch.equal(sub[f'blocks.{i}.attn.proj.weight'], full[f'blocks.{i}.attn.proj.weight'][:e, :a])
        assert torch.equal(sub[f'blocks.{i}.mlp.fc1.weight'], full[f'blocks.{i}.mlp.fc1.weight'][:hid, :e])
        assert torch.equal(sub[f'blocks.{i}.norm1.weight'], full[f'blocks.{i}.norm1.weight'][:e])
    assert torch.equal(sub['pos_embed'], full['pos_embed'][..., :e])
    assert torch.equal(sub['head.weight'], full['head.weight'][:, :e])
    assert not any(k.startswith(f'blocks.{s.depth}.') for k in sub)


def test_weights_outside_the_slice_do_not_matter(trained):
    _, data, net, _ = trained
    x = data.val_x[:8]
    net.eval()
    s = ViTShape.parse(MIXED)
    with torch.no_grad():
        ref = net(x, s)
        qkv = net.model.blocks[1].attn.qkv.weight     # block 1 has 1 head of 24: rows 24..47 of each third unused
        fc1 = net.model.blocks[0].mlp.fc1.weight      # 60 hidden units at width 40
        saved = qkv.clone(), fc1.clone()
        qkv.view(3, 48, 48)[:, 24:] += 1.0
        fc1[60:] += 1.0
        fc1[:, 40:] += 1.0
        net.model.blocks[4].attn.proj.weight.add_(1.0)   # a block beyond the subnet's depth
        same = net(x, s)
        qkv.view(3, 48, 48)[2, :24, :40] += 0.5      # v of the one head it does use
        changed = net(x, s)
        qkv.copy_(saved[0])
        fc1.copy_(saved[1])
        net.model.blocks[4].attn.proj.weight.sub_(1.0)
    assert torch.equal(same, ref)
    assert (changed - ref).abs().max().item() > 1e-4


def test_weights_are_shared_between_subnets():
    cfg = _cfg()
    data = load_proxy(cfg.proxy)
    net = Supernet.for_config(cfg, data)
    net.train()
    a, b = ViTShape.parse(SMALLEST), ViTShape.parse(MIXED)
    before = {k: v.detach().clone() for k, v in net.subnet_state(b).items()}
    with torch.no_grad():
        out_b = net.extract(b).eval()(data.val_x[:8])
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    loss = torch.nn.functional.cross_entropy(net(data.train_x[:32], a), data.train_y[:32])
    loss.backward()
    # what subnet a does not use gets no gradient: blocks beyond its depth none at all, the rest zeros
    assert net.model.blocks[3].attn.qkv.weight.grad is None
    g = net.model.blocks[0].attn.qkv.weight.grad.view(3, 48, 48)
    assert g[:, :24, :32].abs().sum() > 0 and g[:, 24:].abs().sum() == 0 and g[:, :, 32:].abs().sum() == 0
    opt.step()
    after = net.subnet_state(b)
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert 'patch_embed.proj.weight' in moved and 'blocks.0.attn.qkv.weight' in moved
    assert not any(k.startswith('blocks.3.') for k in moved)    # b's block 3 is beyond a's depth
    with torch.no_grad():
        assert (net.extract(b).eval()(data.val_x[:8]) - out_b).abs().max().item() > 1e-4


def test_training_is_deterministic_given_the_seed():
    cfg = _cfg()
    data = load_proxy(cfg.proxy)

    def run(seed):
        torch.manual_seed(1234)   # whatever the global generator holds, the result is the seed's
        net = Supernet.for_config(cfg, data)
        info = train_supernet(net, cfg, data, seed=seed, epochs=1)
        return net.model.state_dict(), info

    (s1, i1), (s2, i2), (s3, _) = run(5), run(5), run(6)
    assert i1['steps'] == i2['steps'] == 6 and i1['loss_last'] == i2['loss_last']
    assert all(torch.equal(s1[k], s2[k]) for k in s1)
    assert not all(torch.equal(s1[k], s3[k]) for k in s1)


def test_a_shape_outside_the_space_is_one_line_naming_it(trained, monkeypatch):
    cfg, data, net, _ = trained
    bad = 'e56:hd24:h2,2,2:r2,2,2'
    for call in (lambda: net(data.val_x[:2], bad), lambda: net.extract(bad),
                 lambda: score_subnets(net, [SMALLEST, bad], data)):
        with pytest.raises(ShapeError) as e:
            call()
        assert bad in str(e.value) and 'embed_dim 56' in str(e.value) and '\n' not in str(e.value)
    monkeypatch.setattr(sn, 'train_supernet', lambda *a, **k: pytest.fail('trained before checking shapes'))
    with pytest.raises(ShapeError, match='h3'):
        supernet_scores(cfg, [SMALLEST, 'e32:hd24:h3,1,1:r2,2,2'], data)


def test_checkpoint_is_reused_and_other_settings_refused(tmp_path, monkeypatch):
    cfg = _cfg()
    data = load_proxy(cfg.proxy)
    path = str(tmp_path / 'supernet.pt')
    first = supernet_scores(cfg, [SMALLEST, MIXED], data, path=path, epochs=1)
    assert not first['train']['reused'] and os.path.exists(path)
    assert not [f for f in os.listdir(tmp_path) if f.endswith('.tmp')]
    monkeypatch.setattr(sn, 'train_supernet', lambda *a, **k: pytest.fail('the supernet was trained again'))
    again = supernet_scores(cfg, [SMALLEST, MIXED], data, path=path, epochs=1)
    assert again['train']['reused'] and again['scores'] == first['scores']
    with pytest.raises(SupernetError, match=r'config\.lr'):
        load_or_train(cfg.replace(lr=1e-3), data, path=path, epochs=1)
    with pytest.raises(SupernetError, match='epochs'):
        load_or_train(cfg, data, path=path, epochs=2)


TOOL = ['--preset', 'joint-tiny', '--proxy', 'relational?train=192&val=128&test=32', '--subnets', '5',
        '--supernet-epochs', '1', '--workers', '0', '--no-progress']


def test_tool_end_to_end_and_resume(tmp_path, monkeypatch, capsys):
    out = str(tmp_path / 'sn')
    assert supernet_main(TOOL + ['--out', out]) == 0
    for f in ('supernet.md', 'supernet.csv', 'supernet.png', 'summary.json', 'runs.jsonl', 'supernet.pt',
              'settings.json'):
        assert os.path.getsize(os.path.join(out, f)) > 0, f
    with open(os.path.join(out, 'summary.json')) as f:
        summary = json.load(f)
    c = summary['supernet_vs_standalone']
    assert summary['n'] == 5 and c['n'] == 5
    assert -1.0 <= c['kendall_tau_b'] <= 1.0 and -1.0 <= c['spearman'] <= 1.0   # finite (NaN fails both)
    assert JOINT_SEED_SHAPE in [r['shape'] for r in summary['rows']]
    assert len({r['shape'] for r in summary['rows']}) == 5
    assert summary['command'].startswith('python tools/supernet.py --preset joint-tiny')
    assert summary['load_start'] and summary['seconds']['supernet_train'] > 0
    md = open(os.path.join(out, 'supernet.md')).read()
    assert f'{c["kendall_tau_b"]:.3f}' in md and 'python tools/supernet.py' in md
    rows = open(os.path.join(out, 'supernet.csv')).read().splitlines()
    assert len(rows) == 6 and rows[0].startswith('shape,')
    # the stand-alone runs are the search's own proxy training at the shape, with the common seed
    runs = [json.loads(line) for line in open(os.path.join(out, 'runs.jsonl'))]
    assert sorted(r['kind'] for r in runs) == ['standalone'] * 5 + ['supernet']
    cfg = _cfg()
    for r in runs:
        if r['kind'] == 'standalone':   # joint-tiny has no common seed: the candidate's own, as the search
            key = JointGenome(ViTShape.parse(r['shape']), TRIAL_105).hash
            assert r['seed'] == candidate_seed(cfg, key, 'deit') and r['status'] == 'ok'
    capsys.readouterr()

    # resume: nothing is trained again; without the supernet's record the checkpoint is read back
    monkeypatch.setattr(sf, 'train_proxy', lambda *a, **k: pytest.fail('a stand-alone run was trained again'))
    monkeypatch.setattr(sn, 'train_supernet', lambda *a, **k: pytest.fail('the supernet was trained again'))
    with open(os.path.join(out, 'runs.jsonl'), 'w') as f:
        f.writelines(json.dumps(r) + '\n' for r in runs if r['kind'] != 'supernet')
    assert supernet_main(TOOL + ['--out', out]) == 0
    with open(os.path.join(out, 'summary.json')) as f:
        again = json.load(f)
    assert again['supernet_vs_standalone'] == c and again['seconds']['supernet_reused']
    assert len(open(os.path.join(out, 'runs.jsonl')).read().splitlines()) == 6

    # another setting in the same folder: one line, exit 2
    capsys.readouterr()
    assert supernet_main(TOOL + ['--out', out, '--subnets', '6']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('supernet.py: error: ') and 'other settings' in err[0]


def test_tool_bad_attention_is_one_line(tmp_path, capsys):
    assert supernet_main(TOOL + ['--out', str(tmp_path / 'x'), '--attention', 'nope']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'nope'" in err[0]


def test_sample_shapes_distinct_seeded_with_the_default():
    a = sf.sample_shapes(SPACE, 20, 0, [JOINT_SEED_SHAPE])
    assert a == sf.sample_shapes(SPACE, 20, 0, [JOINT_SEED_SHAPE]) and len(set(a)) == 20
    assert a[0] == JOINT_SEED_SHAPE and all(SPACE.contains(ViTShape.parse(s)) for s in a)
    assert a != sf.sample_shapes(SPACE, 20, 1, [JOINT_SEED_SHAPE])
    with pytest.raises(SupernetError, match='at least 2'):
        sf.sample_shapes(SPACE, 1, 0)


# ---- the joint search's supernet evaluator -----------------------------------------------------------
def test_shape_evaluator_config():
    assert _cfg().shape_evaluator == 'train'
    assert _cfg(shape_evaluator='supernet').shape_evaluator == 'supernet'
    for kw, needle in ((dict(shape_evaluator='oracle'), 'must be one of train, supernet'),
                       (dict(shape_evaluator='supernet', space='default', init_genomes=[]), "space='joint'"),
                       (dict(shape_evaluator='supernet', rungs=2, epochs=3), 'no rungs'),
                       (dict(shape_evaluator='supernet', prescreen='synflow'), 'no prescreen')):
        with pytest.raises(ConfigError, match=needle):
            _cfg(**kw)
    # a search-only field: the identities of trained results (fidelity runs, the bench) keep theirs
    assert 'shape_evaluator' in SEARCH_ONLY_FIELDS
    assert SearchConfig.from_dict({k: v for k, v in _cfg().to_dict().items()
                                   if k != 'shape_evaluator'}).shape_evaluator == 'train'


def test_supernet_task_trains_one_supernet_per_genome(tmp_path):
    cfg = _cfg(shape_evaluator='supernet')
    data = load_proxy(cfg.proxy)
    payload = lambda shape: dict(genome=f'{shape}|{TRIAL_105}', config=cfg.to_dict(),  # noqa: E731
                                 supernet_dir=str(tmp_path))
    first = supernet_task(payload(MIXED))
    second = supernet_task(payload(SMALLEST))
    assert first['status'] == second['status'] == 'ok'
    a, b = first['per_arch'][0], second['per_arch'][0]
    assert a['status'] == b['status'] == 'supernet'
    assert not a['supernet']['reused'] and a['steps'] == 12 and a['gflops'] is None
    assert b['supernet']['reused'] and b['steps'] == 0 and b['gflops'] > 0
    assert sorted(os.listdir(tmp_path)) == [f'{TRIAL_105.hash}.pt', f'{TRIAL_105.hash}.pt.lock']
    # the score is the inherited-weight accuracy of that shape in the stored supernet
    net, _ = load_or_train(cfg, data, TRIAL_105.to_string(), str(tmp_path / f'{TRIAL_105.hash}.pt'))
    assert b['acc'] == score_subnets(net, [SMALLEST], data)[SMALLEST]['acc']
    assert a['test_pred'] and len(a['test_pred']) > 0


def test_joint_search_with_the_supernet_evaluator(tmp_path, monkeypatch):
    from attnzero.search import Search

    cfg = _cfg(shape_evaluator='supernet', pop_size=4, generations=2)
    run_dir = str(tmp_path / 'run')
    Search(cfg, run_dir, progress=False).run()
    recs = [json.loads(line) for line in open(os.path.join(run_dir, 'evaluations.jsonl'))]
    trained = [r for r in recs if r['stage'] == 'train']
    assert trained and all(r['per_arch'][0]['status'] in ('supernet', 'rejected') for r in trained)
    genomes = {r['genome'].split('|')[1] for r in trained}
    stored = sorted(f for f in os.listdir(os.path.join(run_dir, 'supernets')) if f.endswith('.pt'))
    assert stored == sorted(f'{Genome.parse(g).hash}.pt' for g in genomes)
    # one training per genome: the other candidates of that genome reused its supernet
    reused = 0
    for g in genomes:
        of_g = [r['per_arch'][0] for r in trained if r['genome'].endswith('|' + g) and 'supernet' in r['per_arch'][0]]
        assert sum(not p['supernet']['reused'] for p in of_g) <= 1
        reused += sum(p['supernet']['reused'] for p in of_g)
    assert reused >= 1   # this run proposes Trial-105 at a second shape
    ok = [r for r in trained if r['status'] == 'ok']
    assert ok and all(0.0 <= r['acc_mean'] <= 1.0 for r in ok)
