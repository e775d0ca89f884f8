# Toy COCO run of the real Mask R-CNN config (same model family, dataset class, pipeline steps,
# CocoMetric bbox + segm mAP), small enough for a CPU: data from
#   python tools/make_toy_data.py data/toy --task coco
# (or set ATTNZERO_TOY_ROOT to the folder make_toy_data.py wrote), 3 shape classes, ~160 px images,
# backbone trained from scratch, 12 short epochs, necks/heads narrowed to 64 channels for a CPU.
#   python tools/train.py mmconfigs/toy/mask-rcnn_pvtv2-b0-attnzero_fpn_toy-coco.py
_base_ = '../mask_rcnn/mask-rcnn_pvtv2-b0-attnzero_fpn_1x_coco.py'

data_root = '{{$ATTNZERO_TOY_ROOT:data/toy}}/coco/'
metainfo = dict(classes=('square', 'disc', 'triangle'))
img_scale = (192, 160)

width = 64
model = dict(
    backbone=dict(init_cfg=None, drop_path_rate=0.0),
    neck=dict(out_channels=width),
    rpn_head=dict(in_channels=width, feat_channels=width),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=width),
        bbox_head=dict(in_channels=width, fc_out_channels=256, num_classes=3),
        mask_roi_extractor=dict(out_channels=width),
        mask_head=dict(num_convs=2, in_channels=width, conv_out_channels=width, num_classes=3)),
    train_cfg=dict(rpn_proposal=dict(nms_pre=1000, max_per_img=500), rcnn=dict(sampler=dict(num=128))),
    test_cfg=dict(rpn=dict(nms_pre=500, max_per_img=300), rcnn=dict(max_per_img=50)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
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

# short schedule: 12 epochs of 8 iterations, warm-up 20 iterations, steps after epochs 8 and 11
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=20),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
train_cfg = dict(max_epochs=12, val_interval=12)
default_hooks = dict(logger=dict(interval=4), checkpoint=dict(interval=4, max_keep_ckpts=2))
