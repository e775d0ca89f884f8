# ImageNet-1k: EfficientFormer-L3 (AttnZero in its four attention blocks), the EfficientFormer-L1
# config with the L3 model.
_base_ = './efficientformer-l1-attnzero_8xb128-300e_in1k.py'

model = dict(model_name='attnzero_efficientformer_l3')
