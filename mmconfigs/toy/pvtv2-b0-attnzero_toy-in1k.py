# Toy ImageNet run of the real classification config (mmpretrain ImageNet dataset from
# meta/{train,val}.txt, the DeiT augmentations, Accuracy top-1) on CPU: 4 classes of 64 px
# images, Mixup/CutMix off so that a few epochs show learning. Data from
#   python tools/make_toy_data.py data/toy --task imagenet (or set ATTNZERO_TOY_ROOT)
#   python tools/train.py mmconfigs/toy/pvtv2-b0-attnzero_toy-in1k.py
_base_ = '../imagenet/pvtv2-b0-attnzero_8xb128-300e_in1k.py'

data_root = '{{$ATTNZERO_TOY_ROOT:data/toy}}/imagenet'
classes = ('n00000001', 'n00000002', 'n00000003', 'n00000004')
img_size = 64
data_preprocessor = dict(num_classes=4)
bgr_mean = [103.53, 116.28, 123.675]
bgr_std = [57.375, 57.12, 58.395]

model = dict(num_classes=4, drop_path_rate=0.0, train_cfg=None)  # no Mixup/CutMix on the toy set

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=img_size, crop_ratio_range=(0.5, 1.0), backend='pillow',
         interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10,
         magnitude_level=9, magnitude_std=0.5,
         hparams=dict(pad_val=[round(x) for x in bgr_mean], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02,
         max_area_ratio=1 / 3, fill_color=bgr_mean, fill_std=bgr_std),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=img_size, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=img_size),
    dict(type='PackInputs'),
]
train_dataloader = dict(
    batch_size=16, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=32, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=dict(classes=classes), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator

optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, end=1, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=1, end=10),
]
train_cfg = dict(max_epochs=10, val_interval=5)
default_hooks = dict(logger=dict(interval=6), checkpoint=dict(interval=5, max_keep_ckpts=2))
