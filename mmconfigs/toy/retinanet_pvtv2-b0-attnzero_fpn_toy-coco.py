# Toy COCO run of the real RetinaNet config (CocoMetric bbox mAP) on CPU, necks/heads narrowed to
# 64 channels: data from
#   python tools/make_toy_data.py data/toy --task coco     (or set ATTNZERO_TOY_ROOT)
#   python tools/train.py mmconfigs/toy/retinanet_pvtv2-b0-attnzero_fpn_toy-coco.py
_base_ = '../retinanet/retinanet_pvtv2-b0-attnzero_fpn_1x_coco.py'

data_root = '{{$ATTNZERO_TOY_ROOT:data/toy}}/coco/'
metainfo = dict(classes=('square', 'disc', 'triangle'))
img_scale = (192, 160)

width = 64  # narrower neck and head for a CPU
model = dict(
    backbone=dict(init_cfg=None, drop_path_rate=0.0),
    neck=dict(out_channels=width),
    bbox_head=dict(in_channels=width, feat_channels=width, stacked_convs=2, num_classes=3),
    # score_thr 0: an untrained RetinaNet (prior 0.01) still yields boxes to evaluate
    test_cfg=dict(nms_pre=500, score_thr=0.0, max_per_img=50))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 filter_cfg=dict(filter_empty_gt=True, min_size=8)))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
train_cfg = dict(max_epochs=12, val_interval=12)
default_hooks = dict(logger=dict(interval=4), checkpoint=dict(interval=4, max_keep_ckpts=2))
