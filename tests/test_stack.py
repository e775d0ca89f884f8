"""Issue 2: the OpenMMLab 2.x stack works on torch 2.14 / numpy 2, on CPU.

These are end-to-end checks of the installed packages (mmcv ops, mmdet / mmseg model zoo configs,
mmengine Runner checkpoint + resume), run against the packages' own configs.
"""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import requires_mm

pytestmark = [requires_mm, pytest.mark.mm]


# --------------------------------------------------------------------------------------- mmcv ops
def test_mmcv_ops_import_and_nms_hand_made_case():
    from mmcv.ops import RoIAlign, batched_nms, nms  # noqa: F401

    boxes = torch.tensor([[0., 0., 10., 10.],     # IoU(0,1) = 81 / 119 = 0.68
                          [1., 1., 11., 11.],
                          [20., 20., 30., 30.],
                          [0., 0., 10., 9.]])     # IoU(0,3) = 90 / 100 = 0.9
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    dets, keep = nms(boxes, scores, iou_threshold=0.5)
    # highest score first: box 3 suppresses 0 and 1 (IoU(3,1) = 72/118 = 0.61), box 2 is separate
    assert keep.tolist() == [3, 2]
    torch.testing.assert_close(dets[:, 4], torch.tensor([0.95, 0.7]))
    torch.testing.assert_close(dets[:, :4], boxes[[3, 2]])
    # at a threshold above every overlap nothing is suppressed
    _, keep = nms(boxes, scores, iou_threshold=0.95)
    assert sorted(keep.tolist()) == [0, 1, 2, 3]
    # batched: boxes of different classes never suppress each other
    idxs = torch.tensor([0, 1, 0, 2])
    _, keep = batched_nms(boxes, scores, idxs, dict(type='nms', iou_threshold=0.5))
    assert sorted(keep.tolist()) == [0, 1, 2, 3]


def test_mmcv_roi_align_matches_bilinear_sampling_of_a_linear_ramp():
    from mmcv.ops import RoIAlign

    # f(y, x) = 2x + 3y is linear, so bilinear sampling at any point is exact and the average over a
    # bin equals f at the bin centre.
    h, w = 16, 20
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32),
                            indexing='ij')
    feat = (2 * xs + 3 * ys)[None, None]
    roi = torch.tensor([[0., 2., 3., 10., 11.]])   # (batch, x1, y1, x2, y2) in pixel coordinates
    out = RoIAlign((4, 4), spatial_scale=1.0, sampling_ratio=2, aligned=True)(feat, roi)
    # aligned=True: pixel centres at integer + 0.5, so the sampled grid is shifted by -0.5
    bin_w, bin_h = (10. - 2.) / 4, (11. - 3.) / 4
    cx = 2. + bin_w * (torch.arange(4) + 0.5) - 0.5
    cy = 3. + bin_h * (torch.arange(4) + 0.5) - 0.5
    expected = 2 * cx[None, :] + 3 * cy[:, None]
    torch.testing.assert_close(out[0, 0], expected, rtol=1e-5, atol=1e-4)


# ------------------------------------------------------------------------- mmdet zoo configs
def _cpu_config(cfg):
    """Drop hub weights and SyncBN so a zoo config builds offline on one CPU process."""
    from mmengine.config import ConfigDict

    def walk(node):
        if isinstance(node, dict):
            if node.get('type') == 'SyncBN':
                node['type'] = 'BN'
            if 'init_cfg' in node and isinstance(node['init_cfg'], dict) and \
                    node['init_cfg'].get('type') == 'Pretrained':
                node['init_cfg'] = None
            for value in node.values():
                walk(value)
        elif isinstance(node, (list, tuple)):
            for value in node:
                walk(value)

    cfg = copy.deepcopy(cfg)
    if 'pretrained' in cfg.model:
        cfg.model.pretrained = None
    walk(cfg.model)
    return ConfigDict(cfg.model)


@pytest.mark.parametrize('config', ['mmdet::mask_rcnn/mask-rcnn_r50_fpn_1x_coco.py',
                                    'mmdet::retinanet/retinanet_r50_fpn_1x_coco.py'])
def test_mmdet_zoo_config_loss_and_predict_on_cpu(config):
    import attnzero.compat  # noqa: F401
    from mmdet.registry import MODELS
    from mmdet.testing import demo_mm_inputs
    from mmdet.utils import register_all_modules
    from mmengine.hub import get_config

    register_all_modules()
    cfg = get_config(config)  # resolves the `pkg::` scope to the installed package's file
    model = MODELS.build(_cpu_config(cfg))
    model.init_weights()
    with_mask = 'mask' in config
    data = demo_mm_inputs(batch_size=2, image_shapes=[(3, 128, 160), (3, 96, 128)], num_items=[3, 2],
                          num_classes=80, with_mask=with_mask)

    model.train()
    batch = model.data_preprocessor(data, True)
    losses = model(**batch, mode='loss')
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total) and total.item() > 0
    if with_mask:
        assert 'loss_mask' in log_vars
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())

    model.eval()
    with torch.no_grad():
        results = model.test_step(data)
    assert len(results) == 2
    for res, (h, w) in zip(results, [(128, 160), (96, 128)]):
        inst = res.pred_instances
        assert inst.bboxes.shape[-1] == 4 and len(inst.scores) == len(inst.labels)
        if with_mask and len(inst):
            assert inst.masks.shape[-2:] == (h, w)


# ------------------------------------------------------------------------- mmseg zoo configs
@pytest.mark.parametrize('config', ['mmseg::upernet/upernet_r50_4xb4-80k_ade20k-512x512.py',
                                    'mmseg::sem_fpn/fpn_r50_4xb4-160k_ade20k-512x512.py'])
def test_mmseg_zoo_config_loss_and_predict_on_cpu(config):
    import attnzero.compat  # noqa: F401
    from mmengine.hub import get_config
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules

    register_all_modules()
    cfg = get_config(config)  # resolves the `pkg::` scope to the installed package's file
    model_cfg = _cpu_config(cfg)
    model_cfg.data_preprocessor.size = (128, 128)
    model = MODELS.build(model_cfg)
    model.init_weights()

    rng = np.random.RandomState(0)
    inputs, samples = [], []
    for _ in range(2):
        inputs.append(torch.from_numpy(rng.randint(0, 255, (3, 128, 128), dtype=np.uint8)))
        sample = SegDataSample(metainfo=dict(img_shape=(128, 128), ori_shape=(128, 128),
                                             pad_shape=(128, 128)))
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(
            rng.randint(0, 150, (1, 128, 128)).astype(np.int64)))
        samples.append(sample)
    data = dict(inputs=inputs, data_samples=samples)

    model.train()
    batch = model.data_preprocessor(data, True)
    losses = model(**batch, mode='loss')
    total, log_vars = model.parse_losses(losses)
    assert torch.isfinite(total)
    assert 'decode.loss_ce' in log_vars
    total.backward()

    model.eval()
    with torch.no_grad():
        results = model.test_step(data)
    assert len(results) == 2
    pred = results[0].pred_sem_seg.data
    assert pred.shape == (1, 128, 128)
    assert int(pred.min()) >= 0 and int(pred.max()) < 150
