# ImageNet-1k classification through mmpretrain: 300 epochs, batch 1024 (8 GPUs x 128), AdamW
# lr 1e-3 (= 1e-3 x batch / 1024), weight decay 0.05 (none on norms, biases and position tables),
# 20 warm-up epochs then cosine, gradient clipping 5.0, and the DeiT augmentation recipe (RandAugment
# m9-mstd0.5, random erasing 0.25, Mixup 0.8 / CutMix 1.0, label smoothing 0.1) from the installed
# mmpretrain bases. The final checkpoint, work_dirs/<config name>/epoch_300.pth, is what the
# detection and segmentation configs load into their backbone (init_cfg).
_base_ = [
    'mmpretrain::_base_/datasets/imagenet_bs64_swin_224.py',
    'mmpretrain::_base_/schedules/imagenet_bs1024_adamw_swin.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['attnzero.mm'], allow_failed_imports=False)

# The classifier is the attnzero timm model itself (mmpretrain's TimmClassifier around
# timm.create_model(model_name, attn=..., genome=...)): DeiT keeps its class token, the pyramids
# their own heads. Its checkpoints hold the plain timm parameter names, which are also those of
# the AttnZero* backbones of the detection/segmentation configs, so they load there unchanged.
model = dict(
    type='TimmClassifier',
    model_name='attnzero_pvt_tiny',
    pretrained=False,
    num_classes=1000,
    attn='softmax',
    genome=None,  # None: the paper's genome (Trial-105; Trial-140 for CSwin)
    drop_path_rate=0.1,
    loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1, mode='original'),
    train_cfg=dict(augments=[dict(type='Mixup', alpha=0.8), dict(type='CutMix', alpha=1.0)]),
)

train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
optim_wrapper = dict(
    optimizer=dict(lr=1e-3),
    paramwise_cfg=dict(custom_keys={
        'pos_embed': dict(decay_mult=0.0),
        'cls_token': dict(decay_mult=0.0),
        'relative_position_bias_table': dict(decay_mult=0.0),
    }),
    clip_grad=dict(max_norm=5.0))
default_hooks = dict(checkpoint=dict(type='CheckpointHook', interval=1, max_keep_ckpts=3))
