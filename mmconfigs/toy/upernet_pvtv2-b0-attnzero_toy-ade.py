# Toy ADE20K run of the real UperNet config (auxiliary FCN head, IoUMetric mIoU) on CPU, 128x128
# crops, 4 of the ADE classes, narrower heads (64 / 32 channels) to fit a CPU: data from
#   python tools/make_toy_data.py data/toy --task ade      (or set ATTNZERO_TOY_ROOT)
#   python tools/train.py mmconfigs/toy/upernet_pvtv2-b0-attnzero_toy-ade.py
_base_ = '../upernet/upernet_pvtv2-b0-attnzero_8xb2-160k_ade20k-512x512.py'

data_root = '{{$ATTNZERO_TOY_ROOT:data/toy}}/ade/ADEChallengeData2016'
metainfo = dict(classes=('wall', 'building', 'sky', 'tree'))
crop_size = (128, 128)

model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(init_cfg=None, drop_path_rate=0.0),
    decode_head=dict(channels=64, num_classes=4),
    auxiliary_head=dict(channels=32, num_classes=4))

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

optim_wrapper = dict(optimizer=dict(lr=6e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', power=1.0, eta_min=0.0, begin=20, end=100, by_epoch=False),
]
train_cfg = dict(max_iters=100, val_interval=100)
default_hooks = dict(logger=dict(interval=10), checkpoint=dict(interval=50, max_keep_ckpts=2))
