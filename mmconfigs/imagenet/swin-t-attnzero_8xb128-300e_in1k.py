# ImageNet-1k, Swin family: Swin-T with AttnZero (global) in stages 1-3, softmax windows in stage 4
# (the paper's placement). The other Swin sizes and the softmax baselines inherit this file.
_base_ = '../_base_/in1k_8xb128-300e.py'

model = dict(
    model_name='attnzero_swin_tiny', attn=('attnzero', 'attnzero', 'attnzero', 'softmax'),
    drop_path_rate=0.2)
