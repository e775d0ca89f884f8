# ImageNet-1k: DynamicViT token pruning (Rao et al., NeurIPS 2021) on DeiT-T with AttnZero
# (Trial-105). Prediction modules before blocks 3, 6 and 9 keep 70%, 49% and 34.3% of the patch
# tokens; training adds the keep-ratio loss (weight 2.0) and distillation to the unpruned model
# (weight 0.5) to the classification loss (DynamicViTClassifier). In training the genome runs in its
# token-masked form (attnzero.space.run_masked: every reduction and statistic over tokens sees the
# kept tokens only); at inference the pruned tokens are removed. As DynamicViT, it fine-tunes a
# trained model for 30 epochs: the checkpoint of deit-t-attnzero_8xb128-300e_in1k.py. Any attention
# with token-mask support works (the softmax sibling sets attn='softmax').
_base_ = './deit-t-attnzero_8xb128-300e_in1k.py'

model = dict(
    type='DynamicViTClassifier',
    token_reduction=dict(type='dynamicvit', keep=0.7),
    ratio_weight=2.0,
    distill_weight=0.5)
load_from = 'work_dirs/deit-t-attnzero_8xb128-300e_in1k/epoch_300.pth'

train_cfg = dict(max_epochs=30)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=5, convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=5, end=30),
]
