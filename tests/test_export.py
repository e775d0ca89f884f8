"""Deployable models (issue 16): no host synchronisation in the genome path, full-graph
``torch.compile``, ``torch.export`` (.pt2) and ONNX (checked with onnxruntime), tools/export.py."""
from __future__ import annotations

import importlib.util
import json

import pytest
import timm
import torch

from attnzero.models.export import export_model, main as export_main
from attnzero.space import TRIAL_105, TRIAL_140

FAMILY_TINY = ['attnzero_deit_tiny', 'attnzero_pvt_tiny', 'attnzero_pvt_v2_b0',
               'attnzero_swin_tiny', 'attnzero_cswin_tiny', 'attnzero_efficientformer_l1']
# EfficientFormer's full-graph capture is proven by its (default-suite) dynamic torch.export below;
# its separate torch.compile run is in the slow set (about 10 s on 2 cores)
COMPILE_SLOW = ('attnzero_efficientformer_l1',)
needs_onnx = pytest.mark.skipif(
    importlib.util.find_spec('onnxruntime') is None or importlib.util.find_spec('onnxscript') is None,
    reason='onnx / onnxruntime / onnxscript not installed')


@pytest.mark.parametrize('grad', [False, True])
def test_genome_path_reads_nothing_to_the_host(grad):
    q, k, v = (torch.randn(2, 2, 49, 16, requires_grad=grad) for _ in range(3))
    for g in (TRIAL_105, TRIAL_140):
        prog = g.compile()
        with torch.set_grad_enabled(grad):
            want = prog(q, k, v)
        mp = pytest.MonkeyPatch()
        try:
            def refuse(*a, **kw):
                raise AssertionError('host read in the genome path')
            for name in ('item', '__bool__', '__float__'):
                mp.setattr(torch.Tensor, name, refuse)
            with torch.set_grad_enabled(grad):
                got = prog(q, k, v)
        finally:
            mp.undo()
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize('grad', [False, True])
def test_genome_program_compiles_fullgraph(grad):
    q, k, v = (torch.randn(1, 2, 36, 8, dtype=torch.float64) for _ in range(3))
    prog = TRIAL_105.compile()
    fn = torch.compile(prog, fullgraph=True, backend='eager')
    with torch.set_grad_enabled(grad):
        torch.testing.assert_close(fn(q, k, v), TRIAL_105.compile(fast=False)(q, k, v))


def test_normalize_special_cases_match_the_reference_without_host_reads():
    """Zero spread and non-finite statistics: the tensor-op selection gives the reference's zeros."""
    from attnzero.space import Genome
    g = Genome.parse('i3n2:normalize;-;-;-:first,first')  # out = normalize(Q) (batch-global)
    for q in (torch.full((1, 1, 5, 4), 3.0), torch.zeros(1, 1, 5, 4)):
        k = v = torch.randn(1, 1, 5, 4)
        torch.testing.assert_close(g.compile()(q, k, v), g.compile(fast=False)(q, k, v))


@pytest.mark.parametrize('name', [pytest.param(n, marks=pytest.mark.slow) if n in COMPILE_SLOW else n
                                  for n in FAMILY_TINY])
def test_compile_fullgraph_each_family_with_attnzero(name):
    """Dynamo captures the whole model as one graph (no graph break, no data-dependent branch),
    in eval and in training (forward + backward)."""
    torch._dynamo.reset()
    m = timm.create_model(name, num_classes=5).eval()
    x = torch.randn(1, 3, 64, 96)
    c = torch.compile(m, fullgraph=True, backend='eager')
    with torch.no_grad():
        torch.testing.assert_close(c(x), m(x), rtol=1e-5, atol=1e-5)
    m.train()
    c(x).sum().backward()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize('name', ['attnzero_pvt_v2_b0', 'attnzero_deit_tiny',
                                  'attnzero_efficientformer_l1'])
def test_export_pt2_dynamic_hw(name, tmp_path):
    m = timm.create_model(name, num_classes=5)
    r = export_model(m, 'pt2', str(tmp_path / 'm.pt2'), img_size=(96, 128), dynamic=True)
    assert len(r['checks']) == 2 and r['checks'][0]['size'] != r['checks'][1]['size']
    assert r['max_abs_err'] <= 1e-4, r
    assert r['valid_hw_range'][0][0] <= 96 <= r['valid_hw_range'][0][1]


@needs_onnx
@pytest.mark.parametrize('name', ['attnzero_pvt_v2_b0', 'attnzero_deit_tiny'])
def test_export_onnx_matches_eager_in_onnxruntime(name, tmp_path):
    m = timm.create_model(name, num_classes=5)
    r = export_model(m, 'onnx', str(tmp_path / 'm.onnx'), img_size=(96, 128), dynamic=True)
    assert r['max_abs_err'] <= 1e-4, r
    assert [c['shapes'] for c in r['checks']] == [[[1, 5]], [[1, 5]]]


@needs_onnx
def test_export_tool_features_only_onnx_and_report(tmp_path, capsys):
    out, rep = tmp_path / 'pyr.onnx', tmp_path / 'r.json'
    rc = export_main(['attnzero_pvt_v2_b0', '--features-only', '--format', 'onnx', '--img-size', '64',
                      '96', '--out', str(out), '--json', str(rep)])
    assert rc == 0 and out.is_file()
    r = json.loads(rep.read_text())
    assert r['max_abs_err'] <= 1e-4 and len(r['checks'][0]['shapes']) == 4
    assert 'max abs err' in capsys.readouterr().out


@pytest.mark.parametrize('argv, needle', [
    (['attnzero_nope'], "'attnzero_nope'"),
    (['attnzero_pvt_v2_b0', '--genome', 'i3n303:bogus'], "'i3n303:bogus'"),
    (['attnzero_pvt_v2_b0', '--attn', 'nope'], "'nope'"),
    (['attnzero_pvt_v2_b0', '--checkpoint', '/nope.pth'], "'/nope.pth'"),
    (['attnzero_pvt_v2_b0', '--dynamic', '--img-size', '100'], '100'),
])
def test_export_tool_bad_input_is_one_line_exit_2(argv, needle, tmp_path, capsys):
    rc = export_main(argv + ['--out', str(tmp_path / 'x.pt2')])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and needle in err[0], err


@pytest.mark.slow
@pytest.mark.parametrize('attn', ['softmax', 'linear', 'relu_linear', 'focused', 'hydra', 'agent',
                                  'identity', 'attnzero'])
@pytest.mark.parametrize('name', FAMILY_TINY)
def test_export_every_family_and_zoo_attention_at_224(name, attn, tmp_path):
    m = timm.create_model(name, num_classes=5, attn=attn)
    r = export_model(m, 'pt2', str(tmp_path / 'm.pt2'), img_size=(224, 224), dynamic=True)
    assert r['max_abs_err'] <= 1e-4, r


@pytest.mark.parametrize('Hp, Wp, win, shift', [(14, 21, (7, 7), (3, 3)), (8, 12, (4, 6), (2, 0)),
                                               (16, 16, (8, 8), (0, 4))])
def test_swin_shift_mask_equals_the_slice_construction(Hp, Wp, win, shift):
    """The traceable shift mask (region ids from comparisons) equals Swin's original slice-based
    construction."""
    from attnzero.models.layers import window_partition
    from attnzero.models.swin import SHIFT_MASK_VALUE, WindowMixer

    img = torch.zeros(1, Hp, Wp, 1)
    cnt = 0
    hs = [slice(0, -win[0]), slice(-win[0], -shift[0]), slice(-shift[0], None)] if shift[0] else [slice(None)]
    ws = [slice(0, -win[1]), slice(-win[1], -shift[1]), slice(-shift[1], None)] if shift[1] else [slice(None)]
    for h in hs:
        for w in ws:
            img[:, h, w, :] = cnt
            cnt += 1
    m = window_partition(img, win).squeeze(-1)
    want = ((m[:, None, :] != m[:, :, None]).float() * SHIFT_MASK_VALUE).unsqueeze(1)
    got = WindowMixer._build_shift_mask(Hp, Wp, win, shift, torch.device('cpu'))
    assert torch.equal(got, want)
