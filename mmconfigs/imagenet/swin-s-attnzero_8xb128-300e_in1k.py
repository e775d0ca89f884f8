# ImageNet-1k: Swin-S, the Swin-T config with the 'small' arch.
_base_ = './swin-t-attnzero_8xb128-300e_in1k.py'

model = dict(model_name='attnzero_swin_small', drop_path_rate=0.3)
