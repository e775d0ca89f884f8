# ImageNet-1k: DeiT-S, the DeiT-T config with the 'small' arch.
_base_ = './deit-t-attnzero_8xb128-300e_in1k.py'

model = dict(model_name='attnzero_deit_small', drop_path_rate=0.1)
