# ImageNet-1k: PVT-S, the PVT-T config with the 'small' arch.
_base_ = './pvt-t-attnzero_8xb128-300e_in1k.py'

model = dict(model_name='attnzero_pvt_small')
