# Toy ADE20K run of the real Semantic FPN config with the EfficientFormer-L1 backbone (AttnZero in
# its attention block; its BatchNorm conv stages trained from scratch) on CPU: the overlay of
# fpn_pvtv2-b0-attnzero_toy-ade.py (128x128 crops, 4 of the ADE classes, neck/head narrowed to 64
# channels, 100 iterations). Data from
#   python tools/make_toy_data.py data/toy --task ade      (or set ATTNZERO_TOY_ROOT)
#   python tools/train.py mmconfigs/toy/fpn_efficientformer-l1-attnzero_toy-ade.py
_base_ = '../sem_fpn/fpn_efficientformer-l1-attnzero_8xb2-80k_ade20k-512x512.py'

data_root = '{{$ATTNZERO_TOY_ROOT:data/toy}}/ade/ADEChallengeData2016'
# a subset of the ADE20K classes: the dataset remaps their label values to 0..3
metainfo = dict(classes=('wall', 'building', 'sky', 'tree'))
crop_size = (128, 128)

width = 64  # narrower neck and head for a CPU
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None, drop_path_rate=0.0),
    neck=dict(out_channels=width),
    decode_head=dict(in_channels=[width] * 4, channels=width, num_classes=4))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(512, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(512, 128), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [dict(type='PolyLR', power=0.9, eta_min=0.0, begin=0, end=100, by_epoch=False)]
train_cfg = dict(max_iters=100, val_interval=100)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=50, max_keep_ckpts=2))
